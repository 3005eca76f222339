// The users list (#/users?q=&after=): search by username or email, a page at a time.
import * as api from './api.js';
import {h, link, table, when, badge} from './dom.js';

const PAGE = 50;

export async function usersView(ctx) {
  const q = ctx.params.get('q') || '';
  const after = ctx.params.get('after') || '';
  const body = await api.get('users', {q, after, limit: PAGE});
  const users = Array.isArray(body && body.users) ? body.users : [];

  const search = h('input', {id: 'search', name: 'q', type: 'search', value: q,
                             placeholder: 'Username or email', autocapitalize: 'off',
                             autocomplete: 'off', spellcheck: 'false',
                             'aria-label': 'Search users by username or email'});
  const form = h('form.search', {role: 'search'}, search,
                 h('button', {type: 'submit', id: 'search-button'}, 'Search'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = search.value.trim();
    location.hash = '#/users' + (v ? '?' + new URLSearchParams({q: v}) : '');
  });

  const list = users.length
    ? table([
        {label: 'Username', cls: 'lead-cell', cell: (u) => link(u.username || u.id, 'users', u.id)},
        {label: 'Email', cls: 'line', cell: (u) => u.email || '\u2014'},
        {label: 'Email verified', cell: (u) => badge(u.email_verified ? 'verified' : 'not verified',
                                                    u.email_verified)},
        {label: 'Active', cell: (u) => badge(u.active ? 'active' : 'inactive', u.active)},
        {label: 'Created', cls: 'labelled', cell: (u) => when(u.created_at)},
      ], users, null, '.compact')
    : h('p.empty', q ? `No user's username or email matches \u201c${q}\u201d.`
                     : (after ? 'No more users.' : 'No users yet.'));

  const pager = h('nav.pager', {'aria-label': 'Pages'},
    after ? h('a.button.quiet', {href: '#/users' + (q ? '?' + new URLSearchParams({q}) : '')},
              'First page') : null,
    body && body.next
      ? h('a.button', {id: 'next-page', href: '#/users?' +
                       new URLSearchParams(q ? {q, after: body.next} : {after: body.next})},
          'Next page')
      : null);

  return h('section', h('h1', 'Users'), form,
           h('p.count', {role: 'status'}, users.length === 1 ? '1 user' : `${users.length} users`,
             after ? ' on this page' : (body && body.next ? ' on the first page' : '')),
           list, pager);
}
