//! The write side of a connection: drains the outbound queue, keeps per-room delivery state
//! (catch-up buffering and seq de-duplication), coalesces writes and sends heartbeats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard_protocol::close;
use tokio::io::AsyncWrite;
use tokio::sync::Notify;

use super::frame::{FrameWriter, OpCode};
use crate::fanout::outbox::Receiver;
use crate::fanout::registry::{KillSwitch, Out};
use crate::fanout::Event;
use switchboard_kit::clock::Clock;

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

/// What woke the writer.
enum Wake {
    Kill(u16),
    Item(Out),
    Tick,
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

/// Owns the write half. `last_seen` is the time of the last frame from the peer, in
/// milliseconds on the process's monotonic clock ([`Clock::millis`]); on each `beat` the
/// writer pings, or gives up on a peer silent for two `heartbeat`s.
pub struct Writer<W> {
    ws: FrameWriter<W>,
    rooms: HashMap<Arc<str>, RoomState>,
    max_pending: usize,
    /// The connection's count of queued event bytes (see `ConnHandle::queued`); an event's
    /// bytes are subtracted once it is written or dropped.
    queued: Arc<AtomicUsize>,
    /// Least time between two writes of room events (see [`coalesce`](Self::coalesce)).
    coalesce: Duration,
    /// When room events were last written.
    last_event_write: Option<tokio::time::Instant>,
    /// Queued event bytes at which the window is cut short (see [`coalesce`](Self::coalesce)).
    hurry_bytes: usize,
    /// Bytes of catch-up pages encoded since the last flush; subtracted from `queued` and
    /// reported to the reader (which paces the catch-up on them) once they are written: until
    /// then they are in memory, so they stay counted.
    pages_unflushed: usize,
    /// A catch-up page was written since the last look: the peer is reading, so it counts as
    /// alive (its reader is busy with the catch-up and reads none of its pongs meanwhile).
    pages_progress: bool,
    /// Close codes, slow consumers and the fanout latency are counted here.
    metrics: crate::metrics::HubMetrics,
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
    pub fn new(io: W, max_pending: usize, queued: Arc<AtomicUsize>) -> Self {
        Self {
            ws: FrameWriter::new(io),
            rooms: HashMap::new(),
            max_pending,
            queued,
            coalesce: Duration::ZERO,
            last_event_write: None,
            hurry_bytes: usize::MAX,
            pages_unflushed: 0,
            pages_progress: false,
            metrics: crate::metrics::HubMetrics::disabled(),
        }
    }

