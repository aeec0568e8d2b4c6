//! Who is online in a room: authenticated users with a connection subscribed to it, on any node.
//!
//! [`Presence`] is the seam: [`memory::MemoryPresence`] for one node, [`redis::RedisPresence`]
//! across nodes (entries carry an expiry that live nodes refresh, so a dead node's users vanish
//! within [`redis::ENTRY_TTL`]). The service publishes a `presence` event when a user becomes
//! present in a room or stops being present anywhere.

#[cfg(test)]
mod contract;
pub mod memory;
pub mod redis;

/// Presence bookkeeping. Calls for one (room, user) are balanced: every `join` is followed by
/// exactly one `leave`.
#[async_trait::async_trait]
pub trait Presence: Send + Sync + 'static {
    /// One more connection of `user` in `room` on this node. Returns true when the user just
    /// became present in the room (they had no connection in it on any node).
    async fn join(&self, room: &str, user: &str) -> bool;
    /// One connection fewer. Returns true when the user is no longer present anywhere.
    async fn leave(&self, room: &str, user: &str) -> bool;
    /// The usernames present in `room`, sorted.
    async fn list(&self, room: &str) -> Vec<String>;
}

/// Counts connections per (room, user) on this node. Shared by both implementations.
#[derive(Default)]
pub struct LocalCounts {
    counts: std::sync::Mutex<std::collections::HashMap<(String, String), usize>>,
}

impl LocalCounts {
    /// Adds one; returns true if it was the first.
    pub fn inc(&self, room: &str, user: &str) -> bool {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = c.entry((room.to_owned(), user.to_owned())).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Removes one; returns true if it was the last.
    pub fn dec(&self, room: &str, user: &str) -> bool {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let key = (room.to_owned(), user.to_owned());
        match c.get_mut(&key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                c.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Users present on this node in `room`.
    pub fn users_in(&self, room: &str) -> Vec<String> {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.keys()
            .filter(|(r, _)| r == room)
            .map(|(_, u)| u.clone())
            .collect()
    }

    /// Every (room, user) present on this node.
    /// Whether `user` has a connection in `room` on this node.
    pub fn contains(&self, room: &str, user: &str) -> bool {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.contains_key(&(room.to_owned(), user.to_owned()))
    }

    pub fn all(&self) -> Vec<(String, String)> {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.keys().cloned().collect()
    }
}
