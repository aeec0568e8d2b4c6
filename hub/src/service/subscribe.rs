//! `sub`: the one sequence that makes a connection a room's subscriber, written once for every
//! adapter. The adapter only says how its catch-up is queued ([`SubSink`]).
//!
//! **The sequence:** access check → limits → the sink begins buffering the room's live events
//! → a [`Hold`](crate::fanout::Hold) on the room (its events now reach this node in seq order)
//! → the subscription is registered (live events flow into the buffer) → the room's last seq
//! is read → the catch-up after `since` (hot window, else the store a page at a time) goes to
//! the sink → presence. Every message is then either in the catch-up (seq ≤ the last seq read,
//! which was read after registering) or delivered live after it; the adapter drops buffered
//! events at or below the catch-up's end.

use std::sync::Arc;

use bytes::Bytes;
use switchboard_protocol::limits::MAX_HISTORY_LIMIT;
use switchboard_protocol::ws::ServerFrame;
use switchboard_protocol::Seq;

use super::{Identity, Service};
use crate::error::{Error, Result};
use crate::fanout::ConnId;

/// Messages per catch-up page: what one store read returns and what one page holds.
const CATCH_UP_PAGE: u32 = MAX_HISTORY_LIMIT;

/// The node's bounds on `sub` (flags `--max-subscriptions`, `--max-catchup-messages`).
#[derive(Debug, Clone, Copy)]
pub struct SubLimits {
    /// Rooms one connection may be subscribed to at once.
    pub max_subscriptions: usize,
    /// Most messages a catch-up may be behind.
    pub max_catchup_messages: u64,
}

impl Default for SubLimits {
    fn default() -> Self {
        Self {
            max_subscriptions: usize::MAX,
            max_catchup_messages: u64::MAX,
        }
    }
}

/// One `sub` of one connection.
#[derive(Debug)]
pub struct SubRequest<'a> {
    pub who: Option<&'a Identity>,
    pub conn: ConnId,
    pub room: &'a str,
    pub since: Option<Seq>,
    /// Rooms the connection is subscribed to now.
    pub held: usize,
}

/// What became of a `sub`.
#[derive(Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// The connection was subscribed already: answer `subbed` with the room's last seq, and
    /// nothing else (no second catch-up).
    Already { last_seq: Seq },
    /// Newly subscribed; the catch-up went to the sink. The client now has every message up to
    /// `upto`. `present`: the connection counts towards its user's presence in the room (its
    /// leave must be announced when the subscription ends).
    New {
        room: Arc<str>,
        upto: Seq,
        present: bool,
    },
}

/// The connection is closing: its catch-up cannot be queued.
#[derive(Debug)]
pub struct SinkClosed;

/// Where a new subscription's catch-up goes (the adapter's outbound queue).
#[async_trait::async_trait]
pub trait SubSink: Send {
    /// Start buffering `room`'s live events: they follow the catch-up. Called before the
    /// subscription is registered.
    async fn begin(&mut self, room: &Arc<str>) -> std::result::Result<(), SinkClosed>;
    /// Waits until another page may be queued (the catch-up's back-pressure: the client has
    /// read enough of the pages before). Called before each page is read, so that a waiting
    /// catch-up holds no page of its own.
    async fn ready(&mut self) -> std::result::Result<(), SinkClosed>;
    /// One page of the catch-up, ascending serialised `message` frames.
    async fn page(&mut self, frames: Vec<Bytes>) -> std::result::Result<(), SinkClosed>;
    /// The `sub` failed after [`begin`](Self::begin): stop buffering `room`.
    async fn abort(&mut self, room: &Arc<str>);
}

fn closing(_: SinkClosed) -> Error {
    Error::Unavailable("the connection is closing")
}

