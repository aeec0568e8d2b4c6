//! Webhook endpoints in the auth store: the `WebhookStore` contract on both stores, the live
//! registry (`Auth::webhooks`) following changes made on this node and on another one, the
//! configured endpoints made at open, and the user events enqueued in the user's transaction.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use switchboard_auth::store::webhooks::{
    ChangeWebhook, CreateWebhook, EndpointPatch, EndpointSource, DISABLED_BY_ADMIN, MAX_ENDPOINTS,
};
use switchboard_auth::store::{AuthStore, PgStore, SqliteStore};
use switchboard_auth::{Auth, AuthConfig};
use switchboard_jobs::{Job, State};
use switchboard_webhooks::{Disabler as _, Endpoint, EventType, Registry, JOB_KIND};

use crate::support::{assert_error, within, Backend, Env, Harness, TestDatabase, PASSWORD};

backend_tests!(
    the_webhook_store_creates_changes_disables_and_deletes,
    configured_endpoints_are_synced_and_only_their_enabled_flag_changes,
    the_store_holds_at_most_100_endpoints,
    concurrent_creations_on_two_nodes_never_pass_100,
    the_registry_follows_changes_made_on_another_node,
    a_bad_configured_endpoint_or_service_token_stops_the_open,
    registration_enqueues_one_user_registered_delivery,
    a_failed_registration_or_no_endpoint_enqueues_no_delivery,
    deletion_enqueues_one_user_deleted_delivery,
);

/// An endpoint receiving `events`, its URL on a port nothing listens on.
pub fn endpoint(id: &str, events: &[EventType]) -> Endpoint {
    Endpoint {
        id: id.to_owned(),
        url: format!("http://127.0.0.1:9/{id}"),
        secret: "0123456789abcdef".to_owned(),
        events: events.iter().copied().collect(),
        enabled: true,
    }
}

async fn open_store(
    backend: Backend,
    dir: &tempfile::TempDir,
    db: Option<&TestDatabase>,
) -> Box<dyn AuthStore> {
    match (backend, db) {
        (Backend::Postgres, Some(db)) => Box::new(PgStore::connect(&db.url).await.unwrap()),
        _ => Box::new(
            SqliteStore::open(&dir.path().join("auth.db"))
                .await
                .unwrap(),
        ),
    }
}

async fn test_db(backend: Backend) -> Option<TestDatabase> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    }
}

fn ids(registry: &Registry) -> Vec<(String, bool)> {
    registry
        .snapshot()
        .iter()
        .map(|e| (e.id.clone(), e.enabled))
        .collect()
}

