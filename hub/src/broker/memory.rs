//! The in-process broker: one node, so there is nobody else to tell.

use std::sync::Arc;

use super::{Broker, BrokerError};
use crate::fanout::Command;

/// The broker of a node that runs alone: publishing reaches no other node (the fanout has
/// delivered locally already) and every room is held at once.
#[derive(Debug, Default)]
pub struct MemoryBroker;

#[async_trait::async_trait]
impl Broker for MemoryBroker {
    fn publish(&self, _command: &Command) {}

    async fn acquire(&self, _room: &Arc<str>) -> Result<(), BrokerError> {
        Ok(())
    }

    fn release(&self, _room: &str) {}
}
