// The REST API (SPEC §4) from the page. The session is an HttpOnly cookie the page never
// sees; a change (any method but GET/HEAD) carries X-Dyno-CSRF, the value of the
// dyno_csrf cookie, which only a page of this origin can read.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === 'dyno_csrf') return v || '';
  }
  return '';
}

export function headers(method, extra = {}) {
  const h = { ...extra };
  if (method !== 'GET' && method !== 'HEAD') h['X-Dyno-CSRF'] = csrfToken();
  return h;
}

export async function call(method, path, body, { quiet401 = false } = {}) {
  const init = { method, credentials: 'same-origin', headers: headers(method) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const resp = await fetch(path, init);
  let doc = null;
  const text = await resp.text();
  if (text) {
    try { doc = JSON.parse(text); } catch { doc = null; }
  }
  if (!resp.ok) {
    const err = doc && doc.error ? doc.error : {};
    if (resp.status === 401 && !quiet401) onUnauthorized();
    throw new ApiError(resp.status, err.code || 'http_' + resp.status, err.message || resp.statusText);
  }
  return doc;
}

// One path segment per catalog segment; the "~" form reaches every catalog (protocol.md §9).
export function catalogPath(catalog) {
  return '/v1/catalogs/' + catalog.split('/').map(encodeURIComponent).join('/') + '/~';
}

export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + u[i];
}

export function fmtTime(t) {
  if (!t) return '';
  const ms = t > 1e12 ? t : t * 1000;
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// Builds an element; children are nodes or strings, and strings are always text (never
// markup): hostile names stay names.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
