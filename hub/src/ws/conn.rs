//! One task per `/v1/ws` connection: a reader future (whole messages in, requests handled in
//! order) and a [`Writer`] future (the bounded outbound queue out), joined in the same task.
//! A `send` is the exception to "handled in order": it is queued for the store in order, but
//! its ack is awaited by a short task of its own, so a client may pipeline its sends.
//!
//! **Invariants:** the fanout only ever `try_send`s into this connection's queue; the queue is
//! bounded (`--outbound-queue-len`) and a full queue kills the connection with 4000. The reader
//! future is never dropped mid-message while the connection lives (a message half reassembled
//! and a control frame's answer live in it); it is dropped only once the connection is over.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fastwebsockets::upgrade::UpgradeFut;
use switchboard_kit::clock::Clock;
use switchboard_protocol::close;
use switchboard_protocol::rest::User;
use switchboard_protocol::ws::{decode_client_frame, ClientFrame, FrameId, ServerFrame};
use switchboard_protocol::ErrorCode;
use tokio::io::AsyncRead;
use tokio::sync::Semaphore;

use super::slots::Slot;
use super::transport::{Incoming, MessageReader, TransportError};
use super::writer::Writer;
use crate::fanout::outbox::{outbox, Sender};
use crate::fanout::{ConnHandle, ConnId, KillSwitch, Out};
use crate::metrics::{ClientType, HubMetrics, Limit, ServerType};
use crate::service::{Identity, SinkClosed, SubRequest, SubSink, Subscribed};
use crate::state::AppState;

/// How long we wait for the peer's side of the close handshake after ours.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Serves one upgraded `/v1/ws` connection until it closes. `pre_auth` is the identity from an
/// `Authorization` header on the upgrade, if any.
///
/// It is the connection's whole task: everything it holds while the connection is idle is the
/// per-connection memory cost, so the state of anything transient is boxed (see `frame.rs`).
pub async fn serve(
    upgrade: UpgradeFut,
    app: AppState,
    pre_auth: Option<Box<Identity>>,
    slot: Slot,
) {
    let ws = match upgrade.await {
        Ok(ws) => ws,
        Err(e) => return tracing::debug!(error = %e, "upgrade failed"),
    };
    let cfg = &app.cfg;
    let (rd, wr) = tokio::io::split(ws.into_inner());
    let mut reader = MessageReader::new(rd, cfg.max_frame_bytes)
        .with_fragment_limits(app.registry.fragment_limits().clone());
    let (tx, rx) = outbox(cfg.outbound_queue_len);
    let kill = Arc::new(KillSwitch::default());
    let anon_session: Arc<str> = format!("anon-{}", uuid::Uuid::new_v4()).into();
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let conn = app.registry.add_conn(ConnHandle {
        tx: tx.clone(),
        kill: kill.clone(),
        user: None,
        username: None,
        session: anon_session.clone(),
        queued: queued.clone(),
    });
    tracing::Span::current().record("id", conn);
    // Liveness: milliseconds on the process's monotonic clock (see `Writer::run`).
    let last_seen = AtomicU64::new(Clock::millis());
    let mut session = Session {
        app: app.clone(),
        conn,
        identity: None,
        greeted: false,
        rooms: Vec::new(),
        present: Vec::new(),
        tx: tx.clone(),
        kill: kill.clone(),
        anon_session,
        sends: None,
        queued: queued.clone(),
        slot,
    };

    {
        // Built in place: a future moved after creation can cost its size twice in this task.
        tokio::pin! {
            let writer = Writer::new(wr, cfg.outbound_queue_len, queued)
                .metrics(app.registry.metrics().clone())
                .coalesce(
                    Duration::from_micros(cfg.write_coalesce_us),
                    app.registry.hurry_bytes(),
                )
                .run(
                    rx,
                    &kill,
                    app.registry.heartbeat(),
                    Duration::from_millis(cfg.heartbeat_ms),
                    &last_seen,
                );
            let read = session.read_loop(&mut reader, pre_auth, &last_seen);
        }
        tokio::select! {
            () = &mut read => {
                // The reader queued what the peer is owed (close echo or our close); let the writer
                // get it out, but not forever.
                let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, &mut writer)).await;
            }
            _ = &mut writer => {
                // We closed (kill, echo) or the socket broke: wait briefly for the peer's close.
                let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, &mut read)).await;
            }
        }
    }
    // Presence first: it asks the registry which subscriptions are still this connection's.
    Box::pin(session.leave_presence(None)).await;
    app.registry.remove_conn(conn, session.rooms.iter());
    tracing::debug!("connection closed");
}

