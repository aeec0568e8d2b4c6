//! Local connections of this node: who is subscribed to which room, and which connections belong
//! to which session.
//!
//! **Invariants:**
//! - `rooms` is the authoritative room → local subscriber index; a connection appears under a
//!   room only between its `subscribe` and `unsubscribe`/`remove_conn`.
//! - No `dashmap` guard is held across an `.await` (clippy cannot see this; every method here is
//!   synchronous, which keeps it true).
//! - Delivery never waits on a client: it `try_send`s into the connection's bounded queue, and a
//!   connection whose queue is full is killed with close code 4000 (slow consumer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::Notify;

use super::outbox::{self, TrySendError};
use super::{Event, Hold, Kind, Target};

/// Identifies one connection on this node.
pub type ConnId = u64;

/// An item in a connection's outbound queue, consumed by its writer.
#[derive(Debug)]
pub enum Out {
    /// A room event from the fanout.
    Event(Arc<Event>),
    /// A reply to one of the client's frames.
    Reply(bytes::Bytes),
    /// Start buffering `room`'s events until the matching [`Out::CatchUp`].
    BeginSub(Arc<str>),
    /// One page of the catch-up of the room being subscribed (ascending `message` frames).
    /// `bytes` (their total size) was added to the connection's queued bytes when it was queued;
    /// the writer subtracts it once the page is written.
    CatchUpPage {
        messages: Vec<bytes::Bytes>,
        bytes: usize,
    },
    /// The end of `room`'s catch-up (its pages came before): the `subbed` reply, and the seq up
    /// to which the client now has every message; buffered events at or below it are dropped.
    CatchUp {
        room: Arc<str>,
        subbed: bytes::Bytes,
        upto: u64,
    },
    /// Forget `room` (after `unsub`), then send the reply.
    EndSub {
        room: Arc<str>,
        reply: Option<bytes::Bytes>,
    },
    /// A raw frame: a control frame the transport owes the peer (pong, close echo), or an
    /// echoed message on the echo endpoint. A close frame ends the writer.
    Frame {
        opcode: crate::ws::frame::OpCode,
        payload: Vec<u8>,
    },
    /// Send a close frame with this code and reason, then stop.
    Close { code: u16, reason: &'static str },
}

/// Tells a connection to close itself with a code, from anywhere.
#[derive(Debug, Default)]
pub struct KillSwitch {
    code: AtomicU16,
    notify: Notify,
}

impl KillSwitch {
    /// Asks the connection to close with `code`. The first code wins: returns whether it was
    /// this call's.
    pub fn kill(&self, code: u16) -> bool {
        let first = self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.notify.notify_waiters();
        }
        first
    }

    /// Resolves once [`kill`](Self::kill) was called, with its code. Cancel-safe, and any
    /// number of tasks may wait on one switch.
    pub async fn killed(&self) -> u16 {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a kill between the check and the await is not lost.
            notified.as_mut().enable();
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            notified.await;
        }
    }
}

/// What the registry keeps of a connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub tx: outbox::Sender<Out>,
    pub kill: Arc<KillSwitch>,
    /// The user id, for per-user filtering (`None` when anonymous).
    pub user: Option<Arc<str>>,
    /// The username (`None` when anonymous): presence is kept by username.
    pub username: Option<Arc<str>>,
    pub session: Arc<str>,
    /// Bytes of events queued and not yet written (the writer subtracts what it handled).
    pub queued: Arc<std::sync::atomic::AtomicUsize>,
}

/// One local subscription: the connection, and its hold on the room (see [`Hold`]), given
/// back when the subscription ends, however it ends.
#[derive(Debug)]
struct Sub {
    handle: ConnHandle,
    /// `None` only in tests and benches that deliver without a fanout.
    _hold: Option<Hold>,
}

