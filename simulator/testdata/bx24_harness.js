// Runs assets/bx24.js (child, in the app iframe) and assets/portal.js (parent,
// the portal page) against fake windows wired with origin-checked
// postMessage, then prints a JSON report for shim_test.go.
'use strict';
const vm = require('vm');
const fs = require('fs');

const shimSrc = fs.readFileSync(process.argv[2], 'utf8');
const portalSrc = fs.readFileSync(process.argv[3], 'utf8');
const kind = process.argv[4] || 'placement';

const PORTAL = 'http://127.0.0.1:7001';
const APP = 'http://127.0.0.1:7002';
const EVIL = 'http://evil.example';
const SID = 'sid123';
const report = { dropped: [], fetches: [], submits: 0, assigned: [], events: [] };

function makeWin(origin) { return { origin: origin, listeners: [] }; }
const parentWin = makeWin(PORTAL);
const childWin = makeWin(APP);

function deliver(target, sourceProxy, sourceOrigin, data, targetOrigin) {
  if (targetOrigin !== target.origin) { report.dropped.push(sourceOrigin + '->' + targetOrigin); return; }
  const ev = { source: sourceProxy, origin: sourceOrigin, data: structuredClone(data) };
  setImmediate(() => target.listeners.forEach((fn) => fn(ev)));
}
// What the child sees as window.parent, and what the parent sees as frame.contentWindow.
const parentProxy = { postMessage: (d, to) => deliver(parentWin, childProxy, APP, d, to) };
const childProxy = { postMessage: (d, to) => deliver(childWin, parentProxy, PORTAL, d, to) };
const evilProxy = {};

function el(id, extra) {
  return Object.assign({ id: id, hidden: false, style: {}, children: [], attrs: {},
    setAttribute(k, v) { this.attrs[k] = v; },
    get firstChild() { return this.children[0] || null; },
    removeChild(c) { this.children.splice(this.children.indexOf(c), 1); },
    appendChild(c) { this.children.push(c); },
    listeners: {}, addEventListener(t, fn) { this.listeners[t] = fn; } }, extra || {});
}
const frameData = { sid: SID, handlerOrigin: APP, kind: kind, placement: kind === 'placement' ? 'CRM_LEAD_DETAIL_TAB' : 'DEFAULT',
  options: kind === 'placement' ? { ID: '1' } : null, lang: 'de', domain: '127.0.0.1:7001', protocol: '0', memberId: 'm1', isAdmin: true, leadId: kind === 'placement' ? 1 : 0,
  auth: { access_token: 'tok1', refresh_token: 'ref1', expires_in: 3600, domain: '127.0.0.1:7001', member_id: 'm1' } };
const elements = {
  'frame-data': el('frame-data', { textContent: JSON.stringify(frameData) }),
  'app-frame': el('app-frame', { contentWindow: childProxy, offsetWidth: 800 }),
  'frame-form': el('frame-form', { submit() { report.submits++; } }),
  'portal-contacts': el('portal-contacts'),
  'portal-contacts-empty': el('portal-contacts-empty'),
  'slider': el('slider', { hidden: true }),
  'slider-frame': el('slider-frame', { src: 'about:blank' }),
  'slider-close': el('slider-close'),
};
elements['portal-contacts'].children.push(el('old'));
Object.defineProperty(elements['app-frame'], 'offsetHeight', { get() { return parseInt(this.style.height, 10) || 400; } });

function fakeFetch(url, opts) {
  report.fetches.push({ url: url, method: (opts && opts.method) || 'GET', body: (opts && opts.body) || '' });
  let body = {};
  if (url.indexOf('/sim/api/lead/1/contacts') === 0) body = [{ id: 2, name: 'Анна <b>x</b>', primary: true }, { id: 3, name: 'Siobhán', primary: false }];
  if (url === '/sim/api/auth') body = { access_token: 'tok2', refresh_token: 'ref2', expires_in: 3600, domain: '127.0.0.1:7001', member_id: 'm1' };
  if (url === '/sim/api/install-finish') body = { installed: true };
  return Promise.resolve({ ok: true, status: 200, json: () => Promise.resolve(body) });
}

