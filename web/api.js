// Calls to the console API. State changes carry the session's CSRF token (X-CSRF-Token); before
// sign-in, X-Requested-With (a header no cross-site form can send).
let csrfToken = null;

export class HttpError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export function csrf() {
  return csrfToken;
}

export async function session() {
  const r = await fetch('/console/api/session', { credentials: 'same-origin' });
  const j = await r.json();
  csrfToken = j.csrf_token || null;
  return j;
}

export async function errorOf(r) {
  let message = `HTTP ${r.status}`;
  try {
    const j = await r.json();
    if (j.error && j.error.message) message = j.error.message;
  } catch {
    /* not JSON */
  }
  return new HttpError(r.status, message, r.headers.get('retry-after'));
}

export async function call(method, path, body) {
  const headers = { 'x-requested-with': 'v4flash-console' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (csrfToken) headers['x-csrf-token'] = csrfToken;
  const r = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw await errorOf(r);
  const j = await r.json();
  if (j.csrf_token) csrfToken = j.csrf_token;
  return j;
}