/// The protocol state of one connection (owned by its reader future).
struct Session {
    app: AppState,
    conn: ConnId,
    identity: Option<Identity>,
    greeted: bool,
    /// Rooms this connection subscribed to (for cleanup).
    rooms: Vec<Arc<str>>,
    /// Rooms in which this connection counts towards the user's presence.
    present: Vec<Arc<str>>,
    tx: Sender<Out>,
    kill: Arc<KillSwitch>,
    anon_session: Arc<str>,
    /// Bounds the sends waiting for their acks; made at the first send.
    sends: Option<Arc<Semaphore>>,
    /// The connection's queued bytes (see `ConnHandle::queued`): a catch-up queues its next
    /// page only when they are low enough.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// This connection's anonymous and per-IP slot, released when the connection ends.
    slot: Slot,
}

/// Most sends of one connection waiting for their acks at once (see `Session::send`).
const MAX_SENDS_IN_FLIGHT: usize = 64;

impl Session {
    /// Queues a reply. Encoded before the wait, and boxed, so that waiting for room in the
    /// queue does not make every connection's task carry a frame's worth of state.
    fn reply(&self, frame: ServerFrame) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.metrics().server_frames(ServerType::of(&frame), 1);
        self.queue(Out::Reply(frame.to_bytes()))
    }

    fn metrics(&self) -> &HubMetrics {
        self.app.registry.metrics()
    }

    fn close(
        &self,
        code: u16,
        reason: &'static str,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.queue(Out::Close { code, reason })
    }

    fn queue(&self, out: Out) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // If the writer is gone the connection is closing; nothing to do.
            let _ = self.tx.send(out).await;
        })
    }

    async fn read_loop<S: AsyncRead + Unpin>(
        &mut self,
        reader: &mut MessageReader<S>,
        pre_auth: Option<Box<Identity>>,
        last_seen: &AtomicU64,
    ) {
        let hello_timeout = Duration::from_millis(self.app.cfg.hello_timeout_ms);
        let deadline = tokio::time::Instant::now() + hello_timeout;
        let mut pre_auth = pre_auth;
        loop {
            let next = if self.greeted {
                reader.next(&self.tx).await
            } else {
                match Box::pin(tokio::time::timeout_at(deadline, reader.next(&self.tx))).await {
                    Ok(next) => next,
                    Err(_) => return self.close(close::POLICY, "no hello in time").await,
                }
            };
            last_seen.store(Clock::millis(), Ordering::Relaxed);
            // Boxed: an idle connection's task holds only what it needs to wait for the next
            // message, not the state of the largest request.
            if !Box::pin(self.incoming(next, &mut pre_auth)).await {
                return;
            }
        }
    }

    /// Handles one message or transport event; returns false when the connection must end.
    async fn incoming(
        &mut self,
        next: Result<Incoming, TransportError>,
        pre_auth: &mut Option<Box<Identity>>,
    ) -> bool {
        let data = match next {
            Ok(Incoming::Close) => return false,
            Ok(Incoming::Pong) => return true,
            Ok(Incoming::Text(t)) => Ok(t),
            Ok(Incoming::Binary(_)) => Err(()),
            Err(e) => {
                self.transport_error(e).await;
                return false;
            }
        };
        let frame = match data {
            Ok(text) => decode_client_frame(&text),
            Err(()) => {
                self.metrics().client_frame(ClientType::Invalid);
                if !self.greeted {
                    self.refuse_first_frame().await;
                    return false;
                }
                self.reply(ServerFrame::error(
                    None,
                    ErrorCode::BadRequest,
                    "binary frames are not supported",
                ))
                .await;
                return true;
            }
        };
        // Decoding first costs little and lets the refusal echo the frame's id. `hello` and a
        // successful first `sub` of a room are free, so a client resuming many rooms after a
        // reconnect is never stuck behind its own burst; a refused `sub` costs a token (see
        // `dispatch`), and none is even tried while the bucket is empty (`ratelimit::Frames`).
        self.metrics().client_frame(match &frame {
            Ok(f) => ClientType::of(f),
            Err(_) => ClientType::Invalid,
        });
        let frames = self.app.service.frames();
        let (free, allowed) = match &frame {
            Ok(ClientFrame::Hello { .. }) => (true, true),
            Ok(ClientFrame::Sub { room, .. }) if !self.subscribed(room) => {
                (true, frames.has_token(self.conn))
            }
            _ => (false, false),
        };
        if !allowed && (free || !frames.take(self.conn)) {
            self.metrics().rate_limited(Limit::Frames);
            let id = match &frame {
                Ok(f) => f.id().cloned(),
                Err(e) => e.id.clone(),
            };
            self.reply(ServerFrame::error(
                id,
                ErrorCode::RateLimited,
                "too many frames, slow down",
            ))
            .await;
            return true;
        }
        match frame {
            Ok(ClientFrame::Hello { id, token }) if !self.greeted => {
                self.hello(id, token, pre_auth.take().map(|b| *b)).await
            }
            Ok(_) | Err(_) if !self.greeted => {
                self.refuse_first_frame().await;
                false
            }
            Ok(frame) => {
                self.dispatch(frame).await;
                true
            }
            Err(e) => {
                self.reply(e.to_frame()).await;
                true
            }
        }
    }

    /// Whether this connection is subscribed to `room` now (the registry's word: a
    /// subscription can end without the connection asking, see `Registry::evict_user`).
    fn subscribed(&self, room: &str) -> bool {
        self.app.registry.is_subscribed(self.conn, room)
    }

    /// Forgets the rooms whose subscription the registry ended (evictions): their presence
    /// was given back by the eviction, so they must not leave again.
    fn forget_evicted(&mut self) {
        let registry = &self.app.registry;
        let conn = self.conn;
        self.rooms.retain(|r| registry.is_subscribed(conn, r));
        self.present.retain(|r| registry.is_subscribed(conn, r));
    }

    /// Stops counting towards presence in `room` (or in every room when `None`). Call it
    /// before the registry forgets the subscriptions: a room whose subscription an eviction
    /// ended already had this connection's presence given back, and is skipped.
    async fn leave_presence(&mut self, room: Option<&str>) {
        let Some(who) = self.identity.clone() else {
            return;
        };
        let leaving: Vec<Arc<str>> = match room {
            Some(r) => match self.present.iter().position(|p| **p == *r) {
                Some(i) => vec![self.present.swap_remove(i)],
                None => Vec::new(),
            },
            None => std::mem::take(&mut self.present),
        };
        for room in leaving {
            if self.subscribed(&room) {
                self.app.service.presence_leave(&who, &room).await;
            }
        }
    }

    async fn transport_error(&self, e: TransportError) {
        tracing::debug!(conn = self.conn, error = %e, "transport error");
        if let Some((code, reason)) = e.close_code() {
            self.close(code, reason).await;
        }
    }

    async fn refuse_first_frame(&self) {
        self.reply(ServerFrame::error(
            None,
            ErrorCode::BadRequest,
            "the first frame must be hello",
        ))
        .await;
        self.close(close::POLICY, "hello required").await;
    }

    /// Authenticates the connection; returns false when it must close.
    async fn hello(
        &mut self,
        id: Option<FrameId>,
        token: Option<String>,
        pre_auth: Option<Identity>,
    ) -> bool {
        let identity = match token {
            Some(token) => match self.app.authenticate(&token).await {
                Ok(identity) => Some(identity),
                Err(e) => {
                    let e = crate::error::Error::from(e);
                    self.reply(ServerFrame::error(id, e.code(), e.public_message()))
                        .await;
                    let (code, reason) = e.hello_close();
                    self.close(code, reason).await;
                    return false;
                }
            },
            None => pre_auth,
        };
        let session = identity
            .as_ref()
            .map_or_else(|| self.anon_session.clone(), |i| i.session.clone());
        if let Some(who) = &identity {
            self.slot.authenticated();
            self.app.registry.identify(
                self.conn,
                who.id.clone(),
                who.username.clone(),
                session.clone(),
            );
        }
        self.greeted = true;
        let user = identity.as_ref().map(|i| User {
            id: i.id.to_string(),
            username: i.username.to_string(),
            email: None,
            role: i.role.clone(),
            deleted: false,
        });
        self.identity = identity;
        self.reply(ServerFrame::Welcome {
            id,
            session: session.to_string(),
            user,
            heartbeat_ms: self.app.cfg.heartbeat_ms,
        })
        .await;
        true
    }

    fn require_user(&self, id: &Option<FrameId>) -> Result<&Identity, Box<ServerFrame>> {
        self.identity.as_ref().ok_or_else(|| {
            Box::new(ServerFrame::error(
                id.clone(),
                ErrorCode::Unauthorized,
                "sign in to do this",
            ))
        })
    }

    async fn dispatch(&mut self, frame: ClientFrame) {
        let reply = match frame {
            ClientFrame::Hello { id, .. } => {
                ServerFrame::error(id, ErrorCode::BadRequest, "hello was already sent")
            }
            ClientFrame::Ping { id } => ServerFrame::Pong { id },
            ClientFrame::Sub { id, room, since } => {
                let first = !self.subscribed(&room);
                match self.subscribe(&room, since, id.clone()).await {
                    Ok(()) => return,
                    Err(e) => {
                        // Only a successful first `sub` is free (see `incoming`).
                        if first {
                            self.app.service.frames().take(self.conn);
                        }
                        ServerFrame::error(id, e.code(), e.public_message())
                    }
                }
            }
            ClientFrame::Unsub { id, room } => {
                self.leave_presence(Some(&room)).await;
                self.app.registry.unsubscribe(self.conn, &room);
                self.rooms.retain(|r| **r != *room);
                let reply = ServerFrame::Unsubbed {
                    id,
                    room: room.clone(),
                }
                .to_bytes();
                self.metrics().server_frames(ServerType::Unsubbed, 1);
                let _ = self
                    .tx
                    .send(Out::EndSub {
                        room: room.into(),
                        reply: Some(reply),
                    })
                    .await;
                return;
            }
            ClientFrame::Send {
                id,
                room,
                body,
                client_msg_id,
                attachments,
            } => match self.require_user(&id) {
                Err(f) => *f,
                Ok(_) => {
                    return Box::pin(self.send(id, room, body, client_msg_id, attachments)).await
                }
            },
            ClientFrame::Typing { id, room } => match self.require_user(&id) {
                Err(f) => *f,
                Ok(who) => match self.app.service.typing(who, &room, self.conn).await {
                    Ok(()) => return,
                    Err(e) => ServerFrame::error(id, e.code(), e.public_message()),
                },
            },
            ClientFrame::History {
                id,
                room,
                before,
                limit,
            } => {
                let page = crate::store::Page {
                    before,
                    after: None,
                    limit: limit.unwrap_or(switchboard_protocol::limits::DEFAULT_HISTORY_LIMIT),
                };
                match self
                    .app
                    .service
                    .history(self.identity.as_ref(), &room, page)
                    .await
                {
                    Ok(messages) => ServerFrame::History { id, room, messages },
                    Err(e) => ServerFrame::error(id, e.code(), e.public_message()),
                }
            }
            ClientFrame::Read { id, room, seq } => match self.require_user(&id) {
                Err(f) => *f,
                Ok(who) => match self.app.service.mark_read(who, &room, seq).await {
                    Ok(seq) => ServerFrame::ReadOk { id, room, seq },
                    Err(e) => ServerFrame::error(id, e.code(), e.public_message()),
                },
            },
        };
        self.reply(reply).await;
    }

    /// `send`, pipelined: the send is validated and queued for the store here, in frame order
    /// (so one connection's sends to a room get ascending seqs in the order sent), and its ack
    /// is awaited by a task of its own, so the next frame is read at once. At most
    /// [`MAX_SENDS_IN_FLIGHT`] sends of a connection wait for their acks; more wait here.
    async fn send(
        &mut self,
        id: Option<FrameId>,
        room: String,
        body: String,
        client_msg_id: Option<String>,
        attachments: Vec<String>,
    ) {
        let limit = self
            .sends
            .get_or_insert_with(|| Arc::new(Semaphore::new(MAX_SENDS_IN_FLIGHT)))
            .clone();
        let Ok(permit) = limit.acquire_owned().await else {
            return;
        };
        let who = self.identity.as_ref().expect("checked by require_user");
        let pending = match self
            .app
            .service
            .post_queued(who, &room, body, client_msg_id, attachments)
            .await
        {
            Ok(pending) => pending,
            Err(e) => {
                return self
                    .reply(ServerFrame::error(id, e.code(), e.public_message()))
                    .await
            }
        };
        let tx = self.tx.clone();
        let metrics = self.metrics().clone();
        self.app.conns.spawn(async move {
            let reply = match pending.await {
                Ok(ack) => ServerFrame::Ack {
                    id,
                    room,
                    seq: ack.seq,
                    ts: ack.ts,
                    client_msg_id: ack.client_msg_id,
                },
                Err(e) => ServerFrame::error(id, e.code(), e.public_message()),
            };
            metrics.server_frames(ServerType::of(&reply), 1);
            // If the writer is gone the connection is over; the message is stored anyway.
            let _ = tx.send(Out::Reply(reply.to_bytes())).await;
            drop(permit);
        });
    }

    /// `sub`, through the service's one sequence ([`crate::service::Service::subscribe`]); this
    /// connection's part is the queue: the writer buffers the room's live events from `BeginSub`,
    /// writes the catch-up pages, then `subbed` and the buffered events past them (writer.rs).
    async fn subscribe(
        &mut self,
        room: &str,
        since: Option<u64>,
        id: Option<FrameId>,
    ) -> crate::error::Result<()> {
        // An entry of ours for a room we are not subscribed to, in the registry's word, is stale
        // (an eviction ended it, and gave its presence back).
        if !self.subscribed(room) {
            self.rooms.retain(|r| **r != *room);
            self.present.retain(|r| **r != *room);
        }
        if self.rooms.len() >= self.app.cfg.max_subscriptions {
            self.forget_evicted();
        }
        let service = self.app.service.clone();
        let req = SubRequest {
            who: self.identity.as_ref(),
            conn: self.conn,
            room,
            since,
            held: self.rooms.len(),
        };
        let mut sink = QueueSink {
            session: self,
            last_page: 0,
        };
        let (room, subbed, upto) = match service.subscribe(req, &mut sink).await? {
            Subscribed::Already { last_seq } => {
                let subbed = ServerFrame::Subbed {
                    id,
                    room: room.to_owned(),
                    last_seq,
                };
                self.reply(subbed).await;
                return Ok(());
            }
            Subscribed::New {
                room,
                upto,
                present,
            } => {
                self.rooms.push(room.clone());
                if present {
                    self.present.push(room.clone());
                }
                let subbed = ServerFrame::Subbed {
                    id,
                    room: room.to_string(),
                    last_seq: upto,
                }
                .to_bytes();
                self.metrics().server_frames(ServerType::Subbed, 1);
                (room, subbed, upto)
            }
        };
        if self
            .tx
            .send(Out::CatchUp { room, subbed, upto })
            .await
            .is_err()
        {
            self.kill.kill(close::SLOW_CONSUMER);
        }
        Ok(())
    }

    /// Waits until the catch-up pages not yet written leave room for another page of about
    /// `page` bytes (the size of the last one) within `Registry::catch_up_bytes`; with none in
    /// flight there is always room. This is the catch-up's back-pressure: a peer that does not
    /// read holds about one page, until the writer's timeout ends the connection. (Paced on the
    /// pages only: the connection's queued bytes also hold the room's live events, which wait
    /// for the catch-up to end.)
    async fn room_for_page(&self, page: usize) -> Result<(), crate::fanout::outbox::Closed> {
        let room = self.app.registry.catch_up_bytes();
        let tx = &self.tx;
        tx.wait_until(|| {
            let pages = tx.page_bytes();
            pages == 0 || pages.saturating_add(page) <= room
        })
        .await
    }

    /// Queues one catch-up page, counted in the connection's queued bytes (the byte bound the
    /// fanout enforces) until the writer has written it; returns its size.
    async fn queue_page(
        &self,
        messages: Vec<bytes::Bytes>,
    ) -> Result<usize, crate::fanout::outbox::Closed> {
        let bytes: usize = messages.iter().map(bytes::Bytes::len).sum();
        self.metrics()
            .server_frames(ServerType::Message, messages.len() as u64);
        self.queued.fetch_add(bytes, Ordering::AcqRel);
        self.tx.add_page_bytes(bytes);
        self.tx.send(Out::CatchUpPage { messages, bytes }).await?;
        Ok(bytes)
    }
}

/// A `sub`'s catch-up into this connection's queue (see [`SubSink`]).
struct QueueSink<'a> {
    session: &'a Session,
    /// The size of the last page queued (the next is expected to be about as big).
    last_page: usize,
}

#[async_trait::async_trait]
impl SubSink for QueueSink<'_> {
    async fn begin(&mut self, room: &Arc<str>) -> Result<(), SinkClosed> {
        self.session
            .tx
            .send(Out::BeginSub(room.clone()))
            .await
            .map_err(|_| SinkClosed)
    }

    async fn ready(&mut self) -> Result<(), SinkClosed> {
        self.session
            .room_for_page(self.last_page)
            .await
            .map_err(|_| SinkClosed)
    }

    async fn page(&mut self, frames: Vec<bytes::Bytes>) -> Result<(), SinkClosed> {
        self.last_page = self
            .session
            .queue_page(frames)
            .await
            .map_err(|_| SinkClosed)?;
        Ok(())
    }

    async fn abort(&mut self, room: &Arc<str>) {
        let _ = self
            .session
            .tx
            .send(Out::EndSub {
                room: room.clone(),
                reply: None,
            })
            .await;
    }
}
