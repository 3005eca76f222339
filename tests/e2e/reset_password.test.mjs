// Browser test: the mailed /reset-password link and v1's confirmation link in Debian's Chromium.
//
// Usage: node reset_password.test.mjs PATH/TO/latch
// Starts latch on 127.0.0.1:0 (every API, and a second one with flask alone) with temporary
// databases and a real SMTP server on loopback (tests/support/smtp_sink.py), drives headless
// Chromium (CHROMIUM, default /usr/bin/chromium) through playwright-core on a phone-sized
// viewport, and checks what the pages show and what the API then accepts. With LATCH_E2E_SCREENSHOTS=DIR (relative to the repository root) it
// saves a PNG of each page state there; without it nothing is written outside a temp dir.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'";
const PHONE = { width: 390, height: 844 };

let tmp, sink, browser, context;
let latch, baseUrl;           // every API: the page posts to v1
let flask, flaskUrl;          // flask alone: the page posts to flask
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
    // Read to the end (latch logs each request to stdout), keeping only what comes before
    // the line looked for.
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

// The environment without anything LATCH_* (or RESET_PASSWORD_URL) from the caller's.
function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('LATCH_') && k !== 'RESET_PASSWORD_URL') env[k] = v;
  return { ...env, ...extra };
}

// ---- API and mail helpers ------------------------------------------------------------

async function api(route, body, base = baseUrl) {
  const res = await fetch(base + route, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

let serial = 0;
function newAccount() {
  const name = `e2e${process.pid}x${++serial}`;
  return { username: name, email: `${name}@example.com`, password: 'old-password-1' };
}

async function register(account, sendEmail) {
  const r = await api(`/api/v1/register?sendEmail=${sendEmail}`, account);
  assert.equal(r.status, 201, `register: ${JSON.stringify(r.body)}`);
}

const login = async (account, password) =>
  (await api('/api/v1/login', { email: account.email, password })).status;

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
  throw new Error(`no mail "${subject}" to ${to} within 10 s; latch logs:\n${latch.log()}\n` +
                  flask.log());
}

function linkIn(mail) {
  const m = /(https?:\/\/[^\s?]+\?token=[A-Za-z0-9_-]+)/.exec(mail);
  assert.ok(m, `no link with a token in the mail:\n${mail}`);
  return m[1];
}

// ---- browser helpers -----------------------------------------------------------------

// A fresh page that fails the test on any script error or console error (a CSP violation
// is reported on the console); the browser's own note about a 4xx answer is expected.
async function newPage() {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
      page.problems.push(`console: ${m.text()}`);
  });
  return page;
}

async function closePage(page) {
  assert.deepEqual(page.problems, [], 'the page logged errors');
  await page.close();
}

async function screenshot(page, name) {
  if (!shotDir) return;
  fs.mkdirSync(shotDir, { recursive: true });
  await page.screenshot({ path: path.join(shotDir, name), animations: 'disabled', caret: 'hide' });
}

// Phone readability: nothing wider than the screen, 16px+ inputs, 44px+ tap targets.
async function checkPhoneLayout(page) {
  const m = await page.evaluate(() => {
    const box = (sel) => document.querySelector(sel)?.getBoundingClientRect();
    const px = (sel) => parseFloat(getComputedStyle(document.querySelector(sel)).fontSize);
    return {
      viewport: document.querySelector('meta[name=viewport]')?.content,
      scrollWidth: document.documentElement.scrollWidth,
      body: px('body'), input: px('#password'),
      input_h: box('#password').height, button_h: box('#submit').height,
      check_h: box('label.check').height,
    };
  });
  assert.match(m.viewport ?? '', /width=device-width/);
  assert.ok(m.scrollWidth <= PHONE.width,
            `page is ${m.scrollWidth}px wide on a ${PHONE.width}px screen`);
  assert.ok(m.body >= 16, `body text ${m.body}px`);
  assert.ok(m.input >= 16, `input text ${m.input}px`);
  for (const k of ['input_h', 'button_h', 'check_h']) assert.ok(m[k] >= 44, `${k} ${m[k]}px`);
}

const message = (page) => page.locator('#message');

async function fillAndSubmit(page, password, confirm) {
  await page.fill('#password', password);
  await page.fill('#confirm', confirm);
  await page.click('#submit');
}

// ---- set-up --------------------------------------------------------------------------