async fn the_webhook_store_creates_changes_disables_and_deletes(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = test_db(backend).await;
    let store = open_store(backend, &dir, db.as_ref()).await;
    let registry = store.webhooks();
    assert!(registry.snapshot().is_empty());

    let a = endpoint("a", &[EventType::MessageCreated, EventType::UserDeleted]);
    let CreateWebhook::Created(created) = store.create_webhook(a.clone(), 1_000).await.unwrap()
    else {
        panic!("not created");
    };
    assert_eq!(created.endpoint, a);
    assert_eq!(
        (created.source, created.created_ts, created.updated_ts),
        (EndpointSource::Api, 1_000, 1_000)
    );
    assert_eq!(created.disabled_reason, None);
    assert_eq!(
        registry.get("a"),
        Some(a.clone()),
        "the registry is replaced at once"
    );
    assert_eq!(
        store
            .create_webhook(endpoint("a", &[EventType::RoomCreated]), 2_000)
            .await
            .unwrap(),
        CreateWebhook::IdTaken
    );
    store
        .create_webhook(endpoint("b", &[EventType::RoomCreated]), 2_000)
        .await
        .unwrap();
    let listed = store.list_webhooks().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| s.endpoint.id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(listed[0].endpoint, a, "the events survive the column");

    // A change replaces only what it names.
    let patch = EndpointPatch {
        url: Some("http://127.0.0.1:10/new".into()),
        events: Some(BTreeSet::from([EventType::MemberJoined])),
        ..EndpointPatch::default()
    };
    let ChangeWebhook::Done(changed) = store.update_webhook("a", patch, 3_000).await.unwrap()
    else {
        panic!("not changed");
    };
    assert_eq!(changed.endpoint.url, "http://127.0.0.1:10/new");
    assert_eq!(changed.endpoint.secret, a.secret);
    assert_eq!(
        changed.endpoint.events,
        BTreeSet::from([EventType::MemberJoined])
    );
    assert_eq!((changed.created_ts, changed.updated_ts), (1_000, 3_000));
    assert_eq!(registry.get("a").unwrap().url, "http://127.0.0.1:10/new");

    // An admin disables: the admin's reason; a 410 after it keeps the first reason.
    let off = EndpointPatch {
        enabled: Some(false),
        ..EndpointPatch::default()
    };
    let ChangeWebhook::Done(disabled) = store.update_webhook("a", off, 4_000).await.unwrap() else {
        panic!("not disabled");
    };
    assert_eq!(disabled.disabled_reason.as_deref(), Some(DISABLED_BY_ADMIN));
    assert!(store.disable_webhook("a", "410 Gone", 5_000).await.unwrap());
    let a_now = &store.list_webhooks().await.unwrap()[0];
    assert_eq!(a_now.disabled_reason.as_deref(), Some(DISABLED_BY_ADMIN));
    assert_eq!(
        a_now.updated_ts, 4_000,
        "disabling a disabled endpoint changes nothing"
    );
    // Re-enabled: the reason goes; a 410 disables it with its reason.
    let on = EndpointPatch {
        enabled: Some(true),
        ..EndpointPatch::default()
    };
    store.update_webhook("a", on, 6_000).await.unwrap();
    assert_eq!(ids(&registry), [("a".into(), true), ("b".into(), true)]);
    assert!(store.disable_webhook("a", "410 Gone", 7_000).await.unwrap());
    let a_now = &store.list_webhooks().await.unwrap()[0];
    assert_eq!(
        (a_now.endpoint.enabled, a_now.disabled_reason.as_deref()),
        (false, Some("410 Gone"))
    );
    assert_eq!(ids(&registry), [("a".into(), false), ("b".into(), true)]);
    assert!(!store
        .disable_webhook("nope", "410 Gone", 7_000)
        .await
        .unwrap());
    assert_eq!(
        store
            .update_webhook("nope", EndpointPatch::default(), 7_000)
            .await
            .unwrap(),
        ChangeWebhook::NotFound
    );

    assert!(
        matches!(store.delete_webhook("a").await.unwrap(), ChangeWebhook::Done(s) if s.endpoint.id == "a")
    );
    assert_eq!(
        store.delete_webhook("a").await.unwrap(),
        ChangeWebhook::NotFound
    );
    assert_eq!(ids(&registry), [("b".into(), true)]);

    // A reopened store loads its registry.
    drop(store);
    let store = open_store(backend, &dir, db.as_ref()).await;
    assert_eq!(ids(&store.webhooks()), [("b".into(), true)]);
}

async fn configured_endpoints_are_synced_and_only_their_enabled_flag_changes(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = test_db(backend).await;
    let store = open_store(backend, &dir, db.as_ref()).await;
    store
        .create_webhook(endpoint("api", &[EventType::RoomCreated]), 1)
        .await
        .unwrap();
    store
        .create_webhook(endpoint("taken", &[EventType::RoomCreated]), 1)
        .await
        .unwrap();
    let conf = endpoint("conf", &[EventType::UserRegistered]);
    let mut taken = endpoint("taken", &[EventType::UserDeleted]);
    taken.secret = "fedcba9876543210".into();
    store
        .sync_config_webhooks(vec![conf.clone(), taken.clone()], 10)
        .await
        .unwrap();
    let listed = store.list_webhooks().await.unwrap();
    let by_id = |id: &str| listed.iter().find(|s| s.endpoint.id == id).unwrap().clone();
    assert_eq!(by_id("api").source, EndpointSource::Api);
    assert_eq!(
        (by_id("conf").source, by_id("conf").endpoint.clone()),
        (EndpointSource::Config, conf.clone())
    );
    assert_eq!(
        by_id("taken").source,
        EndpointSource::Config,
        "the file wins an id"
    );
    assert_eq!(by_id("taken").endpoint, taken);
    assert_eq!(store.webhooks().get("conf"), Some(conf.clone()));

    // Over the API: only `enabled`.
    for patch in [
        EndpointPatch {
            url: Some("http://127.0.0.1:1/".into()),
            ..EndpointPatch::default()
        },
        EndpointPatch {
            secret: Some("another secret!!".into()),
            enabled: Some(false),
            ..EndpointPatch::default()
        },
        EndpointPatch {
            events: Some(BTreeSet::from([EventType::RoomCreated])),
            ..EndpointPatch::default()
        },
    ] {
        assert_eq!(
            store.update_webhook("conf", patch, 11).await.unwrap(),
            ChangeWebhook::Configured
        );
    }
    assert_eq!(
        store.delete_webhook("conf").await.unwrap(),
        ChangeWebhook::Configured
    );
    let off = EndpointPatch {
        enabled: Some(false),
        ..EndpointPatch::default()
    };
    assert!(
        matches!(store.update_webhook("conf", off, 12).await.unwrap(), ChangeWebhook::Done(s) if !s.endpoint.enabled)
    );

    // The next start re-applies the settings and keeps the flag; a removed entry goes.
    let mut conf2 = conf.clone();
    conf2.url = "http://127.0.0.1:2/moved".into();
    store
        .sync_config_webhooks(vec![conf2.clone()], 20)
        .await
        .unwrap();
    let listed = store.list_webhooks().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| s.endpoint.id.as_str())
            .collect::<Vec<_>>(),
        ["api", "conf"]
    );
    let conf_now = listed.iter().find(|s| s.endpoint.id == "conf").unwrap();
    assert_eq!(conf_now.endpoint.url, conf2.url);
    assert!(!conf_now.endpoint.enabled, "the admin's flag is kept");
    assert_eq!(conf_now.updated_ts, 20);
    // Unchanged settings keep their time.
    store.sync_config_webhooks(vec![conf2], 30).await.unwrap();
    let listed = store.list_webhooks().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .find(|s| s.endpoint.id == "conf")
            .unwrap()
            .updated_ts,
        20
    );
    store.sync_config_webhooks(Vec::new(), 40).await.unwrap();
    assert_eq!(ids(&store.webhooks()), [("api".into(), true)]);
}

