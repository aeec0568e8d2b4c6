//! Fanout between nodes: a room's events reach every node that has subscribers in it.
//!
//! [`Broker`] is the seam; [`memory::MemoryBroker`] is the embedded default (one node, the
//! events go straight to the local [`Registry`](crate::registry::Registry)); a Redis pub/sub
//! implementation is the second.
//!
//! **Guarantees:** delivery is at-most-once across nodes; for a room, events published by one
//! node reach every subscribed node in publication order. The service layer publishes a room's
//! messages in seq order (see `service::RoomLocks`), so subscribers see seqs ascending.

pub mod memory;
pub mod redis;
mod sequencer;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use switchboard_protocol::Seq;

/// An event for a room's subscribers, serialised once: every local subscriber gets a clone of
/// the same `Arc`, never a copy of the bytes.
#[derive(Debug)]
pub struct Event {
    /// The room the event belongs to.
    pub room: Arc<str>,
    /// The message seq for `message` events (used to drop duplicates during catch-up); `None`
    /// for events that do not carry a new seq (`edited`, `typing`, ...).
    pub seq: Option<Seq>,
    /// The serialised `ServerFrame`.
    pub bytes: Bytes,
    /// A connection that must not receive this event (e.g. the typist's own connection).
    pub skip_conn: Option<u64>,
    /// Only connections of users other than this one get it (`typing`).
    pub skip_user: Option<Arc<str>>,
    /// After delivering, end this user's subscriptions to the room (they left a private room).
    pub evict_user: Option<Arc<str>>,
}

/// Why the broker could not serve a room.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The node could not subscribe to the room in time (the broker is unreachable).
    #[error("the broker is unavailable")]
    Unavailable,
}

/// Publishes room events to every node with subscribers in the room.
#[async_trait::async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes an event (to this node's subscribers too). Never waits on a client or on the
    /// network; may queue internally.
    fn publish(&self, event: Arc<Event>);
    /// Takes one hold on `room` for a new local subscription. Resolves once the room's events
    /// from every node reach this node, so a catch-up read from the store after it misses
    /// nothing. Each call, successful or not, is balanced by one [`release`](Self::release).
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] if that cannot be established in bounded time.
    async fn acquire(&self, room: &Arc<str>) -> Result<(), BrokerError>;
    /// Gives back a hold; after the last one the node stops receiving the room's events.
    fn release(&self, room: &str);
}
