// Catalog browser: the catalog list, one catalog's sub-catalogs and objects (pages of
// PAGE names, a name-prefix filter), uploads, delete, shares, and the live view from the
// catalog's server-sent events (GET /v1/events).
import { call, catalogPath, csrfToken, el, fmtBytes, fmtTime } from './api.js';
import { confirmDialog, session, toast, viewRoot } from './app.js';

const PAGE = 50;
let live = null;

export function stopLive() {
  if (live) { live.close(); live = null; }
}


function catalogLink(c) { return '#/c/' + c.split('/').map(encodeURIComponent).join('/'); }

export async function catalogsView() {
  const main = viewRoot();
  const doc = await call('GET', '/v1/catalogs');
  const cats = doc.catalogs || [];
  const input = el('input', { id: 'new-catalog', placeholder: session.user + '/name', required: true, pattern: '[A-Za-z0-9._\\-]+(/[A-Za-z0-9._\\-]+)+' });
  const form = el('form', { class: 'inline', 'aria-label': 'Create a catalog' },
    el('label', { for: 'new-catalog' }, 'New catalog'), input, el('button', { type: 'submit' }, 'Create'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await call('PUT', catalogPath(input.value), {});
      location.hash = catalogLink(input.value);
    } catch (e) { toast('Cannot create: ' + e.message, true); }
  });
  const rows = cats.map((c) => el('tr', {},
    el('td', {}, el('a', { href: catalogLink(c.catalog) }, c.catalog)),
    el('td', {}, c.relation || ''), el('td', {}, c.access || ''), el('td', {}, c.k ? `${c.k}+${c.m}` : '')));
  main().replaceChildren(el('section', { class: 'card' },
    el('h1', {}, 'Catalogs'), form,
    el('table', { id: 'catalogs' }, el('thead', {}, el('tr', {}, el('th', {}, 'Catalog'), el('th', {}, 'Relation'), el('th', {}, 'Access'), el('th', {}, 'k+m'))),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: 4 }, 'No catalog yet.'))))));
}

function breadcrumbs(catalog) {
  const segs = catalog.split('/');
  const nav = el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, el('a', { href: '#/' }, 'Catalogs'));
  segs.forEach((s, i) => {
    const path = segs.slice(0, i + 1).join('/');
    nav.append(' / ');
    nav.append(i === 0 ? el('span', {}, s) : i === segs.length - 1 ? el('span', { 'aria-current': 'page' }, s) : el('a', { href: catalogLink(path) }, s));
  });
  return nav;
}

