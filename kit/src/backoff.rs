//! Jittered exponential backoff: the one formula behind every reconnect and retry loop of the
//! servers (Redis pub/sub, the revocation feed and its announcer, the accept loop) and the
//! client's reconnects.
//!
//! Attempt `n` (1, 2, ...) waits a delay drawn uniformly from `[d/2, d]`, where
//! `d = min(max, initial * factor^(n-1))`. The delay grows geometrically, never past `max`, and
//! the jitter spreads peers that lost the same service at the same moment, so that they do not all
//! come back in the same instant. The lower half is never drawn, so every delay is at least half
//! the nominal one.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A backoff policy. Cheap to copy; [`Backoff::retries`] gives the state of one loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Upper end of the first delay.
    pub initial: Duration,
    /// Cap on the upper end of any delay.
    pub max: Duration,
    /// Growth per attempt; values below 1 count as 1.
    pub factor: f64,
}

impl Backoff {
    /// Doubling from `initial` up to `max`.
    pub const fn doubling(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            factor: 2.0,
        }
    }

    /// The delay before attempt `attempt` (1-based), jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, random_unit())
    }

    /// [`Backoff::delay`] with the jitter given: `unit` in `[0, 1]` picks the point in
    /// `[d/2, d]` (out-of-range values are clamped).
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(1024) as i32;
        let grown = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        // `min` also turns an infinite product into the cap.
        let capped = grown.min(self.max.as_secs_f64());
        Duration::from_secs_f64(capped * (0.5 + 0.5 * unit.clamp(0.0, 1.0)))
    }

    /// The state of one retry loop, starting at attempt 1.
    pub fn retries(self) -> Retries {
        Retries {
            policy: self,
            attempt: 0,
        }
    }
}

/// One loop's progress through a [`Backoff`]: each failure asks for the next delay, a success
/// resets it.
#[derive(Debug, Clone)]
pub struct Retries {
    policy: Backoff,
    /// Failed attempts since the last reset.
    attempt: u32,
}

impl Retries {
    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        self.policy.delay(self.attempt)
    }

    /// Waits [`Retries::next_delay`] (on Tokio's clock, so paused time drives it).
    ///
    /// # Cancel safety
    /// Cancelling the wait still counts the failure.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.attempt
    }
}

/// A random number in `[0, 1)`, for jitter. The bits come from std's [`RandomState`], whose
/// SipHash keys are drawn from the operating system's random source, hashing a process-wide
/// counter: unpredictable enough to spread peers, without a random-number crate.
pub fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let bits = RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
    // The top 53 bits fill an f64's mantissa exactly.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff::doubling(Duration::from_millis(100), Duration::from_secs(1));

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap_with_jitter_in_the_upper_half() {
        let full = |attempt| POLICY.delay_with(attempt, 1.0).as_millis();
        let half = |attempt| POLICY.delay_with(attempt, 0.0).as_millis();
        assert_eq!(
            [1, 2, 3, 4, 5, 100, u32::MAX].map(full),
            [100, 200, 400, 800, 1000, 1000, 1000]
        );
        assert_eq!([1, 2, 5].map(half), [50, 100, 500]);
        for attempt in 1..20 {
            let delay = POLICY.delay(attempt);
            assert!(delay >= POLICY.delay_with(attempt, 0.0), "{delay:?}");
            assert!(delay <= POLICY.delay_with(attempt, 1.0), "{delay:?}");
        }
    }

    #[test]
    fn a_factor_below_one_does_not_shrink_the_delay() {
        let policy = Backoff {
            factor: 0.1,
            ..POLICY
        };
        assert_eq!(policy.delay_with(5, 1.0), policy.initial);
    }

    #[test]
    fn jitter_spreads_delays() {
        let units: std::collections::HashSet<u64> =
            (0..100).map(|_| random_unit().to_bits()).collect();
        assert!(units.len() > 90, "{} distinct of 100", units.len());
        assert!((0..1000)
            .map(|_| random_unit())
            .all(|u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn retries_count_failures_and_reset() {
        let mut retries = POLICY.retries();
        for attempt in 1..=6 {
            let delay = retries.next_delay();
            assert!(delay <= POLICY.delay_with(attempt, 1.0), "{delay:?}");
            assert!(delay >= POLICY.delay_with(attempt, 0.0), "{delay:?}");
        }
        assert_eq!(retries.failures(), 6);
        retries.reset();
        assert_eq!(retries.failures(), 0);
        assert!(retries.next_delay() <= POLICY.initial);
    }

    /// `wait` sleeps on Tokio's clock: with time paused it returns once time is advanced past
    /// the delay, not before.
    #[tokio::test(start_paused = true)]
    async fn wait_follows_paused_time() {
        let mut retries = POLICY.retries();
        let start = tokio::time::Instant::now();
        retries.wait().await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited <= Duration::from_millis(100),
            "{waited:?}"
        );
    }
}