/// The node's connection registry. Shared as `Arc<Registry>`.
///
/// **Invariant:** a [`Hold`] is never dropped while a `rooms` guard is held: what a method
/// removes is dropped after its guard (see the lock order in `fanout/mod.rs`).
pub struct Registry {
    /// room id → (connection id → subscription). Sharded by dashmap on the room id.
    rooms: DashMap<Arc<str>, HashMap<ConnId, Sub>>,
    /// Every live connection, by id (for shutdown and per-session kills).
    conns: DashMap<ConnId, ConnHandle>,
    next_id: AtomicU64,
    /// Most event bytes queued to one connection before it is killed as a slow consumer.
    max_queued_bytes: usize,
    /// Recent message frames of rooms with local subscribers.
    hot: super::hot::HotWindow,
    /// Fired at shutdown, for connections that are not in `conns` (echo).
    shutdown: Arc<KillSwitch>,
    /// Notified every heartbeat interval by the server (see [`heartbeat`](Self::heartbeat)).
    heartbeat: Notify,
    /// Where [`evict_user`](Self::evict_user) reports the presence it ended (see
    /// [`Evicted`]); set once at start-up.
    evictions: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Evicted>>,
    /// The node's bounds on unfinished fragmented messages (time, and bytes over all its
    /// connections).
    fragments: Arc<crate::ws::transport::FragmentLimits>,
    /// Deliveries, frames out, slow consumers and the fanout latency are counted here.
    metrics: crate::metrics::HubMetrics,
}

