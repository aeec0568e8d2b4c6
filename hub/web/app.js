// Switchboard's browser client: wires the REST API (js/api.js), the realtime link
// (js/socket.js), the state (js/store.js) and the view (js/ui.js) together.

import { AccountPanel } from "./js/account.js";
import { AdminView } from "./js/admin.js";
import { Api, ApiError } from "./js/api.js";
import { Picker, emoticons } from "./js/emoticons.js";
import { configure as configureAttachments } from "./js/attachments.js";
import { ResetForms, takeResetToken } from "./js/reset.js";
import { Socket, Status, newClientMsgId, socketUrl } from "./js/socket.js";
import { PAGE_SIZE, Store, TYPING_SHOWN_MS } from "./js/store.js";
import { View } from "./js/ui.js";

/// How often the room list is re-read while the page is visible. A user added to a room (or to
/// a direct conversation) gets no event for it: the protocol has none, so the page polls.
const ROOM_LIST_POLL_MS = 5_000;
/// Read marks are sent at most this often per room.
const READ_DEBOUNCE_MS = 300;
/// `typing` is sent at most this often (the server's throttle, PROTOCOL.md `typing`).
const TYPING_EVERY_MS = 2_000;
/// After a reconnect, the newest messages of each loaded room are read again, picking up edits
/// and deletions made while the page was offline (catch-up replays only newer seqs).
const RESYNC_LIMIT = 100;
/// Consecutive policy closes (1008) after which the session is considered over.
const MAX_POLICY_CLOSES = 3;

const HASH_PREFIX = "#room=";
/// The admin view's address (a non-admin who opens it sees the server's refusal).
const ADMIN_HASH = "#admin";

/// A readable message for an error from the server or the network.
function explain(err) {
  if (err instanceof ApiError) {
    const messages = {
      invalid_credentials: "Wrong username or password.",
      username_taken: "That username is taken.",
      user_not_found: "There is no user with that name.",
      rate_limited: "Too many requests; try again in a moment.",
      unavailable: "The server is busy; try again in a moment.",
    };
    return messages[err.code] || err.message || err.code;
  }
  if (err instanceof TypeError) return "Cannot reach the server.";
  return (err && err.message) || String(err);
}

/// Rethrows `err` with a readable message (for the form that shows it).
function readable(err) {
  throw new Error(explain(err));
}

class App {
  constructor() {
    this.api = new Api({ onSessionEnded: (reason) => this.end(reason) });
    configureAttachments(this.api);
    this.view = new View(this.actions());
    this.reset = new ResetForms(this.api, (notice) => this.view.showAuth(notice));
    this.account = new AccountPanel({ api: this.api, explain, openAdmin: () => this.openAdmin() });
    this.admin = new AdminView({ api: this.api, explain, onClose: () => this.closeAdmin() });
    this.store = null;
    this.socket = null;
    this.pollTimer = null;
    this.readTimers = new Map();
    this.readSent = new Map();
    this.lastTyping = 0;
    this.picker = new Picker({
      toggle: document.getElementById("emoticon-toggle"),
      panel: document.getElementById("emoticon-picker"),
      textarea: document.getElementById("composer"),
    });
    // Messages already shown are drawn again with the new list (but the one being edited,
    // whose form holds the person's unsaved text).
    emoticons.subscribe(() => {
      if (!this.store) return;
      const editing = `m:${this.view.editing}`;
      for (const key of [...this.view.messageItems.keys()]) if (key !== editing) this.view.messageItems.delete(key);
      this.store.changed();
    });
    document.addEventListener("visibilitychange", () => this.onVisibility());
    window.addEventListener("online", () => this.socket && this.socket.reconnectNow());
    window.addEventListener("focus", () => this.seen());
    window.addEventListener("hashchange", () => this.followHash());
  }

  boot() {
    if (this.openResetLink()) return;
    if (this.api.session) this.startChat();
    else this.view.showAuth();
  }

  /// A mail's reset link (`#reset=<token>`) opened: the new-password form (a session of this
  /// tab ends: the reset ends every session anyway). False when the address has no token.
  openResetLink() {
    const token = takeResetToken();
    if (!token) return false;
    if (this.store || this.api.session) this.end(null);
    else this.view.showAuth();
    this.reset.showReset(token);
    return true;
  }

