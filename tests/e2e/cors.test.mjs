// Browser test: a frontend on another origin calls every API through CORS in Debian's Chromium.
//
// Usage: node cors.test.mjs PATH/TO/latch
// Serves a small page from two origins of its own (two ports on 127.0.0.1), starts latch on
// 127.0.0.1:0 twice with temporary databases (--cors-origin naming the first page origin, and
// --cors-origin '*'), and has headless Chromium (CHROMIUM, default /usr/bin/chromium), driven by
// playwright-core, run the page's script: fetch() calls to sign-up, sign-in, refresh and a
// protected route of each of the five APIs, every one with Content-Type: application/json (and
// most with Authorization), so Chromium sends real preflights and applies its CORS checks. A
// call CORS refuses shows as a TypeError from fetch; the test names the call, the error and what
// Chromium logged on the console.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const latchBinary = path.resolve(process.argv[2] || process.env.LATCH_BINARY || 'build/latch');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

// Meets every API's password rules at once: envelope's (a lower-case and an upper-case letter,
// a digit, one of !@#$%^&*, 8+) and picflux's (at most 30).
const PASSWORD = 'Cors-Pass1!';

let tmp, browser;
let listed, star;            // latch with --cors-origin <the app origin>, and with '*'
let appServer, otherServer;  // the page, on the listed origin and on an origin not listed
let appOrigin, otherOrigin;

// ---- the frontend page -----------------------------------------------------------------

