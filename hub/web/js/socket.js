// The realtime link: one WebSocket on /v1/ws that survives the network.
//
// It remembers what it needs to resume: every watched room with the last seq seen there, and
// every send not yet acknowledged, in order. When the connection is lost it shows
// "reconnecting", waits a jittered exponential backoff, connects again, sends `hello` with a
// current access token, subscribes to every room with `since` = the last seq seen, then re-sends
// every unacknowledged message with its original `client_msg_id` (the server stores a repeat
// once and answers it with the first ack). Messages at or below the last seq seen in their room
// are dropped, so the page sees each message once, in order, with no gap (PROTOCOL.md 5.3-5.5).

/// Offered subprotocol.
const SUBPROTOCOL = "switchboard.v1";
/// Upper end of the first reconnection delay.
const BACKOFF_INITIAL_MS = 500;
/// Cap on the upper end of any reconnection delay.
const BACKOFF_MAX_MS = 30_000;
/// A connection that has no `welcome` after this long is abandoned and retried.
const CONNECT_TIMEOUT_MS = 10_000;
/// The link is dead after this many heartbeat intervals without any frame (browsers answer the
/// server's WebSocket pings but do not show them, so the page sends application pings).
const DEAD_LINK_HEARTBEATS = 2.5;
/// Heartbeat assumed when `welcome` names none.
const DEFAULT_HEARTBEAT_MS = 20_000;
/// Error codes after which a send (or a sub) is retried, with backoff, on the same connection.
const RETRY_CODES = new Set(["rate_limited", "unavailable", "internal"]);
/// Close code of the server's policy closes: refused token, revoked session. Every other close
/// takes the ordinary backoff path with the same token, 1013 included (try again later: e.g. the
/// hub cannot check tokens while its auth node is down; the token was not judged).
const CLOSE_POLICY = 1008;

/// Connection states reported through `onStatus`.
export const Status = Object.freeze({
  CONNECTING: "connecting",
  ONLINE: "online",
  RECONNECTING: "reconnecting",
  STOPPED: "stopped",
});

/// The delay before attempt `attempt` (1-based): uniform in [d/2, d], where
/// d = min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2^(attempt-1)). The jitter spreads clients that
/// lost the same node so they do not all come back in the same instant.
export function backoffDelay(attempt, random = Math.random) {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** exponent);
  return ceiling * (0.5 + 0.5 * random());
}

