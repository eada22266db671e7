// Progressive enhancement of the server-rendered pages. Every page works
// without this file (plain form posts); with it, the frame is sized to its
// content, contact names open Bitrix24's own contact slider, the removal
// asks for an in-page confirmation and shows a busy state, and a successful
// removal refreshes the lead card around the frame.
(function () {
  'use strict';

  var bx = typeof window.BX24 === 'object' && window.BX24 !== null ? window.BX24 : null;

  function fit() {
    if (bx) { bx.fitWindow(); }
  }

  function onReady(fn) {
    if (document.readyState === 'loading') {
      document.addEventListener('DOMContentLoaded', fn);
    } else {
      fn();
    }
  }

  function enhanceContacts() {
    var links = document.querySelectorAll('a[data-path]');
    Array.prototype.forEach.call(links, function (a) {
      a.addEventListener('click', function (e) {
        if (!bx) { return; }
        e.preventDefault();
        bx.openPath(a.getAttribute('data-path'));
      });
    });
  }

  function enhanceForm() {
    var form = document.getElementById('remove-form');
    var button = document.getElementById('remove');
    if (!form || !button) { return; }
    var confirmed = false;
    var box = null;

    function busy() {
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      button.textContent = form.getAttribute('data-busy');
      if (box) { box.hidden = true; }
    }

    function closeConfirm() {
      if (box) { box.remove(); box = null; }
      button.hidden = false;
      button.focus();
      fit();
    }

    function openConfirm() {
      button.hidden = true;
      box = document.createElement('div');
      box.className = 'confirm';
      box.id = 'confirm';
      box.setAttribute('role', 'alertdialog');
      box.setAttribute('aria-labelledby', 'confirm-text');
      var text = document.createElement('p');
      text.id = 'confirm-text';
      text.textContent = form.getAttribute('data-confirm');
      var yes = document.createElement('button');
      yes.type = 'button';
      yes.id = 'confirm-yes';
      yes.className = 'btn btn-danger';
      yes.textContent = form.getAttribute('data-yes');
      var no = document.createElement('button');
      no.type = 'button';
      no.id = 'confirm-cancel';
      no.className = 'btn btn-light';
      no.textContent = form.getAttribute('data-cancel');
      yes.addEventListener('click', function () {
        confirmed = true;
        busy();
        form.submit();
      });
      no.addEventListener('click', closeConfirm);
      box.addEventListener('keydown', function (e) {
        if (e.key === 'Escape') { closeConfirm(); }
      });
      box.appendChild(text);
      box.appendChild(yes);
      box.appendChild(no);
      form.insertBefore(box, button);
      yes.focus();
      fit();
    }

    form.addEventListener('submit', function (e) {
      if (confirmed) { return; }
      e.preventDefault();
      if (!box) { openConfirm(); }
    });
  }

  onReady(function () {
    enhanceContacts();
    enhanceForm();
    if (!bx) { return; }
    bx.init(function () {
      fit();
      if (document.body.getAttribute('data-reload') === '1') {
        // Refreshes the lead card around the frame (its contact block);
        // Bitrix24 ignores unknown commands without calling back.
        bx.placement.call('reloadData', {}, function () {});
      }
      if (document.body.classList.contains('install-finish')) {
        bx.installFinish();
      }
    });
  });
}());
