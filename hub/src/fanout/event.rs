//! What the fanout carries: [`Event`]s (a serialised frame for a room's subscribers, with its
//! kind and its target) and [`Command`]s (what crosses between nodes: events and evictions).

use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_protocol::ws::{Message, ServerFrame};
use switchboard_protocol::Seq;

use super::registry::ConnId;
use crate::metrics::ServerType;

/// What an event is, as far as delivery cares. Decided once, when the event is made from its
/// frame, so nothing downstream looks into the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new message: delivered in seq order, once, and recorded in the hot window.
    Message(Seq),
    /// A message's body changed or it became a tombstone: the hot window's copy of the room is
    /// stale and is dropped.
    Rewrite,
    /// Everything else (membership, read marks, typing, presence): delivered as it comes.
    Notice,
}

/// Who among the room's local subscribers gets an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every subscriber.
    Room,
    /// Every subscriber but one connection of this node (the typist's own). Never crosses
    /// nodes: on other nodes it is [`Target::Room`].
    AllBut(ConnId),
    /// Only connections of users other than this one.
    OthersThan(Arc<str>),
}

/// An event for a room's subscribers, serialised once: every local subscriber gets a clone of
/// the same `Arc`, never a copy of the bytes.
#[derive(Debug)]
pub struct Event {
    /// The room the event belongs to.
    pub room: Arc<str>,
    pub kind: Kind,
    /// The serialised `ServerFrame`.
    pub bytes: Bytes,
    pub target: Target,
    /// The frame's `type`, for the count of frames out.
    pub frame: ServerType,
    /// When the message was committed on this node (`None`: another node's event, an edit, a
    /// gap fill): the start of its fanout latency (see [`Event::handled`]).
    pub committed: Option<Instant>,
    /// Subscribers whose writer has yet to handle the event, once the fanout has added how
    /// many it queued it to; it goes below zero while writers finish before that addition.
    pending: AtomicIsize,
}

impl Event {
    /// The event of `frame` in `room`, for `target`.
    pub fn new(room: Arc<str>, frame: &ServerFrame, target: Target) -> Self {
        let kind = match frame {
            ServerFrame::Message(m) => Kind::Message(m.seq),
            ServerFrame::Edited { .. } | ServerFrame::Deleted { .. } => Kind::Rewrite,
            _ => Kind::Notice,
        };
        Self::from_parts(room, kind, frame.to_bytes(), target, ServerType::of(frame))
    }

    /// An event of already serialised bytes (received from another node, or made by a test).
    pub fn from_parts(
        room: Arc<str>,
        kind: Kind,
        bytes: Bytes,
        target: Target,
        frame: ServerType,
    ) -> Self {
        Self {
            room,
            kind,
            bytes,
            target,
            frame,
            committed: None,
            pending: AtomicIsize::new(0),
        }
    }

    /// The `message` event of a stored message, for every subscriber.
    pub fn message(m: Message) -> Self {
        let room: Arc<str> = m.room.as_str().into();
        let kind = Kind::Message(m.seq);
        let bytes = ServerFrame::Message(m).to_bytes();
        Self::from_parts(room, kind, bytes, Target::Room, ServerType::Message)
    }

    /// The `message` event of a message this node committed at `at`: its fanout latency is
    /// measured.
    pub fn committed(m: Message, at: Instant) -> Self {
        Self {
            committed: Some(at),
            ..Self::message(m)
        }
    }

    /// The fanout queued the event to `n` local subscribers. The latency since the commit when
    /// every one of their writers has handled it already (see [`Event::handled`]).
    pub fn queued(&self, n: usize) -> Option<Duration> {
        let at = self.committed?;
        let n = isize::try_from(n).unwrap_or(isize::MAX);
        (n > 0 && self.pending.fetch_add(n, Ordering::AcqRel) == -n).then(|| at.elapsed())
    }

    /// A subscriber's writer has written the event (or dropped it as a repeat). The latency
    /// since the commit when it was the last of the subscribers the fanout queued it to.
    ///
    /// Exactly one of the calls of [`queued`](Self::queued) and `handled` returns the latency:
    /// the one that brings the count back to zero after the fanout's addition. Writers that
    /// finish before that addition take the count below zero, never to zero (it starts at zero
    /// and only the addition raises it). An event queued to a connection that closes before
    /// writing it is never measured.
    pub fn handled(&self) -> Option<Duration> {
        let at = self.committed?;
        (self.pending.fetch_sub(1, Ordering::AcqRel) == 1).then(|| at.elapsed())
    }

    /// The seq of a `message` event.
    pub fn seq(&self) -> Option<Seq> {
        match self.kind {
            Kind::Message(seq) => Some(seq),
            Kind::Rewrite | Kind::Notice => None,
        }
    }
}

/// What one node tells the others about a room, in the order it happened there.
#[derive(Debug, Clone)]
pub enum Command {
    /// Deliver an event to the room's subscribers.
    Deliver(Arc<Event>),
    /// End a user's subscriptions to the room (they left a private room).
    Evict { room: Arc<str>, user: Arc<str> },
    /// Close every connection of the user with this username (the server API's
    /// `disconnect`). Always sent on [`CONTROL_ROOM`], which every node follows.
    Disconnect { room: Arc<str>, user: Arc<str> },
    /// Queue a frame to every connection of every node, subscribed or not (the `emoticons`
    /// notice): `bytes` is the serialised frame, shared by all of them. Always sent on
    /// [`CONTROL_ROOM`].
    Broadcast {
        room: Arc<str>,
        bytes: Bytes,
        frame: ServerType,
    },
}

/// The channel of node-wide commands ([`Command::Disconnect`], [`Command::Broadcast`]): every node holds it from start
/// to shutdown. No room can have this id (the service makes room ids, UUIDs).
pub const CONTROL_ROOM: &str = "!nodes";

impl Command {
    /// The room the command is about.
    pub fn room(&self) -> &Arc<str> {
        match self {
            Self::Deliver(ev) => &ev.room,
            Self::Evict { room, .. }
            | Self::Disconnect { room, .. }
            | Self::Broadcast { room, .. } => room,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            room: "r".into(),
            seq: 1,
            from: "alice".into(),
            body: "hi".into(),
            ts: 0,
            client_msg_id: None,
            edited_ts: None,
            deleted: false,
            bot: false,
            attachments: Vec::new(),
        }
    }

    /// Exactly one call measures a committed message: the one that brings the count to zero,
    /// whether the writers finish before or after the fanout's addition.
    #[test]
    fn a_committed_message_is_measured_once_by_its_last_handler() {
        let ev = Event::committed(message(), Instant::now());
        assert_eq!(ev.handled(), None, "a writer before the addition");
        assert_eq!(ev.queued(3), None);
        assert_eq!(ev.handled(), None);
        assert!(ev.handled().is_some(), "the last of the three");

        let ev = Event::committed(message(), Instant::now());
        assert_eq!((ev.handled(), ev.handled()), (None, None));
        assert!(ev.queued(2).is_some(), "both writers were done first");

        let ev = Event::committed(message(), Instant::now());
        assert_eq!(ev.queued(0), None, "no subscriber, no sample");

        let ev = Event::message(message());
        assert_eq!(
            (ev.queued(1), ev.handled()),
            (None, None),
            "not committed here"
        );
    }
}