  actions() {
    return {
      login: (username, password) => this.login(username, password),
      register: (username, email, password) => this.register(username, email, password),
      logout: () => this.logout(),
      openRoom: (id) => this.openRoom(id, true),
      loadOlder: () => this.store && this.store.active && this.loadOlder(this.store.active),
      createRoom: (name, isPublic) => this.createRoom(name, isPublic),
      direct: (username) => this.direct(username),
      addMember: (username) => this.addMember(username),
      leave: () => this.leave(),
      send: (body, attachments) => this.send(body, attachments),
      typing: () => this.typing(),
      edit: (seq, body) => this.edit(seq, body),
      remove: (seq) => this.remove(seq),
      retry: (cmid) => this.retry(cmid),
      discard: (cmid) => this.store.discardPending(cmid),
      seen: () => this.seen(),
    };
  }

  // --- session -------------------------------------------------------------------------------

  async login(username, password) {
    await this.api.login(username, password).catch(readable);
    this.startChat();
  }

  async register(username, email, password) {
    await this.api.register(username, email, password).catch(readable);
    await this.login(username, password);
  }

  async logout() {
    await this.api.logout().catch(() => {});
    this.end(null);
  }

  /// The session is over (logout, or a refused refresh): back to the login form.
  end(notice) {
    if (this.socket) this.socket.stop();
    this.socket = null;
    clearInterval(this.pollTimer);
    this.pollTimer = null;
    this.store = null;
    this.api.forget();
    this.account.reset();
    this.admin.reset();
    history.replaceState(null, "", location.pathname);
    this.view.showAuth(notice);
  }

  startChat() {
    const store = new Store(this.api.user.username);
    this.store = store;
    this.socket = new Socket({
      url: socketUrl(),
      token: () => this.api.token(),
      onFrame: (frame) => this.onFrame(frame),
      onStatus: (status) => this.onStatus(status),
      onPolicyClose: (reason, count) => this.onPolicyClose(reason, count),
    });
    this.view.showChat(store);
    this.account.setUser(this.api.user);
    store.subscribe(() => this.seen());
    emoticons.refresh();
    this.refreshRooms(true).finally(() => {
      if (this.store !== store) return;
      this.socket.start();
      this.followHash();
    });
    this.pollTimer = setInterval(() => {
      if (document.visibilityState === "visible") this.refreshRooms(false);
    }, ROOM_LIST_POLL_MS);
  }

  async onPolicyClose(reason, count) {
    if (count > MAX_POLICY_CLOSES) return this.end("Your session has ended. Please log in again.");
    try {
      await this.api.refresh();
      if (this.socket) this.socket.reconnectNow();
    } catch (err) {
      // A refused refresh ends the session (Api calls end); anything else is retried.
      if (!(err instanceof ApiError && err.status === 401) && this.socket) this.socket.retryLater();
    }
  }

  onStatus(status) {
    if (!this.store) return;
    this.store.setConnection(status);
    if (status.state === Status.ONLINE && status.resumed) {
      this.resync();
      // An `emoticons` frame may have been missed while offline.
      emoticons.refresh();
    }
  }

  onVisibility() {
    if (document.visibilityState !== "visible" || !this.store) return;
    // Timers are throttled in hidden tabs: catch up on what may be due.
    if (this.api.session && Date.now() >= this.api.refreshAt()) this.api.refreshSoon();
    if (this.socket) this.socket.reconnectNow();
    this.refreshRooms(false);
    this.seen();
  }

  // --- rooms ---------------------------------------------------------------------------------

  /// Reads the room list; follows rooms that appeared and drops those that are gone.
  async refreshRooms(initial) {
    const store = this.store;
    const asked = Date.now();
    let list;
    try {
      list = await this.api.rooms();
    } catch {
      return; // retried by the next poll
    }
    if (this.store !== store) return;
    // A room created here after the request started is not in the answer yet: keep it.
    const keep = new Set([...store.rooms.values()].filter((r) => r.addedAt >= asked).map((r) => r.id));
    const { added, removed } = store.setRoomList(list.concat([...keep].map((id) => store.rooms.get(id))), initial);
    for (const room of added) {
      room.addedAt = asked;
      this.socket.watch(room.id, room.last_seq);
    }
    for (const id of removed) this.socket.unwatch(id);
  }

