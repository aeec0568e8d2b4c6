//! [`ImageSlots`]: the bounds on one hub's image work, so that the memory and CPU of uploads
//! do not grow with the number of callers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

/// How many image uploads (avatars) may be under way at once on one hub, from their first
/// byte to the end of their decode: each holds at most its bound (2 MiB) in memory, so at most
/// `UPLOADS` × 2 MiB in all.
pub const UPLOADS: usize = 16;
/// How many uploads may be decoded and re-encoded at once (on the blocking pool): a
/// 4096×4096 image is 64 MiB of pixels while it is worked on.
pub const DECODES: usize = 2;
/// The longest an upload's body may take to arrive; past it the upload is refused and its
/// slot freed (a trickling client cannot hold one forever).
pub const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// How many attachment uploads may be received at once on one hub: each holds a spool file
/// (one descriptor, at most `--max-attachment-bytes` of disk), so at most this many of each.
pub const ATTACHMENT_UPLOADS: usize = 64;
/// The longest an attachment's body may take to arrive (10 MiB at about 35 KiB/s); past it the
/// upload is refused, its spool file removed and its slot freed.
pub const ATTACHMENT_DEADLINE: Duration = Duration::from_secs(300);

/// The semaphores of [`UPLOADS`], [`DECODES`] and [`ATTACHMENT_UPLOADS`], and the per-user
/// bounds, one set per hub.
#[derive(Debug)]
pub struct ImageSlots {
    /// Uploads being received (taken without waiting: none free is `503 unavailable`).
    pub uploads: Semaphore,
    /// Decodes (waited for: the upload is already received).
    pub decodes: Semaphore,
    /// Attachment uploads being received (taken without waiting, as `uploads`).
    pub attachments: Semaphore,
    /// Avatar uploads under way per user ([`AVATAR_UPLOADS_PER_USER`]).
    pub avatars_per_user: UserTurns,
    /// Attachment uploads under way per user ([`ATTACHMENT_UPLOADS_PER_USER`]).
    pub attachments_per_user: UserTurns,
}

impl Default for ImageSlots {
    fn default() -> Self {
        Self {
            uploads: Semaphore::new(UPLOADS),
            decodes: Semaphore::new(DECODES),
            attachments: Semaphore::new(ATTACHMENT_UPLOADS),
            avatars_per_user: UserTurns::new(AVATAR_UPLOADS_PER_USER),
            attachments_per_user: UserTurns::new(ATTACHMENT_UPLOADS_PER_USER),
        }
    }
}

/// How many attachment uploads one user may have under way at once on one hub: without it one
/// account could hold all [`ATTACHMENT_UPLOADS`] slots with trickling bodies.
pub const ATTACHMENT_UPLOADS_PER_USER: usize = 4;
/// How many avatar uploads one user may have under way at once on one hub (one is all a
/// person needs; the rest of [`UPLOADS`] stay for others).
pub const AVATAR_UPLOADS_PER_USER: usize = 1;

/// Uploads under way per user: at most `max` each. An entry exists only while its user has an
/// upload under way (the last [`Turn`] to drop removes it), so the map holds at most one
/// entry per upload in flight, bounded by the hub-wide semaphores.
#[derive(Debug)]
pub struct UserTurns {
    max: usize,
    under_way: Arc<Mutex<HashMap<Arc<str>, usize>>>,
}

/// One upload of one user, counted until dropped.
#[derive(Debug)]
pub struct Turn {
    user: Arc<str>,
    under_way: Arc<Mutex<HashMap<Arc<str>, usize>>>,
}

impl UserTurns {
    /// At most `max` uploads under way per user.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            under_way: Arc::default(),
        }
    }

    /// A turn for `user`, or `None` when `max` of theirs are under way. Constant time.
    pub fn try_enter(&self, user: &Arc<str>) -> Option<Turn> {
        let mut map = self
            .under_way
            .lock()
            .expect("never poisoned: no panic under it");
        let n = map.entry(user.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Turn {
            user: user.clone(),
            under_way: self.under_way.clone(),
        })
    }

    /// Users with an upload under way.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.under_way.lock().unwrap().len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut map = self
            .under_way
            .lock()
            .expect("never poisoned: no panic under it");
        if let Some(n) = map.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_at_most_max_turns_and_others_are_not_held_up() {
        let slots = UserTurns::new(2);
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        let a1 = slots.try_enter(&alice).expect("first");
        let a2 = slots.try_enter(&alice).expect("second");
        assert!(slots.try_enter(&alice).is_none(), "a third is refused");
        let b1 = slots.try_enter(&bob).expect("bob has his own");
        drop(a1);
        let a3 = slots.try_enter(&alice).expect("a turn came back");
        drop((a2, a3, b1));
        assert_eq!(slots.tracked(), 0, "no entry outlives its uploads");
    }
}