async fn the_store_holds_at_most_100_endpoints(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = test_db(backend).await;
    let store = open_store(backend, &dir, db.as_ref()).await;
    for i in 0..MAX_ENDPOINTS {
        let made = store
            .create_webhook(endpoint(&format!("e{i}"), &[EventType::RoomCreated]), 1)
            .await
            .unwrap();
        assert!(matches!(made, CreateWebhook::Created(_)), "{i}");
    }
    assert_eq!(
        store
            .create_webhook(endpoint("one-more", &[EventType::RoomCreated]), 1)
            .await
            .unwrap(),
        CreateWebhook::TooMany
    );
    assert_eq!(store.webhooks().snapshot().len(), MAX_ENDPOINTS);
}

async fn concurrent_creations_on_two_nodes_never_pass_100(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = test_db(backend).await;
    let one = open_store(backend, &dir, db.as_ref()).await;
    let two = open_store(backend, &dir, db.as_ref()).await;
    for i in 0..MAX_ENDPOINTS - 1 {
        one.create_webhook(endpoint(&format!("e{i}"), &[EventType::RoomCreated]), 1)
            .await
            .unwrap();
    }
    let (a, b) = tokio::join!(
        one.create_webhook(endpoint("last-a", &[EventType::RoomCreated]), 2),
        two.create_webhook(endpoint("last-b", &[EventType::RoomCreated]), 2),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, CreateWebhook::Created(_)))
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(outcomes.contains(&CreateWebhook::TooMany));
    assert_eq!(one.list_webhooks().await.unwrap().len(), MAX_ENDPOINTS);
}

