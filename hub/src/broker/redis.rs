//! [`Broker`] over Redis pub/sub: one channel per room (`{prefix}room:{id}`), one pub/sub
//! connection per node multiplexing every room, and one connection for publishing.
//!
//! - The node subscribes to a room's channel while it has local subscribers (holds are counted
//!   in `rooms`; a single task reconciles the wanted set with Redis, so subscribe/unsubscribe
//!   races resolve to the latest wish).
//! - Commands published by this node were delivered to its own subscribers by the fanout; they
//!   are ignored when Redis echoes them back (the payload names the origin node).
//! - Commands from other nodes go to the fanout's [`Inbound`] channel, whose sequencer restores
//!   seq order across nodes and fills gaps from the store. After a lost connection the node
//!   reconnects with backoff, resubscribes, and reports each room [`Inbound::Resumed`], so the
//!   fanout fills what was missed and no seq is skipped.
//!
//! Delivery between nodes is at-most-once; the store fills the rest.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use switchboard_kit::backoff::Backoff;
use switchboard_protocol::Seq;
use tokio::sync::{mpsc, watch};

use super::{Broker, BrokerError};
use crate::fanout::{Command, Event, Inbound, Kind, Target};
use crate::metrics::ServerType;
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
    /// Where reconnects and the lag of received messages are recorded.
    pub metrics: crate::metrics::HubMetrics,
}

/// A room this node holds: how many holds, and whether its channel is subscribed.
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
    inbound: mpsc::UnboundedSender<Inbound>,
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
    /// and publishing tasks, which hand other nodes' commands to `inbound`. They stop when the
    /// last clone is dropped... or with the runtime.
    pub async fn start(
        cfg: RedisConfig,
        inbound: mpsc::UnboundedSender<Inbound>,
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
            inbound,
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

    /// The room's channel is subscribed: its holders may go on.
    fn flowing(&self, room: &str) {
        if let Some(hold) = self.holds().get(room) {
            hold.ready.send_replace(true);
        }
    }
}

#[async_trait::async_trait]
impl Broker for RedisBroker {
    fn publish(&self, command: &Command) {
        let inner = &self.inner;
        let payload = encode(&inner.cfg.node, command);
        if inner
            .publish
            .try_send((inner.channel(command.room()), payload))
            .is_err()
        {
            tracing::warn!(room = %command.room(), "publish queue full; remote nodes will fill from the store");
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
            let _ = self.inner.reconcile.send(room);
        }
    }
}

/// Payload on a room channel: `{node}\n` then either `D\n{kind}\n{skip_user}\n` and the
/// frame's JSON (deliver; kind `m{seq}`, `r` rewrite or `n` notice; skip_user `-` for none), or
/// `E\n{user}` (evict), or `X\n{user}` (disconnect, on the control channel), or `B\n` and the
/// frame's JSON (a broadcast to every connection, on the control channel). A target of one local connection is node-local and crosses as the room.
fn encode(node: &str, command: &Command) -> Vec<u8> {
    match command {
        Command::Deliver(ev) => {
            let kind = match ev.kind {
                Kind::Message(seq) => format!("m{seq}"),
                Kind::Rewrite => "r".to_owned(),
                Kind::Notice => "n".to_owned(),
            };
            let skip_user = match &ev.target {
                Target::OthersThan(user) => user,
                Target::Room | Target::AllBut(_) => "-",
            };
            let header = format!("{node}\nD\n{kind}\n{skip_user}\n");
            let mut out = Vec::with_capacity(header.len() + ev.bytes.len());
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&ev.bytes);
            out
        }
        Command::Evict { user, .. } => format!("{node}\nE\n{user}").into_bytes(),
        Command::Disconnect { user, .. } => format!("{node}\nX\n{user}").into_bytes(),
        Command::Broadcast { bytes, .. } => {
            let header = format!("{node}\nB\n");
            let mut out = Vec::with_capacity(header.len() + bytes.len());
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(bytes);
            out
        }
    }
}

