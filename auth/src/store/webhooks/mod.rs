//! [`WebhookStore`]: the webhook endpoints (table `webhook_endpoints`), a part of every
//! [`super::AuthStore`], and the live [`Registry`] the store keeps of them.
//!
//! **Invariants:** the store's registry is loaded when the store opens and replaced after
//! every change made through the store (and by [`WebhookStore::reload_webhooks`], which the
//! service calls periodically, so changes made by other nodes arrive too). A reload reads and
//! replaces under one lock, so two reloads cannot leave the older list in place. At most
//! [`MAX_ENDPOINTS`] endpoints exist: the count and the insert are one serialised transaction.
//! An endpoint from configuration (`source = config`) changes only through
//! [`WebhookStore::sync_config_webhooks`] (at start), except its `enabled` flag.

mod postgres;
pub(super) mod sqlite;

use std::collections::BTreeSet;

use async_trait::async_trait;
use switchboard_webhooks::{Endpoint, EventType, Registry};

use super::StoreError;

/// Most endpoints the store holds (configuration and API together): each event makes at most
/// this many jobs.
pub const MAX_ENDPOINTS: usize = 100;

/// The reason stored when an admin disables an endpoint.
pub const DISABLED_BY_ADMIN: &str = "disabled by an admin";

/// Where an endpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointSource {
    /// `--webhooks-file` (or [`crate::AuthConfig::webhooks`]): re-applied at every start.
    Config,
    /// The admin API.
    Api,
}

impl EndpointSource {
    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "config" => Ok(Self::Config),
            "api" => Ok(Self::Api),
            _ => Err(StoreError::Corrupt {
                column: "webhook_endpoints.source",
            }),
        }
    }
}

/// A stored endpoint: the [`Endpoint`] deliveries use, and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEndpoint {
    /// What the registry holds.
    pub endpoint: Endpoint,
    /// Why it is disabled (`None` while enabled).
    pub disabled_reason: Option<String>,
    /// Configuration or API.
    pub source: EndpointSource,
    /// Creation time, ms since the Unix epoch.
    pub created_ts: i64,
    /// Last change, ms since the Unix epoch.
    pub updated_ts: i64,
}

/// A change to an endpoint: each `Some` field replaces the stored one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPatch {
    /// New URL (already validated).
    pub url: Option<String>,
    /// New event types (non-empty).
    pub events: Option<BTreeSet<EventType>>,
    /// Enable (clears the disabled reason) or disable ([`DISABLED_BY_ADMIN`]).
    pub enabled: Option<bool>,
    /// New secret (already validated).
    pub secret: Option<String>,
}

impl EndpointPatch {
    /// Whether it changes more than `enabled` (refused for a configured endpoint).
    pub fn touches_settings(&self) -> bool {
        self.url.is_some() || self.events.is_some() || self.secret.is_some()
    }
}

/// Outcome of [`WebhookStore::create_webhook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateWebhook {
    /// Stored (source `api`).
    Created(StoredEndpoint),
    /// An endpoint has this id; nothing stored.
    IdTaken,
    /// [`MAX_ENDPOINTS`] exist; nothing stored.
    TooMany,
}

/// Outcome of [`WebhookStore::update_webhook`] and [`WebhookStore::delete_webhook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeWebhook {
    /// Changed (the endpoint as it is now; for a deletion, as it was).
    Done(StoredEndpoint),
    /// No endpoint has this id.
    NotFound,
    /// The endpoint is from configuration and the change is more than `enabled`; nothing
    /// changed.
    Configured,
}

/// The `events` column: comma-separated wire names, in [`EventType`] order.
pub(crate) fn events_to_sql(events: &BTreeSet<EventType>) -> String {
    events
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The `events` column back; a name this release does not know (written by a newer one) is
/// skipped.
pub(crate) fn events_from_sql(s: &str) -> BTreeSet<EventType> {
    s.split(',')
        .filter_map(|name| EventType::parse(name.trim()).ok())
        .collect()
}

/// Persistence of webhook endpoints. Every method is atomic; those that change something
/// replace the store's registry after they commit.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// The live registry of the stored endpoints (a cheap clone of the shared one).
    fn webhooks(&self) -> Registry;

    /// Every endpoint, by id.
    async fn list_webhooks(&self) -> Result<Vec<StoredEndpoint>, StoreError>;

    /// Stores a new endpoint (source `api`, enabled) at `now` (ms), unless its id is taken or
    /// [`MAX_ENDPOINTS`] exist.
    async fn create_webhook(
        &self,
        endpoint: Endpoint,
        now: i64,
    ) -> Result<CreateWebhook, StoreError>;

    /// Applies `patch` to the endpoint `id` at `now` (ms); refused for a configured endpoint
    /// when it touches more than `enabled`.
    async fn update_webhook(
        &self,
        id: &str,
        patch: EndpointPatch,
        now: i64,
    ) -> Result<ChangeWebhook, StoreError>;

    /// Deletes the endpoint `id`; refused for a configured one. Its queued deliveries end
    /// without a request (the delivery handler finds no endpoint).
    async fn delete_webhook(&self, id: &str) -> Result<ChangeWebhook, StoreError>;

    /// Disables the endpoint `id` (whatever its source), remembering `reason`, at `now` (ms).
    /// `false` if there is no such endpoint. Idempotent (the first reason is kept).
    async fn disable_webhook(&self, id: &str, reason: &str, now: i64) -> Result<bool, StoreError>;

    /// Makes the configured endpoints exactly `endpoints` at `now` (ms): each is inserted or
    /// has its URL, secret and events replaced (source `config`; an API endpoint with the same
    /// id becomes a configured one), keeping its `enabled` flag and disabled reason;
    /// configured endpoints not among them are deleted. Not bounded by [`MAX_ENDPOINTS`] (the
    /// configuration is validated against it before).
    async fn sync_config_webhooks(
        &self,
        endpoints: Vec<Endpoint>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Reads the endpoints and replaces the registry with them.
    async fn reload_webhooks(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_the_column_and_unknown_names_are_skipped() {
        let events: BTreeSet<_> = [EventType::UserDeleted, EventType::MessageCreated].into();
        let sql = events_to_sql(&events);
        assert_eq!(sql, "message.created,user.deleted");
        assert_eq!(events_from_sql(&sql), events);
        assert_eq!(
            events_from_sql("message.created,from.the.future"),
            [EventType::MessageCreated].into()
        );
    }
}