/// Polls `registry` until `done` holds (the other node's reload is periodic: there is no event
/// to await), failing after 10 s.
async fn until(registry: &Registry, done: impl Fn(&Registry) -> bool) {
    within("the registry to change", async {
        while !done(registry) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn fast_reload(cfg: &mut AuthConfig, endpoints: Vec<Endpoint>) {
    cfg.webhooks.reload_interval = Duration::from_millis(100);
    cfg.webhooks.endpoints = endpoints;
}

async fn the_registry_follows_changes_made_on_another_node(backend: Backend) {
    let env = Env::new(backend, false).await;
    let hooks = vec![endpoint("crm", &[EventType::UserRegistered])];
    let mut cfg = env.config();
    fast_reload(&mut cfg, hooks.clone());
    let a = Auth::open(cfg.clone()).await.unwrap();
    let b = Auth::open(cfg).await.unwrap();
    assert_eq!(ids(&a.webhooks()), [("crm".into(), true)]);
    assert_eq!(ids(&b.webhooks()), [("crm".into(), true)]);
    // `Auth::webhooks` is the shared registry, not a copy.
    let held = a.webhooks();
    a.disable("crm", "receiver answered 410 Gone")
        .await
        .unwrap();
    assert_eq!(ids(&held), [("crm".into(), false)], "this node's at once");
    until(&b.webhooks(), |r| r.get("crm").is_some_and(|e| !e.enabled)).await;
    // An unknown endpoint is nothing to disable.
    a.disable("gone", "410").await.unwrap();
}

async fn a_bad_configured_endpoint_or_service_token_stops_the_open(backend: Backend) {
    let env = Env::new(backend, false).await;
    let mut forbidden = endpoint("meta", &[EventType::UserRegistered]);
    forbidden.url = "http://169.254.169.254/latest".into();
    let mut short = endpoint("short", &[EventType::UserRegistered]);
    short.secret = "x".into();
    for (endpoints, needle) in [
        (vec![forbidden.clone()], "\"meta\""),
        (vec![short], "\"short\""),
        (vec![endpoint("none", &[])], "\"none\""),
        (
            vec![
                endpoint("twice", &[EventType::RoomCreated]),
                endpoint("twice", &[EventType::RoomCreated]),
            ],
            "twice",
        ),
    ] {
        let mut cfg = env.config();
        cfg.webhooks.endpoints = endpoints;
        let err = Auth::open(cfg).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    let mut cfg = env.config();
    cfg.webhooks.endpoints = vec![forbidden];
    cfg.webhooks.allow_link_local = true;
    Auth::open(cfg).await.expect("allowed explicitly");
    let mut cfg = env.config();
    cfg.service_token = Some("fifteen bytes!!".into());
    let err = Auth::open(cfg).await.unwrap_err().to_string();
    assert!(err.contains("--service-token"), "{err}");
}

async fn webhook_jobs(h: &Harness) -> Vec<Job> {
    let jobs = h
        .auth
        .job_store()
        .list(State::Ready, None, 100)
        .await
        .unwrap();
    jobs.into_iter().filter(|j| j.kind == JOB_KIND).collect()
}

async fn with_hooks(backend: Backend, events: &[EventType]) -> Harness {
    let hooks = vec![
        endpoint("crm", events),
        endpoint("rooms-only", &[EventType::RoomCreated]),
    ];
    Harness::with_config(backend, |cfg| cfg.webhooks.endpoints = hooks).await
}

async fn registration_enqueues_one_user_registered_delivery(backend: Backend) {
    let h = with_hooks(backend, &[EventType::UserRegistered]).await;
    let before = switchboard_jobs::clock::now_ms();
    let user = h.register("alice").await;
    let jobs = webhook_jobs(&h).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let id = user["user"]["id"].as_str().unwrap();
    assert_eq!(
        jobs[0].lane.as_deref(),
        Some(format!("webhook:crm:{id}").as_str())
    );
    let payload = &jobs[0].payload;
    assert_eq!(payload["endpoint"], "crm");
    assert_eq!(payload["event"]["type"], "user.registered");
    assert_eq!(
        payload["event"]["data"],
        json!({"user_id": id, "username": "alice", "email": "alice@example.com"})
    );
    assert!(payload["event"]["ts"].as_i64().unwrap() >= before);
    assert!(payload["event"]["id"]
        .as_str()
        .is_some_and(|s| s.len() == 36));
}

async fn a_failed_registration_or_no_endpoint_enqueues_no_delivery(backend: Backend) {
    let h = with_hooks(backend, &[EventType::UserRegistered]).await;
    h.register("alice").await;
    let again = h
        .post(
            "/v1/auth/register",
            json!({"username": "alice", "email": "other@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "username_taken");
    assert_eq!(
        webhook_jobs(&h).await.len(),
        1,
        "only the first registration's"
    );

    // Subscribed to something else, or disabled: nothing.
    let h = with_hooks(backend, &[EventType::UserDeleted]).await;
    h.register("bob").await;
    assert!(webhook_jobs(&h).await.is_empty());
    let h = with_hooks(backend, &[EventType::UserRegistered]).await;
    h.auth.disable("crm", "410").await.unwrap();
    h.register("carol").await;
    assert!(webhook_jobs(&h).await.is_empty());
    // No endpoint at all.
    let h = Harness::new(backend).await;
    h.register("dave").await;
    assert!(webhook_jobs(&h).await.is_empty());
}

async fn deletion_enqueues_one_user_deleted_delivery(backend: Backend) {
    let h = with_hooks(backend, &[EventType::UserDeleted]).await;
    let (pair, _) = h.user("erin").await;
    let id = pair.user.id.clone();
    assert!(webhook_jobs(&h).await.is_empty());
    let resp = h
        .request("DELETE", "/v1/auth/me", Some(&pair.access_token), None)
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    let jobs = webhook_jobs(&h).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        jobs[0].lane.as_deref(),
        Some(format!("webhook:crm:{id}").as_str())
    );
    assert_eq!(jobs[0].payload["event"]["type"], "user.deleted");
    assert_eq!(
        jobs[0].payload["event"]["data"],
        json!({"user_id": id, "username": "erin"})
    );
}
