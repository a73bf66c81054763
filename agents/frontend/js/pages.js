// Object details, the fabric dashboard (containers, repair, broker, traffic charts), the
// device-login approval page, and users and tokens for admins.
import { call, el, fmtBytes, fmtTime } from './api.js';
import { confirmDialog, session, toast, viewRoot } from './app.js';

let dashTimer = null;

export function stopDashboard() {
  if (dashTimer) { clearInterval(dashTimer); dashTimer = null; }
}

function dl(pairs) {
  return el('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

export async function objectView(key) {
  const main = viewRoot();
  const o = await call('GET', '/v1/objects/' + encodeURIComponent(key) + '/meta');
  let sites = {};
  if (session.admin) {
    try {
      for (const c of (await call('GET', '/v1/containers')).containers || []) sites[c.id] = c.site || '';
    } catch { sites = {}; }
  }
  const frags = o.fragments || [];
  const bad = frags.filter((f) => f.state !== 'ok' || f.online === false).length;
  const catLink = '#/c/' + o.catalog.split('/').map(encodeURIComponent).join('/');
  main().replaceChildren(
    el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, el('a', { href: '#/' }, 'Catalogs'), ' / ', el('a', { href: catLink }, o.catalog), ' / ', el('span', { 'aria-current': 'page' }, o.name)),
    el('section', { class: 'card' },
      el('h1', { id: 'object-name' }, o.name),
      dl([['Key', el('code', {}, o.key)], ['Catalog', o.catalog], ['Size', `${fmtBytes(o.size)} (${o.size} bytes)`],
        ['SHA-256', el('code', { id: 'object-sha' }, o.sha256)], ['Created', fmtTime(o.created_at)],
        ['Resilience', `k=${o.k} m=${o.m}`], ['State', el('span', { class: 'state ' + (bad ? 'degraded' : 'healthy') }, bad ? `degraded (${bad} fragment${bad > 1 ? 's' : ''})` : (o.state === 'degraded' ? 'degraded' : 'healthy'))],
        ['Publisher', o.publisher || '']]),
      el('p', {}, el('a', { class: 'button', href: '/v1/objects/' + o.key, download: o.name }, 'Download'))),
    el('section', { class: 'card' }, el('h2', {}, 'Fragments'),
      el('div', { class: 'scroll' }, el('table', { id: 'fragments' },
        el('thead', {}, el('tr', {}, ...['#', 'Container', 'Site', 'State', 'Online'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, frags.map((f) => el('tr', { class: f.state !== 'ok' || f.online === false ? 'bad' : '' },
          el('td', {}, String(f.index)), el('td', {}, f.container), el('td', {}, sites[f.container] ?? ''),
          el('td', {}, f.state), el('td', {}, f.online === false ? 'no' : 'yes'))))))));
}

// ---- dashboard ----------------------------------------------------------------------

const RATE_POINTS = 90; // 3 minutes of samples every 2 s
const rates = { t: [], puts: [], gets: [], bin: [], bout: [] };
let lastMetrics = null;

function parseMetrics(text) {
  const m = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [k, v] = line.split(/\s+/);
    m[k] = Number(v);
  }
  return m;
}

async function sampleMetrics() {
  const resp = await fetch('/metrics', { credentials: 'same-origin' });
  const m = parseMetrics(await resp.text());
  const now = Date.now();
  if (lastMetrics) {
    const dt = (now - lastMetrics.t) / 1000 || 1;
    const d = (k) => Math.max(0, ((m[k] || 0) - (lastMetrics.m[k] || 0)) / dt);
    rates.t.push(now);
    rates.puts.push(d('dyno_gateway_puts_total'));
    rates.gets.push(d('dyno_gateway_gets_total'));
    rates.bin.push(d('dyno_gateway_bytes_in_total'));
    rates.bout.push(d('dyno_gateway_bytes_out_total'));
    for (const a of Object.values(rates)) while (a.length > RATE_POINTS) a.shift();
  }
  lastMetrics = { t: now, m };
}

function drawChart(canvas, series, fmt) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300;
  const h = canvas.clientHeight || 120;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const max = Math.max(1e-9, ...series.flatMap((s) => s.data));
  g.strokeStyle = '#d0d7e2';
  g.beginPath(); g.moveTo(0, h - 16.5); g.lineTo(w, h - 16.5); g.stroke();
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#555';
  g.fillText('max ' + fmt(max), 4, 12);
  series.forEach((s, si) => {
    g.strokeStyle = s.color;
    g.lineWidth = 2;
    g.setLineDash(si ? [5, 4] : []); // the second series dashed: equal rates stay visible
    g.beginPath();
    s.data.forEach((v, i) => {
      const x = w - ((s.data.length - 1 - i) / (RATE_POINTS - 1)) * w; // now at the right edge
      const y = h - 17 - (v / max) * (h - 32);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
    g.setLineDash([]);
    g.fillStyle = s.color;
    g.fillText(s.label + ' ' + fmt(s.data.at(-1) || 0), 4 + si * 110, h - 3);
  });
}

export async function dashboardView() {
  const main = viewRoot();
  const body = el('div', { id: 'dash' });
  const putsCanvas = el('canvas', { id: 'chart-ops', class: 'chart', role: 'img', 'aria-label': 'Puts and gets per second over the last minutes' });
  const bytesCanvas = el('canvas', { id: 'chart-bytes', class: 'chart', role: 'img', 'aria-label': 'Bytes in and out per second over the last minutes' });
  main().replaceChildren(el('h1', {}, 'Fabric'), body,
    el('section', { class: 'card' }, el('h2', {}, 'Traffic (last 3 minutes)'),
      el('div', { class: 'charts' }, el('figure', {}, putsCanvas, el('figcaption', {}, 'Operations per second')),
        el('figure', {}, bytesCanvas, el('figcaption', {}, 'Bytes per second')))));
  async function refresh() {
    const health = await call('GET', '/healthz');
    let conts = null;
    let repair = null;
    let why = '';
    if (session.admin) {
      conts = await call('GET', '/v1/containers').catch((e) => { why = e.message; return null; });
      repair = await call('GET', '/v1/admin/repair').catch(() => null);
    }
    await sampleMetrics().catch(() => {});
    const cards = [el('section', { class: 'card' }, el('h2', {}, 'Broker'),
      el('p', { id: 'broker-state', class: 'state ' + (health.broker ? 'healthy' : 'degraded') }, health.broker ? 'connected' : 'disconnected'))];
    if (repair) {
      cards.push(el('section', { class: 'card' }, el('h2', {}, 'Repair'),
        dl([['Degraded objects', String(repair.degraded_objects ?? 0)], ['Lost fragments', String(repair.lost_fragments ?? 0)],
          ['Repair tasks leased', String(repair.leased_tasks ?? 0)], ['Repaired (total)', String(repair.repaired_total ?? 0)],
          ['Unrecoverable', String(repair.unrecoverable ?? 0)], ['Draining', (repair.draining || []).join(', ') || 'none']])));
    }
    if (conts) {
      const list = conts.containers || [];
      cards.unshift(el('section', { class: 'card wide' }, el('h2', {}, `Containers (${list.length})`),
        el('div', { class: 'scroll' }, el('table', { id: 'containers' },
          el('thead', {}, el('tr', {}, ...['Container', 'Site', 'State', 'Used / capacity', 'Fragments', 'Repairing'].map((h) => el('th', { scope: 'col' }, h)))),
          el('tbody', {}, list.map((c) => {
            const pct = c.capacity ? Math.min(100, (100 * c.used) / c.capacity) : 0;
            const st = c.online === false ? 'offline' : c.state;
            return el('tr', { 'data-id': c.id },
              el('td', {}, c.id), el('td', {}, c.site || ''),
              el('td', {}, el('span', { class: 'state ' + (st === 'online' ? 'healthy' : 'degraded'), 'data-state': st }, st)),
              el('td', {}, el('meter', { min: '0', max: '100', value: pct.toFixed(1), 'aria-label': `${c.id} utilization` }),
                ` ${fmtBytes(c.used)} / ${fmtBytes(c.capacity)} (${pct.toFixed(1)}%)`),
              el('td', { class: 'num' }, String(c.fragments ?? '')), el('td', { class: 'num' }, String(c.repairing ?? '')));
          }))))));
    } else {
      cards.push(el('p', { class: 'muted', id: 'containers-missing' }, session.admin ? 'Containers unavailable: ' + why : 'Containers and repair are shown to admins.'));
    }
    body.replaceChildren(el('div', { class: 'grid' }, cards));
    drawChart(putsCanvas, [{ label: 'puts/s', color: '#1f5fa8', data: rates.puts }, { label: 'gets/s', color: '#c05a00', data: rates.gets }], (v) => v.toFixed(1));
    drawChart(bytesCanvas, [{ label: 'in', color: '#1f5fa8', data: rates.bin }, { label: 'out', color: '#c05a00', data: rates.bout }], (v) => fmtBytes(Math.round(v)) + '/s');
  }
  await refresh();
  if (!main.current()) return;
  stopDashboard();
  dashTimer = setInterval(() => refresh().catch(() => {}), 2000);
}

// ---- device login -------------------------------------------------------------------

export async function deviceView() {
  const main = viewRoot();
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const code = el('input', { id: 'device-code', required: true, autocomplete: 'off', placeholder: 'XXXX-XXXX', value: q.get('code') || '' });
  const out = el('p', { id: 'device-result', role: 'status' });
  const form = el('form', { class: 'card stack', 'aria-labelledby': 'device-title' },
    el('h1', { id: 'device-title' }, 'Approve a device login'),
    el('p', {}, 'Enter the code that ', el('code', {}, 'dynostore login --device'), ' printed. The command line then receives its own API token for ', el('b', {}, session.user), '.'),
    el('label', { for: 'device-code' }, 'Code'), code, el('button', { type: 'submit', id: 'device-approve' }, 'Approve'), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    out.className = '';
    try {
      await call('POST', '/v1/auth/device/approve', { user_code: code.value.trim() });
      out.textContent = 'Approved: the command line is logged in.';
      code.value = '';
    } catch (e) {
      out.className = 'error';
      out.textContent = e.status === 404 ? 'Unknown or expired code.' : 'Cannot approve: ' + e.message;
    }
  });
  main().replaceChildren(form);
  code.focus();
}

// ---- users and tokens ---------------------------------------------------------------

export async function adminView() {
  const main = viewRoot();
  const users = session.admin ? await call('GET', '/v1/users') : { users: [] };
  const tokens = await call('GET', '/v1/tokens');
  const uname = el('input', { id: 'new-user', required: true, pattern: '[A-Za-z0-9._\\-]+' });
  const upass = el('input', { id: 'new-user-password', type: 'password', required: true, autocomplete: 'new-password' });
  const uorg = el('input', { id: 'new-user-org' });
  const uadmin = el('input', { id: 'new-user-admin', type: 'checkbox' });
  const uform = el('form', { class: 'inline', 'aria-label': 'Create a user' },
    el('label', { for: 'new-user' }, 'User'), uname, el('label', { for: 'new-user-password' }, 'Password'), upass,
    el('label', { for: 'new-user-org' }, 'Org'), uorg, el('label', { for: 'new-user-admin' }, 'Admin'), uadmin,
    el('button', { type: 'submit' }, 'Create user'));
  uform.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const b = { username: uname.value, password: upass.value, admin: uadmin.checked };
      if (uorg.value) b.org = uorg.value;
      await call('POST', '/v1/users', b);
      toast('User created');
      adminView();
    } catch (e) { toast('Cannot create: ' + e.message, true); }
  });
  const tname = el('input', { id: 'new-token-name', placeholder: 'what it is for' });
  const shown = el('p', { id: 'new-token', class: 'secret', role: 'status' });
  const tform = el('form', { class: 'inline', 'aria-label': 'Create an API token' },
    el('label', { for: 'new-token-name' }, 'Token name'), tname, el('button', { type: 'submit' }, 'Create token'));
  tform.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const t = await call('POST', '/v1/tokens', tname.value ? { name: tname.value } : {});
      shown.replaceChildren('New token (shown once): ', el('code', {}, t.token));
    } catch (e) { toast('Cannot create: ' + e.message, true); }
  });
  const trows = (tokens.tokens || []).map((t) => {
    const id = t.jti || t.id;
    const rv = el('button', { type: 'button', class: 'small danger', 'aria-label': 'Revoke token ' + (t.name || id) }, 'Revoke');
    rv.addEventListener('click', async () => {
      if (!(await confirmDialog(`Revoke token ${t.name || id}?`, 'Revoke'))) return;
      try { await call('DELETE', '/v1/tokens/' + encodeURIComponent(id)); adminView(); } catch (e) { toast('Cannot revoke: ' + e.message, true); }
    });
    return el('tr', {}, el('td', {}, t.name || ''), el('td', {}, el('code', {}, id)), el('td', {}, fmtTime(t.expires_at)), el('td', {}, t.revoked ? 'revoked' : rv));
  });
  main().replaceChildren(
    session.admin ? el('section', { class: 'card' }, el('h1', {}, 'Users'),
      el('table', { id: 'users' }, el('thead', {}, el('tr', {}, ...['User', 'Org', 'Admin'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, (users.users || []).map((u) => el('tr', {}, el('td', {}, u.username), el('td', {}, u.org || ''), el('td', {}, u.admin ? 'yes' : ''))))), uform) : null,
    el('section', { class: 'card' }, el('h1', {}, 'API tokens'), tform, shown,
      el('div', { class: 'scroll' }, el('table', { id: 'tokens' }, el('thead', {}, el('tr', {}, ...['Name', 'Id', 'Expires', ''].map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, trows)))));
}
