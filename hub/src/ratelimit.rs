//! Rate limits: a token bucket per connection (all client frames) and one per user (sends and
//! typing, across all of the user's connections and REST calls on this node).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use dashmap::DashMap;

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a token is there to take (none is taken).
    pub fn has_token(&mut self) -> bool {
        self.refill();
        self.tokens >= 1.0
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
    }

    /// Whether the bucket has refilled completely (an idle user's bucket can be forgotten).
    fn is_full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.burst
    }
}

/// Most users tracked before idle (full) buckets are pruned.
const PRUNE_AT: usize = 10_000;

/// One bucket per user, created on first use.
pub struct PerUser {
    rate: u32,
    burst: u32,
    buckets: DashMap<Arc<str>, Mutex<TokenBucket>>,
}

impl PerUser {
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            burst,
            buckets: DashMap::new(),
        }
    }

    /// Takes a token from `user`'s bucket.
    pub fn take(&self, user: &Arc<str>) -> bool {
        if self.buckets.len() > PRUNE_AT {
            self.buckets
                .retain(|_, b| !b.get_mut().map(|b| b.is_full()).unwrap_or(true));
        }
        let bucket = self
            .buckets
            .entry(user.clone())
            .or_insert_with(|| Mutex::new(TokenBucket::new(self.rate, self.burst)));
        let allowed = bucket.lock().map(|mut b| b.take()).unwrap_or(false);
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_per_user() {
        let limits = PerUser::new(1, 3);
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        assert!((0..3).all(|_| limits.take(&alice)));
        assert!(!limits.take(&alice), "alice spent her burst");
        assert!(limits.take(&bob), "bob has his own bucket");
    }
}
