// Progressive enhancement of the server-rendered pages. Every page works
// without this file (plain form posts; the removal then confirms on a
// page of its own); with it, the frame is sized to its content, contact
// and lead links open Bitrix24's own sliders, the removal asks for an
// in-page confirmation, every action shows a busy state that blocks a
// second submit, a failure's banner takes the focus, and a changed card
// is reloaded around the frame.
(function () {
  'use strict';

  var bx = typeof window.BX24 === 'object' && window.BX24 !== null ? window.BX24 : null;

  // fit sizes the frame to the page with BX24.fitWindow. fitWindow
  // measures the document's scrollHeight, which never drops below the
  // frame's current height, so a page that got shorter (after a removal)
  // would keep the old height: the frame is first set to the body's own
  // height, then fitWindow settles it.
  function fit() {
    if (!bx) { return; }
    var h = Math.ceil(document.body.getBoundingClientRect().height);
    bx.resizeWindow('100%', Math.max(h, 1), function () { bx.fitWindow(); });
  }

  function onReady(fn) {
    if (document.readyState === 'loading') {
      document.addEventListener('DOMContentLoaded', fn);
    } else {
      fn();
    }
  }

  function enhanceLinks() {
    var links = document.querySelectorAll('a[data-path]');
    Array.prototype.forEach.call(links, function (a) {
      a.addEventListener('click', function (e) {
        if (!bx) { return; }
        e.preventDefault();
        bx.openPath(a.getAttribute('data-path'));
      });
    });
  }

  // busy disables a form's buttons and says what is happening, so a
  // second click cannot send the action twice.
  function busy(form, button) {
    Array.prototype.forEach.call(form.querySelectorAll('button'), function (b) { b.disabled = true; });
    if (button) {
      button.setAttribute('aria-busy', 'true');
      var label = button.querySelector('span') || button;
      label.textContent = form.getAttribute('data-busy');
    }
  }

  function enhanceBusyForms() {
    var forms = document.querySelectorAll('form[data-busy]:not(#remove-form)');
    Array.prototype.forEach.call(forms, function (form) {
      var sent = false;
      form.addEventListener('submit', function (e) {
        if (sent) { e.preventDefault(); return; }
        sent = true;
        busy(form, form.querySelector('button[type="submit"]'));
      });
    });
  }

  function button(id, cls, text) {
    var b = document.createElement('button');
    b.type = 'button';
    b.id = id;
    b.className = cls;
    b.textContent = text;
    return b;
  }

  // enhanceRemove replaces the confirmation page with an in-page one: the
  // form normally posts to the confirmation route; once confirmed here it
  // posts straight to the removal (data-action).
  function enhanceRemove() {
    var form = document.getElementById('remove-form');
    var remove = document.getElementById('remove');
    if (!form || !remove) { return; }
    var confirmed = false;
    var box = null;

    function closeConfirm() {
      if (box) { box.remove(); box = null; }
      remove.hidden = false;
      remove.focus();
      fit();
    }

    function openConfirm() {
      remove.hidden = true;
      box = document.createElement('div');
      box.className = 'confirm';
      box.id = 'confirm';
      box.tabIndex = -1;
      box.setAttribute('role', 'alertdialog');
      box.setAttribute('aria-labelledby', 'confirm-text');
      var text = document.createElement('p');
      text.id = 'confirm-text';
      text.className = 'confirm-text';
      text.textContent = form.getAttribute('data-confirm');
      var yes = button('confirm-yes', 'btn btn-danger', form.getAttribute('data-yes'));
      var no = button('confirm-cancel', 'btn btn-light', form.getAttribute('data-cancel'));
      yes.addEventListener('click', function () {
        if (confirmed) { return; }
        confirmed = true;
        busy(form, yes);
        form.action = form.getAttribute('data-action');
        form.submit();
      });
      no.addEventListener('click', closeConfirm);
      box.addEventListener('keydown', function (e) {
        if (e.key === 'Escape' && !confirmed) { closeConfirm(); }
      });
      box.appendChild(text);
      box.appendChild(yes);
      box.appendChild(no);
      form.insertBefore(box, remove);
      // The question gets the focus, not the destructive button: a
      // screen reader reads it, and Tab then reaches "Yes".
      box.focus();
      fit();
    }

    form.addEventListener('submit', function (e) {
      if (confirmed) { return; }
      e.preventDefault();
      if (!box) { openConfirm(); }
    });
  }

  // focusFailure gives a failure's banner the focus, as the confirmation
  // gives it to its question: a screen reader reads what went wrong, and
  // Tab then reaches the next steps (Try again, Back to the list) above
  // the list the page kept.
  function focusFailure() {
    var failure = document.getElementById('failure');
    if (failure) { failure.focus(); }
  }

  // pollBulk keeps the bulk run's progress current while it works: every
  // two seconds it posts the page's admin context to the status route and
  // writes the counters back; the page itself reads them from the store,
  // so a reload shows the same progress. Buttons a state no longer allows
  // are taken away; a finished run stops the poll.
  function pollBulk() {
    var run = document.getElementById('bulk-run');
    if (!run || run.getAttribute('data-active') !== 'true' || !window.fetch || !window.URLSearchParams) { return; }
    var ctx = document.querySelector('#bulk-control input[name="ctx"]');
    function set(id, v) {
      var el = document.getElementById(id);
      if (el && v !== undefined) { el.textContent = String(v); }
    }
    function tick() {
      // URL-encoded, as the forms post: the app refuses multipart bodies.
      var body = new URLSearchParams();
      body.append('ctx', ctx ? ctx.value : '');
      window.fetch(run.getAttribute('data-status'), { method: 'POST', body: body, credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (v) {
          if (!v || v.id !== Number(run.getAttribute('data-run'))) { return; }
          var bar = document.getElementById('bulk-progress');
          bar.max = Math.max(v.matched, 1);
          bar.value = v.leads;
          bar.textContent = v.leads + ' / ' + v.matched;
          set('bulk-state', v.text);
          set('bulk-leads', v.leads);
          set('bulk-matched', v.matched);
          set('bulk-removed', v.removed);
          set('bulk-refused', v.refused);
          set('bulk-restored', v.restored);
          set('bulk-kept', v.kept);
          [['bulk-pause', v.can_pause], ['bulk-cancel', v.can_cancel]].forEach(function (b) {
            var el = document.getElementById(b[0]);
            if (el && !b[1]) { el.remove(); }
          });
          if (v.active) { window.setTimeout(tick, 2000); }
        })
        .catch(function () { window.setTimeout(tick, 5000); });
    }
    window.setTimeout(tick, 1000);
  }

  onReady(function () {
    pollBulk();
    enhanceLinks();
    enhanceBusyForms();
    enhanceRemove();
    focusFailure();
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