/// Decodes a payload into its origin node and command; `None` if malformed.
fn decode(room: &str, payload: &[u8]) -> Option<(String, Command)> {
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    let mut parts = payload.splitn(2, |b| *b == b'\n');
    let node = text(parts.next()?)?;
    let rest = parts.next()?;
    let room: Arc<str> = room.into();
    if let Some(user) = rest.strip_prefix(b"X\n") {
        let user = text(user).filter(|u| !u.is_empty())?;
        return Some((
            node,
            Command::Disconnect {
                room,
                user: user.into(),
            },
        ));
    }
    if let Some(frame) = rest.strip_prefix(b"B\n") {
        let bytes = bytes::Bytes::copy_from_slice(frame);
        let frame = Head::of(&bytes)
            .and_then(|h| h.frame)
            .and_then(ServerType::from_label)
            .unwrap_or(ServerType::Other);
        return Some((node, Command::Broadcast { room, bytes, frame }));
    }
    if let Some(user) = rest.strip_prefix(b"E\n") {
        let user = text(user).filter(|u| !u.is_empty())?;
        return Some((
            node,
            Command::Evict {
                room,
                user: user.into(),
            },
        ));
    }
    let mut parts = rest.strip_prefix(b"D\n")?.splitn(3, |b| *b == b'\n');
    let kind = match parts.next()? {
        b"r" => Kind::Rewrite,
        b"n" => Kind::Notice,
        m => Kind::Message(text(m.strip_prefix(b"m")?)?.parse::<Seq>().ok()?),
    };
    let target = match text(parts.next()?)? {
        s if s == "-" => Target::Room,
        user => Target::OthersThan(user.into()),
    };
    let bytes = bytes::Bytes::copy_from_slice(parts.next()?);
    // A message's type is known; another event's is read from its frame (for the count of
    // frames out), `other` if this build does not know it.
    let frame = match kind {
        Kind::Message(_) => ServerType::Message,
        Kind::Rewrite | Kind::Notice => Head::of(&bytes)
            .and_then(|h| h.frame)
            .and_then(ServerType::from_label)
            .unwrap_or(ServerType::Other),
    };
    let event = Event::from_parts(room, kind, bytes, target, frame);
    Some((node, Command::Deliver(Arc::new(event))))
}

/// The fields of a frame's JSON that the metrics need (the rest is skipped, not copied).
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow, default)]
    frame: Option<&'a str>,
    #[serde(default)]
    ts: Option<switchboard_protocol::Millis>,
}

