//! Presence on one node.

use super::{LocalCounts, Presence};

/// Presence for the embedded, single-node configuration.
#[derive(Default)]
pub struct MemoryPresence {
    counts: LocalCounts,
}

#[async_trait::async_trait]
impl Presence for MemoryPresence {
    async fn join(&self, room: &str, user: &str) -> bool {
        self.counts.inc(room, user)
    }

    async fn leave(&self, room: &str, user: &str) -> bool {
        self.counts.dec(room, user)
    }

    async fn list(&self, room: &str) -> Vec<String> {
        let mut users = self.counts.users_in(room);
        users.sort();
        users
    }
}
