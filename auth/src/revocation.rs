//! [`Revocations`]: the set of revoked session ids that [`crate::Verifier`] consults, and the
//! broadcast channel that tells the hub to close a revoked session's sockets.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::broadcast;

/// Capacity of the revocation broadcast channel. Revocations are rare (logout, refresh-token
/// reuse), so a receiver only lags if it stops reading; see [`Revocations::subscribe`].
pub const REVOCATION_CHANNEL_CAPACITY: usize = 1024;

/// The in-memory revocation set plus its broadcast feed. Cheap to clone; clones share state.
///
/// Each entry maps a session id to the time (seconds since the Unix epoch) after which no
/// access token of that session can still pass `exp` verification; after it the entry is
/// useless and is dropped. The set is authoritative for verification; the database only holds
/// it across restarts (`Auth::open` loads the entries that are still live).
///
/// This is the seam for the multi-node setup: a feed from other nodes calls [`revoke`] too.
///
/// **Invariant:** no `dashmap` guard is held across an `.await` (no method here is async).
///
/// [`revoke`]: Revocations::revoke
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    /// session id → Unix seconds after which the entry can be forgotten.
    revoked: DashMap<String, u64>,
    /// Carries each newly revoked session id.
    tx: broadcast::Sender<String>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("len", &self.inner.revoked.len())
            .finish()
    }
}

impl Revocations {
    /// An empty set.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(REVOCATION_CHANNEL_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                revoked: DashMap::new(),
                tx,
            }),
        }
    }

    /// Revokes session `sid` until `until` (Unix seconds; see the type docs) and, if it was not
    /// already revoked, broadcasts `sid` to every subscriber. Returns whether it was new.
    /// Also forgets entries whose time has passed.
    pub fn revoke(&self, sid: &str, until: u64) -> bool {
        self.purge_expired(crate::unix_now());
        let new = self.insert(sid, until);
        if new {
            // No receivers is fine: nobody has sockets to close.
            let _ = self.inner.tx.send(sid.to_owned());
        }
        new
    }

    /// Adds an entry without broadcasting (used when loading the persisted set at start,
    /// before anyone can have subscribed). Returns whether it was new.
    pub(crate) fn insert(&self, sid: &str, until: u64) -> bool {
        let mut new = false;
        self.inner
            .revoked
            .entry(sid.to_owned())
            .and_modify(|u| *u = (*u).max(until))
            .or_insert_with(|| {
                new = true;
                until
            });
        new
    }

    /// Whether session `sid` is revoked.
    pub fn is_revoked(&self, sid: &str) -> bool {
        self.inner.revoked.contains_key(sid)
    }

    /// Number of entries (revoked sessions whose tokens may still be alive).
    pub fn len(&self) -> usize {
        self.inner.revoked.len()
    }

    /// Whether no session is revoked.
    pub fn is_empty(&self) -> bool {
        self.inner.revoked.is_empty()
    }

    /// A receiver of every session id revoked from now on.
    ///
    /// If a receiver falls more than [`REVOCATION_CHANNEL_CAPACITY`] messages behind it gets
    /// `RecvError::Lagged`; it must then re-check its sessions with [`is_revoked`] instead of
    /// relying on the messages it missed.
    ///
    /// [`is_revoked`]: Revocations::is_revoked
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.inner.tx.subscribe()
    }

    fn purge_expired(&self, now: u64) {
        self.inner.revoked.retain(|_, until| *until >= now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_broadcasts_once_and_purges_dead_entries() {
        let revocations = Revocations::new();
        let mut rx = revocations.subscribe();
        let later = crate::unix_now() + 60;
        assert!(revocations.revoke("s1", later));
        assert!(!revocations.revoke("s1", later), "second revoke is not new");
        assert_eq!(rx.try_recv().unwrap(), "s1");
        assert!(rx.try_recv().is_err(), "only one message");
        assert!(revocations.is_revoked("s1"));

        assert!(revocations.insert("old", 1));
        assert!(revocations.is_revoked("old"));
        revocations.revoke("s2", later);
        assert!(!revocations.is_revoked("old"), "dead entry purged");
        assert_eq!(revocations.len(), 2);
    }
}