impl<'a> Head<'a> {
    fn of(bytes: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// How long ago (ms, by this node's clock) a received `message` was stamped with its `ts`:
/// the pub/sub lag, plus the time from the send to its commit, plus the nodes' clock skew
/// (0 when the sender's clock is ahead). `None` for other commands. The payload is not
/// changed for this: the `ts` is the message frame's own.
fn lag_ms(command: &Command) -> Option<u64> {
    let Command::Deliver(ev) = command else {
        return None;
    };
    if !matches!(ev.kind, Kind::Message(_)) {
        return None;
    }
    let ts = Head::of(&ev.bytes)?.ts?;
    Some(u64::try_from(crate::service::now_ms().saturating_sub(ts)).unwrap_or(0))
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
    let mut first = true;
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
        if !std::mem::take(&mut first) {
            me.cfg.metrics.redis_reconnect();
        }
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
                // Rooms whose holders were waiting may go on; the rest missed what was published
                // while the connection was down, which the fanout reads from the store.
                me.flowing(room);
                let _ = me.inbound.send(Inbound::Resumed(room.clone()));
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
                        Ok(()) if wanted => me.flowing(&room),
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
                        Some((_, command)) => {
                            if let Some(lag) = lag_ms(&command) {
                                me.cfg.metrics.redis_lag(lag);
                            }
                            let _ = me.inbound.send(Inbound::Command(command));
                        }
                        None => tracing::warn!(room, "undecodable command on the room channel"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::ws::ServerFrame;

    #[test]
    fn the_lag_of_a_message_is_read_from_its_ts() {
        let message = switchboard_protocol::ws::Message {
            room: "r".into(),
            seq: 1,
            from: "alice".into(),
            body: "hi, \"ts\": 0".into(),
            ts: crate::service::now_ms() - 1_500,
            client_msg_id: None,
            edited_ts: None,
            deleted: false,
            bot: false,
            attachments: Vec::new(),
        };
        let sent = Command::Deliver(Arc::new(Event::message(message)));
        let Some((_, received)) = decode("r", &encode("hub-1", &sent)) else {
            panic!("a deliver command");
        };
        let lag = lag_ms(&received).expect("a message has a lag");
        assert!((1_500..60_000).contains(&lag), "{lag}");
        let typing = ServerFrame::Typing {
            room: "r".into(),
            user: "bob".into(),
        };
        let notice = Command::Deliver(Arc::new(Event::new("r".into(), &typing, Target::Room)));
        assert_eq!(lag_ms(&notice), None, "only messages have a ts");
    }

    #[test]
    fn payloads_round_trip() {
        let ev = Event::from_parts(
            "r".into(),
            Kind::Message(42),
            bytes::Bytes::from_static(b"{\"type\":\"message\"}\n"),
            Target::OthersThan("u1".into()),
            ServerType::Message,
        );
        let Some((node, Command::Deliver(back))) =
            decode("r", &encode("hub-1", &Command::Deliver(Arc::new(ev))))
        else {
            panic!("a deliver command");
        };
        assert_eq!(node, "hub-1");
        assert_eq!(back.kind, Kind::Message(42));
        assert_eq!(back.target, Target::OthersThan("u1".into()));
        assert_eq!(&back.bytes[..], b"{\"type\":\"message\"}\n");

        for (kind, target) in [
            (Kind::Rewrite, Target::AllBut(7)),
            (Kind::Notice, Target::Room),
        ] {
            let ev = Arc::new(Event::from_parts(
                "r".into(),
                kind,
                bytes::Bytes::from_static(b"{\"type\":\"typing\",\"room\":\"r\"}"),
                target,
                ServerType::Typing,
            ));
            let Some((_, Command::Deliver(back))) =
                decode("r", &encode("n", &Command::Deliver(ev)))
            else {
                panic!("a deliver command");
            };
            assert_eq!(back.kind, kind);
            assert_eq!(back.frame, ServerType::Typing, "read from the frame");
            assert_eq!(
                back.target,
                Target::Room,
                "a local connection never crosses"
            );
        }

        let evict = Command::Evict {
            room: "r".into(),
            user: "u2".into(),
        };
        match decode("r", &encode("hub-2", &evict)) {
            Some((node, Command::Evict { room, user })) => {
                assert_eq!((&*node, &*room, &*user), ("hub-2", "r", "u2"));
            }
            other => panic!("an evict command, got {other:?}"),
        }
        let disconnect = Command::Disconnect {
            room: crate::fanout::CONTROL_ROOM.into(),
            user: "alice".into(),
        };
        match decode(crate::fanout::CONTROL_ROOM, &encode("hub-3", &disconnect)) {
            Some((node, Command::Disconnect { room, user })) => {
                assert_eq!(
                    (&*node, &*room, &*user),
                    ("hub-3", crate::fanout::CONTROL_ROOM, "alice")
                );
            }
            other => panic!("a disconnect command, got {other:?}"),
        }
        let frame = bytes::Bytes::from_static(b"{\"type\":\"emoticons\",\"etag\":\"ab\"}");
        let broadcast = Command::Broadcast {
            room: crate::fanout::CONTROL_ROOM.into(),
            bytes: frame.clone(),
            frame: ServerType::Emoticons,
        };
        match decode(crate::fanout::CONTROL_ROOM, &encode("hub-4", &broadcast)) {
            Some((
                node,
                Command::Broadcast {
                    room,
                    bytes,
                    frame: kind,
                },
            )) => {
                assert_eq!((&*node, &*room), ("hub-4", crate::fanout::CONTROL_ROOM));
                assert_eq!(
                    (bytes, kind),
                    (frame, ServerType::Emoticons),
                    "read from the frame"
                );
            }
            other => panic!("a broadcast command, got {other:?}"),
        }
        for garbage in [&b"garbage"[..], b"n\nD\nmx\n-\n{}", b"n\nE\n", b"n\nX\n"] {
            assert!(decode("r", garbage).is_none(), "{garbage:?}");
        }
    }
}