  /// Adds a room this page created or opened, follows it and opens it.
  adopt(r) {
    const room = this.store.upsertRoom(r);
    room.addedAt = Date.now();
    this.socket.watch(room.id, room.last_seq);
    this.openRoom(room.id, true);
  }

  async createRoom(name, isPublic) {
    if (!name) throw new Error("A room needs a name.");
    this.adopt(await this.api.createRoom(name, isPublic).catch(readable));
  }

  async direct(username) {
    if (!username) throw new Error("Whom do you want to talk to?");
    this.adopt(await this.api.direct(username).catch(readable));
  }

  async addMember(username) {
    const id = this.store.active;
    if (!username || !id) throw new Error("Whom do you want to add?");
    await this.api.addMember(id, username).catch(readable);
    this.store.memberJoined({ room: id, user: username });
  }

  async leave() {
    const id = this.store.active;
    if (!id) return;
    try {
      await this.api.leave(id);
    } catch (err) {
      return this.view.flash(explain(err));
    }
    this.socket.unwatch(id);
    this.store.removeRoom(id);
    history.replaceState(null, "", location.pathname);
    this.view.showPane("rooms");
  }

  followHash() {
    if (this.openResetLink()) return;
    if (!this.store) return;
    if (location.hash === ADMIN_HASH) {
      if (!this.admin.isOpen()) this.openAdmin();
      return;
    }
    if (!location.hash.startsWith(HASH_PREFIX)) return;
    if (this.admin.isOpen()) this.closeAdmin();
    const id = decodeURIComponent(location.hash.slice(HASH_PREFIX.length));
    if (id !== this.store.active && this.store.rooms.has(id)) this.openRoom(id, false);
  }

  // --- administration ------------------------------------------------------------------------

  /// Shows the admin view in place of the chat (which goes on underneath: the socket stays up).
  openAdmin() {
    if (!this.store) return;
    this.account.close(false);
    history.replaceState(null, "", ADMIN_HASH);
    this.admin.show();
  }

  closeAdmin() {
    this.admin.hide();
    document.getElementById("chat-view").hidden = false;
    const active = this.store && this.store.active;
    history.replaceState(null, "", active ? HASH_PREFIX + encodeURIComponent(active) : location.pathname);
    if (active) this.view.focusComposer();
    else this.view.showPane("rooms");
  }

  /// Shows a room: its newest page first, then members and who is online.
  openRoom(id, focus) {
    const store = this.store;
    const room = store.rooms.get(id);
    if (!room) return;
    store.setActive(id);
    history.replaceState(null, "", HASH_PREFIX + encodeURIComponent(id));
    this.view.showPane("conversation");
    if (focus) this.view.focusComposer();
    if (room.stale) this.resyncRoom(room);
    else if (room.oldest === null || room.messages.size < PAGE_SIZE) this.loadOlder(id);
    this.api.room(id).then((r) => store.upsertRoom(r)).catch(() => {});
    this.api.presence(id).then((users) => store.setPresence(id, users)).catch(() => {});
  }

  /// Loads the next older page of `id`, unless one is loading or none is left.
  async loadOlder(id) {
    const store = this.store;
    const room = store.rooms.get(id);
    if (!room || room.loading) return;
    const before = store.nextPageBefore(room);
    if (before === null) return;
    room.loading = true;
    store.changed();
    try {
      const page = await this.api.messages(id, { before, limit: PAGE_SIZE });
      store.history(id, page, { older: true });
    } catch (err) {
      this.view.flash(explain(err));
    } finally {
      room.loading = false;
      store.changed();
    }
  }

  /// After a reconnect: the room list, who is online, and the newest messages again.
  resync() {
    const store = this.store;
    // Read marks sent on the lost connection may not have arrived.
    this.readSent.clear();
    this.refreshRooms(false);
    for (const room of store.rooms.values()) {
      if (room.oldest === null) continue;
      if (room.id === store.active) this.resyncRoom(room);
      else room.stale = true;
    }
    if (store.active) {
      const id = store.active;
      this.api.presence(id).then((users) => store.setPresence(id, users)).catch(() => {});
    }
  }

