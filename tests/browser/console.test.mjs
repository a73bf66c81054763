// Browser tests of the web console (issue 12), run by tests/integration/test_console.py,
// which starts the fabric, makes the users and data, and passes them in the environment:
//   DYNO_GW          the gateway URL
//   DYNO_CLI         the dynostore binary; DYNO_CLI_HOME: a HOME whose settings reach the fabric as admin
//   DYNO_ADMIN_TOKEN the admin's bearer token (to revoke a session from outside)
//   DYNO_USERS       JSON {ops: pw, alice: pw}: ops is an admin, alice a plain user
//   DYNO_WORK        a scratch folder; DYNO_SHOTS: where screenshots go
//   DYNO_KILL_PID    test 6: a container process of this fabric, killed by the test
// Usage: node console.test.mjs TEST   (login, xss, upload, live, browse, dashboard, device, screenshots)
// Headless Chromium from Debian (/usr/bin/chromium): playwright-core never downloads a browser.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const GW = process.env.DYNO_GW;
const USERS = JSON.parse(process.env.DYNO_USERS || '{}');
const WORK = process.env.DYNO_WORK;
const SHOTS = process.env.DYNO_SHOTS;
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

function check(cond, what) {
  if (!cond) throw new Error('FAILED: ' + what);
  console.log('ok - ' + what);
}

async function sha256File(p) {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(p)) h.update(chunk);
  return h.digest('hex');
}

async function newPage(browser, viewport = LAPTOP) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  page.dialogs = [];
  page.on('dialog', async (d) => { page.dialogs.push(d.message()); await d.dismiss(); });
  page.errors = [];
  page.foreign = []; // every request that leaves the gateway's origin (none may)
  page.on('request', (r) => { if (!r.url().startsWith(GW + '/') && !r.url().startsWith('data:')) page.foreign.push(r.url()); });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  // Chromium logs every 4xx answer as an error; those are expected (a wrong password...).
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) page.errors.push(m.text()); });
  return { context, page };
}

async function login(page, user, password = USERS[user]) {
  await page.goto(GW + '/');
  await page.waitForSelector('#login-user');
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#who:has-text("' + user + '")');
}

