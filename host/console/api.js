// HTTP calls to the server with the optional API key, and the URLs of its
// WebSockets. Errors come back in the API's one shape
// {"error": {"code", "message"}} and are thrown as ApiError.

const KEY_STORAGE = 'mozaiks.console.apiKey';
const OWNER_STORAGE = 'mozaiks.console.owner';

export function apiKey() {
  try { return localStorage.getItem(KEY_STORAGE) || ''; } catch { return ''; }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch { /* storage disabled: the key lasts for this page only */ }
}

/** { app_id, user_id } for new chats, as set in the settings (may be empty). */
export function owner() {
  try {
    const value = JSON.parse(localStorage.getItem(OWNER_STORAGE) || '{}');
    return { app_id: value.app_id || '', user_id: value.user_id || '' };
  } catch {
    return { app_id: '', user_id: '' };
  }
}

export function setOwner(value) {
  try { localStorage.setItem(OWNER_STORAGE, JSON.stringify(value)); } catch { /* this page only */ }
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** Calls the API; resolves to the parsed body (null when empty). */
export async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'UNREACHABLE', `the server did not answer (${err.message})`);
  }
  const text = await response.text();
  let value = null;
  if (text) {
    try { value = JSON.parse(text); } catch { value = null; }
  }
  if (!response.ok) {
    const error = value && value.error;
    const hint = response.status === 401 ? ' Enter the key under “API key” (top right).' : '';
    if (error && error.code) throw new ApiError(response.status, error.code, `${error.message || error.code}${hint}`);
    throw new ApiError(response.status, `HTTP_${response.status}`, `${method} ${path} answered ${response.status}.${hint}`);
  }
  return value;
}

/** Fetches a file with the API key; resolves to the Response. */
export async function fetchFile(path) {
  const response = await fetch(path, { headers: headers(), cache: 'no-cache' });
  if (!response.ok) throw new ApiError(response.status, `HTTP_${response.status}`, `${path} answered ${response.status}`);
  return response;
}

/** The ws(s):// URL of `path` with `params` and the key as access_token. */
export function socketUrl(path, params = {}) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, String(value));
  const key = apiKey();
  if (key) url.searchParams.set('access_token', key);
  return url.toString();
}
