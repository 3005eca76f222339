// A user's page (#/users/ID): profile, sessions, recent audit events, and the admin actions:
// end one session or all, mark the email verified, send a reset mail, set a password, delete.
import * as api from './api.js';
import {h, link, table, when, badge} from './dom.js';
import {eventColumns} from './audit.js';

const now = () => Math.floor(Date.now() / 1000);

function sessionState(s) {
  if (s.revoked) return 'ended';
  if (typeof s.expires_at === 'number' && s.expires_at && s.expires_at <= now()) return 'expired';
  return 'active';
}

// A button that runs fn once per click, disabled while it runs; an error goes to the flash.
function action(label, id, fn, ctx, cls = '') {
  const b = h('button' + cls, {type: 'button', id}, label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await fn();
    } catch (e) {
      if (e.status !== 401) ctx.flash('error', e.message);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function field(label, value) {
  return [h('dt', label), h('dd', value === '' || value === null || value === undefined
                                    ? h('span.none', 'not set') : value)];
}

export async function userView(ctx) {
  const id = ctx.id;
  const path = 'users/' + encodeURIComponent(id);
  const body = await api.get(path);
  const u = body.user || {};
  const sessions = Array.isArray(body.sessions) ? body.sessions : [];
  const events = Array.isArray(body.events) ? body.events : [];
  const name = u.username || u.id;
  const done = (text) => { ctx.flash('ok', text); return ctx.reload(); };

  const profile = h('dl.fields', {id: 'profile'},
    field('Username', u.username),
    field('Email', u.email),
    field('Email verified', badge(u.email_verified ? 'verified' : 'not verified',
                                  u.email_verified)),
    field('Display name', u.display_name),
    field('Phone number', u.phone_number),
    // Shown as text, never loaded: the address is the user's to choose.
    field('Profile picture', u.profile_picture),
    field('Active', badge(u.active ? 'active' : 'inactive (cannot sign in)', u.active)),
    field('Created', when(u.created_at)),
    field('Updated', when(u.updated_at)),
    field('User id', h('code', u.id)));

  const live = sessions.filter((s) => sessionState(s) === 'active');
  const actions = h('div.actions',
    !u.email_verified && u.email
      ? action('Mark email verified', 'verify-email', async () => {
          await api.post(path + '/verify-email');
          await done('The email address is marked verified.');
        }, ctx) : null,
    u.email
      ? action('Send password-reset mail', 'reset-mail', async () => {
          await api.post(path + '/reset-mail');
          ctx.flash('ok', `A password-reset mail is on its way to ${u.email}.`);
        }, ctx) : null,
    live.length
      ? action('End all sessions', 'end-all', async () => {
          await api.post(path + '/sessions/revoke');
          await done(`All sessions of ${name} are ended: their tokens are refused now.`);
        }, ctx, '.danger') : null);

  const sessionList = sessions.length
    ? table([
        {label: 'API', cell: (s) => s.api},
        {label: 'Started', cell: (s) => when(s.created_at)},
        {label: 'Expires', cell: (s) => when(s.expires_at)},
        {label: 'State', cell: (s) => {
          const st = sessionState(s);
          return badge(st, st === 'active');
        }},
        {label: 'Action', cls: 'act', cell: (s) => sessionState(s) === 'active'
          ? action('End', 'end-' + s.id, async () => {
              await api.post(path + '/sessions/' + encodeURIComponent(s.id) + '/revoke');
              await done(`The ${s.api} session is ended.`);
            }, ctx, '.small.danger')
          : ''},
      ], sessions)
    : h('p.empty', 'No sessions.');

  return h('section',
    h('p.crumb', link('Users', 'users'), ' / '),
    h('h1', {id: 'user-name'}, name),
    h('div.grid',
      h('div.card', h('h2', 'Profile'), profile, actions),
      h('div', passwordForm(path, u, ctx), deleteForm(path, u, ctx))),
    h('div.card', {id: 'sessions'},
      h('h2', 'Sessions ', h('span.count', `${live.length} active`)), sessionList),
    h('div.card', {id: 'events'}, h('h2', 'Recent events'),
      events.length ? table(eventColumns(false), events)
                    : h('p.empty', 'No audit events for this user.'),
      h('p', h('a', {href: '#/audit?' + new URLSearchParams({user: u.id || id})},
               'All of this user\u2019s events in the audit log'))));
}

function passwordForm(path, u, ctx) {
  const input = h('input', {id: 'new-password', name: 'password', type: 'password',
                            autocomplete: 'new-password', required: true});
  const msg = h('p.msg.error', {role: 'alert', hidden: true});
  const button = h('button', {type: 'submit', id: 'set-password'}, 'Set password');
  const form = h('form.card', {id: 'password-form', novalidate: true},
    h('h2', 'Set a password'),
    h('p.hint', 'Checked as at sign-up. Every session of the user ends and their reset links ' +
                'stop working, as after a password reset.'),
    h('label', {for: 'new-password'}, 'New password'), input, button, msg);
  input.addEventListener('input', () => { msg.hidden = true; input.removeAttribute('aria-invalid'); });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.hidden = true;
    if (!input.value) {
      msg.textContent = 'Type the new password.';
      msg.hidden = false;
      return;
    }
    button.disabled = true;
    try {
      await api.post(path + '/password', {password: input.value});
      input.value = '';
      ctx.flash('ok', `The password of ${u.username || u.id} is set; their sessions are ended.`);
      await ctx.reload();
    } catch (err) {
      if (err.status === 401) return;
      msg.textContent = err.message;
      msg.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function deleteForm(path, u, ctx) {
  const names = [u.username, u.email].filter(Boolean);
  // The server takes the username as it is and the email in any case.
  const matches = (v) => v === u.username || (!!u.email && v.toLowerCase() === u.email);
  const input = h('input', {id: 'confirm-delete', name: 'confirm', type: 'text',
                            autocomplete: 'off', autocapitalize: 'off', spellcheck: 'false'});
  const button = h('button.danger', {type: 'submit', id: 'delete-user', disabled: true},
                   'Delete user');
  const msg = h('p.msg.error', {role: 'alert', hidden: true});
  input.addEventListener('input', () => {
    msg.hidden = true;
    button.disabled = !matches(input.value.trim());
  });
  const form = h('form.card.danger-zone', {id: 'delete-form', novalidate: true},
    h('h2', 'Delete this user'),
    h('p.hint', 'The account, its sessions and its tokens are gone for good. To confirm, type ',
      names.length > 1 ? ['its username ', h('strong', names[0]), ' or its email ',
                          h('strong', names[1])]
                       : ['its username ', h('strong', names[0] || '')], '.'),
    h('label', {for: 'confirm-delete'}, 'Username or email'), input, button, msg);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    try {
      await api.del(path, {confirm: input.value.trim()});
      ctx.flash('ok', `The user ${u.username || u.id} is deleted.`, true);
      location.hash = '#/users';
    } catch (err) {
      if (err.status === 401) return;
      msg.textContent = err.message;
      msg.hidden = false;
      button.disabled = false;
    }
  });
  return form;
}
