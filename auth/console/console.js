// The console's start: the session (sign-in, sign-out), the header and the hash routes
// (#/users, #/users/ID, #/audit, #/keys, #/status), each drawn by its view module.
import * as api from './api.js';
import {h} from './dom.js';
import {usersView} from './users.js';
import {userView} from './user.js';
import {auditView} from './audit.js';
import {keysView, statusView} from './system.js';

const $ = (id) => document.getElementById(id);
const view = $('view'), flashBox = $('flash');
let admin = null;     // {email} once signed in
let drawing = 0;      // the latest draw; an older one that finishes late is dropped
let flashKeep = false;
let shown = '';        // the hash of the view on screen

// A message above the view: kind 'ok' or 'error'. It survives the one navigation an action
// makes (e.g. to the users list after a delete), then clears.
export function flash(kind, text, keep = false) {
  flashBox.className = 'msg ' + kind;
  flashBox.textContent = text;
  flashBox.hidden = false;
  flashKeep = keep;
}
function clearFlash() {
  if (flashKeep) { flashKeep = false; return; }
  flashBox.hidden = true;
  flashBox.textContent = '';
}

// The route in the hash: {name, id, params}. '#/users/u1?x=1' -> users, 'u1', {x: '1'}.
function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  return {name: parts[0] || 'users', id: parts[1], params: new URLSearchParams(query)};
}

const views = {users: usersView, audit: auditView, keys: keysView, status: statusView};

// Draws the view the hash names; reload() draws it again (after an action).
async function draw() {
  const mine = ++drawing;
  const r = parseRoute();
  const fn = r.name === 'users' && r.id ? userView : views[r.name];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === r.name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const ctx = {id: r.id, params: r.params, flash, reload: draw};
  if (!fn) {
    show(mine, h('section', h('h1', 'Page not found'),
                 h('p', 'There is no such page in the console. ', h('a', {href: '#/users'},
                                                                      'Go to the users.'))));
    return;
  }
  try {
    const node = await fn(ctx);
    show(mine, node);
  } catch (e) {
    if (mine !== drawing || (e instanceof api.ApiError && e.status === 401)) return;
    show(mine, h('section', h('h1', 'Could not load this page'),
                 h('p.msg.error', {role: 'alert'}, e.message)));
  }
}

function show(mine, node) {
  if (mine !== drawing) return;
  view.replaceChildren(node);
  // A new page starts at its top; the same page drawn again after an action stays put.
  if (shown !== location.hash) window.scrollTo(0, 0);
  shown = location.hash;
  const title = view.querySelector('h1');
  document.title = (title ? title.textContent + ' \u00b7 ' : '') + 'Latch console';
}

function signedIn(body) {
  admin = body.admin || {};
  api.setCsrf(body.csrf_token);
  $('admin-email').textContent = admin.email || '';
  $('bar').hidden = false;
}

function signInView(reason) {
  admin = null;
  api.setCsrf('');
  $('bar').hidden = true;
  document.title = 'Sign in \u00b7 Latch console';
  const email = h('input', {id: 'email', name: 'email', type: 'email', autocomplete: 'username',
                            autocapitalize: 'off', spellcheck: 'false', required: true});
  const password = h('input', {id: 'password', name: 'password', type: 'password',
                               autocomplete: 'current-password', required: true});
  const message = h('p.msg.error', {id: 'message', role: 'alert', hidden: true});
  const button = h('button', {id: 'sign-in', type: 'submit'}, 'Sign in');
  const form = h('form.card.narrow', {id: 'sign-in-form', novalidate: true},
    h('h1', 'Sign in to the Latch console'),
    h('p.lead', 'For Latch\u2019s admins, who are added with ',
      h('code', 'latch admin add'), '.'),
    reason ? h('p.msg.ok', {role: 'status'}, reason) : null,
    h('label', {for: 'email'}, 'Email'), email,
    h('label', {for: 'password'}, 'Password'), password,
    button, message);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    message.hidden = true;
    if (!email.value || !password.value) {
      message.textContent = 'Type your email and password.';
      message.hidden = false;
      return;
    }
    button.disabled = true;
    button.textContent = 'Signing in\u2026';
    try {
      const body = await api.post('session', {email: email.value, password: password.value});
      password.value = '';
      signedIn(body);
      if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/users';
      else draw();
    } catch (err) {
      message.textContent = err.status === 401
        ? 'Wrong email or password.' : err.message;
      message.hidden = false;
      password.focus();
      password.select();
    } finally {
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  });
  drawing++;
  flashBox.hidden = true;
  view.replaceChildren(form);
  email.focus();
}

api.whenSignedOut(() => signInView('Your console session has ended. Sign in again.'));

$('sign-out').addEventListener('click', async () => {
  try {
    await api.del('session');
  } catch (e) {
    if (e.status !== 401) { flash('error', e.message); return; }
  }
  signInView('You are signed out.');
});

window.addEventListener('hashchange', () => {
  if (!admin) return;
  clearFlash();
  draw();
});

(async () => {
  try {
    signedIn(await api.get('session'));
  } catch {
    signInView();
    return;
  }
  draw();
})();