const parentCtx = vm.createContext({
  console: console, URLSearchParams: URLSearchParams, setTimeout: setTimeout,
  document: { getElementById: (id) => elements[id] || null, createElement: (t) => el(t) },
});
parentCtx.window = Object.assign(parentCtx, {
  addEventListener: (t, fn) => { if (t === 'message') parentWin.listeners.push(fn); },
  fetch: fakeFetch,
  location: { assign: (u) => report.assigned.push(u) },
});
const childCtx = vm.createContext({ console: console, setTimeout: setTimeout, Date: Date, JSON: JSON, Math: Math,
  document: { documentElement: { scrollWidth: 700, scrollHeight: 1234 }, body: { scrollWidth: 700, scrollHeight: 1200 } } });
childCtx.window = Object.assign(childCtx, {
  name: '127.0.0.1:7001|0|' + SID,
  parent: parentProxy,
  addEventListener: (t, fn) => { if (t === 'message') childWin.listeners.push(fn); },
  setTimeout: setTimeout,
  fetch: fakeFetch,
});

vm.runInContext(portalSrc, parentCtx);
vm.runInContext(shimSrc, childCtx);
const BX24 = childCtx.window.BX24;
const tick = (ms) => new Promise((r) => setTimeout(r, ms || 20));
const cbPromise = (fn) => new Promise((resolve) => { fn(resolve); setTimeout(() => resolve('__timeout__'), 200); });

(async () => {
  report.initInfo = await cbPromise((done) => BX24.init(() => done({
    info: BX24.placement.info(), lang: BX24.getLang(), domain: BX24.getDomain(), admin: BX24.isAdmin(),
    auth: BX24.getAuth() })));
  report.authExpiresIsTimestamp = report.initInfo.auth.expires_in > Date.now();
  report.fit = await cbPromise((done) => BX24.fitWindow(done));
  report.frameHeight = elements['app-frame'].style.height;
  report.iface = await cbPromise((done) => BX24.placement.getInterface(done));
  report.reload = await cbPromise((done) => BX24.placement.call('reloadData', {}, done));
  report.contacts = elements['portal-contacts'].children.map((li) => ({ id: li.attrs['data-contact-id'], text: li.children[0] ? li.children[0].textContent : '', primary: li.className === 'primary' }));
  report.emptyHidden = elements['portal-contacts-empty'].hidden;
  report.unknown = await cbPromise((done) => BX24.placement.call('doSomethingElse', {}, done));

  // Forged replies and requests from a foreign origin are ignored.
  // The parent never answers this command, so only a forged reply could call back.
  let forgedCalled = false;
  BX24.placement.call('noReplyEver', {}, () => { forgedCalled = true; });
  for (let id = 1; id < 50; id++) {
    deliver(childWin, evilProxy, EVIL, { bx24sim: 1, sid: SID, id: id, result: {} }, APP);
    deliver(childWin, parentProxy, EVIL, { bx24sim: 1, sid: SID, id: id, result: {} }, APP);
    deliver(childWin, evilProxy, PORTAL, { bx24sim: 1, sid: SID, id: id, result: {} }, APP);
    deliver(childWin, parentProxy, PORTAL, { bx24sim: 1, sid: 'other', id: id, result: {} }, APP);
  }
  deliver(parentWin, childProxy, EVIL, { bx24sim: 1, sid: SID, id: 1, cmd: 'installFinish', params: {} }, PORTAL);
  deliver(parentWin, evilProxy, APP, { bx24sim: 1, sid: SID, id: 1, cmd: 'openPath', params: { path: '/x/' } }, PORTAL);
  deliver(parentWin, childProxy, APP, { bx24sim: 1, sid: 'other', id: 1, cmd: 'openPath', params: { path: '/x/' } }, PORTAL);
  await tick(50);
  report.forgedIgnored = elements['slider'].hidden;
  report.forgedCallback = forgedCalled;

  // openPath shows the slider; the callback fires when it is closed.
  let closed = null;
  BX24.openPath('/crm/contact/details/2/', (r) => { closed = r; });
  await tick();
  report.sliderShown = !elements['slider'].hidden;
  report.sliderSrc = elements['slider-frame'].src;
  report.closedBeforeClick = closed;
  elements['slider-close'].listeners.click();
  await tick();
  report.closed = closed;
  BX24.openPath('https://evil.example/', () => {});
  BX24.openPath('//evil.example/', () => {});
  await tick();
  report.evilPathIgnored = elements['slider'].hidden;

  report.refreshed = await cbPromise((done) => BX24.refreshAuth(done));
  BX24.installFinish();
  await tick(50);
  process.stdout.write(JSON.stringify(report));
})();
