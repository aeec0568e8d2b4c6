//! The auth service's metrics: logins, registrations, refreshes, refusals by the login and
//! registration limits, and token verification failures. Registered once on the node's
//! [`Registry`] (the auth node's own, or the hub's when auth is embedded, so that one listener
//! shows both); each count is one atomic add.

use std::sync::Arc;

use switchboard_kit::metrics::{Counter, Registry};

use crate::error::{AuthError, TokenError};

/// Failed token verifications by reason, on whichever node verifies (hub or auth node).
pub const TOKEN_FAILURES: &str = "switchboard_token_verification_failures_total";
/// Requests refused by a rate limit, by limit (shared with the hub's limits).
pub const RATE_LIMITED: &str = "switchboard_rate_limited_total";

/// Counters of the auth routes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuthMetrics {
    logins_ok: Counter,
    logins_failed: Counter,
    registrations: Counter,
    refreshes_ok: Counter,
    refreshes_failed: Counter,
    login_limited: Counter,
    register_limited: Counter,
}

impl AuthMetrics {
    /// The counters, registered on `registry`.
    pub fn new(registry: &Registry) -> Self {
        const LOGINS: &str = "switchboard_auth_logins_total";
        const LOGINS_HELP: &str =
            "Logins, by result (failed: wrong credentials, throttled or unavailable).";
        const REFRESHES: &str = "switchboard_auth_refreshes_total";
        const REFRESHES_HELP: &str =
            "Refresh-token exchanges, by result (failed: unknown, expired or reused token).";
        Self {
            logins_ok: registry.counter(LOGINS, LOGINS_HELP, &[("result", "ok")]),
            logins_failed: registry.counter(LOGINS, LOGINS_HELP, &[("result", "failed")]),
            registrations: registry.counter(
                "switchboard_auth_registrations_total",
                "Accounts registered.",
                &[],
            ),
            refreshes_ok: registry.counter(REFRESHES, REFRESHES_HELP, &[("result", "ok")]),
            refreshes_failed: registry.counter(REFRESHES, REFRESHES_HELP, &[("result", "failed")]),
            login_limited: registry.counter(RATE_LIMITED, RATE_LIMITED_HELP, &[("limit", "login")]),
            register_limited: registry.counter(
                RATE_LIMITED,
                RATE_LIMITED_HELP,
                &[("limit", "register")],
            ),
        }
    }

    /// Counts a login's outcome.
    pub(crate) fn login<T>(&self, outcome: &Result<T, AuthError>) {
        match outcome {
            Ok(_) => self.logins_ok.increment(1),
            Err(e) => {
                self.logins_failed.increment(1);
                if matches!(e, AuthError::RateLimited { .. }) {
                    self.login_limited.increment(1);
                }
            }
        }
    }

    /// Counts a registration's outcome.
    pub(crate) fn register<T>(&self, outcome: &Result<T, AuthError>) {
        match outcome {
            Ok(_) => self.registrations.increment(1),
            Err(AuthError::RateLimited { .. }) => self.register_limited.increment(1),
            Err(_) => {}
        }
    }

    /// Counts a refresh's outcome.
    pub(crate) fn refresh<T>(&self, outcome: &Result<T, AuthError>) {
        match outcome {
            Ok(_) => self.refreshes_ok.increment(1),
            Err(_) => self.refreshes_failed.increment(1),
        }
    }
}

/// Help text of [`RATE_LIMITED`] (the hub registers the same metric with its own limits).
pub const RATE_LIMITED_HELP: &str = "Requests or frames refused by a rate limit, by limit.";

/// Failed verifications of access tokens, by reason; kept by a [`crate::Verifier`]
/// ([`crate::Verifier::with_failures`]).
#[derive(Clone, Debug)]
pub struct TokenFailures {
    /// Indexed by [`TokenFailures::index`].
    by_reason: Arc<[Counter; REASONS.len()]>,
}

/// The `reason` label of each [`TokenError`].
const REASONS: [&str; 5] = ["malformed", "invalid", "expired", "revoked", "unavailable"];

impl TokenFailures {
    /// The counters, registered on `registry`.
    pub fn new(registry: &Registry) -> Self {
        const HELP: &str =
            "Access tokens refused (or that could not be checked: unavailable), by reason.";
        Self {
            by_reason: Arc::new(
                REASONS.map(|reason| registry.counter(TOKEN_FAILURES, HELP, &[("reason", reason)])),
            ),
        }
    }

    fn index(e: &TokenError) -> usize {
        match e {
            TokenError::Malformed(_) | TokenError::Algorithm | TokenError::MissingKid => 0,
            TokenError::Invalid(_) | TokenError::UnknownKid => 1,
            TokenError::Expired => 2,
            TokenError::Revoked => 3,
            TokenError::Unavailable(_) => 4,
        }
    }

    /// Counts one failure.
    pub(crate) fn count(&self, e: &TokenError) {
        self.by_reason[Self::index(e)].increment(1);
    }
}
