//! The in-process broker: one node, so publishing is local delivery.

use std::sync::Arc;

use super::{Broker, Event};
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

impl Broker for MemoryBroker {
    fn publish(&self, event: Arc<Event>) {
        self.registry.deliver(&event);
    }

    fn subscribe(&self, _room: &str) {}

    fn unsubscribe(&self, _room: &str) {}
}
