/*
 * BX24 JS shim of the Bitrix24 portal simulator: a CSP-friendly (no eval, no
 * inline code) stand-in for https://api.bitrix24.com/api/v1/ implementing the
 * documented subset used by frame apps.
 *
 * Like the real library it reads "DOMAIN|PROTOCOL|APP_SID" from window.name
 * (the portal names the iframe so), derives the portal origin from it
 * (PROTOCOL 1 = https, else http), posts messages only to that origin and
 * accepts replies only from it.
 *
 * Message protocol (ours; the real one is internal to Bitrix24):
 *
 *   child -> parent  {bx24sim: 1, sid: APP_SID, id: N, cmd: "...", params: {...}}
 *   parent -> child  {bx24sim: 1, sid: APP_SID, id: N, result: ...}
 *
 * The child posts with targetOrigin = portal origin and accepts a message
 * only if event.source === window.parent, event.origin === portal origin and
 * data.sid === APP_SID. The parent (the portal page) accepts a message only if
 * event.source is its app iframe's window, event.origin is the handler's
 * origin and data.sid is that frame's APP_SID, and replies to that origin.
 *
 *   cmd            params              reply result
 *   init           {}                  {placement, options, auth, lang, domain, protocol, memberId, isAdmin}
 *   resizeWindow   {width, height}     {width, height} (pixels actually set)
 *   placementCall  {command, params}   {} for "reloadData"; unknown commands get no reply
 *   getInterface   {}                  {command: [...], event: [...]}
 *   openPath       {path}              {result: "close"} once the slider is closed
 *   refreshAuth    {}                  {access_token, refresh_token, expires_in (s), domain, member_id}
 *   installFinish  {}                  no reply: the portal finishes the install and navigates home
 *   reloadWindow   {}                  no reply: the portal re-posts the frame
 *
 * auth.expires_in travels as seconds; BX24.getAuth() returns it as an expiry
 * timestamp in milliseconds, like the real library (not seconds).
 */