impl Service {
    /// Subscribes `req.conn` to `req.room` (see the module docs for the sequence).
    ///
    /// # Errors
    /// `not_found`/`forbidden` (access), `too_many_subscriptions`, `catchup_too_large`,
    /// `history_expired` (retention deleted messages after `since`), `unavailable` (broker,
    /// store, or the connection closing). A refused `sub` subscribes nothing.
    pub async fn subscribe(
        &self,
        req: SubRequest<'_>,
        sink: &mut dyn SubSink,
    ) -> Result<Subscribed> {
        let rec = self.readable_room(req.who, req.room).await?;
        let registry = self.fanout.registry();
        if registry.is_subscribed(req.conn, req.room) {
            return Ok(Subscribed::Already {
                last_seq: rec.last_seq,
            });
        }
        let limits = self.sub_limits;
        if req.held >= limits.max_subscriptions {
            return Err(Error::TooManySubscriptions(limits.max_subscriptions));
        }
        if let Some(since) = req.since {
            if rec.last_seq.saturating_sub(since) > limits.max_catchup_messages {
                return Err(Error::CatchupTooLarge(limits.max_catchup_messages));
            }
        }
        let room: Arc<str> = req.room.into();
        sink.begin(&room).await.map_err(closing)?;
        if let Some(who) = req.who {
            // Before `subscribe`, which copies the handle: evictions report presence by name.
            registry.name(req.conn, &who.username);
        }
        match self.subscribe_begun(&req, &room, sink).await {
            Ok(upto) => {
                // Not if an eviction ended the subscription meanwhile: it counted no join.
                let present = match req.who {
                    Some(who) if registry.is_subscribed(req.conn, &room) => {
                        self.presence_join(who, &room).await;
                        true
                    }
                    _ => false,
                };
                Ok(Subscribed::New {
                    room,
                    upto,
                    present,
                })
            }
            Err(e) => {
                registry.unsubscribe(req.conn, &room);
                sink.abort(&room).await;
                Err(e)
            }
        }
    }

    /// The part of [`subscribe`](Self::subscribe) after the sink began buffering; returns the
    /// seq the catch-up reached.
    async fn subscribe_begun(
        &self,
        req: &SubRequest<'_>,
        room: &Arc<str>,
        sink: &mut dyn SubSink,
    ) -> Result<Seq> {
        let hold = self
            .fanout
            .hold(room)
            .await
            .map_err(|_| Error::Unavailable("the broker is unavailable"))?;
        if !self.fanout.registry().subscribe(req.conn, room, Some(hold)) {
            return Err(Error::Unavailable("the connection is closing"));
        }
        let last_seq = self.readable_room(req.who, room).await?.last_seq;
        match req.since {
            None => Ok(last_seq),
            Some(since) => self.catch_up(room, since, last_seq, sink).await,
        }
    }

    /// Sends every message after `since` to the sink (from the hot window when it covers them,
    /// else from the store a page at a time); returns the seq up to which the client then has
    /// every message.
    async fn catch_up(
        &self,
        room: &str,
        since: Seq,
        last_seq: Seq,
        sink: &mut dyn SubSink,
    ) -> Result<Seq> {
        // A recent `since` (a short disconnect) is served from the hot window.
        if let Some(hot) = self.fanout.registry().hot().after(room, since) {
            for page in hot.frames.chunks(CATCH_UP_PAGE as usize) {
                sink.ready().await.map_err(closing)?;
                sink.page(page.to_vec()).await.map_err(closing)?;
            }
            // The ring holds what this node has delivered, which may lag the store (a
            // sequencer still filling a gap after another node died): its `upto` can then be
            // below `since`. The client has everything up to `since` (at most the stored last
            // seq), so the writer must drop a late live event at or below it, not just at or
            // below the ring's newest: else a resume replays those seqs.
            return Ok(hot.upto.max(since.min(last_seq)));
        }
        self.check_retained(room, since).await?;
        let mut upto = since.min(last_seq);
        while upto < last_seq {
            sink.ready().await.map_err(closing)?;
            let page = self.messages_after(room, upto, CATCH_UP_PAGE).await?;
            let Some(last) = page.last() else { break };
            upto = last.seq;
            let full = page.len() == CATCH_UP_PAGE as usize;
            let frames = page
                .into_iter()
                .map(|m| ServerFrame::Message(m).to_bytes())
                .collect();
            sink.page(frames).await.map_err(closing)?;
            if !full {
                break;
            }
        }
        Ok(upto)
    }
}
