// The audit log (#/audit?user=&event=&since=): security events, newest first, with filters.
import * as api from './api.js';
import {h, link, table, when} from './dom.js';

const PAGE = 50;
// The event names the server writes (README, "Audit log"), offered as the filter is typed; the
// field takes any other text too.
const EVENTS = ['sign_up', 'sign_in', 'sign_in_failed', 'lockout_started', 'refresh_reuse',
                'logout', 'password_reset_requested', 'password_reset_completed',
                'email_confirmed', 'admin_add_user', 'admin_set_password', 'admin_rename_user',
                'admin_delete_user', 'admin_verify_email', 'admin_end_session',
                'admin_revoke_sessions', 'admin_revoke_all_sessions', 'admin_import_users',
                'admin_rotate_key', 'admin_add_standby_key', 'admin_activate_key', 'admin_purge',
                'admin_retry_mail', 'admin_drop_mail'];
const SINCE = [['', 'Any time'], ['3600', 'Last hour'], ['86400', 'Last 24 hours'],
               ['604800', 'Last 7 days'], ['2592000', 'Last 30 days']];

const text = (v) => (v === undefined || v === null || v === '' ? '\u2014' : String(v));

// The columns of an event row; with_user adds the user (a link to their page).
export function eventColumns(withUser) {
  return [
    {label: 'Time', cell: (e) => when(e.at ?? e.time)},
    {label: 'Event', cell: (e) => h('code', text(e.event))},
    withUser ? {label: 'User', cell: (e) => e.user_id
      ? link(e.username || e.user_id, 'users', e.user_id) : text(e.identifier)} : null,
    {label: 'API', cell: (e) => text(e.api)},
    {label: 'Address', cell: (e) => text(e.address ?? e.client_address)},
    {label: 'By', cell: (e) => text(e.actor)},
    {label: 'Detail', cell: (e) => text(e.detail ?? e.reason)},
    {label: 'User agent', cls: 'ua', cell: (e) => text(e.user_agent)},
  ].filter(Boolean);
}

export async function auditView(ctx) {
  const p = ctx.params;
  const user = p.get('user') || '', event = p.get('event') || '';
  const since = p.get('since') || '', before = p.get('before') || '';
  const query = {user, event, before, limit: PAGE};
  if (since) query.since = Math.floor(Date.now() / 1000) - Number(since);
  const body = await api.get('audit', query);
  const events = Array.isArray(body && body.events) ? body.events : [];

  const userIn = h('input', {id: 'filter-user', name: 'user', value: user,
                             autocapitalize: 'off', spellcheck: 'false',
                             placeholder: 'User id'});
  const eventIn = h('input', {id: 'filter-event', name: 'event', value: event, list: 'events',
                              autocapitalize: 'off', spellcheck: 'false',
                              placeholder: 'Any event'});
  const sinceIn = h('select', {id: 'filter-since', name: 'since'},
    SINCE.map(([v, label]) => h('option', {value: v, selected: v === since}, label)));
  const form = h('form.filters', {id: 'audit-filters'},
    h('div', h('label', {for: 'filter-user'}, 'User'), userIn),
    h('div', h('label', {for: 'filter-event'}, 'Event'), eventIn,
      h('datalist', {id: 'events'}, EVENTS.map((e) => h('option', {value: e})))),
    h('div', h('label', {for: 'filter-since'}, 'Since'), sinceIn),
    h('div.go', h('button', {type: 'submit', id: 'filter'}, 'Filter')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = {};
    if (userIn.value.trim()) q.user = userIn.value.trim();
    if (eventIn.value.trim()) q.event = eventIn.value.trim();
    if (sinceIn.value) q.since = sinceIn.value;
    location.hash = '#/audit' + (Object.keys(q).length ? '?' + new URLSearchParams(q) : '');
  });

  const filters = new URLSearchParams();
  if (user) filters.set('user', user);
  if (event) filters.set('event', event);
  if (since) filters.set('since', since);
  const nextQuery = new URLSearchParams(filters);
  if (body && body.next !== null && body.next !== undefined) nextQuery.set('before', body.next);
  const pager = h('nav.pager', {'aria-label': 'Pages'},
    before ? h('a.button.quiet', {href: '#/audit' + (filters.toString() ? '?' + filters : '')},
               'Newest') : null,
    body && body.next !== null && body.next !== undefined
      ? h('a.button', {id: 'older', href: '#/audit?' + nextQuery}, 'Older events') : null);

  return h('section', h('h1', 'Audit log'), form,
    events.length ? table(eventColumns(true), events, null)
                  : h('p.empty', 'No events match these filters.'),
    pager);
}
