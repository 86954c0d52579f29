// The API client. Locally the caller is a function key kept in
// sessionStorage (this tab only, gone when it closes) and sent in the
// x-functions-key header, never in a URL. In Azure, App Service
// Authentication's session cookie goes along by itself (same origin).
//
// Writes always carry Content-Type: application/json: the API refuses a
// write without it (or a key header), because a form on another site can
// send neither.

const KEY = 'entrasync.key';

// The console is served at <prefix>/console/; the API is <prefix>/.
export const apiBase = new URL('../', document.baseURI).pathname.replace(/\/$/, '');

export const session = {
  key() { return sessionStorage.getItem(KEY) || ''; },
  setKey(k) { sessionStorage.setItem(KEY, k); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || defaultMessage(status));
    this.status = status;
    this.code = e.code || '';
    this.hint = e.hint || '';
    this.runId = e.runId || '';
  }
}

function defaultMessage(status) {
  switch (status) {
    case 401: return 'Not signed in, or the key is not valid here.';
    case 403: return 'You do not have the role this needs.';
    case 404: return 'Not found.';
    default: return `The API answered ${status}.`;
  }
}

// onUnauthorized is called on any 401, so the app can show the sign-in.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

// request calls the API. path starts with "/" (e.g. "/status"). It returns
// {body, headers, status}; errors are thrown as APIError.
export async function request(method, path, opts = {}) {
  const headers = { Accept: opts.accept || 'application/json' };
  const key = session.key();
  if (key) headers['x-functions-key'] = key;
  let body;
  if (method !== 'GET' && method !== 'HEAD') {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body ?? {});
  }
  if (opts.ifMatch) headers['If-Match'] = opts.ifMatch;
  let res;
  try {
    res = await fetch(apiBase + path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  } catch (e) {
    throw new APIError(0, { error: { message: 'The API cannot be reached: ' + e.message, hint: 'Is the function app (or `make run`) still running?' } });
  }
  if (opts.raw && res.ok) return res;
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const err = new APIError(res.status, data);
    if (res.status === 401 && !opts.noSignIn) onUnauthorized(err);
    throw err;
  }
  return { body: data, headers: res.headers, status: res.status };
}

export const get = (path, opts) => request('GET', path, opts).then(r => r.body);
export const post = (path, body) => request('POST', path, { body }).then(r => r.body);

// query builds "?a=1&b=2" from the non-empty values of params.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined && v !== null) q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

// download fetches path with the caller's credentials and saves it as a
// file: a plain link could not carry the key header.
export async function download(path, filename) {
  const res = await request('GET', path, { raw: true, accept: '*/*' });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// listPage gets one page of a listing (its items under name). A filtered
// listing can answer an empty page that still has a next one (the store
// scans in chunks): those are followed, up to a bound, so a page shows
// items or says truthfully that there are none.
export async function listPage(path, params, name) {
  let token = params.token || '';
  for (let i = 0; ; i++) {
    const r = await get(path + query({ ...params, token }));
    if ((r[name] && r[name].length) || !r.nextToken || i >= 20) return r;
    token = r.nextToken;
  }
}
