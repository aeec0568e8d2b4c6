//! Delivery: how an event reaches every subscriber of its room, on this node and on the others.
//!
//! [`Fanout`] is the one way in. It holds this node's [`Registry`] (local connections and their
//! subscriptions, with the hot window), a [`Sequencer`] in front of whichever [`Broker`] links
//! the nodes, and the store (read only: to start a room's sequence and to fill its gaps).
//!
//! - **Messages** come from the store, never from a caller: the store hands each committed batch
//!   through a channel ([`Fanout::spawn_commits`]), a room's messages in seq order. No caller code
//!   runs on a store's writer.
//! - **Other events** (edits, typing, presence, membership) are published by the service with
//!   [`Fanout::publish`]; **evictions** (a user left a private room) are a command of their own,
//!   [`Fanout::evict`].
//! - Both go to local subscribers at once and to the other nodes through the broker, whose
//!   commands come back in through [`Inbound`].
//! - **Subscribing** takes a [`Hold`] on the room ([`Fanout::hold`]); the room's events flow to
//!   this node while a hold on it lives, and the hold releases the room when dropped.
//!
//! # Lock order
//! `holds` → `Sequencer::rooms` → a `Registry` room shard → the hot window's ring → a
//! connection's outbox. Each lock is taken only while holding locks to its left, never to its
//! right, so none can deadlock:
//! - a room's events are delivered under the sequencer's lock (that is what keeps them in seq
//!   order), which takes the room's registry shard and queues into outboxes;
//! - a [`Hold`] is dropped only with no registry guard held (the registry collects what it
//!   removes and drops it after the guard), because dropping the last one takes `holds` and then
//!   the sequencer's lock;
//! - an eviction runs outside the sequencer's lock (it is not an event).

mod event;
pub mod hot;
pub mod outbox;
pub mod registry;
mod sequencer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_protocol::limits::MAX_HISTORY_LIMIT;
use tokio::sync::mpsc;

pub use event::{Command, Event, Kind, Target, CONTROL_ROOM};
pub use registry::{ConnHandle, ConnId, Evicted, KillSwitch, Out, Registry};
use switchboard_protocol::close;

use crate::broker::{Broker, BrokerError};
use crate::store::{Committed, Page, Store};
use sequencer::{Next, Sequencer};

/// Batches of committed messages the channel from a store to [`Fanout::spawn_commits`] holds
/// before the store's writer waits (back-pressure on senders); a batch is at most
/// `--batch-max-size` messages on PostgreSQL and 512 on SQLite.
pub const COMMIT_QUEUE: usize = 256;

/// How long an out-of-order message waits for the missing seqs before the store is asked.
const GAP_WAIT: Duration = Duration::from_millis(30);

/// What a broker hands the fanout from the other nodes.
#[derive(Debug)]
pub enum Inbound {
    /// A command published by another node.
    Command(Command),
    /// The broker lost the room's commands for a while (its connection broke) and gets them
    /// again: what was missed is read from the store.
    Resumed(Arc<str>),
}

/// The node's delivery. Cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    holds: Arc<Holds>,
    store: Arc<dyn Store>,
    /// Where a gap fill finds the attachments of the messages it reads (see
    /// [`Fanout::set_media`]).
    media: std::sync::OnceLock<Arc<dyn crate::media::index::MediaIndex>>,
}

/// Holds on rooms, counted per room: the room is tracked by the sequencer while it has one.
struct Holds {
    counts: Mutex<HashMap<Arc<str>, usize>>,
    sequencer: Sequencer,
    broker: Arc<dyn Broker>,
}

impl Holds {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, room: &Arc<str>) {
        {
            let mut counts = self.counts();
            if let Some(n) = counts.get_mut(room) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(room);
                    self.sequencer.untrack(room);
                }
            }
        }
        self.broker.release(room);
    }
}

/// One subscription's hold on a room (see [`Fanout::hold`]). Dropping it gives the hold back;
/// after the node's last one the room's events stop flowing here.
///
/// **Invariant:** never dropped under a registry guard (see the module's lock order).
pub struct Hold {
    room: Arc<str>,
    holds: Arc<Holds>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("room", &self.room).finish()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.holds.release(&self.room);
    }
}

