// The HTTP API as the signed-in tenant. The key lives in sessionStorage only: never in a URL,
// a query string, the page's HTML or the console.
const KEY = "taskplane.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || String(status);
    this.details = err.details || [];
  }
}

// Paths are relative to the page, so the dashboard works under an API Gateway stage (/prod/).
function url(path, query) {
  const u = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u;
}

export async function call(method, path, { query, body, key } = {}) {
  const headers = { "x-api-key": key || apiKey() || "" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const resp = await fetch(url(path, query), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export const get = (path, query) => call("GET", path, { query });
export const post = (path, body) => call("POST", path, { body: body === undefined ? {} : body });
