// The signing keys (#/keys) and the server's status (#/status).
import * as api from './api.js';
import {h, table, when, bytes, duration, badge} from './dom.js';

export async function keysView() {
  const body = await api.get('keys');
  const keys = Array.isArray(body && body.keys) ? body.keys : [];
  return h('section', h('h1', 'Signing keys'),
    h('p.lead', 'The key that signs new tokens is active; standby keys are published ahead of ' +
                'a rotation; retired keys still verify the tokens they signed. Rotate with ',
      h('code', 'latch secret rotate'), '.'),
    keys.length ? table([
      {label: 'Key id', cell: (k) => h('code', k.kid)},
      {label: 'Algorithm', cell: (k) => k.alg},
      {label: 'State', cell: (k) => badge(k.state, k.state === 'active')},
      {label: 'Created', cell: (k) => when(k.created_at)},
      {label: 'Activated', cell: (k) => when(k.activated_at)},
    ], keys) : h('p.empty', 'No signing keys yet.'));
}

export async function statusView() {
  const s = await api.get('status') || {};
  const item = (label, value, id) => h('div.stat', {id},
                                       h('span.label', label), h('span.value', value));
  return h('section', h('h1', 'Status'),
    h('div.stats',
      item('Version', s.version ?? '\u2014', 'stat-version'),
      item('Up for', duration(s.uptime_seconds), 'stat-uptime'),
      item('Users', s.users ?? '\u2014', 'stat-users'),
      item('Active sessions', s.active_sessions ?? '\u2014', 'stat-sessions'),
      item('Database size', bytes(s.database_bytes), 'stat-database')));
}
