//! What a [`ReconnectingClient`](super::ReconnectingClient) is configured with: the URL, where
//! its access tokens come from, the backoff between attempts and its timeouts.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::ws::DEFAULT_TIMEOUT;
use crate::ClientError;

/// Where the access token for each `hello` comes from. Asked before every connection attempt, so
/// an implementation can refresh tokens (e.g. with [`Api::refresh`](crate::Api::refresh)) and a
/// reconnect after a long outage presents a current one.
///
/// Implemented for [`FixedToken`] and for any `Fn() -> impl Future<Output = Result<Option<String>,
/// ClientError>>` closure.
pub trait TokenSource: Send + Sync {
    /// The token to present, or `None` to connect anonymously (public rooms, read-only).
    ///
    /// # Errors
    /// An error fails this connection attempt. It is retried with backoff when the error is
    /// transient (I/O, timeout, HTTP 5xx) and ends the client otherwise (e.g. a refresh token
    /// answered with 401).
    fn token(&self) -> BoxFuture<'_, Result<Option<String>, ClientError>>;
}

/// A token that never changes (or no token: anonymous). Enough for short-lived clients and
/// tests; an access token expires (15 minutes by default), after which a reconnect is refused.
#[derive(Clone)]
pub struct FixedToken(pub Option<String>);

impl fmt::Debug for FixedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token itself.
        let shown = self.0.as_ref().map(|_| "<token>");
        f.debug_tuple("FixedToken").field(&shown).finish()
    }
}

impl TokenSource for FixedToken {
    fn token(&self) -> BoxFuture<'_, Result<Option<String>, ClientError>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

impl<F, Fut> TokenSource for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<Option<String>, ClientError>> + Send + 'static,
{
    fn token(&self) -> BoxFuture<'_, Result<Option<String>, ClientError>> {
        Box::pin(self())
    }
}

/// Jittered exponential backoff between reconnection attempts.
///
/// Attempt `n` (1, 2, ...) starts after a delay drawn uniformly from `[d/2, d]`, where
/// `d = min(max, initial * factor^(n-1))`: the delay grows geometrically, and the jitter spreads
/// clients that lost the same node so they do not all come back in the same instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Upper end of the first delay. Default 250 ms.
    pub initial: Duration,
    /// Cap on the upper end of any delay. Default 30 s.
    pub max: Duration,
    /// Growth per attempt; values below 1 count as 1. Default 2.
    pub factor: f64,
    /// Give up after this many failed attempts in a row (then the client ends with
    /// [`ClientError::GaveUp`]); `None` retries forever. Default `None`.
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            factor: 2.0,
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (1-based), jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.policy().delay(attempt)
    }

    /// [`Backoff::delay`] with the jitter given: `unit` in `[0, 1)` picks the point in
    /// `[d/2, d]`.
    #[cfg(test)]
    fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        self.policy().delay_with(attempt, unit)
    }

    /// The same delays as the servers' reconnect loops: the workspace's one backoff formula.
    fn policy(&self) -> switchboard_kit::backoff::Backoff {
        switchboard_kit::backoff::Backoff {
            initial: self.initial,
            max: self.max,
            factor: self.factor,
        }
    }
}

/// How a [`ReconnectingClient`](super::ReconnectingClient) connects and how patient it is.
#[derive(Clone)]
pub struct ReconnectConfig {
    /// The WebSocket URL, e.g. `ws://127.0.0.1:8080/v1/ws`.
    pub url: String,
    /// Asked for a token before each connection attempt.
    pub tokens: Arc<dyn TokenSource>,
    /// Delays between reconnection attempts, and how many to make.
    pub backoff: Backoff,
    /// Bound on each step of a connection attempt (TCP connect and upgrade, `hello`, each `sub`)
    /// and on the other requests. Default [`DEFAULT_TIMEOUT`] (10 s).
    pub request_timeout: Duration,
    /// How long [`send`](super::ReconnectingClient::send) waits for its `ack`, across any
    /// reconnects in between. Default 30 s.
    pub send_timeout: Duration,
}

impl fmt::Debug for ReconnectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectConfig")
            .field("url", &self.url)
            .field("backoff", &self.backoff)
            .field("request_timeout", &self.request_timeout)
            .field("send_timeout", &self.send_timeout)
            .finish_non_exhaustive()
    }
}

impl ReconnectConfig {
    /// Defaults for everything but the URL and the tokens.
    pub fn new(url: impl Into<String>, tokens: impl TokenSource + 'static) -> Self {
        Self {
            url: url.into(),
            tokens: Arc::new(tokens),
            backoff: Backoff::default(),
            request_timeout: DEFAULT_TIMEOUT,
            send_timeout: Duration::from_secs(30),
        }
    }

    /// With a fixed access token (`None`: anonymous).
    pub fn with_token(url: impl Into<String>, token: Option<&str>) -> Self {
        Self::new(url, FixedToken(token.map(str::to_owned)))
    }
}

/// A fresh `client_msg_id`: 128 random bits in hex (32 characters, within the 64-byte limit).
///
/// Ids must be unique per (user, room) forever, across processes, or a new message would be
/// taken for a retry of an old one and silently not stored. The bits come from std's
/// [`RandomState`], whose SipHash keys are drawn from the operating system's random source;
/// hashing a process-wide counter with fresh keys gives unpredictable, non-repeating values
/// without a random-number crate.
pub fn new_client_msg_id() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// 64 random bits (see [`new_client_msg_id`]).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_cap_with_jitter_in_the_upper_half() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            factor: 2.0,
            max_attempts: None,
        };
        let full = |attempt| backoff.delay_with(attempt, 1.0).as_millis();
        let half = |attempt| backoff.delay_with(attempt, 0.0).as_millis();
        assert_eq!(
            [1, 2, 3, 4, 5, 100, u32::MAX].map(full),
            [100, 200, 400, 800, 1000, 1000, 1000]
        );
        assert_eq!([1, 2, 5].map(half), [50, 100, 500]);
        for attempt in 1..20 {
            let delay = backoff.delay(attempt);
            assert!(delay >= backoff.delay_with(attempt, 0.0));
            assert!(delay <= backoff.delay_with(attempt, 1.0));
        }
    }

    #[test]
    fn a_factor_below_one_does_not_shrink_the_delay() {
        let backoff = Backoff {
            factor: 0.1,
            ..Backoff::default()
        };
        assert_eq!(backoff.delay_with(5, 1.0), backoff.initial);
    }

    #[test]
    fn client_msg_ids_are_distinct_and_within_the_limit() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_client_msg_id()).collect();
        assert_eq!(ids.len(), 10_000);
        let id = new_client_msg_id();
        assert_eq!(id.len(), 32);
        assert!(id.len() <= switchboard_protocol::limits::MAX_CLIENT_MSG_ID_BYTES);
    }
}
