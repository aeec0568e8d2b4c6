//! The in-process broker: one node, so publishing is local delivery.

use std::sync::Arc;

use super::{Broker, BrokerError, Event};
use crate::registry::Registry;

/// Delivers every published event to the local registry, synchronously and in call order.
pub struct MemoryBroker {
    registry: Arc<Registry>,
}

impl MemoryBroker {
    /// A broker delivering into `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

#[async_trait::async_trait]
impl Broker for MemoryBroker {
    fn publish(&self, event: Arc<Event>) {
        self.registry.deliver(&event);
    }

    async fn acquire(&self, _room: &Arc<str>) -> Result<(), BrokerError> {
        Ok(())
    }

    fn release(&self, _room: &str) {}
}
