//! [`Endpoint`] and [`Registry`]: the endpoints a node knows, and the delivery jobs an event
//! makes for them.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_jobs::NewJob;

use crate::{Event, EventType};

/// Kind of a delivery job. Payload: `{"endpoint": "<endpoint id>", "event": <Event>}`.
pub const JOB_KIND: &str = "webhook";

/// Attempts of a delivery: with the queue's backoff (1 s doubling to 10 min), the last comes
/// 14 to 27 minutes after the first (see `switchboard_jobs::job::DEFAULT_MAX_ATTEMPTS`).
pub const MAX_ATTEMPTS: u32 = switchboard_jobs::job::DEFAULT_MAX_ATTEMPTS;

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Its id: `[a-z0-9_-]{1,64}`, chosen by whoever configured it.
    pub id: String,
    /// `http` or `https`, checked by the URL policy when it is configured and again (the
    /// addresses its host resolves to) on every delivery.
    pub url: String,
    /// The HMAC key of its signatures.
    pub secret: String,
    /// The types it receives (at least one).
    pub events: BTreeSet<EventType>,
    /// False once a receiver answered 410 Gone, or an admin disabled it: no new deliveries are
    /// enqueued, and queued ones end without a request.
    pub enabled: bool,
}

/// The endpoints a node knows: shared by the code that enqueues deliveries (in the causing
/// transaction) and by the delivery handler. Replaced whole ([`Registry::replace`]) whenever
/// the list changes, from the store or the auth node; reading it never waits on I/O.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    inner: Arc<RwLock<Arc<Vec<Endpoint>>>>,
}

impl Registry {
    /// An empty registry: no event makes a job.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the list.
    pub fn replace(&self, endpoints: Vec<Endpoint>) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(endpoints);
    }

    /// The list as it is now.
    pub fn snapshot(&self) -> Arc<Vec<Endpoint>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The endpoint with this id, if the node knows it.
    pub fn get(&self, id: &str) -> Option<Endpoint> {
        self.snapshot().iter().find(|e| e.id == id).cloned()
    }

    /// Whether any enabled endpoint receives `kind` (so a caller can skip building the event).
    pub fn wants(&self, kind: EventType) -> bool {
        self.snapshot()
            .iter()
            .any(|e| e.enabled && e.events.contains(&kind))
    }

    /// The delivery jobs of an event of `kind` in `scope` (a room id, or a user id for user
    /// events): one per enabled endpoint subscribed to `kind`, in the lane
    /// `webhook:{endpoint}:{scope}`. `data` is called only when there is at least one. Insert
    /// them in the transaction that causes the event.
    pub fn jobs_for(
        &self,
        kind: EventType,
        scope: &str,
        ts: i64,
        data: impl FnOnce() -> serde_json::Value,
    ) -> Vec<NewJob> {
        let endpoints = self.snapshot();
        let mut targets = endpoints
            .iter()
            .filter(|e| e.enabled && e.events.contains(&kind))
            .peekable();
        if targets.peek().is_none() {
            return Vec::new();
        }
        let event = Event::new(kind, ts, data());
        targets
            .map(|e| {
                NewJob::new(JOB_KIND, json!({"endpoint": e.id, "event": event}))
                    .in_lane(lane(&e.id, scope))
                    .max_attempts(MAX_ATTEMPTS)
            })
            .collect()
    }
}

/// What the delivery handler calls when a receiver answers 410 Gone: marks the endpoint
/// disabled wherever endpoints are stored (the auth store, directly or through the auth node),
/// for every node. Implemented by the auth service and by its remote client.
#[async_trait::async_trait]
pub trait Disabler: Send + Sync + 'static {
    /// Disables `endpoint`, remembering `reason`.
    ///
    /// # Errors
    /// A message when the store or the auth node could not be told (the delivery is retried).
    async fn disable(&self, endpoint: &str, reason: &str) -> Result<(), String>;
}

/// The lane of deliveries to `endpoint` of events in `scope`.
pub fn lane(endpoint: &str, scope: &str) -> String {
    format!("webhook:{endpoint}:{scope}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: &str, events: &[EventType], enabled: bool) -> Endpoint {
        Endpoint {
            id: id.into(),
            url: format!("http://127.0.0.1:9/{id}"),
            secret: "s".into(),
            events: events.iter().copied().collect(),
            enabled,
        }
    }

    #[test]
    fn an_event_makes_one_job_per_enabled_subscribed_endpoint_sharing_the_event() {
        let r = Registry::new();
        assert!(r
            .jobs_for(EventType::MessageCreated, "general", 1, || unreachable!())
            .is_empty());
        r.replace(vec![
            endpoint(
                "a",
                &[EventType::MessageCreated, EventType::RoomCreated],
                true,
            ),
            endpoint("b", &[EventType::MessageCreated], true),
            endpoint("off", &[EventType::MessageCreated], false),
            endpoint("rooms", &[EventType::RoomCreated], true),
        ]);
        assert!(r.wants(EventType::RoomCreated));
        assert!(!r.wants(EventType::UserDeleted));
        let jobs = r.jobs_for(
            EventType::MessageCreated,
            "general",
            7,
            || json!({"seq": 1}),
        );
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].lane.as_deref(), Some("webhook:a:general"));
        assert_eq!(jobs[1].lane.as_deref(), Some("webhook:b:general"));
        assert!(jobs.iter().all(|j| j.kind == JOB_KIND));
        assert_eq!(jobs[0].payload["event"], jobs[1].payload["event"]);
        assert_eq!(jobs[0].payload["event"]["type"], "message.created");
        assert_eq!(jobs[0].payload["event"]["ts"], 7);
        assert_eq!(jobs[1].payload["endpoint"], "b");
        assert_ne!(jobs[0].id, jobs[1].id);
    }
}