  async resyncRoom(room) {
    room.stale = false;
    try {
      const page = await this.api.messages(room.id, { limit: RESYNC_LIMIT });
      this.store.history(room.id, page, { older: false, limit: RESYNC_LIMIT });
    } catch {
      room.stale = true;
    }
  }

  // --- messages ------------------------------------------------------------------------------

  send(body, attachments = []) {
    const id = this.store.active;
    if (!id) return;
    const cmid = newClientMsgId();
    this.store.addPending(id, body, cmid);
    // Kept with the pending entry, so that a retry sends them again.
    this.store.pending.get(cmid).attachments = attachments;
    this.socket.send(id, body, cmid, attachments);
    this.lastTyping = 0;
  }

  retry(cmid) {
    const entry = this.store.pending.get(cmid);
    if (!entry) return;
    entry.state = "sending";
    this.store.changed();
    this.socket.send(entry.room, entry.body, cmid, entry.attachments || []);
  }

  typing() {
    const id = this.store && this.store.active;
    const now = Date.now();
    if (!id || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this.socket.typing(id);
  }

  async edit(seq, body) {
    const id = this.store.active;
    const m = await this.api.editMessage(id, seq, body).catch(readable);
    this.store.edited({ room: id, seq, body: m.body, edited_ts: m.edited_ts });
  }

  async remove(seq) {
    const id = this.store.active;
    await this.api.deleteMessage(id, seq).catch(readable);
    this.store.deleted({ room: id, seq });
  }

  /// Marks the active room read when its newest message is on screen.
  seen() {
    const store = this.store;
    const id = store && store.active;
    if (!id || document.visibilityState !== "visible" || !this.view.atBottom()) return;
    const room = store.rooms.get(id);
    if (!room || room.last_seq <= room.read_seq || (this.readSent.get(id) || 0) >= room.last_seq) return;
    if (this.readTimers.has(id)) return;
    this.readTimers.set(
      id,
      setTimeout(() => {
        this.readTimers.delete(id);
        const current = this.store && this.store.rooms.get(id);
        if (!current) return;
        const seq = current.last_seq;
        this.readSent.set(id, seq);
        // Over the socket when it is up, else over REST; the answer moves the mark.
        if (!this.socket.markRead(id, seq)) {
          this.api
            .authed("POST", `/v1/rooms/${encodeURIComponent(id)}/read`, { seq })
            .then(() => this.store && this.store.read({ room: id, user: this.store.me, seq }))
            .catch(() => this.readSent.delete(id));
        }
      }, READ_DEBOUNCE_MS),
    );
  }

  onFrame(frame) {
    const store = this.store;
    if (!store) return;
    switch (frame.type) {
      case "message":
        return store.message(frame);
      case "edited":
        return store.edited(frame);
      case "deleted":
        return store.deleted(frame);
      case "ack":
        return store.ack(frame);
      case "send_failed":
        return store.sendFailed({ ...frame, message: explain(new ApiError(0, frame.code, frame.message)) });
      case "member_joined":
        return store.memberJoined(frame);
      case "member_left":
        if (frame.user === store.me) this.socket.unwatch(frame.room);
        return store.memberLeft(frame);
      case "presence":
        return store.presence(frame);
      case "typing":
        store.typing(frame);
        setTimeout(() => this.store && this.store.changed(), TYPING_SHOWN_MS + 50);
        return;
      case "read":
        return store.read(frame);
      case "read_ok":
        return store.read({ room: frame.room, user: store.me, seq: frame.seq });
      case "unsubbed":
        if (frame.id === undefined) store.removeRoom(frame.room);
        return;
      case "room_lost":
        return store.removeRoom(frame.room);
      case "room_reset":
        store.reset(frame.room, frame.last_seq);
        if (store.active === frame.room) this.loadOlder(frame.room);
        return;
      case "emoticons":
        emoticons.refresh(frame.etag);
        return;
      case "error":
        console.warn("switchboard:", frame.code, frame.message);
        return;
      default:
        return; // subbed, and frame types this page does not know
    }
  }
}

new App().boot();
