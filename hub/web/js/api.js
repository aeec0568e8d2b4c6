// REST client and the login session (access + refresh token pair).
//
// Tokens live in sessionStorage, not localStorage: refresh tokens are single-use and a spent one
// presented again revokes the whole session (PROTOCOL.md 10.4). Tabs sharing one localStorage
// pair would race to refresh it and log each other out; sessionStorage gives each tab its own
// session (it survives a reload of the tab, not the tab's closing), and keeps tokens off the disk
// once the tab is gone.

const STORAGE_KEY = "switchboard.session";

/// Refresh this long before the access token expires (or a quarter of its lifetime, if shorter).
const REFRESH_MARGIN_MS = 60_000;
/// Never schedule a refresh sooner than this (a tiny lifetime must not spin).
const MIN_REFRESH_DELAY_MS = 1_000;
/// Wait before retrying a refresh that failed for a reason other than a refused token.
const REFRESH_RETRY_MS = 5_000;
/// The session list reads at most this many pages (of 50): a bound on what the menu holds.
const SESSION_PAGES = 4;

/// An error answered by the server: HTTP status plus the protocol's error code.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/// Reads the stored session, or null.
function loadSession() {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const session = JSON.parse(raw);
    if (typeof session.access_token !== "string" || typeof session.refresh_token !== "string") {
      return null;
    }
    return session;
  } catch {
    return null;
  }
}

/// The REST API of the hub that served this page, with automatic token refresh.
export class Api {
  /// `onSessionEnded(reason)` is called once the session cannot go on (refresh refused).
  constructor({ onSessionEnded }) {
    this.onSessionEnded = onSessionEnded;
    this.session = loadSession();
    this.refreshing = null;
    this.timer = null;
    if (this.session) this.schedule();
  }

  get user() {
    return this.session ? this.session.user : null;
  }

