//! Client frames per connection: one node-wide keyed limiter (key: the connection id) rather
//! than a bucket in each connection's task, so an idle connection holds no limiter state at
//! all (its key is forgotten by the sweep) and the per-connection memory does not grow.
//!
//! The `sub` rule needs to know whether a token is there without spending it (a successful
//! first `sub` of a room is free, but none is tried while the bucket is empty). A GCRA cannot
//! be read without spending through governor's own stores, so [`FrameStates`] is a store of
//! ours: governor decides, and the store commits the decision only when the [`Probe`] says so.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::RateLimiter;

use super::quota;
use crate::clock::Monotonic;
use crate::fanout::ConnId;

/// Frames per connection (`--rate-per-sec` / `--rate-burst`), for every connection of the node.
pub struct Frames {
    limiter: RateLimiter<Probe, FrameStates, Monotonic, NoOpMiddleware<Nanos>>,
}

impl Frames {
    /// `rate` frames per second per connection after a burst of `burst` (see [`quota`]).
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            limiter: RateLimiter::new(quota(rate, burst), FrameStates::default(), Monotonic::new()),
        }
    }

    /// Takes one frame from `conn`'s allowance; false (nothing taken) when there is none.
    pub fn take(&self, conn: ConnId) -> bool {
        self.limiter.check_key(&Probe { conn, spend: true }).is_ok()
    }

    /// Whether `conn` has a frame to take now (none is taken).
    pub fn has_token(&self, conn: ConnId) -> bool {
        self.limiter
            .check_key(&Probe { conn, spend: false })
            .is_ok()
    }

    /// Connections tracked now (those that spent a frame and were not forgotten since).
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets the connections whose allowance has refilled, closed ones included (see the
    /// module doc of [`ratelimit`](super)).
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A question to the frame limiter about one connection: take a frame (`spend`), or only see
/// whether one could be taken. `Hash`/`Eq` are required by governor's keyed API; the store
/// keys its map by `conn` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Probe {
    conn: ConnId,
    spend: bool,
}

/// Each tracked connection's GCRA state, as governor's `InMemoryState` keeps it: the
/// theoretical arrival time in nanoseconds since the limiter was made (0 or absent: a full
/// bucket). A connection is only inserted when it spends a frame.
#[derive(Default)]
pub(super) struct FrameStates(DashMap<ConnId, AtomicU64>);

impl StateStore for FrameStates {
    type Key = Probe;

    fn measure_and_replace<T, F, E>(&self, key: &Probe, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if !key.spend {
            let tat = self.0.get(&key.conn).map(|s| s.load(Ordering::Acquire));
            return f(tat.and_then(tat_of)).map(|(answer, _)| answer);
        }
        if let Some(state) = self.0.get(&key.conn) {
            return replace(&state, f);
        }
        replace(&self.0.entry(key.conn).or_default(), f)
    }
}

impl ShrinkableKeyedStateStore<Probe> for FrameStates {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        self.0.retain(|_, s| s.load(Ordering::Relaxed) > drop_below);
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn tat_of(raw: u64) -> Option<Nanos> {
    NonZeroU64::new(raw).map(|n| Nanos::from(n.get()))
}

/// Decides on the current state and stores the new one, again if another thread changed it
/// meanwhile (what governor's `InMemoryState` does).
fn replace<T, E>(
    state: &AtomicU64,
    f: impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
) -> Result<T, E> {
    let mut prev = state.load(Ordering::Acquire);
    loop {
        let (answer, next) = f(tat_of(prev))?;
        match state.compare_exchange_weak(prev, next.into(), Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return Ok(answer),
            Err(actual) => prev = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn frames_refuse_past_the_burst_and_refill_at_the_rate() {
        let frames = Frames::new(20, 40);
        assert!((0..40).all(|_| frames.take(1)));
        assert!(!frames.take(1), "the burst is spent");
        assert!(frames.take(2), "another connection has its own");

        tokio::time::advance(Duration::from_millis(49)).await;
        assert!(!frames.take(1), "one frame refills in 50 ms");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(frames.take(1));
        assert!(!frames.take(1));
    }

    #[tokio::test(start_paused = true)]
    async fn looking_spends_nothing_and_stores_nothing() {
        let frames = Frames::new(1, 2);
        assert!(frames.has_token(1));
        assert_eq!(
            frames.tracked(),
            0,
            "a look at a new connection inserts nothing"
        );
        assert!((0..10).all(|_| frames.has_token(1)));
        assert!(
            frames.take(1) && frames.take(1),
            "the whole burst is still there"
        );
        assert!(!frames.has_token(1), "spent");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(frames.has_token(1) && frames.has_token(1));
        assert!(
            frames.take(1) && !frames.take(1),
            "one refilled, looks took none"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_forgets_connections_that_refilled() {
        let frames = Frames::new(20, 40);
        assert!(frames.take(1));
        assert!((0..40).all(|_| frames.take(2)));
        frames.sweep();
        assert_eq!(frames.tracked(), 2);
        // Connection 1 refilled 50 ms after its frame; 2 after its 40, 2 s.
        tokio::time::advance(Duration::from_millis(100)).await;
        frames.sweep();
        assert_eq!(frames.tracked(), 1);
        assert!(
            frames.take(2) && frames.take(2) && !frames.take(2),
            "connection 2's state was kept: two frames refilled in 100 ms"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        frames.sweep();
        assert_eq!(frames.tracked(), 0);
    }
}
