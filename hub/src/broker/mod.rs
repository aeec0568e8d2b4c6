//! Between nodes: a room's commands reach every other node that holds the room.
//!
//! [`Broker`] is the seam under the fanout ([`crate::fanout`]), which delivers to this node's
//! subscribers itself and hands the broker only what the other nodes need.
//! [`memory::MemoryBroker`] is the embedded default (one node: nobody else to tell);
//! [`redis::RedisBroker`] links nodes through Redis pub/sub.
//!
//! **Guarantees:** delivery is at-most-once across nodes (the fanout's sequencer fills lost
//! messages from the store); a room's commands published by one node reach every node holding
//! the room in publication order.

pub mod memory;
pub mod redis;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::fanout::Command;

/// Why the broker could not serve a room.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The node could not subscribe to the room in time (the broker is unreachable).
    #[error("the broker is unavailable")]
    Unavailable,
}

/// Carries a room's commands to the other nodes that hold it. Commands from the other nodes come
/// back through the [`crate::fanout::Inbound`] channel the broker was started with; a broker
/// never delivers to local connections.
#[async_trait::async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Sends a command to the other nodes. Never waits on the network; may queue internally
    /// (and drop under overload: the fanout refills messages from the store).
    fn publish(&self, command: &Command);
    /// Takes one hold on `room`. Resolves once the room's commands from every other node reach
    /// this node's inbound channel. Each call, successful or not, is balanced by one
    /// [`release`](Self::release).
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] if that cannot be established in bounded time.
    async fn acquire(&self, room: &Arc<str>) -> Result<(), BrokerError>;
    /// Gives back a hold; after the last one the node stops receiving the room's commands.
    fn release(&self, room: &str);
}