/// A fresh idempotency key (128 random bits). `crypto.getRandomValues` works in insecure
/// contexts too (plain http on a LAN), unlike `crypto.randomUUID`.
export function newClientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "w-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/// The WebSocket URL of the hub that served this page.
export function socketUrl(loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/v1/ws`;
}

export class Socket {
  /// - `token()`: resolves to a current access token (refreshing it first when due).
  /// - `onFrame(frame)`: server events and answers, deduplicated, plus the synthetic frames
  ///   `send_failed`, `room_lost` and `room_reset` described where they are made.
  /// - `onStatus({state, attempt, delay, resumed})`: connection state changes.
  /// - `onPolicyClose(reason)`: the server closed with 1008 (refused token or revoked session);
  ///   the owner refreshes the token and calls `reconnectNow()`, or ends the session.
  constructor({ url, token, onFrame, onStatus, onPolicyClose }) {
    this.url = url;
    this.token = token;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.onPolicyClose = onPolicyClose;
    /// Watched rooms: room id -> last seq seen (null: resubscribe without `since`).
    this.rooms = new Map();
    /// Unacknowledged sends in order: client_msg_id -> {room, body, client_msg_id, attempts}.
    this.outbox = new Map();
    this.ws = null;
    this.welcomed = false;
    this.everOnline = false;
    this.stopped = true;
    this.attempt = 0;
    this.heartbeatMs = DEFAULT_HEARTBEAT_MS;
    this.lastReceived = 0;
    this.timers = { retry: null, connect: null, heartbeat: null };
    this.state = Status.STOPPED;
  }

  get online() {
    return this.welcomed && this.ws !== null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  /// Closes for good (logout). Unsent messages are forgotten.
  stop() {
    this.stopped = true;
    this.teardown(1000);
    clearTimeout(this.timers.retry);
    this.outbox.clear();
    this.rooms.clear();
    this.setStatus({ state: Status.STOPPED });
  }

  /// Connects now instead of waiting for the backoff (e.g. the browser came back online).
  reconnectNow() {
    if (this.stopped || this.online) return;
    clearTimeout(this.timers.retry);
    this.teardown(1000);
    this.connect();
  }

  /// Tries again after the backoff (the owner could not refresh its token just now).
  retryLater() {
    if (!this.stopped && !this.ws) this.lost();
  }

  /// Starts following `room`: everything after seq `since` is delivered.
  watch(room, since) {
    if (this.rooms.has(room)) return;
    this.rooms.set(room, since);
    if (this.online) this.sendSub(room);
  }

  /// Stops following `room`.
  unwatch(room) {
    if (!this.rooms.delete(room)) return;
    if (this.online) this.transmit({ type: "unsub", id: `unsub:${room}`, room });
  }

  /// Queues a message and sends it when connected. Returns its client_msg_id.
  send(room, body, clientMsgId = newClientMsgId(), attachments = []) {
    const entry = { room, body, attachments, client_msg_id: clientMsgId, attempts: 0, timer: null };
    this.outbox.set(clientMsgId, entry);
    if (this.online) this.transmitSend(entry);
    return clientMsgId;
  }

  /// Tells the room the user is typing (dropped when offline: it is not worth a retry).
  typing(room) {
    if (this.online) this.transmit({ type: "typing", room });
  }

  /// Moves the read mark (answered with `read_ok`; lost when offline, the caller retries).
  markRead(room, seq) {
    if (this.online) this.transmit({ type: "read", id: `read:${room}`, room, seq });
    return this.online;
  }

  // --- internals -------------------------------------------------------------------------

  setStatus(status) {
    this.state = status.state;
    this.onStatus(status);
  }

  async connect() {
    this.setStatus({ state: this.everOnline ? Status.RECONNECTING : Status.CONNECTING, attempt: this.attempt });
    let token;
    try {
      token = await this.token();
    } catch (err) {
      if (err && err.status === 401) return; // the session ended; the owner stops us
      if (!this.stopped) this.lost();
      return;
    }
    if (this.stopped || this.ws) return;
    let ws;
    try {
      ws = new WebSocket(this.url, SUBPROTOCOL);
    } catch {
      this.lost();
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    this.timers.connect = setTimeout(() => this.drop(ws), CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      if (ws === this.ws) this.transmit({ type: "hello", id: "hello", token });
    };
    ws.onmessage = (event) => this.receive(ws, event.data);
    ws.onclose = (event) => this.closed(ws, event.code, event.reason);
    ws.onerror = () => {}; // a close event follows
  }

  transmit(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  sendSub(room) {
    const since = this.rooms.get(room);
    const frame = { type: "sub", id: `sub:${room}`, room };
    if (since !== null && since !== undefined) frame.since = since;
    this.transmit(frame);
  }

  transmitSend(entry) {
    clearTimeout(entry.timer);
    entry.timer = null;
    entry.attempts += 1;
    this.transmit({
      type: "send",
      id: `send:${entry.client_msg_id}`,
      room: entry.room,
      body: entry.body,
      client_msg_id: entry.client_msg_id,
      ...(entry.attachments && entry.attachments.length ? { attachments: entry.attachments } : {}),
    });
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    this.lastReceived = Date.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object" || typeof frame.type !== "string") return;
    switch (frame.type) {
      case "welcome":
        return this.welcome(frame);
      case "message":
        return this.message(frame);
      case "subbed":
        return this.subbed(frame);
      case "ack":
        return this.ack(frame);
      case "error":
        return this.error(frame);
      case "unsubbed":
        if (frame.id === undefined) this.rooms.delete(frame.room);
        return this.onFrame(frame);
      case "pong":
        return;
      default:
        // Events (edited, deleted, presence, typing, read, member_*) and read_ok; unknown types
        // are ignored by the store, as the protocol requires.
        return this.onFrame(frame);
    }
  }

  welcome(frame) {
    clearTimeout(this.timers.connect);
    this.welcomed = true;
    const resumed = this.everOnline;
    this.everOnline = true;
    this.attempt = 0;
    this.policyCloses = 0;
    this.heartbeatMs = frame.heartbeat_ms > 0 ? frame.heartbeat_ms : DEFAULT_HEARTBEAT_MS;
    this.startHeartbeat();
    // The server handles one connection's frames in order: every sub (and its catch-up) comes
    // before the re-sent messages are stored.
    for (const room of this.rooms.keys()) this.sendSub(room);
    for (const entry of this.outbox.values()) this.transmitSend(entry);
    this.setStatus({ state: Status.ONLINE, resumed, user: frame.user });
  }

  message(frame) {
    const last = this.rooms.get(frame.room);
    if (typeof last === "number" && frame.seq <= last) return; // seen already
    if (this.rooms.has(frame.room)) this.rooms.set(frame.room, frame.seq);
    this.onFrame(frame);
  }

  subbed(frame) {
    if (this.rooms.get(frame.room) === null) {
      // Subscribed without `since` after history_expired or catchup_too_large: the page
      // reloads the room's history.
      this.rooms.set(frame.room, frame.last_seq);
      this.onFrame({ type: "room_reset", room: frame.room, last_seq: frame.last_seq });
    }
    this.onFrame(frame);
  }

  ack(frame) {
    const key = typeof frame.id === "string" && frame.id.startsWith("send:") ? frame.id.slice(5) : frame.client_msg_id;
    const entry = this.outbox.get(key);
    if (entry) {
      clearTimeout(entry.timer);
      this.outbox.delete(key);
    }
    this.onFrame(frame);
  }

  error(frame) {
    const id = typeof frame.id === "string" ? frame.id : "";
    const colon = id.indexOf(":");
    const kind = colon < 0 ? id : id.slice(0, colon);
    const key = colon < 0 ? "" : id.slice(colon + 1);
    if (kind === "send") {
      const entry = this.outbox.get(key);
      if (!entry) return;
      if (RETRY_CODES.has(frame.code)) {
        // Retry later with the same client_msg_id; a reconnect meanwhile re-sends it anyway.
        entry.timer = setTimeout(() => {
          if (this.online && this.outbox.has(key)) this.transmitSend(entry);
        }, backoffDelay(entry.attempts));
        return;
      }
      this.outbox.delete(key);
      this.onFrame({ type: "send_failed", room: entry.room, client_msg_id: key, code: frame.code, message: frame.message });
      return;
    }
    if (kind === "sub" && this.rooms.has(key)) {
      if (frame.code === "history_expired" || frame.code === "catchup_too_large") {
        // Retention deleted part of the gap, or the gap is longer than the server replays:
        // subscribe without `since`; `subbed` then makes the page reload the room's newest
        // messages (`room_reset`) and it pages older ones with history as they are scrolled to,
        // so nothing is lost and the store (keyed by seq) holds each message once.
        this.rooms.set(key, null);
        this.sendSub(key);
      } else if (RETRY_CODES.has(frame.code)) {
        setTimeout(() => {
          if (this.online && this.rooms.has(key)) this.sendSub(key);
        }, backoffDelay(1));
      } else {
        // forbidden or not_found: the room is gone for this user.
        this.rooms.delete(key);
        this.onFrame({ type: "room_lost", room: key, code: frame.code });
      }
      return;
    }
    if (kind === "hello") return; // a close (1008, or 1013 for `unavailable`) follows
    this.onFrame(frame);
  }

  startHeartbeat() {
    clearInterval(this.timers.heartbeat);
    const every = this.heartbeatMs / 2;
    this.timers.heartbeat = setInterval(() => {
      const silent = Date.now() - this.lastReceived;
      if (silent > this.heartbeatMs * DEAD_LINK_HEARTBEATS) {
        this.drop(this.ws);
      } else if (silent >= every) {
        this.transmit({ type: "ping", id: "ping" });
      }
    }, every);
  }

  /// Detaches and closes the current socket (without reporting its close).
  teardown(code) {
    clearTimeout(this.timers.connect);
    clearInterval(this.timers.heartbeat);
    for (const entry of this.outbox.values()) {
      clearTimeout(entry.timer);
      entry.timer = null;
    }
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code);
      } catch {
        // already closing
      }
    }
  }

  /// Gives up on `ws` (no welcome in time, or a silent link) and reconnects.
  drop(ws) {
    if (ws !== this.ws || this.stopped) return;
    this.teardown(1000);
    this.lost();
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.teardown(1000);
    if (this.stopped) return;
    if (code === CLOSE_POLICY) {
      this.policyCloses = (this.policyCloses || 0) + 1;
      this.setStatus({ state: Status.RECONNECTING, attempt: this.attempt });
      this.onPolicyClose(reason, this.policyCloses);
      return;
    }
    this.lost();
  }

  /// Schedules the next attempt with backoff.
  lost() {
    if (this.stopped) return;
    this.attempt += 1;
    const delay = backoffDelay(this.attempt);
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.connect(), delay);
    this.setStatus({ state: Status.RECONNECTING, attempt: this.attempt, delay });
  }
}
