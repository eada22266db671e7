/*
 * Parent side of the simulated portal pages: auto-submits the frame POST into
 * the app iframe and answers the BX24 shim's messages. The protocol is
 * documented at the top of bx24.js (served at the simulator's /api/v1/).
 */
(function () {
  'use strict';

  var dataEl = document.getElementById('frame-data');
  var frame = document.getElementById('app-frame');
  var form = document.getElementById('frame-form');
  if (!dataEl || !frame || !form) { return; }
  var data = JSON.parse(dataEl.textContent);
  var auth = data.auth;

  var slider = document.getElementById('slider');
  var sliderFrame = document.getElementById('slider-frame');
  var sliderClose = document.getElementById('slider-close');
  var sliderReply = null;

  function reply(id, result) {
    frame.contentWindow.postMessage({ bx24sim: 1, sid: data.sid, id: id, result: result }, data.handlerOrigin);
  }

  function post(path, fields) {
    return window.fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString()
    }).then(function (resp) {
      if (!resp.ok) { throw new Error('HTTP ' + resp.status); }
      return resp.json();
    });
  }

  function renderContacts(rows) {
    var list = document.getElementById('portal-contacts');
    var empty = document.getElementById('portal-contacts-empty');
    if (!list) { return; }
    while (list.firstChild) { list.removeChild(list.firstChild); }
    rows.forEach(function (row) {
      var li = document.createElement('li');
      li.setAttribute('data-contact-id', String(row.id));
      if (row.primary) { li.className = 'primary'; li.title = 'Primary contact'; }
      var a = document.createElement('a');
      a.href = '/crm/contact/details/' + encodeURIComponent(row.id) + '/';
      a.textContent = row.name;
      li.appendChild(a);
      list.appendChild(li);
    });
    if (empty) { empty.hidden = rows.length > 0; }
  }

  function closeSlider() {
    if (!slider || slider.hidden) { return; }
    slider.hidden = true;
    sliderFrame.src = 'about:blank';
    if (sliderReply) {
      var cb = sliderReply;
      sliderReply = null;
      cb();
    }
  }
  if (sliderClose) { sliderClose.addEventListener('click', closeSlider); }

  var handlers = {
    init: function (msg) {
      reply(msg.id, {
        placement: data.placement,
        options: data.options || {},
        auth: auth,
        lang: data.lang,
        domain: data.domain,
        protocol: data.protocol,
        memberId: data.memberId,
        isAdmin: data.isAdmin
      });
    },
    resizeWindow: function (msg) {
      var p = msg.params || {};
      var h = parseInt(p.height, 10);
      if (h > 0) { frame.style.height = Math.min(h, 20000) + 'px'; }
      var w = parseInt(p.width, 10);
      if (p.width === '100%') {
        frame.style.width = '100%';
      } else if (w > 0) {
        frame.style.width = Math.min(w, 20000) + 'px';
      }
      reply(msg.id, { width: frame.offsetWidth, height: frame.offsetHeight });
    },
    placementCall: function (msg) {
      var p = msg.params || {};
      // reloadData refreshes the CRM card; every other command is silently
      // ignored, as the real library does (no callback).
      if (p.command !== 'reloadData' || data.kind !== 'placement' || !data.leadId) { return; }
      window.fetch('/sim/api/lead/' + encodeURIComponent(data.leadId) + '/contacts', { credentials: 'same-origin' })
        .then(function (resp) { return resp.json(); })
        .then(function (rows) {
          if (Array.isArray(rows)) { renderContacts(rows); }
          reply(msg.id, {});
        });
    },
    getInterface: function (msg) {
      reply(msg.id, { command: data.kind === 'placement' ? ['reloadData'] : [], event: [] });
    },
    openPath: function (msg) {
      var path = String((msg.params || {}).path || '');
      // Only portal-relative paths, never another origin or a script URL.
      if (!slider || path.charAt(0) !== '/' || path.charAt(1) === '/' || path.charAt(1) === '\\') { return; }
      sliderReply = function () { reply(msg.id, { result: 'close' }); };
      sliderFrame.src = path;
      slider.hidden = false;
    },
    refreshAuth: function (msg) {
      post('/sim/api/auth', { app_sid: data.sid }).then(function (a) {
        auth = a;
        reply(msg.id, a);
      });
    },
    installFinish: function () {
      if (data.kind !== 'installer') { return; }
      post('/sim/api/install-finish', { app_sid: data.sid }).then(function () {
        window.location.assign('/');
      });
    },
    reloadWindow: function () { form.submit(); }
  };

  window.addEventListener('message', function (ev) {
    if (ev.source !== frame.contentWindow || ev.origin !== data.handlerOrigin) { return; }
    var msg = ev.data;
    if (!msg || typeof msg !== 'object' || msg.bx24sim !== 1 || msg.sid !== data.sid || typeof msg.cmd !== 'string') { return; }
    if (Object.prototype.hasOwnProperty.call(handlers, msg.cmd)) { handlers[msg.cmd](msg); }
  });

  form.submit();
})();

// A robot run still waiting for the application's answer: reload the lead
// card until it comes (apps answer runs from a queue, after the POST).
(function () {
  'use strict';
  var log = document.getElementById('robot-log');
  if (log && log.hasAttribute('data-pending')) {
    setTimeout(function () { location.reload(); }, 1000);
  }
})();
