//! The rate limits' clock: `governor`'s `Clock` over tokio's monotonic time, the same time as
//! the kit's [`Clock`](switchboard_kit::clock::Clock), which liveness uses.
//!
//! **Invariant:** intervals are measured on this clock, never on the wall clock
//! ([`now_ms`](crate::service::now_ms) is for timestamps that are stored or shown): the wall
//! clock can jump (NTP, a VM resumed), which would refill every bucket at once or drop every
//! connection as silent. It reads `tokio::time`, so a test that calls `tokio::time::pause()`
//! moves it with `tokio::time::advance` instead of sleeping.

use std::time::Duration;

use governor::nanos::Nanos;

/// Time since the clock was made, on tokio's (pausable) monotonic time. `Copy`: one origin
/// is shared by value wherever it is needed.
#[derive(Debug, Clone, Copy)]
pub struct Monotonic {
    origin: tokio::time::Instant,
}

impl Monotonic {
    /// A clock that reads zero now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }

    /// Time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }
}

impl Default for Monotonic {
    fn default() -> Self {
        Self::new()
    }
}

/// `governor`'s time source: nanoseconds since the origin (governor keeps each key's state as
/// nanoseconds since its limiter was made, so nothing is lost by starting at zero).
impl governor::clock::Clock for Monotonic {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(u64::try_from(self.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_time() {
        let clock = Monotonic::new();
        assert_eq!(clock.elapsed(), Duration::ZERO);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.elapsed(), Duration::from_millis(1_500));
        assert_eq!(
            governor::clock::Clock::now(&clock),
            Nanos::from(1_500_000_000)
        );
    }
}
