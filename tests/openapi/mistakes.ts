// Mistakes a frontend makes, which the types generated from /openapi.json must refuse: tsc has
// to report an error on each line marked `refused:` (naming what follows it) and on no other.
import createClient from 'openapi-fetch';
import type { paths } from './latch-api.js';

const api = createClient<paths>({ baseUrl: 'http://127.0.0.1:8080' });

export async function mistakes(): Promise<unknown[]> {
  const seen: unknown[] = [];
  seen.push(await api.POST('/api/auth/signin', { body: { email: 'a@example.com', pasword: 'Secret-1!' } })); // refused: pasword
  seen.push(await api.POST('/auth/token', { body: { username: 'ann', password: 12345678 } })); // refused: number
  seen.push(await api.POST('/auth/signup', { body: { username: 'ann', password: 'Secret-1!' } })); // refused: email
  const login = await api.POST('/api/v1/login', { body: { email: 'a@example.com', password: 'x' } });
  if (login.data) seen.push(login.data.refresh_expires_at); // refused: refresh_expires_at
  if (login.data) { const seconds: string = login.data.expires_in; seen.push(seconds); } // refused: number
  const me = await api.GET('/auth/getuser', {});
  if (me.data) seen.push(me.data.email); // refused: email
  seen.push(await api.POST('/api/v1/register', { params: { query: { send_email: false } }, body: { email: 'a@example.com', username: 'ann', password: 'x' } })); // refused: send_email
  return seen;
}