    /// Counts this connection's close codes, slow-consumer close and fanout latencies in
    /// `metrics`.
    pub fn metrics(mut self, metrics: crate::metrics::HubMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Encodes a close frame, counting its code.
    fn close(&mut self, code: u16) {
        self.metrics.close_sent(code);
        self.ws.push_close(code, reason(code).as_bytes());
    }

    /// The event is written or dropped: if it was the last subscriber's copy, its fanout
    /// latency is recorded (see `Event::handled`).
    fn handled(&self, ev: &Event) {
        if let Some(took) = ev.handled() {
            self.metrics.fanout_latency(took);
        }
    }

    /// Writes room events at most once per `window`: an event arriving sooner after the last
    /// such write waits for the window to end, and everything queued by then shares one write.
    /// A quiet connection's event is written at once; a busy one's events are batched, which
    /// on a busy node is what keeps the CPU on fanout rather than on write system calls (one
    /// `write` per delivery costs several microseconds of kernel time on loopback).
    ///
    /// The window is cut short once `hurry_bytes` of events are queued (the fanout then calls
    /// [`Sender::hurry`](crate::fanout::outbox::Sender::hurry)): a burst is written as it grows, so a
    /// reader that keeps up never nears the queue's bound because of the window.
    pub fn coalesce(mut self, window: Duration, hurry_bytes: usize) -> Self {
        self.coalesce = window;
        self.hurry_bytes = hurry_bytes;
        self
    }

    /// Runs until a close frame is written, the peer is dead, or the socket breaks.
    /// `last_seen` holds milliseconds on [`Clock::millis`] (the reader stores them on each
    /// frame).
    pub async fn run(
        mut self,
        mut rx: Receiver<Out>,
        kill: &KillSwitch,
        beat: &Notify,
        heartbeat: Duration,
        last_seen: &AtomicU64,
    ) -> WriterExit {
        // A peer that stops reading blocks our writes (its TCP window is closed) and with them
        // the heartbeat and kill checks; bounding every write frees such a connection within
        // two heartbeats, the same bound as for a peer that stops answering pings.
        let write_timeout = 2 * heartbeat;
        // Registered once, not at every wake: registering with a `Notify` takes its lock, and
        // the heartbeat's is shared by every connection of the node.
        let killed = kill.killed();
        let beat_wait = beat.notified();
        tokio::pin!(killed, beat_wait);
        loop {
            // Waiting holds little: the write that follows is boxed, so an idle connection's
            // task is no bigger than what it needs to wait (see the module doc of `frame`).
            let wake = tokio::select! {
                biased;
                code = &mut killed => Wake::Kill(code),
                item = rx.recv() => match item {
                    None => return WriterExit::Closed,
                    Some(item) => Wake::Item(item),
                },
                () = &mut beat_wait => {
                    beat_wait.set(beat.notified());
                    let idle = Clock::millis().saturating_sub(last_seen.load(Ordering::Relaxed));
                    if u128::from(idle) > 2 * heartbeat.as_millis() {
                        return WriterExit::Dead;
                    }
                    Wake::Tick
                }
            };
            let write = Box::pin(tokio::time::timeout(
                write_timeout,
                self.write(wake, &mut rx),
            ));
            match write.await {
                Err(_) => return WriterExit::Dead,
                Ok(Err(_)) => return WriterExit::Broken,
                Ok(Ok(true)) => return WriterExit::Closed,
                Ok(Ok(false)) => {
                    if std::mem::take(&mut self.pages_progress) {
                        last_seen.store(Clock::millis(), Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Writes what woke the writer. Returns true when a close frame was written.
    async fn write(&mut self, wake: Wake, rx: &mut Receiver<Out>) -> std::io::Result<bool> {
        match wake {
            Wake::Kill(code) => {
                self.close(code);
                self.ws.flush().await.map(|()| true)
            }
            Wake::Item(item) => {
                let event = matches!(item, Out::Event(_));
                if event && rx.len() + 1 < MAX_ITEMS_PER_FLUSH {
                    if let Some(last) = self.last_event_write {
                        let due = last + self.coalesce;
                        if due > tokio::time::Instant::now()
                            && self.queued.load(Ordering::Acquire) < self.hurry_bytes
                        {
                            tokio::select! {
                                biased;
                                () = rx.hurried() => {}
                                () = tokio::time::sleep_until(due) => {}
                            }
                        }
                    }
                }
                let closed = self.drain(item, rx).await?;
                if event && !self.coalesce.is_zero() {
                    self.last_event_write = Some(tokio::time::Instant::now());
                }
                Ok(closed)
            }
            Wake::Tick => {
                self.ws.push(OpCode::Ping, &[]);
                self.ws.flush().await.map(|()| false)
            }
        }
    }

    /// Handles `first` and whatever else is already queued, then flushes once. Returns true
    /// when a close frame was written.
    async fn drain(&mut self, first: Out, rx: &mut Receiver<Out>) -> std::io::Result<bool> {
        let mut next = Some(first);
        for taken in 1..=MAX_ITEMS_PER_FLUSH {
            let Some(item) = next.take() else { break };
            match self.handle(item) {
                Ok(false) => {}
                Ok(true) => {
                    self.flush(rx).await?;
                    return Ok(true);
                }
                Err(e) => {
                    // Get the close frame that `handle` encoded out, then end.
                    let _ = self.ws.flush().await;
                    return Err(e);
                }
            }
            // Take another only if this flush has room for it: an item taken from the queue
            // must be handled, or it is lost.
            if taken < MAX_ITEMS_PER_FLUSH {
                next = rx.try_recv();
            }
        }
        self.flush(rx).await?;
        Ok(false)
    }

    /// Writes what is encoded; then the catch-up pages in it no longer count as queued, and a
    /// reader waiting to queue the next page is woken.
    async fn flush(&mut self, rx: &Receiver<Out>) -> std::io::Result<()> {
        self.ws.flush().await?;
        if self.pages_unflushed > 0 {
            let written = std::mem::take(&mut self.pages_unflushed);
            self.queued.fetch_sub(written, Ordering::AcqRel);
            rx.pages_written(written);
            self.pages_progress = true;
        }
        Ok(())
    }

    fn text(&mut self, bytes: &[u8]) {
        self.ws.push(OpCode::Text, bytes);
    }

    /// Encodes one item. Returns true when it was a close frame; fails when the connection
    /// must end now (a slow consumer, whose close frame is already encoded).
    fn handle(&mut self, item: Out) -> std::io::Result<bool> {
        match item {
            Out::Event(ev) => self.event(ev)?,
            Out::Reply(bytes) => self.text(&bytes),
            Out::BeginSub(room) => {
                self.rooms.insert(room, RoomState::Pending(Vec::new()));
            }
            Out::CatchUpPage { messages, bytes } => {
                for m in &messages {
                    self.text(m);
                }
                self.pages_unflushed += bytes;
            }
            Out::CatchUp { room, subbed, upto } => {
                self.text(&subbed);
                let pending = match self.rooms.insert(room, RoomState::Live { upto }) {
                    Some(RoomState::Pending(p)) => p,
                    _ => Vec::new(),
                };
                for ev in pending {
                    self.event(ev)?;
                }
            }
            Out::EndSub { room, reply } => {
                if let Some(RoomState::Pending(buf)) = self.rooms.remove(&room) {
                    let held: usize = buf.iter().map(|ev| ev.bytes.len()).sum();
                    self.queued.fetch_sub(held, Ordering::AcqRel);
                    for ev in &buf {
                        self.handled(ev);
                    }
                }
                if let Some(reply) = reply {
                    self.text(&reply);
                }
            }
            Out::Frame { opcode, payload } => {
                if opcode == OpCode::Close {
                    // The echo of the peer's close carries its code (or none).
                    if let &[hi, lo, ..] = payload.as_slice() {
                        self.metrics.close_sent(u16::from_be_bytes([hi, lo]));
                    }
                }
                self.ws.push(opcode, &payload);
                return Ok(opcode == OpCode::Close);
            }
            Out::Close { code, reason } => {
                self.metrics.close_sent(code);
                self.ws.push_close(code, reason.as_bytes());
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Delivers a room event if the room is subscribed, dropping messages the client has.
    fn event(&mut self, ev: Arc<Event>) -> std::io::Result<()> {
        let len = ev.bytes.len();
        match self.rooms.get_mut(&ev.room) {
            Some(RoomState::Pending(buf)) => {
                if buf.len() >= self.max_pending {
                    self.metrics.slow_consumer();
                    self.close(close::SLOW_CONSUMER);
                    return Err(std::io::Error::other("slow consumer"));
                }
                // Still held: its bytes stay counted until it is written or dropped.
                buf.push(ev);
                return Ok(());
            }
            Some(RoomState::Live { upto }) => {
                let fresh = match ev.seq() {
                    Some(seq) if seq <= *upto => false,
                    Some(seq) => {
                        *upto = seq;
                        true
                    }
                    None => true,
                };
                self.queued.fetch_sub(len, Ordering::AcqRel);
                if fresh {
                    self.text(&ev.bytes);
                }
                self.handled(&ev);
            }
            None => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                self.handled(&ev);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::outbox::outbox;
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;

    /// Every queued item is written, however many arrive in one burst (a burst longer than
    /// `MAX_ITEMS_PER_FLUSH` once lost an item at each flush boundary).
    #[tokio::test]
    async fn a_long_burst_loses_no_item() {
        let (server_io, mut client_io) = tokio::io::duplex(1 << 20);
        let (tx, rx) = outbox(1024);
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
        let last_seen = AtomicU64::new(Clock::millis());
        let writer = Writer::new(server_io, 16, Arc::default());
        let exit = writer
            .run(
                rx,
                &kill,
                &Notify::new(),
                Duration::from_secs(60),
                &last_seen,
            )
            .await;
        assert!(matches!(exit, WriterExit::Closed));

        // Server frames are unmasked: a 2-byte header (short payloads) then the payload.
        let mut bytes = Vec::new();
        client_io.read_to_end(&mut bytes).await.unwrap();
        let mut got = Vec::new();
        let mut rest = &bytes[..];
        loop {
            let (op, len) = (rest[0] & 0x0F, usize::from(rest[1]));
            if op == 0x8 {
                assert_eq!(&rest[2..2 + len], &1000u16.to_be_bytes());
                break;
            }
            got.push(String::from_utf8(rest[2..2 + len].to_vec()).unwrap());
            rest = &rest[2 + len..];
        }
        let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
        assert_eq!(got, expected);
    }

    /// When the writer gives up on a peer (beats every 20 s from the start), if the reader
    /// heard from the peer at `heard_at` (and at the start).
    async fn dead_at(heard_at: Option<Duration>) -> Duration {
        let (server_io, _client_io) = tokio::io::duplex(1 << 16);
        let (_tx, rx) = outbox(16);
        let (kill, beat) = (KillSwitch::default(), Notify::new());
        let last_seen = AtomicU64::new(Clock::millis());
        let heartbeat = Duration::from_secs(20);
        let start = tokio::time::Instant::now();
        let writer =
            Writer::new(server_io, 16, Arc::default()).run(rx, &kill, &beat, heartbeat, &last_seen);
        let beats = async {
            let mut tick = tokio::time::interval_at(start + heartbeat, heartbeat);
            loop {
                tick.tick().await;
                beat.notify_waiters();
            }
        };
        let heard = async {
            if let Some(at) = heard_at {
                tokio::time::sleep_until(start + at).await;
                last_seen.store(Clock::millis(), Ordering::Relaxed);
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            exit = writer => assert!(matches!(exit, WriterExit::Dead), "the peer is dropped as dead"),
            () = beats => unreachable!(),
            () = heard => unreachable!(),
        }
        start.elapsed()
    }

    /// Liveness runs on the monotonic clock (paused here): a peer is dropped at the first beat
    /// after two heartbeats of silence, counted from the last time it was heard.
    #[tokio::test(start_paused = true)]
    async fn a_peer_silent_for_two_heartbeats_is_dropped_at_the_next_beat() {
        // Beats at 20 s and 40 s find it silent for at most two heartbeats; 60 s does not.
        assert_eq!(dead_at(None).await, Duration::from_secs(60));
        // Heard at 30 s: silent for 50 s at the beat of 80 s.
        assert_eq!(
            dead_at(Some(Duration::from_secs(30))).await,
            Duration::from_secs(80)
        );
    }
}