/// A user's subscriptions to a room ended on this node (they left a private room): their
/// `connections` here no longer count towards their presence in it. The server turns this into
/// as many presence leaves; a connection whose subscription was evicted never leaves again for
/// it (see `ws/conn.rs`), so joins and leaves stay balanced.
#[derive(Debug)]
pub struct Evicted {
    pub room: Arc<str>,
    pub username: Arc<str>,
    pub connections: usize,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            rooms: DashMap::new(),
            conns: DashMap::new(),
            next_id: AtomicU64::new(1),
            max_queued_bytes: usize::MAX,
            hot: super::hot::HotWindow::new(0),
            shutdown: Arc::default(),
            heartbeat: Notify::new(),
            evictions: std::sync::OnceLock::new(),
            fragments: Arc::new(crate::ws::transport::FragmentLimits::unbounded()),
            metrics: crate::metrics::HubMetrics::disabled(),
        }
    }

    /// Counts deliveries, slow consumers and fanout latency in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::HubMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The node's metrics (the writers and readers of its connections count there too).
    pub fn metrics(&self) -> &crate::metrics::HubMetrics {
        &self.metrics
    }

    /// Rooms with local subscribers, and local subscriptions: one pass over the room map, for
    /// a scrape (not for the hot path).
    pub fn subscription_counts(&self) -> (usize, usize) {
        self.rooms
            .iter()
            .fold((0, 0), |(rooms, subs), room| (rooms + 1, subs + room.len()))
    }

    /// Bounds how long a fragmented message may stay unfinished, and the bytes of unfinished
    /// messages held by all the node's connections together.
    pub fn with_fragment_limits(mut self, timeout: std::time::Duration, max_bytes: usize) -> Self {
        self.fragments = Arc::new(crate::ws::transport::FragmentLimits::new(
            timeout, max_bytes,
        ));
        self
    }

    /// The node's bounds on unfinished fragmented messages.
    pub fn fragment_limits(&self) -> &Arc<crate::ws::transport::FragmentLimits> {
        &self.fragments
    }

    /// Queued bytes up to which a `sub`'s catch-up queues its next page: half the bound, so the
    /// room's live events (counted against the same bound) still fit while it catches up.
    pub fn catch_up_bytes(&self) -> usize {
        self.max_queued_bytes / 2
    }

    /// Sets where evictions are reported (see [`Evicted`]). Called once, at start-up; without it
    /// evictions end subscriptions but report nothing.
    pub fn set_evictions(&self, tx: tokio::sync::mpsc::UnboundedSender<Evicted>) {
        let _ = self.evictions.set(tx);
    }

    /// Whether connection `id` is subscribed to `room` now. A subscription can end without
    /// the connection asking (see [`evict_user`](Self::evict_user)).
    pub fn is_subscribed(&self, id: ConnId, room: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|subs| subs.contains_key(&id))
    }

    /// Queued event bytes at which a connection's writer stops waiting for its coalescing
    /// window (a quarter of the bound).
    pub fn hurry_bytes(&self) -> usize {
        self.max_queued_bytes / 4
    }

    /// Bounds the event bytes queued to each connection (beyond: close 4000).
    pub fn with_queue_bytes(mut self, max: usize) -> Self {
        self.max_queued_bytes = max;
        self
    }

    /// Keeps the last `capacity` messages of each room with local subscribers in memory.
    pub fn with_hot_window(mut self, capacity: usize) -> Self {
        self.hot = super::hot::HotWindow::new(capacity);
        self
    }

    /// The hot window (recent messages of rooms with local subscribers).
    pub fn hot(&self) -> &super::hot::HotWindow {
        &self.hot
    }

    /// Registers a new connection and returns its id.
    pub fn add_conn(&self, handle: ConnHandle) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let kill = handle.kill.clone();
        self.conns.insert(id, handle);
        // A connection that upgraded as the shutdown began registers after `kill_all` went
        // through the map: close it too, or it lives until the grace period cuts it without a
        // close frame. Checked after the insert, so `kill_all` either finds it in the map or its
        // code is seen here.
        let code = self.shutdown.code.load(Ordering::Acquire);
        if code != 0 {
            kill.kill(code);
        }
        id
    }

    /// Removes a connection and all its subscriptions.
    pub fn remove_conn<'a>(&self, id: ConnId, rooms: impl IntoIterator<Item = &'a Arc<str>>) {
        for room in rooms {
            self.unsubscribe(id, room);
        }
        self.conns.remove(&id);
    }

    /// Records who a connection belongs to, once it has said `hello`.
    pub fn identify(&self, id: ConnId, user: Arc<str>, username: Arc<str>, session: Arc<str>) {
        if let Some(mut h) = self.conns.get_mut(&id) {
            h.user = Some(user);
            h.username = Some(username);
            h.session = session;
        }
    }

    /// Records the username of an identified connection (presence is kept by name; see
    /// [`Evicted`]). Must come before its `subscribe`s, which copy the handle.
    pub fn name(&self, id: ConnId, username: &Arc<str>) {
        if let Some(mut h) = self.conns.get_mut(&id) {
            if h.username.as_ref() != Some(username) {
                h.username = Some(username.clone());
            }
        }
    }

    /// Event bytes queued to all connections and not yet written (the hub's fanout memory).
    pub fn queued_bytes(&self) -> usize {
        self.conns
            .iter()
            .map(|h| h.queued.load(Ordering::Relaxed))
            .sum()
    }

    /// Number of live connections on this node.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Adds `id` to `room`'s subscribers, keeping `hold` (the subscription's hold on the room,
    /// from [`super::Fanout::hold`]) until the subscription ends. Returns false, and gives the
    /// hold back at once, if it was subscribed already or the connection is gone.
    pub fn subscribe(&self, id: ConnId, room: &Arc<str>, hold: Option<Hold>) -> bool {
        let mut hold = hold;
        let added = match self.conns.get(&id).map(|h| h.clone()) {
            None => false,
            Some(handle) => {
                let mut subs = self.rooms.entry(room.clone()).or_default();
                match subs.entry(id) {
                    std::collections::hash_map::Entry::Occupied(_) => false,
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(Sub {
                            handle,
                            _hold: hold.take(),
                        });
                        true
                    }
                }
            }
        };
        drop(hold); // after the guard (see the invariant)
        added
    }

    /// Removes `id` from `room`'s subscribers (giving back its hold on the room); returns
    /// whether it was subscribed.
    pub fn unsubscribe(&self, id: ConnId, room: &str) -> bool {
        let mut removed = None;
        let emptied = self
            .rooms
            .remove_if_mut(room, |_, subs| {
                removed = subs.remove(&id);
                subs.is_empty()
            })
            .is_some();
        if emptied {
            self.hot.forget(room);
        }
        // `removed`, with its hold, is dropped here, after the guard.
        removed.is_some()
    }

    /// Queues `event` to every local subscriber of its room it is for (see [`Target`]), without
    /// waiting. Subscribers whose queue is full are killed with close code 4000.
    pub fn deliver(&self, event: &Arc<Event>) {
        let Some(subs) = self.rooms.get(&*event.room) else {
            return;
        };
        // Under the room's shard lock, so the ring and the subscriber set change together.
        match event.kind {
            Kind::Message(seq) => self.hot.record(&event.room, seq, &event.bytes),
            Kind::Rewrite => self.hot.forget(&event.room),
            Kind::Notice => {}
        }
        let mut queued_to = 0;
        for (id, sub) in subs.iter() {
            let handle = &sub.handle;
            let skip = match &event.target {
                Target::Room => false,
                Target::AllBut(conn) => conn == id,
                Target::OthersThan(user) => handle.user.as_ref() == Some(user),
            };
            if skip {
                continue;
            }
            let len = event.bytes.len();
            let before = handle.queued.fetch_add(len, Ordering::AcqRel);
            let queued = before + len;
            let refused = if queued > self.max_queued_bytes {
                true
            } else {
                handle.tx.try_send(Out::Event(event.clone())) == Err(TrySendError::Full)
            };
            if refused {
                handle.queued.fetch_sub(len, Ordering::AcqRel);
                if handle.kill.kill(switchboard_protocol::close::SLOW_CONSUMER) {
                    self.metrics.slow_consumer();
                }
                continue;
            }
            queued_to += 1;
            if before < self.hurry_bytes() && queued >= self.hurry_bytes() {
                // A quarter of the bound is queued: a writer waiting out its coalescing window
                // writes now, so a reader that keeps up is never closed for the window's sake.
                handle.tx.hurry();
            }
        }
        // Once per event, not per subscriber: two atomic adds, and a third for a message of
        // this node (see `Event::queued`).
        self.metrics.delivered(event.frame, queued_to as u64);
        if let Some(took) = event.queued(queued_to) {
            self.metrics.fanout_latency(took);
        }
    }

    /// Ends `user`'s subscriptions to `room` (they left a private room): each of their
    /// connections gets `unsubbed` and stops receiving the room's events, and no longer counts
    /// towards their presence there (reported as [`Evicted`]).
    pub fn evict_user(&self, room: &str, user: &str) {
        let mut evicted: Vec<Sub> = Vec::new();
        if let Some(mut subs) = self.rooms.get_mut(room) {
            let hits: Vec<ConnId> = subs
                .iter()
                .filter(|(_, sub)| sub.handle.user.as_deref() == Some(user))
                .map(|(id, _)| *id)
                .collect();
            evicted.extend(hits.iter().filter_map(|id| subs.remove(id)));
        }
        // Their holds are given back first, with no guard held: once a connection hears
        // `unsubbed`, the node's holds no longer count its subscription.
        let evicted: Vec<ConnHandle> = evicted.into_iter().map(|sub| sub.handle).collect();
        let room: Arc<str> = room.into();
        if let (Some(first), Some(tx)) = (evicted.first(), self.evictions.get()) {
            if let Some(username) = first.username.clone() {
                let _ = tx.send(Evicted {
                    room: room.clone(),
                    username,
                    connections: evicted.len(),
                });
            }
        }
        for h in &evicted {
            self.metrics
                .server_frames(crate::metrics::ServerType::Unsubbed, 1);
            let reply = switchboard_protocol::ws::ServerFrame::Unsubbed {
                id: None,
                room: room.to_string(),
            }
            .to_bytes();
            if h.tx
                .try_send(Out::EndSub {
                    room: room.clone(),
                    reply: Some(reply),
                })
                .is_err()
                && h.kill.kill(switchboard_protocol::close::SLOW_CONSUMER)
            {
                self.metrics.slow_consumer();
            }
        }
        if self
            .rooms
            .remove_if(&*room, |_, subs| subs.is_empty())
            .is_some()
        {
            self.hot.forget(&room);
        }
    }

    /// Queues `bytes` (one serialised frame of type `frame`) to every live connection of this
    /// node, subscribed or not, without waiting; returns how many. A scan of all connections:
    /// broadcasts are rare (an admin changed the emoticons). Each gets a clone of the same
    /// bytes; a connection whose queue is full is killed with close code 4000, as for events.
    pub fn broadcast(&self, bytes: &bytes::Bytes, frame: crate::metrics::ServerType) -> usize {
        let mut n = 0;
        for entry in self.conns.iter() {
            if entry.tx.try_send(Out::Reply(bytes.clone())).is_ok() {
                n += 1;
            } else if entry.kill.kill(switchboard_protocol::close::SLOW_CONSUMER) {
                self.metrics.slow_consumer();
            }
        }
        self.metrics.server_frames(frame, n as u64);
        n
    }

    /// Kills every connection of `session` with `code`; returns how many.
    pub fn kill_session(&self, session: &str, code: u16) -> usize {
        self.kill_sessions_where(|s| s == session, code)
    }

    /// Kills every connection of the user named `username` with `code`; returns how many. A scan
    /// of all connections, like [`kill_sessions_where`](Self::kill_sessions_where): the server
    /// API's disconnects are rare.
    pub fn kill_user(&self, username: &str, code: u16) -> usize {
        let mut n = 0;
        for entry in self.conns.iter() {
            if entry.username.as_deref() == Some(username) {
                entry.kill.kill(code);
                n += 1;
            }
        }
        n
    }

    /// Kills every connection whose session matches `pred` with `code`; returns how many.
    /// A scan of all connections: revocations are rare, so no session index is kept.
    pub fn kill_sessions_where(&self, pred: impl Fn(&str) -> bool, code: u16) -> usize {
        let mut n = 0;
        for entry in self.conns.iter() {
            if pred(&entry.session) {
                entry.kill.kill(code);
                n += 1;
            }
        }
        n
    }

    /// The node's heartbeat: the server notifies every waiter once per `--heartbeat-ms`, and
    /// each connection's writer pings its peer (or drops a silent one) on it. One timer for the
    /// node, not one per connection.
    pub fn heartbeat(&self) -> &Notify {
        &self.heartbeat
    }

    /// A switch that fires when [`kill_all`](Self::kill_all) is called.
    pub fn shutdown_switch(&self) -> Arc<KillSwitch> {
        self.shutdown.clone()
    }

    /// Kills every connection with `code` (shutdown).
    pub fn kill_all(&self, code: u16) {
        self.shutdown.kill(code);
        for entry in self.conns.iter() {
            entry.kill.kill(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(reg: &Registry, queue: usize) -> (ConnId, outbox::Receiver<Out>, Arc<KillSwitch>) {
        let (tx, rx) = outbox::outbox(queue);
        let kill = Arc::new(KillSwitch::default());
        let id = reg.add_conn(ConnHandle {
            tx,
            kill: kill.clone(),
            user: None,
            username: None,
            session: "s".into(),
            queued: Arc::default(),
        });
        (id, rx, kill)
    }

    fn event(room: &str) -> Arc<Event> {
        Arc::new(Event::from_parts(
            room.into(),
            Kind::Message(1),
            bytes::Bytes::from_static(b"{}"),
            Target::Room,
            crate::metrics::ServerType::Message,
        ))
    }

    #[tokio::test]
    async fn delivers_the_same_bytes_to_subscribers_only() {
        let reg = Registry::new();
        let room: Arc<str> = "r".into();
        let (a, mut rx_a, _) = conn(&reg, 4);
        let (_b, mut rx_b, _) = conn(&reg, 4);
        reg.subscribe(a, &room, None);
        let ev = event("r");
        reg.deliver(&ev);
        match rx_a.try_recv() {
            Some(Out::Event(got)) => assert!(Arc::ptr_eq(&got, &ev), "shared, not copied"),
            other => panic!("expected the event, got {other:?}"),
        }
        assert!(rx_b.try_recv().is_none(), "not subscribed");
        assert!(reg.unsubscribe(a, "r"));
        reg.deliver(&event("r"));
        assert!(rx_a.try_recv().is_none(), "unsubscribed");
    }

    #[tokio::test]
    async fn a_full_queue_kills_only_the_slow_consumer() {
        let reg = Registry::new();
        let room: Arc<str> = "r".into();
        let (slow, _rx_slow, kill_slow) = conn(&reg, 2);
        let (fast, mut rx_fast, kill_fast) = conn(&reg, 16);
        reg.subscribe(slow, &room, None);
        reg.subscribe(fast, &room, None);
        for _ in 0..3 {
            reg.deliver(&event("r"));
            while rx_fast.try_recv().is_some() {}
        }
        assert_eq!(
            kill_slow.killed().await,
            switchboard_protocol::close::SLOW_CONSUMER
        );
        use futures_util::FutureExt;
        assert_eq!(
            kill_fast.killed().now_or_never(),
            None,
            "the fast subscriber is untouched"
        );
    }

    #[tokio::test]
    async fn a_queue_over_its_byte_bound_kills_the_connection() {
        let reg = Registry::new().with_queue_bytes(5);
        let room: Arc<str> = "r".into();
        let (id, mut rx, kill) = conn(&reg, 1024);
        reg.subscribe(id, &room, None);
        reg.deliver(&event("r")); // 2 bytes queued
        reg.deliver(&event("r")); // 4
        use futures_util::FutureExt;
        assert_eq!(kill.killed().now_or_never(), None, "within the bound");
        reg.deliver(&event("r")); // 6 > 5: refused
        assert_eq!(
            kill.killed().now_or_never(),
            Some(switchboard_protocol::close::SLOW_CONSUMER)
        );
        let mut queued = 0;
        while let Some(Out::Event(_)) = rx.try_recv() {
            queued += 1;
        }
        assert_eq!(queued, 2, "the refused event was not queued");
    }

    #[test]
    fn a_connection_registered_after_kill_all_is_killed_too() {
        let reg = Registry::new();
        let (_, _rx, before) = conn(&reg, 4);
        reg.kill_all(1012);
        let (_, _rx, after) = conn(&reg, 4);
        assert_eq!(before.code.load(Ordering::Acquire), 1012);
        assert_eq!(
            after.code.load(Ordering::Acquire),
            1012,
            "upgraded during shutdown"
        );
    }
}
