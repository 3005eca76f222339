// Browser test: the admin console at /_/ in Debian's Chromium, on a desktop and a phone screen.
//
// Usage: node console.test.mjs PATH/TO/latch
// Starts latch on 127.0.0.1:0 with a temporary database and a real SMTP server on loopback
// (tests/support/smtp_sink.py), makes an admin with `latch admin add EMAIL --password-stdin`,
// creates users through the picflux and envelope APIs, and drives headless Chromium (CHROMIUM,
// default /usr/bin/chromium) through playwright-core: sign-in, search, a user's page and each
// of its actions, the audit log, keys and status; what an action did is checked over HTTP
// through the public APIs. With LATCH_E2E_SCREENSHOTS=DIR (relative to the repository root) it
// saves each page at desktop and phone width there as console-PAGE-{desktop,phone}.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const latchBinary = path.resolve(process.argv[2] || process.env.LATCH_BINARY || 'build/latch');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const smtpSink = path.join(repoRoot, 'tests/support/smtp_sink.py');
const shotDir = process.env.LATCH_E2E_SCREENSHOTS
  ? path.resolve(repoRoot, process.env.LATCH_E2E_SCREENSHOTS) : null;

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const ADMIN = { email: 'admin@example.com', password: 'console-admin-password-1' };

let tmp, dbPath, sink, latch, baseUrl, browser, desktop, phone;
const mailDir = () => path.join(tmp, 'mail');

// ---- child processes -----------------------------------------------------------------

// Starts a child and resolves with the first match of `pattern` in its stdout.
function startChild(cmd, args, env, pattern, what) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stderr.on('data', (d) => { err += d; });
  const found = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what} did not start in 20 s: ${err}`)), 20000);
    let seen = false;
    child.stdout.on('data', (d) => {
      if (seen) return;
      out += d;
      const m = pattern.exec(out);
      if (m) { seen = true; clearTimeout(timer); resolve(m); }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) at start: ${err}`));
    });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
  return { child, found, log: () => err };
}

async function stopChild(proc) {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const exited = once(proc.child, 'exit');
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

// The environment without anything LATCH_* from the caller's.
function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LATCH_')) env[k] = v;
  return { ...env, ...extra };
}

// An admin command against the test's database; its stdin is `input`.
function latchCommand(args, input = '') {
  return spawnSync(latchBinary, [...args, '--db', dbPath],
                   { input, env: cleanEnv({}), encoding: 'utf8', timeout: 30000 });
}

// ---- API and mail helpers ------------------------------------------------------------

