// The only module that talks to the dispatcher: every screen goes through `api` below, so a new
// route (a test delivery, secret rotation) is one function added here.

const BASE = "/api/v1";
const TOKEN_KEY = "webhooks.console.token";

/** The project a project token reaches, read from the token itself
 * (`whp_<base64url code>.<expires>.<signature>`); null for the admin token. The API checks it. */
function scopeOf(value) {
  const part = /^whp_([A-Za-z0-9_-]+)\.\d+\.[A-Za-z0-9_-]+$/.exec(value ?? "")?.[1];
  if (!part) return null;
  try {
    const bytes = Uint8Array.from(atob(part.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes) || null;
  } catch {
    return null;
  }
}

/** The token (the admin's or a project's), kept for this tab only and sent as a bearer header,
 * never in a URL. */
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
  /** The one project a project token reaches; null when signed in with the admin token. */
  project: () => scopeOf(sessionStorage.getItem(TOKEN_KEY)),
};

/** A refused call: its HTTP status, the API's message and the field that message names. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
    // A 4xx names its field first: "url: must be an http or https URL".
    const named = /^([a-z_]+): (.*)$/s.exec(message);
    this.field = status >= 400 && status < 500 && named ? named[1] : null;
    this.detail = this.field ? named[2] : message;
  }
}

/** Sent when the API refused the token: the app goes back to sign-in. */
export const SIGNED_OUT = "console:signed-out";

async function call(method, path, body, extra = {}) {
  const headers = { Authorization: `Bearer ${token.get() ?? ""}`, ...extra };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "The dispatcher did not answer; check that it is running.");
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.ok) return data;
  if (response.status === 401) {
    token.clear();
    window.dispatchEvent(new CustomEvent(SIGNED_OUT));
  }
  throw new ApiError(response.status, data?.error ?? `HTTP ${response.status}`);
}

const at = (project) => `/projects/${encodeURIComponent(project)}`;
const hook = (project, id) => `${at(project)}/webhooks/${encodeURIComponent(id)}`;

let document_ = null;

export const api = {
  /** Whether the API serves `method` `path` (as its OpenAPI document names it, under /api/v1):
   * a screen offers only what this dispatcher can do. The document is read once. */
  async serves(method, path) {
    document_ ??= fetch(`${BASE}/openapi.json`, { cache: "no-store", credentials: "omit" })
      .then((response) => response.json())
      .catch(() => null);
    const paths = (await document_)?.paths ?? {};
    return Boolean(paths[BASE + path]?.[method]);
  },
  /** Whether the token is accepted: every path under /api/v1 answers 401 to a wrong one. For
   * the admin token, `/projects`, not a route, answers 404 and reads nothing; a project token is
   * asked for its own project's webhooks. */
  async accepts(candidate) {
    const scope = scopeOf(candidate);
    const path = scope ? `${at(scope)}/webhooks` : "/projects";
    const response = await fetch(BASE + path, {
      headers: { Authorization: `Bearer ${candidate}` },
      cache: "no-store",
      credentials: "omit",
    }).catch(() => null);
    if (!response) throw new ApiError(0, "The dispatcher did not answer; check that it is running.");
    return response.status !== 401;
  },
  webhooks: (project) => call("GET", `${at(project)}/webhooks`),
  webhook: (project, id) => call("GET", hook(project, id)),
  create: (project, fields) => call("POST", `${at(project)}/webhooks`, fields),
  update: (project, id, fields) => call("PATCH", hook(project, id), fields),
  remove: (project, id) => call("DELETE", hook(project, id)),
  /** A page of webhook `id`'s deliveries: `filter` holds the search's query parameters (state,
   * event_name, since, until, cursor), empty ones left out. */
  deliveries(project, id, filter = {}, limit = 20) {
    const query = new URLSearchParams({ webhook_id: id, limit: String(limit) });
    for (const [name, value] of Object.entries(filter)) if (value) query.set(name, value);
    return call("GET", `${at(project)}/deliveries?${query}`);
  },
  delivery: (project, delivery) => call("GET", `${at(project)}/deliveries/${encodeURIComponent(delivery)}`),
  test: (project, id) => call("POST", `${hook(project, id)}/test`),
  rotate: (project, id) => call("POST", `${hook(project, id)}/secret/rotate`),
  /** Starts a replay (`body`: from, to, states); `key` makes a second submit the same replay. */
  replay: (project, id, body, key) =>
    call("POST", `${hook(project, id)}/replay`, body, { "Idempotency-Key": key }),
  replayed: (project, id, replay) =>
    call("GET", `${hook(project, id)}/replays/${encodeURIComponent(replay)}`),
  retry: (project, delivery) =>
    call("POST", `${at(project)}/deliveries/${encodeURIComponent(delivery)}/retry`),
  /** The API's event catalogue: groups `{title, events: [{name, title}]}`, each also given the
   * `name` of its events' family (`run` for `run.started`, …) to name its controls by. */
  async eventGroups() {
    const groups = await call("GET", "/events");
    return groups.map((group) => ({ ...group, name: group.events[0].name.split(".")[0] }));
  },
};
