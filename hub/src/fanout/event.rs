//! What the fanout carries: [`Event`]s (a serialised frame for a room's subscribers, with its
//! kind and its target) and [`Command`]s (what crosses between nodes: events and evictions).

use std::sync::Arc;

use bytes::Bytes;
use switchboard_protocol::ws::{Message, ServerFrame};
use switchboard_protocol::Seq;

use super::registry::ConnId;

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
}

impl Event {
    /// The event of `frame` in `room`, for `target`.
    pub fn new(room: Arc<str>, frame: &ServerFrame, target: Target) -> Self {
        let kind = match frame {
            ServerFrame::Message(m) => Kind::Message(m.seq),
            ServerFrame::Edited { .. } | ServerFrame::Deleted { .. } => Kind::Rewrite,
            _ => Kind::Notice,
        };
        Self {
            room,
            kind,
            bytes: frame.to_bytes(),
            target,
        }
    }

    /// The `message` event of a stored message, for every subscriber.
    pub fn message(m: Message) -> Self {
        let room: Arc<str> = m.room.as_str().into();
        Self {
            room,
            kind: Kind::Message(m.seq),
            bytes: ServerFrame::Message(m).to_bytes(),
            target: Target::Room,
        }
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
}

impl Command {
    /// The room the command is about.
    pub fn room(&self) -> &Arc<str> {
        match self {
            Self::Deliver(ev) => &ev.room,
            Self::Evict { room, .. } => room,
        }
    }
}
