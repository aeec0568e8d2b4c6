//! The write side of a connection: drains the outbound queue, keeps per-room delivery state
//! (catch-up buffering and seq de-duplication), coalesces writes and sends heartbeats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError, WebSocketWrite};
use switchboard_protocol::close;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

use crate::broker::Event;
use crate::registry::{KillSwitch, Out};
use crate::service::now_ms;

/// Most queued items written before one flush: bounds latency of the first while still turning
/// a burst into one syscall.
const MAX_ITEMS_PER_FLUSH: usize = 64;

/// Delivery state of one subscribed room.
enum RoomState {
    /// Between `BeginSub` and `CatchUp`: live events wait here.
    Pending(Vec<Arc<Event>>),
    /// Live: the client has every message up to `upto`.
    Live { upto: u64 },
}

/// Why the writer stopped.
pub enum WriterExit {
    /// We sent a close frame (our own or the echo of the peer's).
    Closed,
    /// The peer stopped answering pings.
    Dead,
    /// Writing failed: the connection is gone.
    Broken,
}

/// Owns the write half. `last_seen` is the time (ms) of the last frame from the peer.
pub struct Writer<W> {
    ws: WebSocketWrite<W>,
    rooms: HashMap<Arc<str>, RoomState>,
    max_pending: usize,
    /// The connection's count of queued event bytes (see `ConnHandle::queued`); an event's
    /// bytes are subtracted once it is written or dropped.
    queued: Arc<AtomicUsize>,
}

