//! [`Broker`] over Redis pub/sub: one channel per room (`{prefix}room:{id}`), one pub/sub
//! connection per node multiplexing every room, and one connection for publishing.
//!
//! - The node subscribes to a room's channel while it has local subscribers (holds are counted
//!   in `rooms`; a single task reconciles the wanted set with Redis, so subscribe/unsubscribe
//!   races resolve to the latest wish).
//! - Events published by this node are delivered to its own subscribers directly and ignored
//!   when Redis echoes them back (the payload names the origin node).
//! - Message events go through the `Sequencer`, which restores seq order across nodes and
//!   fills gaps from the store. After a lost connection the node reconnects with backoff,
//!   resubscribes, and fills every room from the store, so no seq is skipped.
//!
//! Delivery between nodes is at-most-once; the store fills the rest.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use switchboard_kit::backoff::Backoff;
use switchboard_protocol::limits::MAX_HISTORY_LIMIT;
use switchboard_protocol::Seq;
use tokio::sync::{mpsc, watch};

use super::sequencer::{Next, Sequencer};
use super::{Broker, BrokerError, Event};
use crate::registry::Registry;
use crate::store::{Page, Store};

/// How long an out-of-order event waits for the missing seqs before the store is asked.
const GAP_WAIT: Duration = Duration::from_millis(30);
/// Capacity of the publish queue; when Redis is slower than this the newest events are dropped
/// (receivers fill them from the store).
const PUBLISH_QUEUE: usize = 65_536;
/// Most PUBLISH commands pipelined in one round trip.
const PUBLISH_BATCH: usize = 256;
/// Pauses between attempts to (re)connect the pub/sub connection: 50 ms doubling to 5 s,
/// jittered so that nodes that lost Redis together do not come back in lockstep.
const RECONNECT: Backoff = Backoff::doubling(Duration::from_millis(50), Duration::from_secs(5));

/// Settings of the Redis broker.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Prefix of every channel name.
    pub prefix: String,
    /// This node's id (events from it are not delivered twice).
    pub node: String,
    /// Bound on waiting for a subscription before `sub` fails with `unavailable`.
    pub timeout: Duration,
}

/// A room this node holds: how many local subscriptions, and whether its events flow.
struct RoomHold {
    refs: usize,
    ready: watch::Sender<bool>,
}

struct Inner {
    cfg: RedisConfig,
    client: ::redis::Client,
    holds: Mutex<HashMap<Arc<str>, RoomHold>>,
    reconcile: mpsc::UnboundedSender<Arc<str>>,
    publish: mpsc::Sender<(String, Vec<u8>)>,
    seq: Sequencer,
    store: Arc<dyn Store>,
}