  /// Stores a token pair from login or refresh, and schedules the next refresh.
  adopt(pair) {
    const issued = Date.now();
    this.session = {
      access_token: pair.access_token,
      refresh_token: pair.refresh_token,
      issued_at: issued,
      expires_at: issued + pair.expires_in * 1000,
      user: pair.user,
    };
    // Written before anything else happens: a reload must never find the spent refresh token.
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.session));
    this.schedule();
  }

  /// Forgets the session locally (no request).
  forget() {
    clearTimeout(this.timer);
    this.timer = null;
    this.session = null;
    this.refreshing = null;
    sessionStorage.removeItem(STORAGE_KEY);
  }

  /// The moment the access token should be refreshed.
  refreshAt() {
    const s = this.session;
    const lifetime = s.expires_at - s.issued_at;
    return s.expires_at - Math.min(REFRESH_MARGIN_MS, lifetime / 4);
  }

  schedule() {
    clearTimeout(this.timer);
    if (!this.session) return;
    const delay = Math.max(MIN_REFRESH_DELAY_MS, this.refreshAt() - Date.now());
    this.timer = setTimeout(() => this.refreshSoon(), delay);
  }

  /// Refreshes now unless a refresh is under way; reschedules a retry after a transient failure.
  refreshSoon() {
    this.refresh().catch((err) => {
      if (!(err instanceof ApiError && err.status === 401) && this.session) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.refreshSoon(), REFRESH_RETRY_MS);
      }
    });
  }

  /// Exchanges the refresh token for a new pair. Single-flight: concurrent callers share one
  /// request, because presenting the same refresh token twice would revoke the session.
  refresh() {
    if (!this.session) return Promise.reject(new ApiError(401, "unauthorized", "not logged in"));
    if (!this.refreshing) {
      const token = this.session.refresh_token;
      this.refreshing = this.call("POST", "/v1/auth/refresh", { refresh_token: token }, null)
        .then((pair) => {
          // Logged out meanwhile: the new pair is dropped (the session is revoked anyway).
          if (!this.session) throw new ApiError(0, "logged_out", "logged out");
          if (this.session.refresh_token === token) this.adopt(pair);
          return this.session.access_token;
        })
        .catch((err) => {
          if (err instanceof ApiError && err.status === 401) {
            this.forget();
            this.onSessionEnded("Your session has ended. Please log in again.");
          }
          throw err;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  /// A current access token, refreshed first if it is due (e.g. after the tab slept).
  async token() {
    if (!this.session) throw new ApiError(401, "unauthorized", "not logged in");
    if (Date.now() >= this.refreshAt()) return this.refresh();
    return this.session.access_token;
  }

  /// One HTTP request; `token` null means anonymous. Throws ApiError on an error answer.
  async call(method, path, body, token) {
    const headers = {};
    // A Blob (a file to upload) is sent as it is; anything else as JSON.
    const raw = body instanceof Blob;
    if (body !== undefined) headers["content-type"] = raw ? "application/octet-stream" : "application/json";
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || "internal", error.message || response.statusText);
    }
    return data;
  }

  /// An authenticated request; a 401 is answered by one refresh and one retry.
  async authed(method, path, body) {
    const token = await this.token();
    try {
      return await this.call(method, path, body, token);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && this.session) {
        const fresh = await this.refresh();
        return this.call(method, path, body, fresh);
      }
      throw err;
    }
  }

  // Accounts.
  async register(username, email, password) {
    return this.call("POST", "/v1/auth/register", { username, email, password }, null);
  }
  async login(username, password) {
    const pair = await this.call("POST", "/v1/auth/login", { username, password }, null);
    this.adopt(pair);
    return pair.user;
  }
  async logout() {
    try {
      await this.authed("POST", "/v1/auth/logout");
    } finally {
      this.forget();
    }
  }

  /// The account's role as of the last login or refresh: `user` or `admin`. The page shows the
  /// admin view only to an admin; the server checks the role on every admin request anyway.
  get role() {
    return (this.session && this.session.user && this.session.user.role) || "user";
  }

  // Sessions (PROTOCOL.md `GET /v1/auth/sessions`).
  /// Every page of the caller's live sessions, newest first, at most `maxPages` pages.
  async sessions(maxPages = SESSION_PAGES) {
    const sessions = [];
    let cursor = null;
    for (let pages = 0; pages < maxPages; pages++) {
      const query = cursor === null ? "" : `?cursor=${encodeURIComponent(cursor)}`;
      const page = await this.authed("GET", `/v1/auth/sessions${query}`);
      sessions.push(...page.sessions);
      cursor = page.next_cursor ?? null;
      if (cursor === null) break;
    }
    return sessions;
  }
  /// Uploads `file` (a Blob) as the caller's avatar: `{small_url, large_url}`.
  async setAvatar(file) {
    return this.authed("PUT", "/v1/auth/me/avatar", file);
  }
  /// Back to the generated avatar.
  async clearAvatar() {
    return this.authed("DELETE", "/v1/auth/me/avatar");
  }
  async endSession(sid) {
    return this.authed("DELETE", `/v1/auth/sessions/${encodeURIComponent(sid)}`);
  }
  async endOtherSessions() {
    return this.authed("DELETE", "/v1/auth/sessions");
  }

  // Administration (admins only; PROTOCOL.md "Administration").
  /// One page of accounts: `{users, next_cursor}`. `q`: part of a username, or empty for all.
  async adminUsers({ q, cursor, limit }) {
    const query = new URLSearchParams();
    if (q) query.set("q", q);
    if (cursor) query.set("cursor", cursor);
    if (limit !== undefined) query.set("limit", String(limit));
    return this.authed("GET", `/v1/admin/users?${query}`);
  }
  async adminSetEmail(id, email) {
    return (await this.authed("PATCH", `/v1/admin/users/${encodeURIComponent(id)}`, { email })).user;
  }
  async adminDeleteUser(id) {
    return this.authed("DELETE", `/v1/admin/users/${encodeURIComponent(id)}`);
  }

  // Rooms.
  /// Every page of `GET /v1/rooms` (PROTOCOL.md): the rooms in activity order as of the first
  /// page, each once, whatever moves meanwhile.
  async rooms() {
    const rooms = [];
    let cursor = null;
    do {
      const query = cursor === null ? "" : `?cursor=${encodeURIComponent(cursor)}`;
      const page = await this.authed("GET", `/v1/rooms${query}`);
      rooms.push(...page.rooms);
      cursor = page.next_cursor ?? null;
    } while (cursor !== null);
    return rooms;
  }
  async createRoom(name, isPublic) {
    return this.authed("POST", "/v1/rooms", { name, public: isPublic });
  }
  async room(id) {
    return this.authed("GET", `/v1/rooms/${encodeURIComponent(id)}`);
  }
  async addMember(id, username) {
    return this.authed("POST", `/v1/rooms/${encodeURIComponent(id)}/members`, { username });
  }
  async leave(id) {
    return this.authed("POST", `/v1/rooms/${encodeURIComponent(id)}/leave`);
  }
  async direct(username) {
    return this.authed("POST", `/v1/direct/${encodeURIComponent(username)}`);
  }
  async presence(id) {
    return (await this.authed("GET", `/v1/rooms/${encodeURIComponent(id)}/presence`)).users;
  }

  // Messages.
  /// A page in ascending seq order: `{before}` pages backwards, `{after}` forwards.
  async messages(id, { before, after, limit }) {
    const query = new URLSearchParams();
    if (before !== undefined) query.set("before", String(before));
    if (after !== undefined) query.set("after", String(after));
    if (limit !== undefined) query.set("limit", String(limit));
    const path = `/v1/rooms/${encodeURIComponent(id)}/messages?${query}`;
    return (await this.authed("GET", path)).messages;
  }
  async editMessage(id, seq, body) {
    return this.authed("PATCH", `/v1/rooms/${encodeURIComponent(id)}/messages/${seq}`, { body });
  }
  async deleteMessage(id, seq) {
    return this.authed("DELETE", `/v1/rooms/${encodeURIComponent(id)}/messages/${seq}`);
  }
}
