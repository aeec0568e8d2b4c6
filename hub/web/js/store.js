// The page's state: rooms, their loaded messages, unsent messages, presence, typing and read
// marks. Pure data and rules, no DOM and no I/O: app.js feeds it server frames and REST answers,
// ui.js renders it. Every change calls the listeners once per batch (a microtask later).
//
// Invariant: a room's loaded messages are a contiguous range of seqs [oldest, last_seq] (with
// tombstones in place of deleted messages). Live messages extend it upwards (the socket delivers
// every seq after the room's `since` once, in order) and history pages extend it downwards (each
// page is requested with `before` = the oldest loaded seq, or is the newest page of the room).

/// Messages per history page.
export const PAGE_SIZE = 50;
/// How long "X is typing…" stays after a typing event (the server throttles them to one per 2 s
/// per user and room).
export const TYPING_SHOWN_MS = 5_000;

/// The name shown for a room: the peer's name for a direct room ("alice,bob" seen by alice is
/// "bob"), the room's name otherwise.
export function displayName(room, me) {
  if (room.kind === "direct") {
    const others = room.name.split(",").filter((name) => name !== me);
    return others.length ? others.join(", ") : room.name;
  }
  return room.name;
}

/// Unread messages in `room`: those after the caller's read mark (as the server counts them).
export function unread(room) {
  return Math.max(0, room.last_seq - room.read_seq);
}

function newRoom(r, activity) {
  return {
    id: r.id,
    name: r.name,
    public: !!r.public,
    kind: r.kind || "group",
    created_by: r.created_by,
    last_seq: r.last_seq || 0,
    read_seq: r.read_seq || 0,
    activity,
    messages: new Map(), // seq -> message (with a `rev` counter the view keys re-renders on)
    oldest: null, // lowest loaded seq, or null when nothing is loaded
    exhausted: false, // nothing older to load
    loading: false,
    members: null, // Set of usernames once loaded
    online: new Set(),
    typing: new Map(), // username -> time the indicator expires
    readers: new Map(), // username -> read mark (other members, learnt from read events)
  };
}

export class Store {
  constructor(me) {
    this.me = me;
    this.rooms = new Map();
    /// Messages composed here and not yet seen back from the server: client_msg_id -> entry.
    this.pending = new Map();
    this.active = null;
    this.connection = { state: "connecting" };
    this.listeners = new Set();
    this.scheduled = false;
    this.lastLive = null; // the newest live message from someone else, for announcements
  }

  subscribe(listener) {
    this.listeners.add(listener);
  }