// What Chromium runs: every API's calls, in the order a frontend makes them, each reported
// back as {name, method, url, status, body, requestId} or {name, ..., error}.
const PAGE = `<!doctype html>
<html lang="en"><meta charset="utf-8"><link rel="icon" href="data:,">
<title>A frontend on another origin</title>
<body><p>Calls Latch with fetch().</p>
<script>
async function call(log, name, base, method, path, { body, bearer, credentials } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (bearer !== undefined) headers.Authorization = 'Bearer ' + bearer;
  const entry = { name, method, url: base + path };
  try {
    const res = await fetch(base + path, {
      method, headers, credentials: credentials || 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15000),
    });
    entry.status = res.status;
    entry.requestId = res.headers.get('X-Request-Id'); // readable only if exposed
    const text = await res.text();
    try { entry.body = text ? JSON.parse(text) : ''; } catch { entry.body = text; }
  } catch (e) {
    entry.error = e.name + ': ' + e.message;
  }
  log.push(entry);
  return entry.body && typeof entry.body === 'object' ? entry.body : {};
}

// One new user per API (usernames and emails made from tag), then sign-in, refresh and a
// protected route, as each API's document has them.
window.everyApi = async (base, tag, withCredentials) => {
  const log = [];
  const user = (api) => ({ username: tag + api, email: tag + api + '@example.com' });

  const pf = user('pf');
  await call(log, 'picflux signup', base, 'POST', '/api/auth/signup',
             { body: { ...pf, password: '${PASSWORD}' } });
  let pair = await call(log, 'picflux signin', base, 'POST', '/api/auth/signin',
                        { body: { email: pf.email, password: '${PASSWORD}' } });
  // picflux refresh: the refresh token as Bearer, no body; it answers a new pair.
  pair = await call(log, 'picflux refresh', base, 'POST', '/api/auth/refresh',
                    { bearer: pair.refresh_token });
  await call(log, 'picflux logout', base, 'POST', '/api/auth/logout',
             { bearer: pair.access_token });

  const sj = user('sj');
  await call(log, 'simplejwt register', base, 'POST', '/auth/register',
             { body: { username: sj.username, password: '${PASSWORD}' } });
  let sjPair = await call(log, 'simplejwt token', base, 'POST', '/auth/token',
                          { body: { username: sj.username, password: '${PASSWORD}' } });
  // simplejwt refresh: the refresh token in the JSON body as "refresh".
  sjPair = await call(log, 'simplejwt token/refresh', base, 'POST', '/auth/token/refresh',
                      { body: { refresh: sjPair.refresh } });
  await call(log, 'simplejwt getuser', base, 'GET', '/auth/getuser', { bearer: sjPair.access });

  const fl = user('fl');
  await call(log, 'flask signup', base, 'POST', '/auth/signup',
             { body: { ...fl, password: '${PASSWORD}' } });
  const flPair = await call(log, 'flask login', base, 'POST', '/auth/login',
                            { body: { username: fl.username, password: '${PASSWORD}' } });
  // flask refresh: the refresh token as Bearer; it answers a new access token only.
  await call(log, 'flask refresh', base, 'POST', '/auth/refresh',
             { bearer: flPair.refresh_token });
  await call(log, 'flask logout', base, 'POST', '/auth/logout', { bearer: flPair.access_token });

  const v1 = user('v1');
  await call(log, 'v1 register', base, 'POST', '/api/v1/register?sendEmail=false',
             { body: { ...v1, password: '${PASSWORD}' } });
  const v1Pair = await call(log, 'v1 login', base, 'POST', '/api/v1/login',
                            { body: { email: v1.email, password: '${PASSWORD}' } });
  // v1 refresh: the refresh token in the JSON body as "refresh_token".
  const v1New = await call(log, 'v1 refresh', base, 'POST', '/api/v1/refresh',
                           { body: { refresh_token: v1Pair.refresh_token } });
  await call(log, 'v1 authorized/me', base, 'GET', '/api/v1/authorized/me',
             { bearer: v1New.access_token });
  if (withCredentials)
    await call(log, 'v1 authorized/me with credentials: include', base, 'GET',
               '/api/v1/authorized/me', { bearer: v1New.access_token, credentials: 'include' });
  await call(log, 'v1 logout', base, 'POST', '/api/v1/logout', { bearer: v1Pair.access_token });

  const en = user('en');
  await call(log, 'envelope signUp', base, 'POST', '/api/v1/auth/signUp',
             { body: { ...en, password: '${PASSWORD}', display_name: 'Cors Test' } });
  const enLogin = await call(log, 'envelope login', base, 'POST', '/api/v1/auth/login',
                             { body: { identity: en.email, password: '${PASSWORD}' } });
  // envelope has no refresh token and no protected route of its own: its access token goes to
  // another API's protected route, as any access token of this server may.
  await call(log, 'envelope token on v1 authorized/me', base, 'GET', '/api/v1/authorized/me',
             { bearer: (enLogin.data || [])[0] });
  return log;
};

// Calls as a page on an origin that is not allowed would make them.
window.refusedCalls = async (base) => {
  const log = [];
  await call(log, 'picflux signin (JSON, preflighted)', base, 'POST', '/api/auth/signin',
             { body: { email: 'nobody@example.com', password: '${PASSWORD}' } });
  await call(log, 'simplejwt getuser (Authorization, preflighted)', base, 'GET', '/auth/getuser',
             { bearer: 'not-a-token' });
  try { // a simple request: no preflight, but the answer must not be readable either
    const res = await fetch(base + '/healthz', { signal: AbortSignal.timeout(15000) });
    log.push({ name: 'healthz (simple GET)', status: res.status });
  } catch (e) {
    log.push({ name: 'healthz (simple GET)', error: e.name + ': ' + e.message });
  }
  return log;
};
</script>
</body></html>
`;

// ---- what each call must answer (SPEC.md and the documents in api/) -------------------