export async function catalogView(catalog) {
  const main = viewRoot();
  catalog = catalog.replace(/\/+$/, '');
  const info = await call('GET', catalogPath(catalog));
  const all = await call('GET', '/v1/catalogs');
  const subs = (all.catalogs || []).map((c) => c.catalog)
    .filter((c) => c.startsWith(catalog + '/') && !c.slice(catalog.length + 1).includes('/'));
  const state = { after: [], page: 0, prefix: '', next: null };
  const tbody = el('tbody', { id: 'objects-body' });
  const pageInfo = el('span', { id: 'page-info', 'aria-live': 'polite' });
  const prev = el('button', { type: 'button', id: 'prev-page' }, '‹ Previous');
  const next = el('button', { type: 'button', id: 'next-page' }, 'Next ›');
  const filter = el('input', { id: 'prefix', type: 'search', placeholder: 'name starts with…' });
  const feed = el('ol', { id: 'activity', class: 'feed', 'aria-live': 'polite' });
  const stats = el('p', { class: 'muted', id: 'catalog-stats' }, `${info.objects ?? 0} object${info.objects === 1 ? '' : 's'}, ${fmtBytes(info.bytes ?? 0)}`);

  async function load() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    const after = state.after[state.page];
    if (after) q.set('after', after);
    if (state.prefix) q.set('prefix', state.prefix);
    const doc = await call('GET', catalogPath(catalog) + '/objects?' + q);
    state.next = doc.next;
    tbody.replaceChildren(...(doc.objects || []).map(objectRow));
    if (!doc.objects || !doc.objects.length) tbody.append(el('tr', {}, el('td', { colspan: 6 }, state.prefix ? 'No object name starts with that.' : 'No objects.')));
    prev.disabled = state.page === 0;
    next.disabled = !doc.next;
    const first = state.page * PAGE + 1;
    pageInfo.textContent = doc.objects && doc.objects.length ? `Page ${state.page + 1}: objects ${first}–${first + doc.objects.length - 1}` : `Page ${state.page + 1}`;
  }

  function objectRow(o) {
    const del = el('button', { type: 'button', class: 'danger small', 'aria-label': 'Delete ' + o.name }, 'Delete');
    del.addEventListener('click', async () => {
      if (!(await confirmDialog(`Delete ${o.name}? This cannot be undone.`))) return;
      try {
        await call('DELETE', '/v1/objects/' + o.key);
        toast('Deleted ' + o.name);
        await load();
      } catch (e) { toast('Cannot delete: ' + e.message, true); }
    });
    return el('tr', { 'data-name': o.name },
      el('td', { class: 'name' }, el('a', { href: '#/o/' + o.key }, o.name)),
      el('td', { class: 'num' }, fmtBytes(o.size)),
      el('td', {}, fmtTime(o.created_at)),
      el('td', {}, `${o.k}+${o.m}`),
      el('td', {}, el('span', { class: 'state ' + (o.state === 'degraded' ? 'degraded' : 'healthy') }, o.state === 'degraded' ? 'degraded' : 'healthy')),
      el('td', { class: 'actions' },
        el('a', { href: '/v1/objects/' + o.key, download: o.name, class: 'button small', 'aria-label': 'Download ' + o.name }, 'Download'), ' ', del));
  }

  prev.addEventListener('click', () => { if (state.page > 0) { state.page--; load(); } });
  next.addEventListener('click', () => { if (state.next) { state.after[state.page + 1] = state.next; state.page++; load(); } });
  let typing = null;
  filter.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.prefix = filter.value; state.page = 0; state.after = []; load(); }, 200);
  });

  const subList = el('ul', { id: 'subcatalogs', class: 'subs' }, subs.map((s) => el('li', {}, el('a', { href: catalogLink(s) }, s.slice(catalog.length + 1) + '/'))));
  const subName = el('input', { id: 'new-sub', placeholder: 'sub-catalog name', required: true, pattern: '[A-Za-z0-9._\\-]+' });
  const subForm = el('form', { class: 'inline', 'aria-label': 'Create a sub-catalog' }, el('label', { for: 'new-sub' }, 'New sub-catalog'), subName, el('button', { type: 'submit' }, 'Create'));
  subForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try { await call('PUT', catalogPath(catalog + '/' + subName.value), {}); location.hash = catalogLink(catalog + '/' + subName.value); } catch (e) { toast('Cannot create: ' + e.message, true); }
  });
  const rm = el('button', { type: 'button', class: 'danger', id: 'remove-catalog' }, 'Remove catalog');
  rm.addEventListener('click', async () => {
    if (!(await confirmDialog(`Remove catalog ${catalog}? It must be empty.`, 'Remove'))) return;
    try {
      await call('DELETE', catalogPath(catalog));
      const parent = catalog.split('/').slice(0, -1);
      location.hash = parent.length > 1 ? catalogLink(parent.join('/')) : '#/';
    } catch (e) { toast('Cannot remove: ' + e.message, true); }
  });

  main().replaceChildren(
    breadcrumbs(catalog),
    el('section', { class: 'card' },
      el('div', { class: 'row' }, el('h1', { id: 'catalog-title' }, catalog), rm), stats,
      subs.length ? el('h2', {}, 'Sub-catalogs') : null, subList, subForm),
    el('section', { class: 'card' },
      el('h2', {}, 'Objects'),
      el('div', { class: 'inline' }, el('label', { for: 'prefix' }, 'Filter'), filter),
      el('div', { class: 'scroll' }, el('table', { id: 'objects' },
        el('thead', {}, el('tr', {}, ...['Name', 'Size', 'Created', 'k+m', 'State', 'Actions'].map((h) => el('th', { scope: 'col' }, h)))), tbody)),
      el('div', { class: 'pager' }, prev, pageInfo, next)),
    uploadPanel(catalog, info, () => load()),
    sharesPanel(catalog, info),
    el('section', { class: 'card' }, el('h2', {}, 'Activity'), feed));
  await load();

  // Live: each event of this catalog refreshes the page shown and goes to the feed.
  if (!main.current()) return;
  stopLive();
  live = new EventSource('/v1/events?catalog=' + encodeURIComponent(catalog));
  let refresh = null;
  const onEvent = (ev) => {
    let d = {};
    try { d = JSON.parse(ev.data); } catch { return; }
    const o = d.object || {};
    feed.prepend(el('li', {}, el('time', {}, fmtTime(d.time) || new Date().toISOString()), ' ', el('b', {}, ev.type.replace('object.', '')), ' ', o.name || o.key || ''));
    while (feed.children.length > 50) feed.lastChild.remove();
    clearTimeout(refresh);
    refresh = setTimeout(() => load().catch(() => {}), 150);
  };
  for (const t of ['object.created', 'object.evicted', 'object.degraded', 'object.repaired']) live.addEventListener(t, onEvent);
  live.addEventListener('message', onEvent);
}

