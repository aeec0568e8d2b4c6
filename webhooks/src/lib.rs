//! `switchboard-webhooks`: signed webhooks. What happens in the hub and the auth service
//! (a message posted, a member joined, a user registered, ...) is an [`Event`]; for each
//! enabled [`Endpoint`] subscribed to its [`EventType`], a **delivery job** (kind
//! [`JOB_KIND`]) is enqueued in the transaction that causes the event
//! ([`Registry::jobs_for`]), and a worker of the durable queue (`switchboard-jobs`) POSTs it,
//! signed ([`sign`]), to the endpoint.
//!
//! # Layout
//! - [`event`]: [`Event`] and [`EventType`], the wire shape of a delivery's body.
//! - [`registry`]: [`Endpoint`] and [`Registry`], the endpoints a node knows, and the jobs an
//!   event makes.
//! - [`policy`]: [`AddrPolicy`] and [`validate_url`], which URLs and addresses deliveries may
//!   reach (SSRF).
//! - [`sign`]: the `X-Switchboard-Signature` header (HMAC-SHA256 over the timestamp and the
//!   body) and its verification.
//! - [`deliver`]: [`WebhookHandler`], the job handler that POSTs a delivery (signed, SSRF-guarded
//!   at each resolution, bounded in time and memory), and [`DeliveryConfig`].
//! - [`flags`]: [`WebhookFlags`], the delivery flags of the hub and the auth node.
//! - [`metrics`]: [`WebhookMetrics`], deliveries by outcome and their duration.
//!
//! # Guarantees
//! - **Never for a change that did not commit, never lost for one that did:** the delivery
//!   jobs are rows inserted in the causing transaction.
//! - **At least once,** with the event's id ([`Event::id`], the same for every endpoint) and the
//!   delivery's id (the job's id, one per endpoint) in headers, so receivers drop repeats.
//! - **In order per room and endpoint:** a delivery's lane is `webhook:{endpoint}:{scope}`
//!   (the scope is the room, or the user for user events), and a lane's jobs run one at a
//!   time in enqueue order, a retried one holding the lane back.
//! - **Only what an endpoint subscribed to, only while it is enabled,** as the node's
//!   registry knew it when the event committed.

pub mod deliver;
mod error;
pub mod event;
pub mod flags;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod sign;

pub use deliver::{DeliveryConfig, WebhookHandler};
pub use error::WebhookError;
pub use event::{Event, EventType};
pub use flags::WebhookFlags;
pub use metrics::WebhookMetrics;
pub use policy::{validate_url, AddrPolicy};
pub use registry::{Disabler, Endpoint, Registry, JOB_KIND};