const isJwt = (t) => typeof t === 'string' && t.split('.').length === 3;
const EXPECT = {
  'picflux signup': [201, (b) => isJwt(b.access_token) && isJwt(b.refresh_token)],
  'picflux signin': [200, (b) => isJwt(b.access_token) && isJwt(b.refresh_token)],
  'picflux refresh': [200, (b) => isJwt(b.access_token) && isJwt(b.refresh_token)],
  'picflux logout': [200, (b) => b === ''],
  'simplejwt register': [201, (b) => isJwt(b.access) && isJwt(b.refresh)],
  'simplejwt token': [200, (b) => isJwt(b.access) && isJwt(b.refresh)],
  'simplejwt token/refresh': [200, (b) => isJwt(b.access) && isJwt(b.refresh)],
  'simplejwt getuser': [200, (b, tag) => b.username === `${tag}sj`],
  'flask signup': [201, (b) => b.message === 'User created.'],
  'flask login': [200, (b) => isJwt(b.access_token) && isJwt(b.refresh_token)],
  'flask refresh': [200, (b) => isJwt(b.access_token)],
  'flask logout': [200, (b) => b.message === 'Logged out successfully.'],
  'v1 register': [201, (b) => b.message === 'registered'],
  'v1 login': [200, (b) => isJwt(b.access_token) && isJwt(b.refresh_token)],
  'v1 refresh': [200, (b) => isJwt(b.access_token)],
  'v1 authorized/me': [200, (b, tag) => b.claims?.email === `${tag}v1@example.com`],
  'v1 authorized/me with credentials: include':
    [200, (b, tag) => b.claims?.email === `${tag}v1@example.com`],
  'v1 logout': [200, () => true],
  'envelope signUp': [200, (b, tag) => b.code === 200 && b.data?.[0]?.username === `${tag}en`],
  'envelope login': [200, (b) => b.code === 200 && isJwt(b.data?.[0])],
  'envelope token on v1 authorized/me':
    [200, (b, tag) => b.claims?.email === `${tag}en@example.com`],
};

// ---- child processes and servers -------------------------------------------------------

// The environment without anything LATCH_* (or RESET_PASSWORD_URL) from the caller's.
function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('LATCH_') && k !== 'RESET_PASSWORD_URL') env[k] = v;
  return env;
}

// Starts latch and resolves once it listens; keeps its whole stdout (the access log).
function startLatch(name, corsOrigin) {
  const child = spawn(latchBinary,
    ['serve', '--addr', '127.0.0.1:0', '--db', path.join(tmp, `${name}.db`),
     '--argon2-memory-kib', '64', '--argon2-iterations', '1',
     '--rate-limit', '0', '--max-failed-logins', '0', '--cors-origin', corsOrigin],
    { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { child, out: '', err: '' };
  child.stderr.on('data', (d) => { proc.err += d; });
  child.stdout.on('data', (d) => { proc.out += d; });
  proc.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`latch (${name}) did not start in 20 s: ${proc.err}`)), 20000);
    const look = () => {
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(proc.out);
      if (m) { clearTimeout(timer); child.stdout.off('data', look); resolve(m[1]); }
    };
    child.stdout.on('data', look);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`latch (${name}) exited (${code}): ${proc.err}`));
    });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
  return proc;
}

async function stopLatch(proc) {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const exited = once(proc.child, 'exit');
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5000);
  const [code] = await exited;
  clearTimeout(timer);
  assert.equal(code, 0, `latch did not exit cleanly on SIGTERM: ${proc.err}`);
}