(function () {
  'use strict';

  var parts = String(window.name || '').split('|');
  var DOMAIN = parts[0] || '';
  var PROTOCOL = parts[1] === '1' ? '1' : '0';
  var APP_SID = parts[2] || '';
  var inFrame = window.parent !== window && DOMAIN !== '' && APP_SID !== '';
  var ORIGIN = (PROTOCOL === '1' ? 'https://' : 'http://') + DOMAIN;

  var seq = 0;
  var pending = {};
  var ready = false;
  var initSent = false;
  var initQueue = [];
  var info = { placement: '', options: {} };
  var state = { lang: '', domain: DOMAIN, isAdmin: false, memberId: '' };
  var auth = null; // {access_token, refresh_token, expires (ms), domain, member_id}

  function send(cmd, params, cb) {
    if (!inFrame) {
      if (window.console) { window.console.warn('BX24 shim: not inside a Bitrix24 frame; ' + cmd + ' ignored'); }
      return;
    }
    seq += 1;
    if (typeof cb === 'function') { pending[seq] = cb; }
    window.parent.postMessage({ bx24sim: 1, sid: APP_SID, id: seq, cmd: cmd, params: params || {} }, ORIGIN);
  }

  window.addEventListener('message', function (ev) {
    if (ev.source !== window.parent || ev.origin !== ORIGIN) { return; }
    var msg = ev.data;
    if (!msg || typeof msg !== 'object' || msg.bx24sim !== 1 || msg.sid !== APP_SID) { return; }
    var cb = pending[msg.id];
    if (!cb) { return; }
    delete pending[msg.id];
    cb(msg.result);
  });

  function setAuth(a) {
    if (!a || !a.access_token) { return; }
    auth = {
      access_token: a.access_token,
      refresh_token: a.refresh_token,
      expires: Date.now() + (Number(a.expires_in) || 0) * 1000,
      domain: a.domain,
      member_id: a.member_id
    };
  }

  function getAuth() {
    if (!auth || Date.now() >= auth.expires) { return false; }
    return {
      access_token: auth.access_token,
      refresh_token: auth.refresh_token,
      expires_in: auth.expires,
      domain: auth.domain,
      member_id: auth.member_id
    };
  }

  function later(fn) { window.setTimeout(fn, 0); }

  function Result(answer, status, query) {
    this.answer = answer || {};
    this.status = status;
    this.query = query;
  }
  Result.prototype.error = function () {
    if (this.status >= 200 && this.status < 300 && !this.answer.error) { return false; }
    var ex = { error: this.answer.error || 'ERROR_UNEXPECTED_ANSWER', error_description: this.answer.error_description || '', status: this.status };
    return { ex: ex, status: this.status, toString: function () { return ex.error + (ex.error_description ? ': ' + ex.error_description : ''); } };
  };
  Result.prototype.data = function () { return this.answer.result; };
  Result.prototype.total = function () { return this.answer.total || 0; };
  Result.prototype.more = function () { return typeof this.answer.next !== 'undefined'; };

  function restCall(method, params, retried, cb) {
    var a = getAuth();
    var doCall = function (tok) {
      var body = {};
      var k;
      for (k in params) { if (Object.prototype.hasOwnProperty.call(params, k)) { body[k] = params[k]; } }
      body.auth = tok;
      window.fetch(ORIGIN + '/rest/' + encodeURIComponent(method) + '.json', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body)
      }).then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (json) {
          if (!retried && resp.status === 401 && json.error === 'expired_token') {
            BX24.refreshAuth(function () { restCall(method, params, true, cb); });
            return;
          }
          if (cb) { cb(new Result(json, resp.status, { method: method, data: params })); }
        });
      }, function () {
        if (cb) { cb(new Result({ error: 'NETWORK_ERROR', error_description: 'Network error' }, 0, { method: method, data: params })); }
      });
    };
    if (a) { doCall(a.access_token); } else { BX24.refreshAuth(function (na) { doCall(na ? na.access_token : ''); }); }
  }

  var BX24 = {
    init: function (cb) {
      if (typeof cb === 'function') {
        if (ready) { later(cb); } else { initQueue.push(cb); }
      }
      if (initSent) { return; }
      initSent = true;
      send('init', {}, function (r) {
        r = r || {};
        info = { placement: r.placement || '', options: r.options || {} };
        state.lang = r.lang || '';
        state.domain = r.domain || DOMAIN;
        state.isAdmin = !!r.isAdmin;
        state.memberId = r.memberId || '';
        setAuth(r.auth);
        ready = true;
        var q = initQueue;
        initQueue = [];
        for (var i = 0; i < q.length; i++) { q[i](); }
      });
    },
    isReady: function () { return ready; },
    installFinish: function () { send('installFinish', {}); },
    getScrollSize: function () {
      var d = document.documentElement;
      var b = document.body || d;
      return {
        scrollWidth: Math.max(d.scrollWidth, b.scrollWidth),
        scrollHeight: Math.max(d.scrollHeight, b.scrollHeight)
      };
    },
    resizeWindow: function (width, height, cb) {
      send('resizeWindow', { width: width, height: height }, cb);
    },
    fitWindow: function (cb) {
      BX24.resizeWindow('100%', BX24.getScrollSize().scrollHeight, cb);
    },
    reloadWindow: function () { send('reloadWindow', {}); },
    openPath: function (path, cb) { send('openPath', { path: String(path) }, cb); },
    getAuth: getAuth,
    refreshAuth: function (cb) {
      send('refreshAuth', {}, function (r) {
        setAuth(r);
        if (typeof cb === 'function') { cb(getAuth()); }
      });
    },
    getLang: function () { return state.lang; },
    getDomain: function () { return state.domain; },
    isAdmin: function () { return state.isAdmin; },
    callMethod: function (method, params, cb) {
      if (typeof params === 'function') { cb = params; params = {}; }
      restCall(method, params || {}, false, cb);
    },
    placement: {
      info: function () { return { placement: info.placement, options: info.options }; },
      call: function (command, params, cb) {
        if (typeof params === 'function') { cb = params; params = {}; }
        send('placementCall', { command: String(command), params: params || {} }, cb);
      },
      getInterface: function (cb) { send('getInterface', {}, cb); },
      bindEvent: function () { /* no placement events are simulated */ }
    }
  };

  window.BX24 = BX24;
})();