/// The Redis broker. Cheap to clone.
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisStartError(#[from] ::redis::RedisError);

impl RedisBroker {
    /// Connects (the publishing connection must be reachable at start) and starts the pub/sub
    /// and publishing tasks. They stop when the last clone is dropped... or with the runtime.
    pub async fn start(
        cfg: RedisConfig,
        registry: Arc<Registry>,
        store: Arc<dyn Store>,
    ) -> Result<Self, RedisStartError> {
        let client = ::redis::Client::open(cfg.url.as_str())?;
        let conn = ::redis::aio::ConnectionManager::new(client.clone()).await?;
        let (reconcile_tx, reconcile_rx) = mpsc::unbounded_channel();
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let inner = Arc::new(Inner {
            cfg,
            client,
            holds: Mutex::new(HashMap::new()),
            reconcile: reconcile_tx,
            publish: publish_tx,
            seq: Sequencer::new(registry),
            store,
        });
        tokio::spawn(publisher(conn, publish_rx));
        tokio::spawn(subscriber(Arc::downgrade(&inner), reconcile_rx));
        Ok(Self { inner })
    }
}

impl Inner {
    fn channel(&self, room: &str) -> String {
        format!("{}room:{room}", self.cfg.prefix)
    }

    fn holds(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, RoomHold>> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn offer(self: &Arc<Self>, ev: Arc<Event>) {
        let room = ev.room.clone();
        if self.seq.offer(ev) == Next::ScheduleFill {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(GAP_WAIT).await;
                me.fill(&room).await;
            });
        }
    }

    /// Reads what the room's sequencer is missing from the store and delivers it.
    async fn fill(&self, room: &str) {
        let Some(mut after) = self.seq.fill_from(room) else {
            return;
        };
        let mut found = Vec::new();
        loop {
            let page = Page {
                before: None,
                after: Some(after),
                limit: MAX_HISTORY_LIMIT,
            };
            match self.store.messages(room, page).await {
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
        self.seq.apply_fill(room, found);
    }

    /// Marks a held room ready after its subscription is confirmed.
    async fn init_room(self: &Arc<Self>, room: &Arc<str>) {
        let last: Seq = match self.store.room(room).await {
            Ok(r) => r.map_or(0, |r| r.last_seq),
            Err(e) => {
                tracing::warn!(room = %room, error = %e, "cannot read the room's last seq");
                return;
            }
        };
        if self.seq.init(room, last) == Next::ScheduleFill {
            self.fill(room).await;
        }
        if let Some(hold) = self.holds().get(room) {
            hold.ready.send_replace(true);
        }
    }
}

#[async_trait::async_trait]
impl Broker for RedisBroker {
    fn publish(&self, event: Arc<Event>) {
        let inner = &self.inner;
        let payload = encode(&inner.cfg.node, &event);
        inner.offer(event.clone());
        if inner
            .publish
            .try_send((inner.channel(&event.room), payload))
            .is_err()
        {
            tracing::warn!(room = %event.room, "publish queue full; remote nodes will fill from the store");
        }
    }

    async fn acquire(&self, room: &Arc<str>) -> Result<(), BrokerError> {
        let mut ready = {
            let mut holds = self.inner.holds();
            let hold = holds.entry(room.clone()).or_insert_with(|| RoomHold {
                refs: 0,
                ready: watch::channel(false).0,
            });
            hold.refs += 1;
            if hold.refs == 1 {
                self.inner.seq.track(room);
                let _ = self.inner.reconcile.send(room.clone());
            }
            hold.ready.subscribe()
        };
        let flowing = matches!(
            tokio::time::timeout(self.inner.cfg.timeout, ready.wait_for(|r| *r)).await,
            Ok(Ok(_))
        );
        if flowing {
            Ok(())
        } else {
            Err(BrokerError::Unavailable)
        }
    }

    fn release(&self, room: &str) {
        let mut holds = self.inner.holds();
        let Some(hold) = holds.get_mut(room) else {
            return;
        };
        hold.refs -= 1;
        if hold.refs == 0 {
            let (room, _) = holds.remove_entry(room).expect("present");
            self.inner.seq.untrack(&room);
            let _ = self.inner.reconcile.send(room);
        }
    }
}

/// Payload on a room channel: `node\nseq\nskip_user\nevict_user\n` then the frame's JSON.
/// (`skip_conn` is node-local and never crosses nodes.)
fn encode(node: &str, ev: &Event) -> Vec<u8> {
    let seq = ev.seq.map_or_else(|| "-".to_string(), |s| s.to_string());
    let header = format!(
        "{node}\n{seq}\n{}\n{}\n",
        ev.skip_user.as_deref().unwrap_or("-"),
        ev.evict_user.as_deref().unwrap_or("-")
    );
    let mut out = Vec::with_capacity(header.len() + ev.bytes.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&ev.bytes);
    out
}

/// Decodes a payload into its origin node and event; `None` if malformed.
fn decode(room: &str, payload: &[u8]) -> Option<(String, Event)> {
    let mut parts = payload.splitn(5, |b| *b == b'\n');
    let node = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let field = |b: &[u8]| -> Option<Option<String>> {
        let s = std::str::from_utf8(b).ok()?;
        Some((s != "-").then(|| s.to_owned()))
    };
    let seq = field(parts.next()?)?
        .map(|s| s.parse::<Seq>())
        .transpose()
        .ok()?;
    let skip_user = field(parts.next()?)?.map(Into::into);
    let evict_user = field(parts.next()?)?.map(Into::into);
    let bytes = bytes::Bytes::copy_from_slice(parts.next()?);
    Some((
        node,
        Event {
            room: room.into(),
            seq,
            bytes,
            skip_conn: None,
            skip_user,
            evict_user,
        },
    ))
}

/// Publishes queued events, pipelining bursts into one round trip.
async fn publisher(
    mut conn: ::redis::aio::ConnectionManager,
    mut rx: mpsc::Receiver<(String, Vec<u8>)>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut pipe = ::redis::pipe();
        for (channel, payload) in batch.drain(..) {
            pipe.publish(channel, payload).ignore();
        }
        let mut result = pipe.query_async::<()>(&mut conn).await;
        // A connection that broke while idle (Redis restarted) is only found out by its next
        // use, which fails and replaces it. Send that batch again on the new connection: other
        // nodes have refilled from the store already, so a lost event would reach them only with
        // the room's next message, never if it was the last. (Not after a timeout: the batch may
        // still be delivered late, and a hung Redis gains nothing from a second copy.)
        if matches!(&result, Err(e) if e.is_connection_dropped()) {
            result = pipe.query_async::<()>(&mut conn).await;
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "redis publish failed; remote nodes will fill from the store");
        }
    }
}