async function api(method, p, body, token = process.env.DYNO_ADMIN_TOKEN) {
  const r = await fetch(GW + p, {
    method,
    headers: { Authorization: 'Bearer ' + token, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const t = await r.text();
  return { status: r.status, json: t ? JSON.parse(t) : null };
}

function cli(args, env = {}) {
  return new Promise((resolve) => {
    const p = spawn(process.env.DYNO_CLI, args, { env: { ...process.env, HOME: process.env.DYNO_CLI_HOME, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; p.emit('err', err); });
    p.on('close', (code) => resolve({ code, out, err }));
    if (env.onSpawn) env.onSpawn(p);
  });
}

async function catalogRows(page) {
  return page.$$eval('#objects-body tr[data-name]', (rows) => rows.map((r) => r.getAttribute('data-name')));
}

const tests = {
  // Issue test 1: login, a wrong password, the token in no URL, history entry or storage;
  // the cookie is HttpOnly and SameSite=Strict; a session revoked from outside -> login page.
  async login(browser) {
    const { context, page } = await newPage(browser);
    const urls = [];
    page.on('framenavigated', (f) => urls.push(f.url()));
    await page.goto(GW + '/');
    await page.waitForSelector('#login-user');
    await page.fill('#login-user', 'ops');
    await page.fill('#login-password', 'wrong-password');
    await page.click('#login-submit');
    await page.waitForSelector('#login-error:not(:empty)');
    check(/wrong user name or password/i.test(await page.textContent('#login-error')), 'a wrong password shows an error');
    check((await page.$('#who:not(:empty)')) === null && (await page.isHidden('#top')), 'and nobody is logged in (no navigation bar)');
    await login(page, 'ops');
    await page.waitForSelector('#catalogs');
    const cookies = await context.cookies();
    const sess = cookies.find((c) => c.name === 'dyno_session');
    check(sess && sess.httpOnly && sess.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');
    const token = sess.value;
    check(token.startsWith('dyn1.'), 'the session cookie holds the token');
    const seen = await page.evaluate(() => ({
      href: location.href, cookie: document.cookie, history: history.length,
      local: JSON.stringify({ ...localStorage }), session: JSON.stringify({ ...sessionStorage }),
    }));
    check(!seen.cookie.includes('dyn1.'), 'the page cannot read the token (document.cookie)');
    check(!seen.local.includes('dyn1.') && !seen.session.includes('dyn1.'), 'the token is in no localStorage or sessionStorage');
    check(!seen.href.includes(token) && urls.every((u) => !u.includes('dyn1.')), 'the token is in no URL nor history entry (' + urls.length + ' navigations)');
    // A change without the CSRF header is refused even with the cookie.
    const noCsrf = await page.evaluate(async () => (await fetch('/v1/catalogs/ops/csrf-probe/~', { method: 'PUT', body: '{}' })).status);
    check(noCsrf === 403, 'a state change with the cookie but no X-Dyno-CSRF is refused (' + noCsrf + ')');
    // The session ends (revoked from outside): the next request goes back to the login page.
    const who = await page.evaluate(async () => (await fetch('/v1/auth/whoami')).json());
    const rv = await api('DELETE', '/v1/tokens/' + who.jti);
    check(rv.status === 200, 'the admin revokes the session token (' + rv.status + ')');
    let back = false;
    for (let i = 0; i < 40 && !back; i++) {
      await page.goto(GW + (i % 2 ? '/#/' : '/#/dashboard'));
      await page.waitForTimeout(500);
      back = (await page.$('#login-user')) !== null;
    }
    check(back && (await page.isHidden('#top')), 'an ended session goes back to the login page');
    // From the keyboard only: the user field has the focus, Tab to the password, Enter.
    await page.keyboard.type('ops');
    await page.keyboard.press('Tab');
    await page.keyboard.type(USERS.ops);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#who:has-text("ops")');
    check(true, 'logging in works from the keyboard alone');
    // Logout clears the cookie.
    await page.click('#logout');
    await page.waitForSelector('#login-user');
    check(!(await context.cookies()).some((c) => c.name === 'dyno_session' && c.value), 'logout clears the session cookie');
    check(page.dialogs.length === 0 && page.errors.length === 0, 'no dialog and no script error: ' + page.errors.join('; '));
    await context.close();
  },

  // Issue test 5: a hostile name is shown as text and runs nothing.
  async xss(browser) {
    const { context, page } = await newPage(browser);
    await login(page, 'ops');
    await page.goto(GW + '/#/c/ops/xss');
    await page.waitForSelector('#objects-body tr[data-name]');
    const name = '<img src=x onerror=alert(1)>.txt';
    const cell = await page.$$eval('#objects-body td.name a', (as) => as.map((a) => a.textContent));
    check(cell.includes(name), 'the name is shown as its text: ' + JSON.stringify(cell));
    check((await page.$$('#objects-body img, main img')).length === 0, 'no <img> element was made from it');
    const key = await page.getAttribute(`#objects-body tr[data-name="${name.replace(/"/g, '\\"')}"] td.name a`, 'href');
    await page.goto(GW + '/' + key);
    await page.waitForSelector('#object-name');
    check((await page.textContent('#object-name')) === name, 'the details page shows it as text too');
    await page.waitForTimeout(500);
    check(page.dialogs.length === 0, 'no alert ran');
    // An inline script planted in the page would not run either: the CSP has no unsafe-inline.
    const resp = await page.goto(GW + '/');
    const csp = resp.headers()['content-security-policy'] || '';
    check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), 'CSP: scripts of this origin only');
    await page.evaluate(() => {
      const s = document.createElement('div');
      s.innerHTML = '<img src=x onerror="window.__pwned=1">';
      document.body.append(s);
    });
    await page.waitForTimeout(300);
    check(!(await page.evaluate(() => window.__pwned)), 'an inline handler injected into the page is blocked by the CSP');
    await context.close();
  },

  // Issue test 2: three files, one of 50 MiB, with progress; in the table; one downloaded
  // and its SHA-256 compared; one deleted after the confirmation (a cancelled one stays).
  async upload(browser) {
    const { context, page } = await newPage(browser);
    await login(page, 'ops');
    await page.goto(GW + '/#/c/ops/up');
    await page.waitForSelector('#upload-files');
    const files = ['small-a.txt', 'small-b.bin', 'big-50m.bin'].map((n) => path.join(WORK, n));
    // Record the status texts as the page changes them: the progress shows while it runs.
    await page.evaluate(() => {
      window.__seen = [];
      new MutationObserver(() => {
        for (const li of document.querySelectorAll('#uploads li')) window.__seen.push(li.textContent);
      }).observe(document.getElementById('uploads'), { subtree: true, childList: true, characterData: true });
    });
    await page.selectOption('#resilience', '3,2');
    await page.setInputFiles('#upload-files', files);
    await page.waitForFunction(() => document.querySelectorAll('#uploads li.done').length === 3, null, { timeout: 300000 });
    const seen = await page.evaluate(() => window.__seen);
    check(seen.some((t) => /big-50m\.bin.*\d+%/.test(t)), 'the 50 MiB upload showed its progress');
    const bars = await page.$$eval('#uploads progress', (ps) => ps.map((p) => p.value));
    check(bars.length === 3 && bars.every((v) => v === 100), 'three progress bars at 100%');
    await page.waitForFunction(() => document.querySelectorAll('#objects-body tr[data-name]').length === 3);
    const rows = await catalogRows(page);
    check(['big-50m.bin', 'small-a.txt', 'small-b.bin'].every((n) => rows.includes(n)), 'the three files are in the table: ' + rows);
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('tr[data-name="big-50m.bin"] a[download]')]);
    const saved = path.join(WORK, 'downloaded.bin');
    await dl.saveAs(saved);
    check((await sha256File(saved)) === (await sha256File(files[2])), 'the downloaded 50 MiB file has the SHA-256 of the uploaded one');
    await page.click('tr[data-name="small-a.txt"] button.danger');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm button[value="cancel"]');
    check((await catalogRows(page)).includes('small-a.txt'), 'cancelled: the object stays');
    await page.click('tr[data-name="small-a.txt"] button.danger');
    await page.waitForSelector('#confirm[open]');
    check((await page.textContent('#confirm-text')).includes('small-a.txt'), 'the confirmation names the object');
    await page.click('#confirm-ok');
    await page.waitForFunction(() => !document.querySelector('#objects-body tr[data-name="small-a.txt"]'));
    const left = await api('GET', '/v1/catalogs/ops/up/~/objects');
    check(left.json.objects.length === 2 && !left.json.objects.some((o) => o.name === 'small-a.txt'), 'confirmed: the object is gone from the fabric');
    // Drag and drop: a file dropped on the drop zone is uploaded.
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped by drag and drop\n'], 'dropped.txt', { type: 'text/plain' }));
      document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await page.waitForSelector('#objects-body tr[data-name="dropped.txt"]');
    check(true, 'a file dropped on the drop zone is uploaded');
    // From the keyboard: Enter on the focused drop zone opens the file chooser.
    // (Chromium sometimes drops the first chooser request right after another upload: a
    // few tries, each a real key press on the focused zone.)
    let chooser = null;
    for (let i = 0; i < 4 && !chooser; i++) {
      const wait = page.waitForEvent('filechooser', { timeout: 5000 }).catch(() => null);
      await page.focus('#drop');
      await page.keyboard.press(i % 2 ? 'Space' : 'Enter');
      chooser = await wait;
      if (!chooser) console.log('# no file chooser after key press ' + (i + 1));
    }
    check(chooser && chooser.isMultiple(), 'Enter or Space on the drop zone opens a multi-file chooser');
    await chooser.setFiles([files[0]]);
    await page.waitForSelector('#objects-body tr[data-name="small-a.txt"]');
    check(true, 'a file chosen from the keyboard is uploaded');
    await api('DELETE', '/v1/objects/' + (await api('GET', '/v1/catalogs/ops/up/~/objects?prefix=dropped')).json.objects[0].key);
    await api('DELETE', '/v1/objects/' + (await api('GET', '/v1/catalogs/ops/up/~/objects?prefix=small-a')).json.objects[0].key);
    await page.waitForFunction(() => document.querySelectorAll('#objects-body tr[data-name]').length === 2);
    // A cancelled upload stores nothing.
    await page.evaluate(() => { window.__seen = []; });
    await page.setInputFiles('#upload-files', [files[2]].map((f) => f));
    await page.click('#uploads li:first-child button', { timeout: 10000 }).catch(() => {});
    await page.waitForFunction(() => /cancelled|done/.test(document.querySelector('#uploads li:first-child').textContent), null, { timeout: 300000 });
    const cancelled = /cancelled/.test(await page.textContent('#uploads li:first-child'));
    console.log('# cancel clicked before the end of the upload: ' + cancelled);
    if (cancelled) {
      await page.waitForTimeout(1000);
      const objs = (await api('GET', '/v1/catalogs/ops/up/~/objects')).json.objects;
      check(objs.length === 2, 'a cancelled upload stores nothing');
    }
    check(page.errors.length === 0, 'no script error: ' + page.errors.join('; '));
    await context.close();
  },

  // Issue test 3: an object put with the CLI appears in the open catalog without a reload.
  async live(browser) {
    const { context, page } = await newPage(browser);
    await login(page, 'ops');
    await page.goto(GW + '/#/c/ops/live');
    await page.waitForSelector('#objects-body');
    await page.evaluate(() => { window.__noReload = 42; });
    await page.waitForTimeout(1000); // the event stream is open
    const f = path.join(WORK, 'live-object.txt');
    fs.writeFileSync(f, 'arrived from the command line\n');
    const r = await cli(['put', f, '--catalog', 'ops/live']);
    check(r.code === 0, 'the CLI put succeeded: ' + r.err);
    const t0 = Date.now();
    await page.waitForSelector('#objects-body tr[data-name="live-object.txt"]', { timeout: 20000 });
    const ms = Date.now() - t0;
    console.log('# the CLI put appeared in the open catalog ' + ms + ' ms after the CLI exited');
    check((await page.evaluate(() => window.__noReload)) === 42, 'the page was not reloaded');
    await page.waitForSelector('#activity li:has-text("live-object.txt")');
    check((await page.textContent('#activity')).includes('created'), 'the activity feed shows the event');
    const key = r.out.trim().split(/\s+/).pop();
    await api('DELETE', '/v1/objects/' + key);
    await page.waitForSelector('#activity li:has-text("evicted")', { timeout: 20000 });
    await page.waitForFunction(() => !document.querySelector('#objects-body tr[data-name="live-object.txt"]'));
    check(true, 'an eviction removes the row and shows in the feed');
    await context.close();
  },

  // Issue test 4: sub-catalogs, pagination and the prefix filter over 2,000 objects, and a
  // share added and removed, seen as the other user.
  async browse(browser) {
    const { context, page } = await newPage(browser);
    await login(page, 'ops');
    await page.goto(GW + '/#/c/ops/big');
    await page.waitForSelector('#objects-body tr[data-name]');
    let rows = await catalogRows(page);
    check(rows.length === 50 && rows[0] === 'obj-0000' && rows[49] === 'obj-0049', 'page 1: obj-0000..obj-0049');
    check((await page.textContent('#catalog-stats')).startsWith('2000 objects'), 'the catalog holds 2000 objects');
    await page.click('#next-page');
    await page.waitForSelector('#objects-body tr[data-name="obj-0050"]');
    rows = await catalogRows(page);
    check(rows[0] === 'obj-0050' && rows[49] === 'obj-0099', 'page 2: obj-0050..obj-0099');
    await page.click('#prev-page');
    await page.waitForSelector('#objects-body tr[data-name="obj-0000"]');
    await page.fill('#prefix', 'obj-19');
    await page.waitForSelector('#objects-body tr[data-name="obj-1900"]');
    rows = await catalogRows(page);
    check(rows.length === 50 && rows.every((n) => n.startsWith('obj-19')), 'the prefix filter: obj-1900..obj-1949');
    await page.click('#next-page');
    await page.waitForSelector('#objects-body tr[data-name="obj-1950"]');
    rows = await catalogRows(page);
    check(rows.length === 50 && rows[49] === 'obj-1999' && (await page.isDisabled('#next-page')), 'its last page ends at obj-1999');
    await page.fill('#prefix', 'nothing-');
    await page.waitForSelector('#objects-body td:has-text("No object name starts with that.")');
    check(true, 'a prefix that matches nothing says so');
    // sub-catalogs and breadcrumbs
    await page.goto(GW + '/#/c/ops/nav');
    await page.waitForSelector('#subcatalogs a');
    await page.click('#subcatalogs a:has-text("sub/")');
    await page.waitForSelector('#catalog-title:text-is("ops/nav/sub")');
    check((await page.textContent('.crumbs')).replace(/\s+/g, '') === 'Catalogs/ops/nav/sub', 'breadcrumbs: Catalogs / ops / nav / sub');
    await page.fill('#new-sub', 'deeper');
    await page.click('form[aria-label="Create a sub-catalog"] button');
    await page.waitForSelector('#catalog-title:has-text("ops/nav/sub/deeper")');
    await page.click('.crumbs a:has-text("sub")');
    // text-is, not has-text: "ops/nav/sub/deeper" contains "ops/nav/sub", so has-text would
    // match the page being left and read its (empty) sub-catalog list.
    await page.waitForSelector('#catalog-title:text-is("ops/nav/sub")');
    await page.waitForSelector('#subcatalogs a:has-text("deeper/")');
    check((await page.$$eval('#subcatalogs a', (as) => as.map((a) => a.textContent))).includes('deeper/'), 'a created sub-catalog is listed');
    await page.click('#subcatalogs a:has-text("deeper/")');
    await page.waitForSelector('#catalog-title:has-text("ops/nav/sub/deeper")');
    await page.click('#remove-catalog');
    await page.click('#confirm-ok');
    await page.waitForSelector('#catalog-title:text-is("ops/nav/sub")');
    check(!(await page.$$eval('#subcatalogs a', (as) => as.map((a) => a.textContent))).includes('deeper/'), 'a removed catalog is gone');
    // shares, and their effect as alice
    await page.goto(GW + '/#/c/ops/shared');
    await page.waitForSelector('#share-principal');
    await page.fill('#share-principal', 'alice');
    await page.selectOption('#share-access', 'read');
    await page.click('#share-add');
    await page.waitForSelector('#shares-body td:text-is("alice")');
    const a = await newPage(browser);
    await login(a.page, 'alice');
    await a.page.goto(GW + '/#/c/ops/shared');
    await a.page.waitForSelector('#objects-body tr[data-name="shared.txt"]');
    check(true, 'alice sees the shared catalog and its object');
    await page.click('#shares-body button[aria-label="Remove share with alice"]');
    await page.waitForSelector('#shares-body td:has-text("Not shared.")');
    let refused = false;
    for (let i = 0; i < 20 && !refused; i++) {
      await a.page.goto(GW + '/#/');
      await a.page.goto(GW + '/#/c/ops/shared');
      await a.page.waitForSelector('main p.error, #objects-body tr');
      refused = (await a.page.$('main p.error')) !== null;
      if (!refused) await a.page.waitForTimeout(500);
    }
    check(refused, 'after the share is removed alice is refused: ' + (await a.page.textContent('main')));
    await a.context.close();
    check(page.errors.length === 0, 'no script error: ' + page.errors.join('; '));
    await context.close();
  },

  // Issue test 6: five containers on the dashboard; one killed changes state on the page.
  async dashboard(browser) {
    const { context, page } = await newPage(browser);
    await login(page, 'ops');
    await page.goto(GW + '/#/dashboard');
    await page.waitForSelector('#containers tbody tr, #containers-missing');
    if (await page.$('#containers-missing')) console.log('# ' + (await page.textContent('#containers-missing')));
    await page.waitForSelector('#containers tbody tr', { timeout: 60000 }); // the page refreshes every 2 s
    const ids = await page.$$eval('#containers tbody tr', (rs) => rs.map((r) => r.getAttribute('data-id')));
    check(ids.length === 5, 'five containers listed: ' + ids);
    check((await page.$$('#containers meter')).length === 5, 'each with a utilization bar');
    check((await page.textContent('#broker-state')) === 'connected', 'the broker is connected');
    const victim = process.env.DYNO_KILL_ID;
    check(ids.includes(victim), 'the container to kill is listed: ' + victim);
    const before = await page.getAttribute(`#containers tr[data-id="${victim}"] [data-state]`, 'data-state');
    check(before === 'online', 'it is online before');
    process.kill(Number(process.env.DYNO_KILL_PID), 'SIGKILL');
    await page.waitForFunction((id) => {
      const s = document.querySelector(`#containers tr[data-id="${id}"] [data-state]`);
      return s && s.getAttribute('data-state') !== 'online';
    }, victim, { timeout: 120000, polling: 500 });
    const after = await page.getAttribute(`#containers tr[data-id="${victim}"] [data-state]`, 'data-state');
    check(after !== 'online', 'the killed container is shown ' + after + ' without a reload');
    check(page.errors.length === 0, 'no script error: ' + page.errors.join('; '));
    await context.close();
  },

  // Issue test 7: `dynostore login --device` completes once the code is approved in the
  // browser; an unknown code and a used one are refused.
  async device(browser) {
    const { context, page } = await newPage(browser);
    await login(page, 'alice');
    await page.goto(GW + '/#/device');
    await page.fill('#device-code', 'BCDF-GHJK');
    await page.click('#device-approve');
    await page.waitForSelector('#device-result.error');
    check(/unknown or expired/i.test(await page.textContent('#device-result')), 'an unknown code is refused');
    const home = fs.mkdtempSync(path.join(WORK, 'devhome-'));
    let child;
    const done = cli(['--gateway', GW, 'login', '--device'], { HOME: home, onSpawn: (p) => { child = p; } });
    const code = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no code printed')), 30000);
      child.on('err', (e) => { const m = /code: ([A-Z]{4}-[A-Z]{4})/.exec(e); if (m) { clearTimeout(t); resolve(m[1]); } });
    });
    await page.goto(GW + '/#/device?code=' + code);
    await page.waitForSelector('#device-code');
    check((await page.inputValue('#device-code')) === code, 'the link the CLI prints fills the code in');
    await page.click('#device-approve');
    await page.waitForSelector('#device-result:has-text("Approved")');
    const r = await done;
    check(r.code === 0 && /logged in as alice/.test(r.out), 'the CLI got its token: ' + r.out + r.err);
    const who = await cli(['whoami'], { HOME: home });
    check(who.code === 0 && who.out.includes('alice'), 'and uses it: ' + who.out);
    await page.fill('#device-code', code);
    await page.click('#device-approve');
    await page.waitForSelector('#device-result.error');
    check(/unknown or expired/i.test(await page.textContent('#device-result')), 'a used code is refused');
    await context.close();
  },

  // "Works over --tls too": the same login and upload over HTTPS (the fabric's own CA; the
  // node side trusts it through NODE_EXTRA_CA_CERTS); the session cookie is Secure there.
  async tls(browser) {
    check(GW.startsWith('https://'), 'the gateway is HTTPS: ' + GW);
    const context = await browser.newContext({ viewport: LAPTOP, ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await login(page, 'ops');
    const sess = (await context.cookies()).find((c) => c.name === 'dyno_session');
    check(sess && sess.secure && sess.httpOnly && sess.sameSite === 'Strict', 'the session cookie is Secure, HttpOnly, SameSite=Strict');
    await page.goto(GW + '/#/c/ops/tls');
    await page.waitForSelector('#upload-files');
    await page.waitForTimeout(1000); // the event stream is open
    await page.setInputFiles('#upload-files', [path.join(WORK, 'small-b.bin')]);
    await page.waitForSelector('#uploads li.done');
    await page.waitForSelector('#objects-body tr[data-name="small-b.bin"]');
    check(true, 'an upload over HTTPS lands in the table');
    const r = await fetch(GW + '/v1/catalogs/ops/tls/~/objects?name=from-rest.txt', {
      method: 'POST', headers: { Authorization: 'Bearer ' + process.env.DYNO_ADMIN_TOKEN }, body: 'over tls\n',
    });
    check(r.status === 201, 'a REST put over HTTPS (' + r.status + ')');
    await page.waitForSelector('#objects-body tr[data-name="from-rest.txt"]', { timeout: 20000 });
    check(true, 'and the live view shows it');
    await context.close();
  },

  // Admins: a user and an API token created, the token revoked, from the console.
  async admin(browser) {
    const { context, page } = await newPage(browser);
    await login(page, 'ops');
    await page.goto(GW + '/#/admin');
    await page.waitForSelector('#users');
    await page.fill('#new-user', 'carol');
    await page.fill('#new-user-password', 'carol-pass-1234');
    await page.click('form[aria-label="Create a user"] button');
    await page.waitForSelector('#users td:text-is("carol")');
    check(true, 'a user created from the console is listed');
    await page.fill('#new-token-name', 'ci-runner');
    await page.click('form[aria-label="Create an API token"] button');
    await page.waitForSelector('#new-token code');
    const tok = await page.textContent('#new-token code');
    check((await api('GET', '/v1/auth/whoami', undefined, tok)).status === 200, 'the new token (shown once) works');
    await page.goto(GW + '/#/');
    await page.goto(GW + '/#/admin');
    await page.waitForSelector('#tokens td:text-is("ci-runner")');
    await page.click('#tokens button[aria-label="Revoke token ci-runner"]');
    await page.click('#confirm-ok');
    await page.waitForSelector('#tokens tr:has(td:text-is("ci-runner")) td:text-is("revoked")');
    let refused = false;
    for (let i = 0; i < 40 && !refused; i++) {
      refused = (await api('GET', '/v1/auth/whoami', undefined, tok)).status === 401;
      if (!refused) await page.waitForTimeout(250);
    }
    check(refused, 'revoked from the console: the token no longer works');
    const c = await newPage(browser);
    await login(c.page, 'carol', 'carol-pass-1234');
    check((await c.page.textContent('#nav-admin')) === 'API tokens', 'carol (not an admin) sees her tokens only');
    await c.page.goto(GW + '/#/admin');
    await c.page.waitForSelector('#tokens');
    check((await c.page.$('#users')) === null, 'and no user list');
    await c.context.close();
    check(page.errors.length === 0, 'no script error: ' + page.errors.join('; '));
    await context.close();
  },

  // Issue test 8: every page at 1280x800 and 390x844.
  async screenshots(browser) {
    fs.mkdirSync(SHOTS, { recursive: true });
    for (const [size, vp] of [['laptop', LAPTOP], ['phone', PHONE]]) {
      const { context, page } = await newPage(browser, vp);
      await page.goto(GW + '/');
      await page.waitForSelector('#login-user');
      await page.screenshot({ path: path.join(SHOTS, `login-${size}.png`) });
      await login(page, 'ops');
      const key = (await api('GET', '/v1/catalogs/ops/xss/~/objects')).json.objects[0].key;
      const pages = [['catalogs', '#/', '#catalogs'], ['catalog', '#/c/ops/big', '#objects-body tr'],
        ['catalog-xss', '#/c/ops/xss', '#objects-body tr'], ['object', '#/o/' + key, '#fragments'],
        ['dashboard', '#/dashboard', '#containers'], ['device', '#/device', '#device-code'], ['admin', '#/admin', '#tokens']];
      for (const [name, hash, sel] of pages) {
        await page.goto(GW + '/' + hash);
        await page.waitForSelector(sel + ', main p.error, #containers-missing');
        for (const why of ['main p.error', '#containers-missing']) {
          // a transient refusal (an RPC that timed out under load) is printed, then waited out
          if (await page.$(why)) console.log(`# ${name}: ${await page.textContent(why)}`);
        }
        await page.waitForSelector(sel, { timeout: 60000 });
        if (name === 'dashboard') {
          // traffic for the charts: puts and gets for a few seconds
          const t0 = Date.now();
          for (let i = 0; Date.now() - t0 < 8000; i++) {
            const r = await fetch(GW + '/v1/catalogs/ops/live/~/objects?name=traffic-' + size + '-' + i, {
              method: 'POST', headers: { Authorization: 'Bearer ' + process.env.DYNO_ADMIN_TOKEN }, body: Buffer.alloc(256 * 1024, i),
            });
            const { key: k } = await r.json();
            await (await fetch(GW + '/v1/objects/' + k, { headers: { Authorization: 'Bearer ' + process.env.DYNO_ADMIN_TOKEN } })).arrayBuffer();
          }
          await page.waitForTimeout(2500);
        } else {
          await page.waitForTimeout(300);
        }
        await page.screenshot({ path: path.join(SHOTS, `${name}-${size}.png`), fullPage: true });
      }
      check(page.foreign.length === 0, `no request left the gateway's origin on any page (${size}): ` + page.foreign.join(' '));
      check(page.errors.length === 0, 'no script error: ' + page.errors.join('; '));
      await context.close();
    }
    check(fs.readdirSync(SHOTS).filter((f) => f.endsWith('.png')).length >= 16, 'screenshots saved in ' + SHOTS);
  },
};

const name = process.argv[2];
if (!tests[name]) {
  console.error('usage: node console.test.mjs ' + Object.keys(tests).join('|'));
  process.exit(2);
}
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  await tests[name](browser);
  console.log('PASS ' + name);
} catch (e) {
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
