//! The servers' monotonic clock, for deadlines, liveness and rate windows (never for timestamps
//! shown to users, which are wall-clock).
//!
//! Built on [`tokio::time::Instant`], so a test that calls `tokio::time::pause()` (or uses
//! `#[tokio::test(start_paused = true)]`) moves it with `tokio::time::advance` and never
//! sleeps. [`Clock::millis`] packs a reading into a `u64`, for state kept in atomics.

use std::sync::LazyLock;

use tokio::time::Instant;

/// The first reading of the process: [`Clock::millis`] counts from here.
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// The monotonic clock (a namespace: it has no state of its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock;

impl Clock {
    /// Now, on Tokio's clock (paused and advanced by tests).
    pub fn now() -> Instant {
        Instant::now()
    }

    /// Milliseconds since the process's first reading of this clock: monotonic, starting near 0,
    /// so it fits a `u64` (and an `AtomicU64`) for any process lifetime.
    pub fn millis() -> u64 {
        Self::millis_at(Instant::now())
    }

    /// [`Clock::millis`] of a given instant (0 for an instant before the first reading).
    pub fn millis_at(instant: Instant) -> u64 {
        let since = instant.saturating_duration_since(*START);
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Clock;

    #[tokio::test(start_paused = true)]
    async fn paused_time_drives_the_clock() {
        let before = Clock::millis();
        let at = Clock::now();
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(Clock::millis() - before, 1500);
        assert_eq!(Clock::now() - at, Duration::from_millis(1500));
        // Paused time stands still without an advance.
        assert_eq!(Clock::millis() - before, 1500);
    }

    #[test]
    fn millis_never_go_backwards() {
        let mut last = Clock::millis();
        for _ in 0..1000 {
            let now = Clock::millis();
            assert!(now >= last);
            last = now;
        }
        // The first reading was taken above, less than an hour ago.
        if let Some(early) = Clock::now().checked_sub(Duration::from_secs(3600)) {
            assert_eq!(Clock::millis_at(early), 0);
        }
    }
}
