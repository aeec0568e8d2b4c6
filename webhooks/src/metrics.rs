//! The delivery metrics, registered once on the node's [`Registry`] (the queue's own metrics,
//! `switchboard_job_*`, count the same attempts by the queue's result).

use switchboard_kit::metrics::{Counter, Histogram, Registry};

/// Delivery attempts by outcome: `ok` (2xx), `retry` (a transient failure: 408, 429, 5xx, a
/// timeout, a connection or DNS error; the queue retries it until its attempts run out), `dead`
/// (a permanent failure: another 4xx, a 3xx, a forbidden address, a disabled endpoint), `gone`
/// (410: the endpoint was disabled).
pub const DELIVERIES: &str = "switchboard_webhook_deliveries_total";
/// Time of one delivery attempt that made a request (connect, headers, body), by any outcome.
pub const DELIVERY_SECONDS: &str = "switchboard_webhook_delivery_seconds";

/// The handles. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    pub(crate) ok: Counter,
    pub(crate) retry: Counter,
    pub(crate) dead: Counter,
    pub(crate) gone: Counter,
    pub(crate) seconds: Histogram,
}

impl WebhookMetrics {
    /// The handles, registered on `registry`.
    pub fn new(registry: &Registry) -> Self {
        const HELP: &str =
            "Webhook delivery attempts on this node, by outcome (ok, retry, dead, gone).";
        let outcome = |o| registry.counter(DELIVERIES, HELP, &[("outcome", o)]);
        Self {
            ok: outcome("ok"),
            retry: outcome("retry"),
            dead: outcome("dead"),
            gone: outcome("gone"),
            seconds: registry.histogram(
                DELIVERY_SECONDS,
                "Time of one webhook delivery attempt (connect, response headers and body).",
                &[],
            ),
        }
    }

    /// Handles that record nothing.
    pub fn disabled() -> Self {
        Self::new(&Registry::disabled())
    }
}
