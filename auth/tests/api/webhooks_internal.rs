//! The internal routes hubs call on the auth node (`/v1/internal/*`, the service token) and
//! their clients (`RemoteWebhooks`, `RemoteDirectory::user_by_username_as_service`), over real
//! HTTP on 127.0.0.1, with every refusal.

use axum::http::StatusCode;
use serde_json::{json, Value};
use switchboard_auth::remote::{RemoteDirectory, RemoteError, RemoteWebhooks};
use switchboard_protocol::ErrorCode;
use switchboard_webhooks::{Disabler as _, EventType};
use tokio::sync::oneshot;

use crate::support::{AbortOnDrop, Backend, Harness};
use crate::webhooks_store::endpoint;

backend_tests!(
    hubs_read_endpoints_disable_them_and_look_users_up,
    the_internal_routes_refuse_callers_without_the_service_token,
    a_node_without_a_service_token_refuses_every_internal_request,
);

const TOKEN: &str = "the-service-token-of-this-cluster";

/// A harness with `token` as its service token and one configured endpoint, served over HTTP
/// by the node's router; returns its base URL.
async fn served(
    backend: Backend,
    token: Option<&str>,
) -> (Harness, String, AbortOnDrop, oneshot::Sender<()>) {
    let hooks = vec![endpoint(
        "crm",
        &[EventType::UserRegistered, EventType::UserDeleted],
    )];
    let h = Harness::with_config(backend, |cfg| {
        cfg.webhooks.endpoints = hooks;
        cfg.service_token = token.map(str::to_owned);
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let auth = h.auth.clone();
    let task = tokio::spawn(async move {
        switchboard_auth::node::serve(listener, &auth, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (h, url, AbortOnDrop(task), stop)
}

async fn raw(method: &str, url: &str, bearer: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn hubs_read_endpoints_disable_them_and_look_users_up(backend: Backend) {
    let (h, url, _task, _stop) = served(backend, Some(TOKEN)).await;
    let hooks = RemoteWebhooks::new(&url, TOKEN);
    assert!(!format!("{hooks:?}").contains(TOKEN));
    let endpoints = hooks.endpoints().await.unwrap();
    assert_eq!(
        endpoints,
        vec![endpoint(
            "crm",
            &[EventType::UserRegistered, EventType::UserDeleted]
        )]
    );
    assert_eq!(endpoints[0].secret, "0123456789abcdef", "with its secret");

    // A 410 seen by a hub disables the endpoint for everyone; an unknown one is no error.
    hooks
        .disable("crm", "410 Gone from receiver")
        .await
        .unwrap();
    assert!(
        !h.auth.webhooks().get("crm").unwrap().enabled,
        "the auth node's registry at once"
    );
    assert!(!hooks.endpoints().await.unwrap()[0].enabled);
    hooks.disable("no-such-endpoint", "410").await.unwrap();
    hooks.disable("../../v1/auth", "410").await.unwrap();
    let (status, body) = raw(
        "POST",
        &format!("{url}/v1/internal/webhooks/nope/disable"),
        Some(TOKEN),
        Some(json!({"reason": "410"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, body) = raw(
        "POST",
        &format!("{url}/v1/internal/webhooks/crm/disable"),
        Some(TOKEN),
        Some(json!({"why": "?"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("bad_request"))
    );
    let long = "x".repeat(5000);
    let (status, _) = raw(
        "POST",
        &format!("{url}/v1/internal/webhooks/crm/disable"),
        Some(TOKEN),
        Some(json!({"reason": long})),
    )
    .await;
    assert_eq!(status, 204);

    // The server API's lookup: no user token needed; no e-mail; deleted and unknown are none.
    let user = h.register("alice").await;
    let directory = RemoteDirectory::new(&url).with_service_token(TOKEN);
    assert!(!format!("{directory:?}").contains(TOKEN));
    let found = directory
        .user_by_username_as_service("alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, user["user"]["id"].as_str().unwrap());
    assert_eq!(found.email, None);
    assert_eq!(
        directory
            .user_by_username_as_service("nobody")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        directory
            .user_by_username_as_service("../webhooks")
            .await
            .unwrap(),
        None
    );
    let (status, body) = raw(
        "GET",
        &format!("{url}/v1/internal/users/nobody"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("user_not_found"))
    );
    let (pair, _) = h.user("bob").await;
    h.request("DELETE", "/v1/auth/me", Some(&pair.access_token), None)
        .await;
    assert_eq!(
        directory.user_by_username_as_service("bob").await.unwrap(),
        None
    );
}

async fn the_internal_routes_refuse_callers_without_the_service_token(backend: Backend) {
    let (h, url, _task, _stop) = served(backend, Some(TOKEN)).await;
    let user_token = h.user("alice").await.0.access_token;
    let admin_token = h.admin_user("root").await.access_token;
    let wrong = format!("{TOKEN}x");
    let routes = [
        ("GET", "/v1/internal/webhooks", None),
        (
            "POST",
            "/v1/internal/webhooks/crm/disable",
            Some(json!({"reason": "x"})),
        ),
        ("GET", "/v1/internal/users/alice", None),
    ];
    for (method, path, body) in &routes {
        for bearer in [
            None,
            Some(wrong.as_str()),
            Some(&TOKEN[..16]),
            Some(user_token.as_str()),
            Some(admin_token.as_str()),
        ] {
            let (status, resp) = raw(method, &format!("{url}{path}"), bearer, body.clone()).await;
            assert_eq!(status, 401, "{method} {path} {bearer:?}: {resp}");
            assert_eq!(resp["error"]["code"], "unauthorized");
            assert!(!resp.to_string().contains(TOKEN));
        }
    }
    assert!(
        h.auth.webhooks().get("crm").unwrap().enabled,
        "nothing changed"
    );

    // The clients say so.
    let err = RemoteWebhooks::new(&url, wrong.clone())
        .endpoints()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RemoteError::Refused {
                status: 401,
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{err:?}"
    );
    let err = RemoteWebhooks::new(&url, wrong.clone())
        .disable("crm", "x")
        .await
        .unwrap_err();
    assert!(err.contains("401"), "{err}");
    let err = RemoteDirectory::new(&url)
        .with_service_token(wrong)
        .user_by_username_as_service("alice")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemoteError::Refused { status: 401, .. }),
        "{err:?}"
    );
    let err = RemoteDirectory::new(&url)
        .user_by_username_as_service("alice")
        .await
        .unwrap_err();
    assert!(matches!(err, RemoteError::NoServiceToken), "{err:?}");

    // Left out of the document, and of the routes a hub with embedded auth serves.
    let (status, doc) = raw("GET", &format!("{url}/v1/openapi.json"), None, None).await;
    assert_eq!(status, 200);
    assert!(!doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .any(|p| p.starts_with("/v1/internal")));
    let embedded = h
        .request("GET", "/v1/internal/webhooks", Some(TOKEN), None)
        .await;
    assert_eq!(embedded.status, StatusCode::NOT_FOUND);
}

async fn a_node_without_a_service_token_refuses_every_internal_request(backend: Backend) {
    let (_h, url, _task, _stop) = served(backend, None).await;
    for token in [None, Some(TOKEN), Some("")] {
        let (status, resp) = raw("GET", &format!("{url}/v1/internal/webhooks"), token, None).await;
        assert_eq!(
            (status, resp["error"]["code"].clone()),
            (401, json!("unauthorized")),
            "{token:?}"
        );
    }
    let err = RemoteWebhooks::new(&url, TOKEN)
        .endpoints()
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemoteError::Refused { status: 401, .. }),
        "{err:?}"
    );
}