function uploadPanel(catalog, info, reload) {
  const picker = el('input', { type: 'file', id: 'upload-files', multiple: true });
  const k = el('select', { id: 'resilience' },
    el('option', { value: '' }, `catalog default${info.k ? ` (${info.k}+${info.m})` : ''}`),
    ...['1,0', '2,1', '3,2', '4,2', '6,3'].map((v) => el('option', { value: v }, v.replace(',', '+'))));
  const list = el('ul', { id: 'uploads', class: 'uploads' });
  const drop = el('div', { class: 'drop', id: 'drop', tabindex: '0', role: 'button', 'aria-label': 'Drop files here or press Enter to choose' }, 'Drop files here, or choose them');
  drop.addEventListener('click', () => picker.click());
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); picker.click(); } });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); start([...e.dataTransfer.files]); });
  picker.addEventListener('change', () => { start([...picker.files]); picker.value = ''; });

  function start(files) {
    for (const f of files) upload(f);
  }

  // One XHR per file with the File itself as the body: the browser streams it from disk,
  // the page never reads it (a gigabyte is fine), and upload.onprogress drives the bar.
  function upload(file) {
    const bar = el('progress', { max: '100', value: '0', 'aria-label': 'Upload of ' + file.name });
    const status = el('span', { class: 'muted' }, 'starting');
    const cancel = el('button', { type: 'button', class: 'small', 'aria-label': 'Cancel upload of ' + file.name }, 'Cancel');
    const item = el('li', { 'data-name': file.name }, el('span', { class: 'name' }, file.name), ' ', el('span', { class: 'muted' }, fmtBytes(file.size)), bar, status, cancel);
    list.prepend(item);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', catalogPath(catalog) + '/objects?name=' + encodeURIComponent(file.name));
    xhr.setRequestHeader('X-Dyno-CSRF', csrfToken());
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    if (k.value) xhr.setRequestHeader('X-Dyno-Resilience', k.value);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) { bar.value = Math.floor((e.loaded / e.total) * 100); status.textContent = `${bar.value}%`; }
    };
    xhr.onload = () => {
      cancel.remove();
      if (xhr.status === 201) { bar.value = 100; status.textContent = 'done'; item.classList.add('done'); reload(); }
      else {
        let m = xhr.statusText;
        try { m = JSON.parse(xhr.responseText).error.message; } catch { /* keep the status text */ }
        status.textContent = 'failed: ' + m;
        item.classList.add('failed');
      }
    };
    xhr.onerror = () => { status.textContent = 'failed: network error'; item.classList.add('failed'); cancel.remove(); };
    xhr.onabort = () => { status.textContent = 'cancelled'; item.classList.add('failed'); cancel.remove(); };
    cancel.addEventListener('click', () => xhr.abort());
    xhr.send(file);
  }

  return el('section', { class: 'card' }, el('h2', {}, 'Upload'),
    el('div', { class: 'inline' }, el('label', { for: 'upload-files' }, 'Files'), picker, el('label', { for: 'resilience' }, 'Resilience k+m'), k),
    drop, list);
}

function sharesPanel(catalog, info) {
  const tbody = el('tbody', { id: 'shares-body' });
  const render = (shares) => {
    tbody.replaceChildren(...shares.map((s) => {
      const rm = el('button', { type: 'button', class: 'small danger', 'aria-label': `Remove share with ${s.principal}` }, 'Remove');
      rm.addEventListener('click', async () => {
        try {
          await call('DELETE', catalogPath(catalog) + '/shares/' + encodeURIComponent(s.principal) + '?kind=' + s.kind);
          await refresh();
        } catch (e) { toast('Cannot remove: ' + e.message, true); }
      });
      return el('tr', {}, el('td', {}, s.principal), el('td', {}, s.kind), el('td', {}, s.access), el('td', {}, rm));
    }));
    if (!shares.length) tbody.append(el('tr', {}, el('td', { colspan: 4 }, 'Not shared.')));
  };
  async function refresh() {
    const i = await call('GET', catalogPath(catalog));
    render(i.shares || []);
  }
  render(info.shares || []);
  const who = el('input', { id: 'share-principal', required: true, pattern: '[A-Za-z0-9._\\/\\-]+' });
  const kind = el('select', { id: 'share-kind' }, el('option', { value: 'user' }, 'user'), el('option', { value: 'org' }, 'organization'));
  const access = el('select', { id: 'share-access' }, el('option', { value: 'read' }, 'read'), el('option', { value: 'write' }, 'write'));
  const form = el('form', { class: 'inline', 'aria-label': 'Add a share' },
    el('label', { for: 'share-principal' }, 'Share with'), who, el('label', { for: 'share-kind' }, 'Kind'), kind,
    el('label', { for: 'share-access' }, 'Access'), access, el('button', { type: 'submit', id: 'share-add' }, 'Share'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await call('POST', catalogPath(catalog) + '/shares', { [kind.value]: who.value, access: access.value });
      who.value = '';
      await refresh();
    } catch (e) { toast('Cannot share: ' + e.message, true); }
  });
  const mine = catalog.split('/')[0] === session.user || session.admin;
  return el('section', { class: 'card', id: 'shares' }, el('h2', {}, 'Sharing'),
    el('table', {}, el('thead', {}, el('tr', {}, ...['Principal', 'Kind', 'Access', ''].map((h) => el('th', { scope: 'col' }, h)))), tbody),
    mine ? form : el('p', { class: 'muted' }, 'Only the owner changes shares.'));
}