before(async () => {
  assert.ok(fs.existsSync(latchBinary), `no latch binary at ${latchBinary}`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'latch-e2e-'));
  fs.mkdirSync(mailDir());
  sink = startChild('/usr/bin/python3', [smtpSink, mailDir()], cleanEnv({}), /PORT (\d+)/,
                    'SMTP sink');
  const smtpPort = (await sink.found)[1];
  const startLatch = (name, extra) => startChild(latchBinary,
    ['serve', '--addr', '127.0.0.1:0', '--db', path.join(tmp, `${name}.db`),
     '--argon2-memory-kib', '64', '--argon2-iterations', '1',
     '--rate-limit', '0', '--max-failed-logins', '0', ...extra],
    cleanEnv({ LATCH_SMTP_URL: `smtp://127.0.0.1:${smtpPort}` }),
    /listening on (http:\/\/127\.0\.0\.1:\d+)/, `latch (${name})`);
  latch = startLatch('all', []);
  flask = startLatch('flask', ['--apis', 'flask', '--reset-token-ttl', '1']);
  [[, baseUrl], [, flaskUrl]] = await Promise.all([latch.found, flask.found]);
  browser = await chromium.launch({
    executablePath: chromiumPath, headless: true,
    // The machine's network is closed: no background fetches, no QUIC, no GPU.
    args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  context = await browser.newContext({
    viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    colorScheme: 'light', locale: 'en-US',
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopChild(latch);
  await stopChild(flask);
  await stopChild(sink);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- the tests -----------------------------------------------------------------------

const reset = { account: newAccount(), link: '' };
const NEW_PASSWORD = 'brand-new-password-2';

test('the mailed reset link opens a phone-friendly form that sets the new password', async () => {
  const a = reset.account;
  await register(a, false);
  const asked = await api('/api/v1/password-reset', { email: a.email, username: a.username });
  assert.equal(asked.status, 200);
  reset.link = linkIn(await waitForMail(a.email, 'Reset your password'));
  assert.ok(reset.link.startsWith(`${baseUrl}/reset-password?token=`), reset.link);

  const page = await newPage();
  const posts = [];
  page.on('request', (r) => { if (r.method() === 'POST') posts.push(r.url()); });
  const res = await page.goto(reset.link);
  assert.equal(res.status(), 200);
  assert.equal(res.headers()['content-security-policy'], CSP);
  assert.equal(res.headers()['referrer-policy'], 'no-referrer');
  await assert.doesNotReject(page.locator('h1', { hasText: 'Choose a new password' }).waitFor());
  assert.equal(await page.locator('input[type=password]').count(), 2);
  assert.ok(await message(page).isHidden());
  await checkPhoneLayout(page);
  await screenshot(page, 'reset-form.png');
  await page.check('#show');
  assert.equal(await page.locator('input[type=text]').count(), 2, 'Show passwords shows both');
  await page.uncheck('#show');
  assert.equal(await page.locator('input[type=password]').count(), 2);

  // Different passwords: the page says so and does not call the API.
  await fillAndSubmit(page, NEW_PASSWORD, 'brand-new-pasword-2');
  await message(page).waitFor();
  assert.match(await message(page).innerText(), /Passwords do not match/);
  assert.equal(await page.getAttribute('#confirm', 'aria-invalid'), 'true');
  assert.deepEqual(posts, [], 'a mismatch must be caught before anything is sent');
  await screenshot(page, 'reset-mismatch.png');

  // Too short (the server's minimum, 8): the server refuses, the link stays usable.
  await fillAndSubmit(page, 'short', 'short');
  await page.locator('#message', { hasText: 'Password too short' }).waitFor();
  assert.match(await message(page).innerText(), /at least 8 characters/);
  assert.ok(await page.locator('#reset').isVisible());
  assert.equal(posts.length, 1);
  await screenshot(page, 'reset-too-short.png');

  // Typing clears the message; then the real change succeeds.
  await page.fill('#password', NEW_PASSWORD);
  assert.ok(await message(page).isHidden());
  assert.equal(await page.getAttribute('#password', 'aria-invalid'), null);
  await page.fill('#confirm', NEW_PASSWORD);
  await page.click('#submit');
  await page.locator('#message.ok').waitFor();
  const done = await message(page).innerText();
  assert.match(done, /Your password has been changed\./);
  assert.match(done, /sign in with your new password/);
  assert.equal(await page.locator('h1').innerText(), 'Password changed');
  assert.ok(await page.locator('#reset').isHidden());
  assert.equal(posts.length, 2);
  const confirmUrl = `${baseUrl}/api/v1/password-reset-confirm?token=`;
  assert.ok(posts.every((u) => u.startsWith(confirmUrl)), posts.join());
  await screenshot(page, 'reset-success.png');
  await closePage(page);

  assert.equal(await login(a, NEW_PASSWORD), 200, 'the new password signs in');
  assert.equal(await login(a, a.password), 401, 'the old password no longer does');
});

test('the same link opened again says it is used or expired and changes nothing', async () => {
  assert.ok(reset.link, 'the first test did not get a link');
  const page = await newPage();
  await page.goto(reset.link);
  await fillAndSubmit(page, 'yet-another-password-3', 'yet-another-password-3');
  await page.locator('#message.error').waitFor();
  assert.match(await message(page).innerText(), /expired or has already been used/);
  assert.match(await message(page).innerText(), /Ask for a new password reset mail/);
  assert.equal(await page.locator('h1').innerText(), 'This link cannot be used');
  assert.ok(await page.locator('#reset').isHidden());
  await screenshot(page, 'reset-used.png');
  await closePage(page);
  assert.equal(await login(reset.account, 'yet-another-password-3'), 401);
  assert.equal(await login(reset.account, NEW_PASSWORD), 200);
});

test('a link without its token says it is incomplete instead of showing the form', async () => {
  const page = await newPage();
  await page.goto(`${baseUrl}/reset-password`);
  await page.locator('#message.error').waitFor();
  assert.match(await message(page).innerText(), /Incomplete link/);
  assert.ok(await page.locator('#reset').isHidden());
  await closePage(page);
});

test('the link from the registration mail shows the confirmation page', async () => {
  const a = newAccount();
  await register(a, true);
  const link = linkIn(await waitForMail(a.email, 'Confirm your email address'));
  assert.ok(link.startsWith(`${baseUrl}/api/v1/verify?token=`), link);

  const page = await newPage();
  const res = await page.goto(link);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /^text\/html/);
  assert.equal(res.headers()['referrer-policy'], 'no-referrer');
  assert.equal(await page.locator('h1').innerText(), 'Email address confirmed');
  assert.match(await page.locator('.msg.ok').innerText(), /Your email address is confirmed\./);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `page is ${width}px wide`);
  await screenshot(page, 'email-confirmed.png');

  // Opened a second time, the link is spent.
  const again = await page.goto(link);
  assert.equal(again.status(), 400);
  assert.equal(await page.locator('h1').innerText(), 'Link not valid');
  assert.match(await page.locator('.msg.error').innerText(), /invalid, expired or already used/);
  await closePage(page);
});

test('with flask alone the page posts to flask and tells an expired link from a used one',
     async () => {
  const a = newAccount();
  assert.equal((await api('/auth/signup', a, flaskUrl)).status, 201);
  assert.equal((await api('/auth/forget-password', { email: a.email }, flaskUrl)).status, 200);
  const link = linkIn(await waitForMail(a.email, 'Reset your password'));
  assert.ok(link.startsWith(`${flaskUrl}/reset-password?token=`), link);
  await new Promise((r) => setTimeout(r, 2200)); // --reset-token-ttl 1

  const page = await newPage();
  const posts = [];
  page.on('request', (r) => { if (r.method() === 'POST') posts.push(r.url()); });
  await page.goto(link);
  await fillAndSubmit(page, NEW_PASSWORD, NEW_PASSWORD);
  await page.locator('#message.error').waitFor();
  assert.match(await message(page).innerText(), /Link expired/);
  assert.match(await message(page).innerText(), /This reset link has expired/);
  assert.deepEqual(posts, [`${flaskUrl}/auth/reset-password`]);
  await screenshot(page, 'reset-expired.png');

  // The expired token was spent by that attempt: now it is unknown, as a used one is.
  await page.goto(link);
  await fillAndSubmit(page, NEW_PASSWORD, NEW_PASSWORD);
  await page.locator('#message.error').waitFor();
  assert.match(await message(page).innerText(), /Link already used/);
  await closePage(page);
  const signIn = async (password) =>
    (await api('/auth/login', { username: a.username, password }, flaskUrl)).status;
  assert.equal(await signIn(a.password), 200);
  assert.equal(await signIn(NEW_PASSWORD), 401);
});
