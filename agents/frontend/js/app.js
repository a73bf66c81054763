// The console's shell: session, hash router, navigation. Routes:
//   #/login  #/  #/c/<owner>/<path>  #/o/<key>  #/dashboard  #/device  #/admin
import { call, el, setUnauthorizedHandler } from './api.js';
import { catalogView, catalogsView, stopLive } from './catalog.js';
import { adminView, dashboardView, deviceView, objectView, stopDashboard } from './pages.js';

export const session = { user: null, admin: false, expiresAt: 0 };
let expiryTimer = null;

const main = () => document.getElementById('main');
let routeGen = 0;

// A view's handle on the page: once the user went elsewhere, what a slow view renders goes
// to a detached element instead of over the newer view.
export function viewRoot() {
  const g = routeGen;
  const detached = document.createElement('main');
  const root = () => (g === routeGen ? document.getElementById('main') : detached);
  root.current = () => g === routeGen;
  return root;
}

export function toast(msg, bad = false) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = bad ? 'show bad' : 'show';
  clearTimeout(t.timer);
  t.timer = setTimeout(() => { t.className = ''; }, 4000);
}

// The confirmation dialog; resolves true when the user confirms.
export function confirmDialog(text, okLabel = 'Delete') {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
  });
}

function setSession(who) {
  session.user = who ? who.user || who.sub : null;
  session.admin = !!(who && who.admin);
  session.expiresAt = who ? who.expires_at || 0 : 0;
  document.getElementById('top').hidden = !session.user;
  document.getElementById('who').textContent = session.user ? session.user + (session.admin ? ' (admin)' : '') : '';
  document.getElementById('nav-admin').textContent = session.admin ? 'Users & tokens' : 'API tokens';
  clearTimeout(expiryTimer);
  if (session.expiresAt) {
    // An expired session goes back to the login page, even on a page that sends nothing.
    const ms = session.expiresAt * 1000 - Date.now();
    expiryTimer = setTimeout(() => expired(), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
  }
}

function expired() {
  setSession(null);
  stopLive();
  stopDashboard();
  const back = location.hash && !location.hash.startsWith('#/login') ? location.hash : '';
  sessionStorage.setItem('dyno-after-login', back);
  location.hash = '#/login';
  route();
  toast('Your session has ended: log in again.', true);
}

function loginView() {
  const err = el('p', { class: 'error', id: 'login-error', role: 'alert' });
  const user = el('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true });
  const pass = el('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = el('form', { class: 'login card', 'aria-labelledby': 'login-title' },
    el('h1', { id: 'login-title' }, 'DynoStore console'),
    el('label', { for: 'login-user' }, 'User'), user,
    el('label', { for: 'login-password' }, 'Password'), pass,
    el('button', { type: 'submit', id: 'login-submit' }, 'Log in'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      const who = await call('POST', '/v1/auth/session', { username: user.value, password: pass.value }, { quiet401: true });
      pass.value = '';
      setSession(who);
      const next = sessionStorage.getItem('dyno-after-login') || '#/';
      sessionStorage.removeItem('dyno-after-login');
      location.replace(next);
      route();
    } catch (e) {
      err.textContent = e.status === 401 ? 'Wrong user name or password.' : 'Login failed: ' + e.message;
      pass.select();
    }
  });
  main().replaceChildren(form);
  user.focus();
}

async function route() {
  routeGen++;
  stopLive();
  stopDashboard();
  let h = '/';
  try { h = decodeURIComponent(location.hash.replace(/^#/, '')) || '/'; } catch { /* a bad escape: home */ }
  if (!session.user) {
    if (!h.startsWith('/login')) sessionStorage.setItem('dyno-after-login', location.hash);
    if (location.hash !== '#/login') history.replaceState(null, '', '#/login');
    return loginView();
  }
  if (h.startsWith('/login')) { location.replace('#/'); return; }
  for (const a of document.querySelectorAll('header nav a')) a.removeAttribute('aria-current');
  let view;
  const gen = routeGen;
  if (h.startsWith('/c/')) { view = catalogView(h.slice(3)); mark('nav-catalogs'); }
  else if (h.startsWith('/o/')) { view = objectView(h.slice(3)); mark('nav-catalogs'); }
  else if (h.startsWith('/dashboard')) { view = dashboardView(); mark('nav-dashboard'); }
  else if (h.startsWith('/device')) { view = deviceView(); mark('nav-device'); }
  else if (h.startsWith('/admin')) { view = adminView(); mark('nav-admin'); }
  else { view = catalogsView(); mark('nav-catalogs'); }
  try {
    await view;
  } catch (e) {
    if (e.status !== 401 && gen === routeGen) main().replaceChildren(el('p', { class: 'error', role: 'alert' }, 'Error: ' + e.message));
  }
}

function mark(id) { document.getElementById(id).setAttribute('aria-current', 'page'); }

async function start() {
  setUnauthorizedHandler(expired);
  document.getElementById('logout').addEventListener('click', async () => {
    try { await call('DELETE', '/v1/auth/session', undefined, { quiet401: true }); } catch { /* cleared anyway */ }
    setSession(null);
    location.hash = '#/login';
  });
  window.addEventListener('hashchange', route);
  try {
    setSession(await call('GET', '/v1/auth/whoami', undefined, { quiet401: true }));
  } catch {
    setSession(null);
  }
  route();
}

start();