// The page's own server: one origin per port. It answers only the page.
async function startPageServer() {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(PAGE);
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

// ---- browser helpers -------------------------------------------------------------------

// A page on origin, with what Chromium logs on its console kept for the failure message.
async function openPage(origin) {
  const page = await browser.newPage();
  page.setDefaultTimeout(30000);
  page.consoleLines = [];
  page.on('console', (m) => page.consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.consoleLines.push(`page error: ${e.message}`));
  const res = await page.goto(`${origin}/`);
  assert.equal(res.status(), 200);
  return page;
}

const describeCall = (c) => `${c.name} (${c.method} ${c.url}): ` +
  (c.error ? c.error : `${c.status} ${JSON.stringify(c.body)}`);

// Every call answered as the API says, and X-Request-Id readable (Access-Control-Expose-Headers).
function checkCalls(calls, tag, page, withCredentials) {
  const wanted = Object.keys(EXPECT).filter(
    (name) => withCredentials || !name.includes('credentials'));
  assert.deepEqual(calls.map((c) => c.name), wanted, 'the page made every call');
  const failed = [];
  for (const c of calls) {
    const [status, bodyOk] = EXPECT[c.name];
    if (c.error) failed.push(`${describeCall(c)}  <- refused by the browser`);
    else if (c.status !== status) failed.push(`${describeCall(c)}  <- expected ${status}`);
    else if (!bodyOk(c.body, tag)) failed.push(`${describeCall(c)}  <- unexpected body`);
    else if (!c.requestId) failed.push(`${describeCall(c)}  <- X-Request-Id not exposed`);
  }
  assert.deepEqual(failed, [],
    `calls that failed in Chromium:\n  ${failed.join('\n  ')}\n` +
    `Chromium console:\n  ${page.consoleLines.join('\n  ')}`);
}

// The preflights reached latch (its access log), so CORS was exercised, not bypassed.
async function checkPreflightsLogged(proc, paths) {
  const deadline = Date.now() + 5000;
  let missing = paths;
  while (Date.now() < deadline) {
    missing = paths.filter((p) => !new RegExp(` OPTIONS ${p} 204 `).test(proc.out));
    if (missing.length === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(missing, [], 'preflights that never reached latch');
}

let serial = 0;
const newTag = () => `c${process.pid}x${++serial}`;

// ---- set-up ----------------------------------------------------------------------------

before(async () => {
  assert.ok(fs.existsSync(latchBinary), `no latch binary at ${latchBinary}`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'latch-e2e-cors-'));
  [appServer, otherServer] = await Promise.all([startPageServer(), startPageServer()]);
  appOrigin = appServer.origin;
  otherOrigin = otherServer.origin;
  listed = startLatch('listed', `https://app.example,${appOrigin}`);
  star = startLatch('star', '*');
  [listed.url, star.url] = await Promise.all([listed.ready, star.ready]);
  // A fresh profile each run; the machine's network is closed: no background fetches, no QUIC,
  // no GPU; the machine runs as root, so no sandbox.
  browser = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: chromiumPath, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopLatch(listed);
  await stopLatch(star);
  appServer?.server.close();
  otherServer?.server.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- the tests -------------------------------------------------------------------------

test('a frontend on a listed origin signs up, signs in, refreshes and calls protected routes ' +
     'of every API', async () => {
  const page = await openPage(appOrigin);
  const tag = newTag();
  const calls = await page.evaluate(([base, t]) => window.everyApi(base, t, true),
                                    [listed.url, tag]);
  checkCalls(calls, tag, page, true);
  await checkPreflightsLogged(listed, ['/api/auth/signup', '/api/auth/refresh', '/auth/token',
                                       '/auth/getuser', '/api/v1/authorized/me',
                                       '/api/v1/auth/login']);
  await page.close();
});

test('with --cors-origin * a frontend on any origin calls every API', async () => {
  for (const origin of [appOrigin, otherOrigin]) {
    const page = await openPage(origin);
    const tag = newTag();
    const calls = await page.evaluate(([base, t]) => window.everyApi(base, t, false),
                                      [star.url, tag]);
    checkCalls(calls, tag, page, false);
    await page.close();
  }
  await checkPreflightsLogged(star, ['/api/auth/signin', '/auth/token/refresh', '/auth/logout',
                                     '/api/v1/refresh', '/api/v1/auth/signUp']);
});

test('an origin not on the list is refused by the browser', async () => {
  const page = await openPage(otherOrigin);
  const calls = await page.evaluate((base) => window.refusedCalls(base), listed.url);
  for (const c of calls)
    assert.match(c.error ?? `answered ${c.status}`, /^TypeError: /,
                 `${c.name} from ${otherOrigin} must be refused by Chromium`);
  const blocked = page.consoleLines.filter((l) => /blocked by CORS policy/.test(l));
  assert.equal(blocked.length, calls.length,
               `Chromium should say why each call was blocked:\n  ${page.consoleLines.join('\n  ')}`);
  assert.ok(blocked.every((l) => l.includes(`from origin '${otherOrigin}'`)), blocked.join('\n'));
  await page.close();
});