async function api(route, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(baseUrl + route, {
    method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

let serial = 0;
function newAccount(prefix = 'pf') {
  const name = `${prefix}${process.pid % 100000}x${++serial}`;
  return { username: name, email: `${name}@example.com`, password: 'picflux-pass-1' };
}

// A user made through picflux, with the token pair of the session its sign-up started.
async function picfluxUser() {
  const a = newAccount();
  const r = await api('/api/auth/signup', a);
  assert.equal(r.status, 201, `picflux signup: ${JSON.stringify(r.body)}`);
  return { ...a, tokens: r.body };
}

const picfluxSignIn = async (a, password) =>
  (await api('/api/auth/signin', { email: a.email, password })).status;
const refresh = (refreshToken) => api('/api/auth/refresh', undefined, refreshToken);

// The session id a token names (its sid claim).
function sidOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()).sid;
}

// Waits for the mail to `to` whose subject is `subject` and returns its raw text.
async function waitForMail(to, subject) {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    for (const name of fs.readdirSync(mailDir()).filter((n) => n.endsWith('.eml'))) {
      const text = fs.readFileSync(path.join(mailDir(), name), 'utf8');
      if (new RegExp(`^X-Rcpt-To: ${to.replace(/[.+]/g, '\\$&')}\\r?$`, 'm').test(text) &&
          text.includes(`Subject: ${subject}`))
        return text;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no mail "${subject}" to ${to} within 10 s; latch logs:\n${latch.log()}`);
}

// ---- browser helpers -----------------------------------------------------------------

// A fresh page that fails the test on any script error or console error (a CSP violation is
// reported on the console; the browser's own note about a 4xx answer is expected). It records
// the console's state-changing calls with their X-CSRF-Token header, and the token the
// sign-in answered.
async function newPage(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.problems = [];
  page.changes = [];
  page.csrf = null;
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
      page.problems.push(`console: ${m.text()}`);
  });
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.pathname.startsWith('/_/api/') && r.method() !== 'GET')
      page.changes.push({ method: r.method(), path: url.pathname,
                          csrf: r.headers()['x-csrf-token'] });
  });
  page.on('response', async (r) => {
    const url = new URL(r.url());
    if (url.pathname === '/_/api/session' && r.status() === 200)
      page.csrf = (await r.json().catch(() => ({}))).csrf_token ?? page.csrf;
  });
  return page;
}

// Every call that changed something carried the session's CSRF token (the sign-in itself,
// which has no session yet, aside).
function checkCsrf(page) {
  const changes = page.changes.filter((c) => !(c.method === 'POST' && c.path === '/_/api/session'));
  for (const c of changes)
    assert.equal(c.csrf, page.csrf, `${c.method} ${c.path} without the session's CSRF token`);
  return changes.length;
}

async function closePage(page) {
  assert.deepEqual(page.problems, [], 'the page logged errors');
  await page.close();
}

// fullPage: the whole page, not only what the screen shows.
async function screenshot(page, name, fullPage = false) {
  if (!shotDir) return;
  fs.mkdirSync(shotDir, { recursive: true });
  const kind = page.viewportSize().width <= PHONE.width ? 'phone' : 'desktop';
  await page.screenshot({ path: path.join(shotDir, `console-${name}-${kind}.png`),
                          animations: 'disabled', caret: 'hide', fullPage });
}

// Phone readability: nothing wider than the screen, 16px+ text in inputs, 44px+ buttons and
// inputs (those shown).
async function checkPhoneLayout(page) {
  const m = await page.evaluate(() => {
    const shown = (el) => el.getClientRects().length > 0;
    const small = [];
    for (const el of document.querySelectorAll('button, input, select, a.button')) {
      if (!shown(el)) continue;
      const r = el.getBoundingClientRect();
      const font = parseFloat(getComputedStyle(el).fontSize);
      if (r.height < 44) small.push(`${el.id || el.textContent} ${r.height}px high`);
      if (el.matches('input, select') && font < 16) small.push(`${el.id} text ${font}px`);
    }
    return {
      viewport: document.querySelector('meta[name=viewport]')?.content,
      scrollWidth: document.documentElement.scrollWidth,
      body: parseFloat(getComputedStyle(document.body).fontSize),
      small,
    };
  });
  assert.match(m.viewport ?? '', /width=device-width/);
  assert.ok(m.scrollWidth <= PHONE.width,
            `page is ${m.scrollWidth}px wide on a ${PHONE.width}px screen`);
  assert.ok(m.body >= 16, `body text ${m.body}px`);
  assert.deepEqual(m.small, [], 'controls too small for a finger');
}

const flash = (page) => page.locator('#flash');

// Opens the console at `hash`, signing in first if the context has no console session.
async function open(page, hash) {
  await page.goto(`${baseUrl}/_/${hash}`);
  await page.locator('#sign-in-form, #bar:not([hidden])').first().waitFor();
  if (await page.locator('#sign-in-form').isVisible()) {
    await page.fill('#email', ADMIN.email);
    await page.fill('#password', ADMIN.password);
    await page.click('#sign-in');
    await page.locator('#bar:not([hidden])').waitFor();
  }
}

// Searches the users list and opens the user's page.
async function openUser(page, account) {
  await open(page, '#/users');
  await page.locator('h1', { hasText: 'Users' }).waitFor();
  await page.fill('#search', account.username);
  await page.click('#search-button');
  await page.getByRole('link', { name: account.username, exact: true }).click();
  await page.locator('#user-name', { hasText: account.username }).waitFor();
}

// ---- set-up --------------------------------------------------------------------------

before(async () => {
  assert.ok(fs.existsSync(latchBinary), `no latch binary at ${latchBinary}`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'latch-e2e-console-'));
  dbPath = path.join(tmp, 'auth.db');
  fs.mkdirSync(mailDir());
  sink = startChild('/usr/bin/python3', [smtpSink, mailDir()], cleanEnv({}), /PORT (\d+)/,
                    'SMTP sink');
  const smtpPort = (await sink.found)[1];
  latch = startChild(latchBinary,
    ['serve', '--addr', '127.0.0.1:0', '--db', dbPath,
     '--argon2-memory-kib', '64', '--argon2-iterations', '1',
     '--rate-limit', '0', '--max-failed-logins', '0'],
    cleanEnv({ LATCH_SMTP_URL: `smtp://127.0.0.1:${smtpPort}` }),
    /listening on (http:\/\/127\.0\.0\.1:\d+)/, 'latch');
  [, baseUrl] = await latch.found;
  // The console opens (instead of answering 404) once an admin exists, made as an operator does.
  assert.equal((await fetch(`${baseUrl}/_/`)).status, 404, 'no console before an admin exists');
  const added = latchCommand(['admin', 'add', ADMIN.email, '--password-stdin'], ADMIN.password + '\n');
  assert.equal(added.status, 0, `latch admin add: ${added.stdout}${added.stderr}`);
  browser = await chromium.launch({
    executablePath: chromiumPath, headless: true,
    // The machine's network is closed: no background fetches, no QUIC, no GPU.
    args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  desktop = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light', locale: 'en-US' });
  phone = await browser.newContext({
    viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    colorScheme: 'light', locale: 'en-US',
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopChild(latch);
  await stopChild(sink);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- the tests -----------------------------------------------------------------------

test('the console page is served with its security headers and refuses a wrong password',
     async () => {
  const page = await newPage(desktop);
  const res = await page.goto(`${baseUrl}/_/`);
  assert.equal(res.status(), 200);
  const headers = res.headers();
  const csp = headers['content-security-policy'] ?? '';
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(headers['x-frame-options'], 'DENY');
  assert.match(headers['cache-control'] ?? '', /no-store/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  // Script and style are files of their own, loaded from /_/ (the CSP allows nothing inline).
  const inline = await page.evaluate(() => ({
    scripts: [...document.scripts].filter((s) => !s.src).length,
    styles: document.querySelectorAll('style, [style]').length,
  }));
  assert.deepEqual(inline, { scripts: 0, styles: 0 });

  await page.locator('#sign-in-form').waitFor();
  await screenshot(page, 'signin');
  await page.fill('#email', ADMIN.email);
  await page.fill('#password', 'not-the-password');
  await page.click('#sign-in');
  await page.locator('#message', { hasText: 'Wrong email or password.' }).waitFor();
  assert.ok(await page.locator('#bar').isHidden(), 'the console stays closed');
  assert.equal((await page.context().request.get(`${baseUrl}/_/api/users`)).status(), 401);

  await page.fill('#password', ADMIN.password);
  await page.click('#sign-in');
  await page.locator('h1', { hasText: 'Users' }).waitFor();
  assert.equal(await page.locator('#admin-email').innerText(), ADMIN.email);
  await closePage(page);
});

test('an admin finds a picflux user and ends their sessions: the refresh token is refused',
     async () => {
  const user = await picfluxUser();
  // A second session, and the first one's refresh token rotated once: both work before.
  const second = await api('/api/auth/signin', { email: user.email, password: user.password });
  assert.equal(second.status, 200);
  const rotated = await refresh(user.tokens.refresh_token);
  assert.equal(rotated.status, 200, 'the refresh token works before the console ends it');

  const page = await newPage(desktop);
  await openUser(page, user);
  assert.equal(await page.locator('#profile dd').first().innerText(), user.username);
  const sessions = page.locator('#sessions tbody tr');
  assert.equal(await sessions.count(), 2);
  assert.equal(await page.locator('#sessions td[data-label="API"]', { hasText: 'picflux' }).count(), 2);
  assert.equal(await page.locator('#sessions .badge', { hasText: 'active' }).count(), 2);
  await screenshot(page, 'user', true);

  await page.click('#end-all');
  await flash(page).filter({ hasText: 'are ended' }).waitFor();
  await page.locator('#sessions .badge', { hasText: 'ended' }).nth(1).waitFor();
  assert.equal(await page.locator('#sessions .badge', { hasText: 'active' }).count(), 0);
  assert.equal(await page.locator('#end-all').count(), 0, 'nothing left to end');
  assert.ok(checkCsrf(page) >= 1);
  await closePage(page);

  assert.equal((await refresh(rotated.body.refresh_token)).status, 401,
               'a session ended in the console refuses its refresh token');
  assert.equal((await refresh(second.body.refresh_token)).status, 401);
  assert.equal((await api('/api/auth/logout', undefined, second.body.access_token)).status, 401,
               'and its access token');
});

test('ending one session leaves the others', async () => {
  const user = await picfluxUser();
  const other = await api('/api/auth/signin', { email: user.email, password: user.password });
  assert.equal(other.status, 200);
  const page = await newPage(desktop);
  await openUser(page, user);
  const sid = sidOf(user.tokens.access_token);
  await page.click(`[id="end-${sid}"]`);
  await flash(page).filter({ hasText: 'session is ended' }).waitFor();
  await page.locator(`[id="end-${sid}"]`).waitFor({ state: 'detached' });
  assert.equal(await page.locator('#sessions .badge', { hasText: 'active' }).count(), 1);
  checkCsrf(page);
  await closePage(page);
  assert.equal((await refresh(user.tokens.refresh_token)).status, 401);
  assert.equal((await refresh(other.body.refresh_token)).status, 200, 'the other session lives');
});

test('mark verified, reset mail and a new password, each checked where it shows', async () => {
  const user = await picfluxUser();
  const page = await newPage(desktop);
  await openUser(page, user);
  const verified = page.locator('#profile dd .badge').first();
  assert.equal(await verified.innerText(), 'not verified');

  await page.click('#verify-email');
  await flash(page).filter({ hasText: 'marked verified' }).waitFor();
  await page.locator('#profile dd .badge', { hasText: /^verified$/ }).waitFor();
  assert.equal(await page.locator('#verify-email').count(), 0);
  const id = (await page.locator('#profile dd code').innerText()).trim();
  const detail = await page.context().request.get(`${baseUrl}/_/api/users/${encodeURIComponent(id)}`);
  assert.equal((await detail.json()).user.email_verified, true);

  await page.click('#reset-mail');
  await flash(page).filter({ hasText: 'password-reset mail' }).waitFor();
  const mail = await waitForMail(user.email, 'Reset your password');
  assert.match(mail, /reset-password\?token=/);

  // The server's password rule words the refusal; the page shows it by the field.
  await page.fill('#new-password', 'short');
  await page.click('#set-password');
  await page.locator('#password-form .msg.error').waitFor();
  assert.match(await page.locator('#password-form .msg.error').innerText(), /too short/);
  assert.equal(await page.getAttribute('#new-password', 'aria-invalid'), 'true');
  assert.equal(await picfluxSignIn(user, user.password), 200, 'nothing changed yet');

  await page.fill('#new-password', 'set-by-console-9');
  await page.click('#set-password');
  await flash(page).filter({ hasText: 'is set' }).waitFor();
  assert.equal(await page.inputValue('#new-password'), '');
  assert.equal(checkCsrf(page), 4);
  await closePage(page);
  assert.equal(await picfluxSignIn(user, 'set-by-console-9'), 200, 'the new password signs in');
  assert.equal(await picfluxSignIn(user, user.password), 401, 'the old one no longer does');
});

test('deleting a user takes the typed username; the user can no longer sign in', async () => {
  const user = await picfluxUser();
  const page = await newPage(desktop);
  await openUser(page, user);
  assert.ok(await page.locator('#delete-user').isDisabled());
  await page.fill('#confirm-delete', user.username + 'x');
  assert.ok(await page.locator('#delete-user').isDisabled(), 'a near miss does not arm it');
  await page.fill('#confirm-delete', user.username);
  assert.ok(await page.locator('#delete-user').isEnabled());
  await page.click('#delete-user');
  await page.locator('h1', { hasText: 'Users' }).waitFor();
  await flash(page).filter({ hasText: `${user.username} is deleted` }).waitFor();
  assert.equal(checkCsrf(page), 1);
  await page.fill('#search', user.username);
  await page.click('#search-button');
  await page.locator('.empty', { hasText: 'No user' }).waitFor();
  await closePage(page);
  assert.equal(await picfluxSignIn(user, user.password), 401);
  assert.equal((await refresh(user.tokens.refresh_token)).status, 401);
});

test('a display name that is a script tag shows as text and runs nothing', async () => {
  const name = `xs${process.pid % 100000}`;
  const display = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';
  const made = await api('/api/v1/auth/signUp', {
    username: name, email: `${name}@example.com`, password: 'Envelope-pass-1!', display_name: display,
  });
  assert.ok(made.status === 200 || made.status === 201, `signUp: ${JSON.stringify(made.body)}`);
  const page = await newPage(desktop);
  await openUser(page, { username: name });
  const dd = page.locator('#profile dt', { hasText: 'Display name' }).locator('xpath=following-sibling::dd[1]');
  assert.equal(await dd.innerText(), display);
  const injected = await page.evaluate(() => ({
    pwned: window.__pwned,
    scripts: document.querySelectorAll('#view script').length,
    images: document.querySelectorAll('#view img').length,
  }));
  assert.deepEqual(injected, { pwned: undefined, scripts: 0, images: 0 });
  await closePage(page);
});

test('the users list pages through every user', async () => {
  // 55 users whose names start with pg: five more than a page (50) holds.
  for (let i = 0; i < 55; i += 5) {
    const made = [];
    for (let j = 0; j < 5; j++) made.push(api('/api/auth/signup', newAccount('pg')));
    for (const r of await Promise.all(made)) assert.equal(r.status, 201);
  }
  const page = await newPage(desktop);
  await open(page, '#/users');
  await page.fill('#search', 'pg');
  await page.click('#search-button');
  // The unfiltered list (more than a page too) is on screen until the search's draws.
  await page.waitForFunction(() => {
    const names = [...document.querySelectorAll('td[data-label="Username"]')];
    return names.length === 50 && names.every((td) => td.textContent.startsWith('pg')) &&
           document.getElementById('next-page');
  });
  const firstNames = await page.locator('table.data td[data-label="Username"]').allInnerTexts();
  assert.equal(firstNames.length, 50);
  await screenshot(page, 'users');
  await page.click('#next-page');
  await page.locator('a.button', { hasText: 'First page' }).waitFor();
  const second = await page.locator('table.data tbody tr').allInnerTexts();
  assert.equal(second.length, 5, `page 1: ${firstNames.join(' ')}\npage 2: ${second.join(' | ')}`);
  assert.equal(await page.locator('#next-page').count(), 0);
  await closePage(page);
});

// The audit log is another branch's (i18-audit); until it is in this binary there is no
// `latch audit` and this step is skipped.
const hasAudit = () => latchCommand(['audit', '--help']).status === 0;

test('a failed sign-in shows up in the audit view', { skip: !fs.existsSync(latchBinary) || !hasAudit()
  ? 'the audit log is not in this build (no latch audit)' : false }, async () => {
  const tried = `intruder${process.pid % 100000}@example.com`;
  assert.equal((await api('/api/auth/signin', { email: tried, password: 'guess-1234' })).status,
               401);
  const user = await picfluxUser();
  assert.equal(await picfluxSignIn(user, 'wrong-password-1'), 401);

  const page = await newPage(desktop);
  await open(page, '#/audit');
  await page.locator('h1', { hasText: 'Audit log' }).waitFor();
  const row = page.locator('table.data tbody tr', { hasText: tried });
  await row.first().waitFor();
  assert.match(await row.first().innerText(), /sign_in_failed/);
  assert.match(await row.first().innerText(), /picflux/);
  await screenshot(page, 'audit');

  // Filtered by event, every row is that event.
  // The unfiltered table is marked first, so the wait below is for the table drawn after
  // the filter (the marked one already holds the row).
  await page.locator('table.data').evaluate((t) => { t.dataset.stale = '1'; });
  await page.fill('#filter-event', 'sign_in_failed');
  await page.click('#filter');
  await page.waitForURL(/event=sign_in_failed/);
  await page.locator('table.data:not([data-stale])').waitFor();
  await row.first().waitFor();
  const kinds = await page.locator('table.data td[data-label="Event"]').allInnerTexts();
  assert.ok(kinds.length >= 2 && kinds.every((k) => k === 'sign_in_failed'), kinds.join());

  // The known user's failure is among their recent events.
  await openUser(page, user);
  await page.locator('#events td[data-label="Event"]', { hasText: 'sign_in_failed' }).waitFor();
  await closePage(page);
});

test('signing keys in each state, and the status', async () => {
  // HS256 signs at first; an EdDSA key made active retires it, and a second one waits as
  // the standby key.
  for (const args of [['--alg', 'EdDSA'], ['--activate'], ['--alg', 'EdDSA']]) {
    const r = latchCommand(['secret', 'rotate', ...args]);
    assert.equal(r.status, 0, `latch secret rotate ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
  const page = await newPage(desktop);
  await open(page, '#/keys');
  await page.locator('h1', { hasText: 'Signing keys' }).waitFor();
  const states = await page.locator('table.data td[data-label="State"]').allInnerTexts();
  assert.deepEqual([...states].sort(), ['active', 'retired', 'standby']);
  const algs = await page.locator('table.data td[data-label="Algorithm"]').allInnerTexts();
  assert.deepEqual([...algs].sort(), ['EdDSA', 'EdDSA', 'HS256']);
  await screenshot(page, 'keys');
  await page.goto(`${baseUrl}/_/#/status`);
  await page.locator('h1', { hasText: 'Status' }).waitFor();
  const users = Number(await page.locator('#stat-users .value').innerText());
  assert.ok(users >= 55, `status counts ${users} users`);
  assert.match(await page.locator('#stat-version .value').innerText(), /^\d+\.\d+/);
  await screenshot(page, 'status');
  await closePage(page);
});

test('on a phone every page fits the screen and its controls a finger', async () => {
  const user = await picfluxUser();
  const page = await newPage(phone);
  await page.goto(`${baseUrl}/_/`);
  await page.locator('#sign-in-form').waitFor();
  await checkPhoneLayout(page);
  await screenshot(page, 'signin');
  await open(page, '#/users');
  await page.locator('h1', { hasText: 'Users' }).waitFor();
  await checkPhoneLayout(page);
  await screenshot(page, 'users');
  await openUser(page, user);
  await checkPhoneLayout(page);
  await screenshot(page, 'user');
  for (const [hash, title, shot] of [['#/audit', 'Audit log', 'audit'],
                                     ['#/keys', 'Signing keys', 'keys'],
                                     ['#/status', 'Status', 'status']]) {
    await page.goto(`${baseUrl}/_/${hash}`);
    await page.locator('h1', { hasText: title }).waitFor();
    await checkPhoneLayout(page);
    if (shot !== 'audit' || hasAudit()) await screenshot(page, shot);
  }
  await closePage(page);
});

test('signing out ends the console session', async () => {
  const page = await newPage(desktop);
  await open(page, '#/status');
  await page.locator('h1', { hasText: 'Status' }).waitFor();
  assert.equal((await page.context().request.get(`${baseUrl}/_/api/session`)).status(), 200);
  await page.click('#sign-out');
  await page.locator('#sign-in-form').waitFor();
  await page.locator('.msg.ok', { hasText: 'You are signed out.' }).waitFor();
  assert.equal(checkCsrf(page), 1);
  assert.equal((await page.context().request.get(`${baseUrl}/_/api/session`)).status(), 401);
  await closePage(page);
});

test('a session ended elsewhere sends the page back to sign-in, then to where it was', async () => {
  const context = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light' });
  try {
    const page = await newPage(context);
    await open(page, '#/status');
    await page.locator('h1', { hasText: 'Status' }).waitFor();
    assert.ok(page.csrf, 'the page got its CSRF token');
    // As another tab's sign-out, or the idle expiry, would.
    const ended = await context.request.delete(`${baseUrl}/_/api/session`,
                                               { headers: { 'X-CSRF-Token': page.csrf } });
    assert.equal(ended.status(), 204);
    await page.click('#nav a[data-view="keys"]');
    await page.locator('#sign-in-form .msg.ok', { hasText: 'session has ended' }).waitFor();
    assert.ok(await page.locator('#bar').isHidden());
    await page.fill('#email', ADMIN.email);
    await page.fill('#password', ADMIN.password);
    await page.click('#sign-in');
    await page.locator('h1', { hasText: 'Signing keys' }).waitFor();
    await closePage(page);
  } finally {
    await context.close();
  }
});
