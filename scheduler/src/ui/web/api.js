// The REST API from the page: one fetch wrapper that sends the stored
// credentials, and Baton's errors as ApiError (status, message, details).
//
// Credentials live in sessionStorage (this tab only, gone when it closes)
// as the Authorization value. Requests use credentials: "omit": the browser
// adds nothing of its own (no cookies, no cached Basic credentials) and a
// 401 never opens its Basic dialog; the page shows its login form instead.

const KEY = "baton.authorization";
const USER = "baton.user";

/** An error answer from Baton: `message`, and `details` with field paths. */
export class ApiError extends Error {
  constructor(status, body, what) {
    const message = body && typeof body.message === "string" ? body.message : `${what} failed with status ${status}`;
    super(message);
    this.status = status;
    this.body = body;
    this.details = body && Array.isArray(body.details) ? body.details : [];
    if (body && typeof body.details === "string") this.message = `${message}: ${body.details}`;
  }
}

let unauthorized = () => {};

/** What to do when Baton answers 401 (the stored credentials are refused). */
export function whenUnauthorized(fn) {
  unauthorized = fn;
}

/** The Authorization header to send, if any. */
export function authorization() {
  return sessionStorage.getItem(KEY);
}

/** The logged-in user, if any. */
export function user() {
  return sessionStorage.getItem(USER);
}

function basic(name, password) {
  const bytes = new TextEncoder().encode(`${name}:${password}`);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return "Basic " + btoa(binary);
}

/** Forgets the credentials. */
export function logout() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(USER);
}

/** Headers for a request: Accept, and Authorization when logged in. */
export function headers(extra) {
  const out = Object.assign({ Accept: "application/json" }, extra || {});
  const auth = authorization();
  if (auth) out.Authorization = auth;
  return out;
}

/**
 * Sends a request; resolves to the JSON body (null when empty), rejects
 * with ApiError on an error status, or TypeError when Baton is not reached.
 */
export async function request(method, path, body, { signal, quiet } = {}) {
  const init = { method, headers: headers(), credentials: "omit", cache: "no-store", signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = { message: text.slice(0, 200) }; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, json, `${method} ${path}`);
    if (response.status === 401 && !quiet) unauthorized(error);
    throw error;
  }
  return json;
}

export const get = (path, options) => request("GET", path, undefined, options);
export const post = (path, body, options) => request("POST", path, body, options);
export const put = (path, body, options) => request("PUT", path, body, options);
export const del = (path, options) => request("DELETE", path, undefined, options);

/** Tries credentials with GET /v2/info; keeps them only if Baton accepts them. */
export async function login(name, password) {
  const previous = authorization();
  sessionStorage.setItem(KEY, basic(name, password));
  try {
    const info = await get("/v2/info", { quiet: true });
    sessionStorage.setItem(USER, name);
    return info;
  } catch (error) {
    if (previous) sessionStorage.setItem(KEY, previous);
    else sessionStorage.removeItem(KEY);
    throw error;
  }
}

/** "/a/b" → "/v2/apps/a/b" (each segment encoded). */
export function appUrl(id, suffix = "") {
  return "/v2/apps/" + id.split("/").filter(Boolean).map(encodeURIComponent).join("/") + suffix;
}
