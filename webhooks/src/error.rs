//! [`WebhookError`]: why an endpoint's settings were refused.

/// An endpoint's settings were refused (a configuration entry at start-up, an admin's request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The URL does not parse, or is not `http`/`https` with a host.
    #[error("webhook URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given (never holds the secret).
        url: String,
        /// Why.
        reason: String,
    },
    /// The URL names (or its host resolves to) an address deliveries may not reach:
    /// link-local, cloud metadata, unspecified, multicast, unless explicitly allowed (SSRF).
    #[error("webhook URL {url:?} names a forbidden address {addr} ({reason})")]
    ForbiddenAddress {
        /// The URL as given.
        url: String,
        /// The address.
        addr: std::net::IpAddr,
        /// Which rule refused it.
        reason: &'static str,
    },
    /// An event type nobody sends.
    #[error("unknown event type {0:?}")]
    UnknownEvent(String),
    /// Any other bad setting (an empty secret, no event types, a bad id).
    #[error("{0}")]
    Invalid(String),
}
