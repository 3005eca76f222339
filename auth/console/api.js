// The console's calls to /_/api/: JSON in and out, the session's CSRF token on every call that
// changes something, and errors as ApiError carrying the server's {"error":{code,message}}.

let csrf = '';
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setCsrf(token) { csrf = token || ''; }
// Called when any call answers 401: the session ended (expired, revoked, signed out elsewhere).
export function whenSignedOut(fn) { onSignedOut = fn; }

// method, path under /_/api/, optional JSON body and query object; resolves to the parsed
// body (null for 202/204).
export async function call(method, path, {body, query} = {}) {
  let url = '/_/api/' + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query))
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    const s = q.toString();
    if (s) url += '?' + s;
  }
  const headers = {Accept: 'application/json'};
  // The server refuses a POST or DELETE without the session's token (a forged cross-site
  // request cannot read it): every change sends it.
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url, {method, headers, credentials: 'same-origin', cache: 'no-store',
                            body: body === undefined ? undefined : JSON.stringify(body)});
  } catch {
    throw new ApiError(0, 'unreachable', 'The server could not be reached. Try again.');
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (res.ok) return data;
  const err = data && data.error && typeof data.error === 'object' ? data.error : {};
  const retry = res.headers.get('Retry-After');
  let message = typeof err.message === 'string' && err.message ? err.message
                                                              : `The server answered ${res.status}.`;
  if (res.status === 429 && retry) message += ` Try again in ${retry} s.`;
  const e = new ApiError(res.status, typeof err.code === 'string' ? err.code : '', message);
  if (res.status === 401 && path !== 'session') onSignedOut(e);
  throw e;
}

export const get = (path, query) => call('GET', path, {query});
export const post = (path, body) => call('POST', path, {body});
export const del = (path, body) => call('DELETE', path, {body});