fn reason(code: u16) -> &'static str {
    match code {
        close::POLICY => "session revoked",
        close::RESTARTING => "node restarting",
        close::SLOW_CONSUMER => "slow consumer",
        close::GOING_AWAY => "going away",
        _ => "",
    }
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// A writer whose catch-up buffer per room holds at most `max_pending` events.
    pub fn new(ws: WebSocketWrite<W>, max_pending: usize, queued: Arc<AtomicUsize>) -> Self {
        Self {
            ws,
            rooms: HashMap::new(),
            max_pending,
            queued,
        }
    }

    /// Runs until a close frame is written, the peer is dead, or the socket breaks.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Out>,
        kill: &KillSwitch,
        heartbeat: Duration,
        last_seen: &AtomicU64,
    ) -> WriterExit {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A peer that stops reading blocks our writes (its TCP window is closed) and with them
        // the heartbeat and kill checks; bounding every write frees such a connection within
        // two heartbeats, the same bound as for a peer that stops answering pings.
        let write_timeout = 2 * heartbeat;
        loop {
            let step = async {
                tokio::select! {
                    biased;
                    code = kill.killed() => self.close(code, reason(code)).await.map(|()| Some(true)),
                    item = rx.recv() => match item {
                        None => Ok(None),
                        Some(item) => self.drain(item, &mut rx).await.map(Some),
                    },
                    _ = tick.tick() => {
                        let idle = now_ms().saturating_sub(last_seen.load(Ordering::Relaxed) as i64);
                        if idle > 2 * heartbeat.as_millis() as i64 {
                            return Err(WriterExit::Dead);
                        }
                        self.write(Frame::new(true, OpCode::Ping, None, Payload::Borrowed(&[]))).await;
                        self.ws.flush().await.map(|()| Some(false))
                    }
                }
                .map_err(|_| WriterExit::Broken)
            };
            match tokio::time::timeout(write_timeout, step).await {
                Err(_) => return WriterExit::Dead,
                Ok(Err(exit)) => return exit,
                Ok(Ok(None | Some(true))) => return WriterExit::Closed,
                Ok(Ok(Some(false))) => {}
            }
        }
    }

    /// Handles `first` and whatever else is already queued, then flushes once. Returns true
    /// when a close frame was written.
    async fn drain(
        &mut self,
        first: Out,
        rx: &mut mpsc::Receiver<Out>,
    ) -> Result<bool, WebSocketError> {
        let mut next = Some(first);
        for taken in 1..=MAX_ITEMS_PER_FLUSH {
            let Some(item) = next.take() else { break };
            if self.handle(item).await? {
                self.ws.flush().await?;
                return Ok(true);
            }
            // Take another only if this flush has room for it: an item taken from the queue
            // must be handled, or it is lost.
            if taken < MAX_ITEMS_PER_FLUSH {
                next = rx.try_recv().ok();
            }
        }
        self.ws.flush().await?;
        Ok(false)
    }

    async fn write(&mut self, frame: Frame<'_>) {
        // A failed write surfaces at the next flush.
        let _ = self.ws.write_frame(frame).await;
    }

    async fn text(&mut self, bytes: &Bytes) -> Result<(), WebSocketError> {
        self.ws
            .write_frame(Frame::text(Payload::Borrowed(bytes)))
            .await
    }

    async fn close(&mut self, code: u16, reason: &str) -> Result<(), WebSocketError> {
        self.ws
            .write_frame(Frame::close(code, reason.as_bytes()))
            .await?;
        self.ws.flush().await
    }

    /// Writes one item. Returns true when it was a close frame.
    async fn handle(&mut self, item: Out) -> Result<bool, WebSocketError> {
        match item {
            Out::Event(ev) => self.event(ev).await?,
            Out::Reply(bytes) => self.text(&bytes).await?,
            Out::BeginSub(room) => {
                self.rooms.insert(room, RoomState::Pending(Vec::new()));
            }
            Out::CatchUp {
                room,
                messages,
                subbed,
                upto,
            } => {
                for m in &messages {
                    self.text(m).await?;
                }
                self.text(&subbed).await?;
                let pending = match self.rooms.insert(room, RoomState::Live { upto }) {
                    Some(RoomState::Pending(p)) => p,
                    _ => Vec::new(),
                };
                for ev in pending {
                    self.event(ev).await?;
                }
            }
            Out::EndSub { room, reply } => {
                if let Some(RoomState::Pending(buf)) = self.rooms.remove(&room) {
                    let held: usize = buf.iter().map(|ev| ev.bytes.len()).sum();
                    self.queued.fetch_sub(held, Ordering::AcqRel);
                }
                if let Some(reply) = reply {
                    self.text(&reply).await?;
                }
            }
            Out::Frame { opcode, payload } => {
                let frame = Frame::new(true, opcode, None, Payload::Owned(payload));
                self.ws.write_frame(frame).await?;
                return Ok(opcode == OpCode::Close);
            }
            Out::Close { code, reason } => {
                self.close(code, reason).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Delivers a room event if the room is subscribed, dropping messages the client has.
    async fn event(&mut self, ev: Arc<Event>) -> Result<(), WebSocketError> {
        let len = ev.bytes.len();
        match self.rooms.get_mut(&ev.room) {
            Some(RoomState::Pending(buf)) => {
                if buf.len() >= self.max_pending {
                    self.close(close::SLOW_CONSUMER, reason(close::SLOW_CONSUMER))
                        .await?;
                    return Err(WebSocketError::ConnectionClosed);
                }
                // Still held: its bytes stay counted until it is written or dropped.
                buf.push(ev);
                return Ok(());
            }
            Some(RoomState::Live { upto }) => {
                let fresh = match ev.seq {
                    Some(seq) if seq <= *upto => false,
                    Some(seq) => {
                        *upto = seq;
                        true
                    }
                    None => true,
                };
                self.queued.fetch_sub(len, Ordering::AcqRel);
                if fresh {
                    self.text(&ev.bytes).await?;
                }
            }
            None => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastwebsockets::{Role, WebSocket};
    use tokio::io::AsyncWriteExt;

    /// Every queued item is written, however many arrive in one burst (a burst longer than
    /// `MAX_ITEMS_PER_FLUSH` once lost an item at each flush boundary).
    #[tokio::test]
    async fn a_long_burst_loses_no_item() {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let (_, wr) =
            fastwebsockets::after_handshake_split(tokio::io::empty(), server_io, Role::Server);
        let (tx, rx) = mpsc::channel(1024);
        const N: usize = 3 * MAX_ITEMS_PER_FLUSH + 5;
        for i in 0..N {
            tx.send(Out::Reply(Bytes::from(format!("{i}"))))
                .await
                .unwrap();
        }
        tx.send(Out::Close {
            code: 1000,
            reason: "",
        })
        .await
        .unwrap();
        let kill = KillSwitch::default();
        let last_seen = AtomicU64::new(now_ms() as u64);
        let writer = Writer::new(wr, 16, Arc::default());
        let exit = writer
            .run(rx, &kill, Duration::from_secs(60), &last_seen)
            .await;
        assert!(matches!(exit, WriterExit::Closed));

        let mut client = WebSocket::after_handshake(client_io, Role::Client);
        client.set_auto_close(false);
        let mut got = Vec::new();
        loop {
            let frame = client.read_frame().await.expect("a frame");
            if frame.opcode == OpCode::Close {
                break;
            }
            got.push(String::from_utf8(frame.payload.to_vec()).unwrap());
        }
        let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
        assert_eq!(got, expected);
        let _ = client.into_inner().shutdown().await;
    }
}