/// Owns the pub/sub connection: (re)connects with backoff, reconciles subscriptions with the
/// held rooms, and hands received events to the sequencer.
async fn subscriber(
    inner: std::sync::Weak<Inner>,
    mut reconcile: mpsc::UnboundedReceiver<Arc<str>>,
) {
    let mut retries = RECONNECT.retries();
    loop {
        let Some(me) = inner.upgrade() else { return };
        let pubsub = match me.client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                let delay = retries.next_delay();
                tracing::warn!(error = %e, ?delay, "redis pub/sub connect failed; retrying");
                drop(me);
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        retries.reset();
        let (mut sink, mut stream) = pubsub.split();
        let mut subscribed: HashSet<Arc<str>> = HashSet::new();
        // Resubscribe everything held, then fill each room from the store.
        let held: Vec<Arc<str>> = me.holds().keys().cloned().collect();
        let mut ok = true;
        for room in &held {
            if let Err(e) = sink.subscribe(me.channel(room)).await {
                tracing::warn!(error = %e, "resubscribe failed");
                ok = false;
                break;
            }
            subscribed.insert(room.clone());
        }
        if ok {
            for room in &held {
                if me.seq.is_ready(room) {
                    me.fill(room).await;
                } else {
                    me.init_room(room).await;
                }
            }
            tracing::info!(rooms = held.len(), "redis pub/sub connected");
        }
        let prefix = format!("{}room:", me.cfg.prefix);
        drop(me);
        while ok {
            tokio::select! {
                room = reconcile.recv() => {
                    let Some(room) = room else { return };
                    let Some(me) = inner.upgrade() else { return };
                    let wanted = me.holds().contains_key(&room);
                    let result = if wanted && !subscribed.contains(&room) {
                        sink.subscribe(me.channel(&room)).await.map(|()| { subscribed.insert(room.clone()); })
                    } else if !wanted && subscribed.contains(&room) {
                        sink.unsubscribe(me.channel(&room)).await.map(|()| { subscribed.remove(&room); })
                    } else {
                        Ok(())
                    };
                    match result {
                        Err(e) => {
                            tracing::warn!(error = %e, "redis (un)subscribe failed; reconnecting");
                            ok = false;
                        }
                        Ok(()) if wanted && !me.seq.is_ready(&room) => me.init_room(&room).await,
                        Ok(()) => {}
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        tracing::warn!("redis pub/sub connection lost; reconnecting");
                        break;
                    };
                    let Some(me) = inner.upgrade() else { return };
                    let Some(room) = msg.get_channel_name().strip_prefix(&prefix) else { continue };
                    match decode(room, msg.get_payload_bytes()) {
                        Some((node, _)) if node == me.cfg.node => {}
                        Some((_, ev)) => me.offer(Arc::new(ev)),
                        None => tracing::warn!(room, "undecodable event on the room channel"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let ev = Event {
            room: "r".into(),
            seq: Some(42),
            bytes: bytes::Bytes::from_static(b"{\"type\":\"message\"}\n"),
            skip_conn: Some(7),
            skip_user: Some("u1".into()),
            evict_user: None,
        };
        let (node, back) = decode("r", &encode("hub-1", &ev)).unwrap();
        assert_eq!(node, "hub-1");
        assert_eq!((back.seq, back.skip_conn), (Some(42), None));
        assert_eq!(back.skip_user.as_deref(), Some("u1"));
        assert_eq!(back.evict_user, None);
        assert_eq!(back.bytes, ev.bytes);
        assert!(decode("r", b"garbage").is_none());
    }
}