impl Fanout {
    /// The fanout of a node: local delivery into `registry`, other nodes through `broker`, whose
    /// commands arrive on `inbound`. Spawns the task that applies them.
    pub fn start(
        registry: Arc<Registry>,
        broker: Arc<dyn Broker>,
        store: Arc<dyn Store>,
        inbound: mpsc::UnboundedReceiver<Inbound>,
    ) -> Self {
        let fanout = Self {
            inner: Arc::new(Inner {
                registry,
                holds: Arc::new(Holds {
                    counts: Mutex::new(HashMap::new()),
                    sequencer: Sequencer::new(),
                    broker,
                }),
                store,
                media: std::sync::OnceLock::new(),
            }),
        };
        tokio::spawn(fanout.clone().apply_inbound(inbound));
        fanout
    }

    /// The node's connections and subscriptions.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Publishes every message a store commits (received through the store's
    /// [`CommitSender`](crate::store::CommitSender)) as a `message` event, in the order
    /// received, which keeps each room's seq order.
    ///
    /// It runs on a thread of its own, not on a runtime worker: a message to a large room is
    /// thousands of queue pushes and task wakes, and from outside the runtime those wakes go to
    /// the shared queue that every worker drains, so both cores write sockets while this thread
    /// fans out (on a worker, one core would do the loop and the woken tasks would pile up on its
    /// own queue). The thread holds the fanout weakly and ends when the store drops its sender,
    /// which happens when the node's last handle on the fanout and the store is gone.
    pub fn spawn_commits(
        &self,
        mut commits: mpsc::Receiver<Vec<Committed>>,
    ) -> std::thread::JoinHandle<()> {
        let me = Arc::downgrade(&self.inner);
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("fanout".into())
            .spawn(move || {
                while let Some(batch) = commits.blocking_recv() {
                    let Some(inner) = me.upgrade() else { return };
                    let fanout = Fanout { inner };
                    // Gap fills and the broker's queue need the runtime's context.
                    let _context = runtime.enter();
                    for Committed { message, at, .. } in batch {
                        fanout.publish(Event::committed(message, at));
                    }
                }
            })
            .expect("a thread for the fanout")
    }