  changed() {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      for (const listener of this.listeners) listener(this);
    });
  }

  setConnection(status) {
    this.connection = status;
    this.changed();
  }

  // --- rooms -------------------------------------------------------------------------------

  /// Rooms, most recently active first.
  sortedRooms() {
    return [...this.rooms.values()].sort((a, b) => b.activity - a.activity);
  }

  /// Adds a room, or updates what the server says about it. Returns the record.
  upsertRoom(r, activity = Date.now()) {
    let room = this.rooms.get(r.id);
    if (!room) {
      room = newRoom(r, activity);
      this.rooms.set(r.id, room);
    } else {
      room.name = r.name;
      room.public = !!r.public;
      if (r.last_seq > room.last_seq) {
        room.last_seq = r.last_seq;
        room.activity = Math.max(room.activity, activity);
      }
      if (typeof r.read_seq === "number") room.read_seq = Math.max(room.read_seq, r.read_seq);
    }
    if (Array.isArray(r.members)) room.members = new Set(r.members);
    this.changed();
    return room;
  }

  /// Merges `GET /v1/rooms` (ordered by activity, newest first). Returns the rooms that were
  /// added and the ids of those no longer listed (left elsewhere, or removed).
  setRoomList(list, initial) {
    const listed = new Set(list.map((r) => r.id));
    const added = [];
    list.forEach((r, index) => {
      const known = this.rooms.has(r.id);
      // The first list fixes the order; rooms that appear later are new activity.
      const room = this.upsertRoom(r, initial ? -index - 1 : Date.now() - index);
      if (!known) added.push(room);
    });
    const removed = [...this.rooms.keys()].filter((id) => !listed.has(id));
    for (const id of removed) this.removeRoom(id);
    return { added, removed };
  }

  removeRoom(id) {
    this.rooms.delete(id);
    for (const [key, entry] of this.pending) if (entry.room === id) this.pending.delete(key);
    if (this.active === id) this.active = null;
    this.changed();
  }

  setActive(id) {
    this.active = this.rooms.has(id) ? id : null;
    this.changed();
  }

  /// Where the next older history page ends (exclusive), or null when nothing is left.
  nextPageBefore(room) {
    if (room.exhausted) return null;
    if (room.oldest !== null) return room.oldest > 1 ? room.oldest : null;
    return room.last_seq + 1;
  }

  // --- messages ------------------------------------------------------------------------------

  put(room, m) {
    const old = room.messages.get(m.seq);
    const message = {
      room: m.room,
      seq: m.seq,
      from: m.from,
      body: m.body,
      ts: m.ts,
      edited_ts: m.edited_ts,
      deleted: !!m.deleted,
      bot: !!m.bot,
      client_msg_id: m.client_msg_id,
      attachments: m.deleted ? [] : m.attachments || (old && old.attachments) || [],
      rev: old ? old.rev + 1 : 0,
    };
    if (old && old.body === message.body && old.deleted === message.deleted && old.edited_ts === message.edited_ts) {
      return;
    }
    room.messages.set(m.seq, message);
    if (room.oldest === null || m.seq < room.oldest) room.oldest = m.seq;
    if (m.seq > room.last_seq) room.last_seq = m.seq;
    if (m.from === this.me && !m.bot && m.client_msg_id) this.pending.delete(m.client_msg_id);
  }

  /// A `message` frame (live or catch-up): already deduplicated by the socket.
  message(m) {
    const room = this.rooms.get(m.room);
    if (!room) return;
    const fresh = m.seq > room.last_seq;
    this.put(room, m);
    if (fresh) room.activity = Math.max(room.activity, m.ts || Date.now());
    room.typing.delete(m.from);
    if (m.from !== this.me && fresh) this.lastLive = m;
    this.changed();
  }

  /// A page of stored messages, ascending. `older`: the page was asked for with `before`
  /// (an empty or short page means there is nothing older).
  history(roomId, messages, { older, limit = PAGE_SIZE }) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    for (const m of messages) this.put(room, m);
    if (older && (messages.length < limit || (messages.length && messages[0].seq <= 1))) {
      room.exhausted = true;
    }
    if (room.oldest === 1) room.exhausted = true;
    this.changed();
  }

  /// The room's stored messages are no longer known (history_expired, catchup_too_large):
  /// reload from scratch.
  reset(roomId, lastSeq) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.messages = new Map();
    room.oldest = null;
    room.exhausted = false;
    room.last_seq = Math.max(room.last_seq, lastSeq);
    this.changed();
  }

  edited(e) {
    const room = this.rooms.get(e.room);
    const old = room && room.messages.get(e.seq);
    if (!old) return;
    this.put(room, { ...old, body: e.body, edited_ts: e.edited_ts });
    this.changed();
  }

  deleted(e) {
    const room = this.rooms.get(e.room);
    const old = room && room.messages.get(e.seq);
    if (!old) return;
    this.put(room, { ...old, body: "", deleted: true, edited_ts: old.edited_ts || Date.now() });
    this.changed();
  }

  /// Messages of `room` in seq order.
  messagesOf(room) {
    return [...room.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  // --- sends ---------------------------------------------------------------------------------

  addPending(roomId, body, clientMsgId) {
    this.pending.set(clientMsgId, { room: roomId, body, client_msg_id: clientMsgId, state: "sending", created: Date.now() });
    const room = this.rooms.get(roomId);
    if (room) room.activity = Date.now();
    this.changed();
  }

  ack(a) {
    const entry = this.pending.get(a.client_msg_id);
    if (!entry) return;
    const room = this.rooms.get(a.room);
    if (room && room.messages.has(a.seq)) this.pending.delete(a.client_msg_id);
    else Object.assign(entry, { state: "sent", seq: a.seq });
    this.changed();
  }

  sendFailed(f) {
    const entry = this.pending.get(f.client_msg_id);
    if (!entry) return;
    Object.assign(entry, { state: "failed", code: f.code, error: f.message });
    this.changed();
  }

  discardPending(clientMsgId) {
    this.pending.delete(clientMsgId);
    this.changed();
  }

  /// Unsent (or sent but not yet delivered back) messages of `roomId`, oldest first.
  pendingOf(roomId) {
    return [...this.pending.values()].filter((p) => p.room === roomId).sort((a, b) => a.created - b.created);
  }

  // --- members, presence, typing, read marks -------------------------------------------------

  memberJoined(e) {
    const room = this.rooms.get(e.room);
    if (!room) return;
    if (room.members) room.members.add(e.user);
    this.changed();
  }

  memberLeft(e) {
    const room = this.rooms.get(e.room);
    if (!room) return;
    if (e.user === this.me) return this.removeRoom(e.room);
    if (room.members) room.members.delete(e.user);
    room.online.delete(e.user);
    room.readers.delete(e.user);
    this.changed();
  }

  setPresence(roomId, users) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.online = new Set(users);
    this.changed();
  }

  presence(e) {
    const room = this.rooms.get(e.room);
    if (!room) return;
    if (e.online) room.online.add(e.user);
    else room.online.delete(e.user);
    this.changed();
  }

  typing(e, now = Date.now()) {
    const room = this.rooms.get(e.room);
    if (!room || e.user === this.me) return;
    room.typing.set(e.user, now + TYPING_SHOWN_MS);
    this.changed();
  }

  /// Who is typing in `room` now, sorted.
  typists(room, now = Date.now()) {
    return [...room.typing].filter(([, until]) => until > now).map(([user]) => user).sort();
  }

  /// A `read` event, or our own `read_ok` (user = me).
  read(e) {
    const room = this.rooms.get(e.room);
    if (!room) return;
    if (e.user === this.me) room.read_seq = Math.max(room.read_seq, Math.min(e.seq, room.last_seq));
    else room.readers.set(e.user, Math.max(room.readers.get(e.user) || 0, e.seq));
    this.changed();
  }

  /// Other members whose read mark covers `seq`, sorted.
  seenBy(room, seq) {
    return [...room.readers].filter(([user, mark]) => user !== this.me && mark >= seq).map(([user]) => user).sort();
  }
}
