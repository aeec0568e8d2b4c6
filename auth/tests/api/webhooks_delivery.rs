//! The auth service's own webhook deliveries (user events) end to end: its workers POST them,
//! signed, to a real receiver on 127.0.0.1, and a 410 answer disables the endpoint in the
//! store.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use switchboard_auth::store::webhooks::DISABLED_BY_ADMIN;
use switchboard_webhooks::sign::{self, DELIVERY_ID_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER};
use switchboard_webhooks::{Event, EventType};
use tokio::sync::mpsc;

use crate::support::{within, AbortOnDrop, Backend, Harness};
use crate::webhooks_store::endpoint;

backend_tests!(
    a_registration_is_delivered_signed_to_a_real_receiver,
    a_410_answer_disables_the_endpoint,
);

/// A receiver on 127.0.0.1:0 answering `status` and sending each request to the test.
async fn receiver(
    status: StatusCode,
) -> (
    String,
    mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
    AbortOnDrop,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, rx, AbortOnDrop(task))
}

async fn harness(backend: Backend, url: &str) -> Harness {
    let mut hook = endpoint("crm", &[EventType::UserRegistered]);
    hook.url = url.to_owned();
    Harness::with_config(backend, |cfg| {
        cfg.webhooks.endpoints = vec![hook];
        cfg.jobs.workers = 1;
        // Registration nudges a worker: a poll this long proves it.
        cfg.jobs.poll = Duration::from_secs(3600);
        cfg.mail_jobs = false;
    })
    .await
}

async fn a_registration_is_delivered_signed_to_a_real_receiver(backend: Backend) {
    let (url, mut rx, _server) = receiver(StatusCode::NO_CONTENT).await;
    let h = harness(backend, &url).await;
    let user = h.register("alice").await;
    let (headers, body) = within("the delivery", rx.recv()).await.unwrap();
    let event: Event = serde_json::from_slice(&body).unwrap();
    assert_eq!(event.kind, EventType::UserRegistered);
    assert_eq!(event.data["user_id"], user["user"]["id"]);
    assert_eq!(event.data["username"], "alice");
    let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
    let now = switchboard_jobs::clock::now_ms() / 1000;
    assert!(
        sign::verify(b"0123456789abcdef", signature, &body, now, 300),
        "{signature}"
    );
    assert_eq!(headers[EVENT_ID_HEADER].to_str().unwrap(), event.id);
    assert!(!headers[DELIVERY_ID_HEADER].is_empty());
    h.auth.shutdown_jobs().await;
}

async fn a_410_answer_disables_the_endpoint(backend: Backend) {
    let (url, mut rx, _server) = receiver(StatusCode::GONE).await;
    let h = harness(backend, &url).await;
    h.register("alice").await;
    within("the delivery", rx.recv()).await.unwrap();
    let registry = h.auth.webhooks();
    within("the endpoint to be disabled", async {
        while registry.get("crm").is_some_and(|e| e.enabled) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let admin = h.admin_user("root").await.access_token;
    let list = h
        .request("GET", "/v1/admin/webhooks", Some(&admin), None)
        .await;
    let hook = &list.json["webhooks"][0];
    assert_eq!(hook["enabled"], false);
    let reason = hook["disabled_reason"].as_str().unwrap();
    assert!(
        reason.contains("410") && reason != DISABLED_BY_ADMIN,
        "{reason}"
    );
    h.auth.shutdown_jobs().await;
}