    /// Delivers `event` to the room's subscribers on every node (locally at once).
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        self.inner
            .holds
            .broker
            .publish(&Command::Deliver(event.clone()));
        self.offer(event);
    }

    /// Ends `user`'s subscriptions to `room` on every node (they left a private room). Published
    /// after the event that says so, it reaches every node after it.
    pub fn evict(&self, room: &str, user: &str) {
        let (room, user): (Arc<str>, Arc<str>) = (room.into(), user.into());
        self.inner.registry.evict_user(&room, &user);
        self.inner
            .holds
            .broker
            .publish(&Command::Evict { room, user });
    }

    /// Closes every connection of the user named `username` with `4001`, on this node at once
    /// and on the others through the broker's control channel ([`CONTROL_ROOM`]); returns how
    /// many this node closed.
    pub fn disconnect(&self, username: &str) -> usize {
        let user: Arc<str> = username.into();
        let n = self.inner.registry.kill_user(&user, close::DISCONNECTED);
        self.inner.holds.broker.publish(&Command::Disconnect {
            room: CONTROL_ROOM.into(),
            user,
        });
        n
    }

    /// Queues `frame` to every connection (authenticated or anonymous, greeted or not), on this
    /// node at once and on the others through the broker's control channel ([`CONTROL_ROOM`]).
    /// The frame is serialised once; every connection gets a clone of the same bytes. Returns
    /// how many local connections it was queued to.
    pub fn broadcast(&self, frame: &switchboard_protocol::ws::ServerFrame) -> usize {
        let bytes = frame.to_bytes();
        let kind = crate::metrics::ServerType::of(frame);
        let n = self.inner.registry.broadcast(&bytes, kind);
        self.inner.holds.broker.publish(&Command::Broadcast {
            room: CONTROL_ROOM.into(),
            bytes,
            frame: kind,
        });
        n
    }

    /// Follows the broker's control channel ([`CONTROL_ROOM`]) for the node's life, so that
    /// commands for every node ([`Command::Disconnect`]) reach this one. If the broker cannot
    /// confirm it now, it keeps trying (a Redis broker re-subscribes what is held).
    pub async fn follow_control(&self) {
        if let Err(e) = self.inner.holds.broker.acquire(&CONTROL_ROOM.into()).await {
            tracing::warn!(error = %e, "control channel not confirmed yet; the broker retries");
        }
    }

    /// Takes a hold on `room` for a new local subscription. Resolves once the room's events from
    /// every node reach this node in seq order, so that a store read after it misses nothing: a
    /// message the read does not see is delivered live after it.
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] if the broker cannot confirm the room in bounded time, or
    /// the store cannot say where the room's sequence stands.
    pub async fn hold(&self, room: &Arc<str>) -> Result<Hold, BrokerError> {
        let holds = &self.inner.holds;
        {
            let mut counts = holds.counts();
            let n = counts.entry(room.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                holds.sequencer.track(room);
            }
        }
        // Made now, so that every return below gives the hold back.
        let hold = Hold {
            room: room.clone(),
            holds: holds.clone(),
        };
        holds.broker.acquire(room).await?;
        if !holds.sequencer.is_ready(room) {
            // Every holder reads the room's last seq after some `init` is done (its own or a
            // concurrent one, which read an older or equal seq): messages up to it were
            // dropped by the sequencer and are the holder's catch-up; later ones flow live.
            let last = match self.inner.store.room(room).await {
                Ok(r) => r.map_or(0, |r| r.last_seq),
                Err(e) => {
                    tracing::warn!(room = %room, error = %e, "cannot read the room's last seq");
                    return Err(BrokerError::Unavailable);
                }
            };
            if holds.sequencer.init(room, last, &self.inner.registry) == Next::ScheduleFill {
                self.fill(room).await;
            }
        }
        Ok(hold)
    }

    fn offer(&self, event: Arc<Event>) {
        let room = event.room.clone();
        let next = self
            .inner
            .holds
            .sequencer
            .offer(event, &self.inner.registry);
        if next == Next::ScheduleFill {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(GAP_WAIT).await;
                me.fill(&room).await;
            });
        }
    }

    async fn apply_inbound(self, mut inbound: mpsc::UnboundedReceiver<Inbound>) {
        while let Some(item) = inbound.recv().await {
            match item {
                Inbound::Command(Command::Deliver(event)) => self.offer(event),
                Inbound::Command(Command::Evict { room, user }) => {
                    self.inner.registry.evict_user(&room, &user);
                }
                Inbound::Command(Command::Disconnect { user, .. }) => {
                    let n = self.inner.registry.kill_user(&user, close::DISCONNECTED);
                    tracing::info!(user = %user, closed = n, "disconnected by the server API");
                }
                Inbound::Command(Command::Broadcast { bytes, frame, .. }) => {
                    self.inner.registry.broadcast(&bytes, frame);
                }
                Inbound::Resumed(room) => {
                    if self.inner.holds.sequencer.is_ready(&room) {
                        let me = self.clone();
                        tokio::spawn(async move { me.fill(&room).await });
                    }
                }
            }
        }
    }

    /// Lets gap fills carry the attachments of the messages they read from the store (set once,
    /// by the node, before any room is followed).
    pub fn set_media(&self, index: Arc<dyn crate::media::index::MediaIndex>) {
        let _ = self.inner.media.set(index);
    }

    /// Reads what the room's sequencer is missing from the store and delivers it; reads again
    /// (after [`GAP_WAIT`]) while a gap stands behind an event that arrived during the read.
    async fn fill(&self, room: &str) {
        let sequencer = &self.inner.holds.sequencer;
        loop {
            let Some(start) = sequencer.fill_from(room) else {
                return;
            };
            let mut after = start.after;
            let mut found = Vec::new();
            loop {
                let page = Page {
                    before: None,
                    after: Some(after),
                    limit: MAX_HISTORY_LIMIT,
                };
                let read = self.inner.store.messages(room, page).await;
                let read = match (read, self.inner.media.get()) {
                    (Ok(batch), Some(index)) => {
                        crate::media::attachments::fill(&**index, room, batch).await
                    }
                    (other, _) => other,
                };
                match read {
                    Ok(batch) => {
                        let done = batch.len() < MAX_HISTORY_LIMIT as usize;
                        after = batch.last().map_or(after, |m| m.seq);
                        found.extend(batch);
                        if done {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(room, error = %e, "gap fill failed; delivering what arrived");
                        break;
                    }
                }
            }
            if sequencer.apply_fill(room, start, found, &self.inner.registry) != Next::ScheduleFill
            {
                return;
            }
            tokio::time::sleep(GAP_WAIT).await;
        }
    }

    /// The hold count of `room` on this node (for tests of hold balance).
    #[cfg(test)]
    pub fn holds_of(&self, room: &str) -> usize {
        self.inner.holds.counts().get(room).copied().unwrap_or(0)
    }
}
