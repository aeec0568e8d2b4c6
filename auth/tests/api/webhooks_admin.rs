//! The admin API of webhook endpoints (`/v1/admin/webhooks*`): what it does, and every
//! refusal with its code.

use axum::http::StatusCode;
use serde_json::{json, Value};
use switchboard_webhooks::EventType;

use crate::support::{assert_error, Backend, Harness};
use crate::webhooks_store::endpoint;

backend_tests!(
    admins_create_list_change_and_delete_endpoints,
    the_webhook_routes_refuse_everyone_but_admins,
    the_webhook_routes_refuse_bad_input,
    the_webhook_routes_refuse_conflicts_and_unknown_ids,
);

const SECRET: &str = "0123456789abcdef-secret";

async fn call(
    h: &Harness,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> crate::support::Resp {
    let body = body.map(|b| b.to_string());
    h.request(method, path, Some(token), body.as_deref()).await
}

async fn admins_create_list_change_and_delete_endpoints(backend: Backend) {
    let h = Harness::new(backend).await;
    let admin = h.admin_user("root").await.access_token;
    let made = call(
        &h,
        "POST",
        "/v1/admin/webhooks",
        &admin,
        Some(json!({"id": "crm", "url": "http://127.0.0.1:9/hook", "events": ["user.registered", "message.created"], "secret": SECRET})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json);
    assert_eq!(made.json["secret"], SECRET);
    let hook = &made.json["webhook"];
    assert_eq!(hook["id"], "crm");
    assert_eq!(
        hook["events"],
        json!(["message.created", "user.registered"])
    );
    assert_eq!(
        (hook["enabled"].clone(), hook["source"].clone()),
        (json!(true), json!("api"))
    );
    assert_eq!(hook["secret_hint"], "cret");
    assert!(hook.get("secret").is_none());
    assert_eq!(h.auth.webhooks().get("crm").unwrap().secret, SECRET);

    // Without a secret, one is made and shown once.
    let made = call(&h, "POST", "/v1/admin/webhooks", &admin, Some(json!({"id": "rooms", "url": "https://hooks.example.com/x", "events": ["room.created"]}))).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json);
    let secret = made.json["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 38,
        "{secret}"
    );
    assert_eq!(
        made.json["webhook"]["secret_hint"],
        secret[secret.len() - 4..]
    );

    let list = call(&h, "GET", "/v1/admin/webhooks", &admin, None).await;
    assert_eq!(list.status, StatusCode::OK);
    let hooks = list.json["webhooks"].as_array().unwrap();
    assert_eq!(
        hooks
            .iter()
            .map(|w| w["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["crm", "rooms"]
    );
    assert!(
        !list.json.to_string().contains(SECRET) && !list.json.to_string().contains(&secret),
        "no secret listed"
    );

    let changed = call(
        &h,
        "PATCH",
        "/v1/admin/webhooks/crm",
        &admin,
        Some(json!({"enabled": false, "events": ["user.deleted"]})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.json);
    assert_eq!(changed.json["webhook"]["enabled"], false);
    assert_eq!(
        changed.json["webhook"]["disabled_reason"],
        "disabled by an admin"
    );
    assert_eq!(changed.json["webhook"]["events"], json!(["user.deleted"]));
    assert!(
        !h.auth.webhooks().get("crm").unwrap().enabled,
        "the registry follows"
    );
    let changed = call(
        &h,
        "PATCH",
        "/v1/admin/webhooks/crm",
        &admin,
        Some(
            json!({"enabled": true, "secret": "another-secret-16", "url": "http://127.0.0.1:10/"}),
        ),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.json);
    assert!(changed.json["webhook"].get("disabled_reason").is_none());
    assert_eq!(changed.json["webhook"]["secret_hint"], "t-16");
    let live = h.auth.webhooks().get("crm").unwrap();
    assert!(live.enabled);
    assert_eq!(
        (live.secret.as_str(), live.url.as_str()),
        ("another-secret-16", "http://127.0.0.1:10/")
    );

    let deleted = call(&h, "DELETE", "/v1/admin/webhooks/crm", &admin, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(h.auth.webhooks().get("crm").is_none());
}

async fn the_webhook_routes_refuse_everyone_but_admins(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = h.user("mallory").await.0.access_token;
    let body =
        json!({"id": "x", "url": "http://127.0.0.1:9/", "events": ["room.created"]}).to_string();
    for (method, path, body) in [
        ("GET", "/v1/admin/webhooks", None),
        ("POST", "/v1/admin/webhooks", Some(body.as_str())),
        (
            "PATCH",
            "/v1/admin/webhooks/x",
            Some(r#"{"enabled":false}"#),
        ),
        ("DELETE", "/v1/admin/webhooks/x", None),
    ] {
        let resp = h.request(method, path, None, body).await;
        assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
        let resp = h.request(method, path, Some("not.a.token"), body).await;
        assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
        let resp = h.request(method, path, Some(&user), body).await;
        assert_error(&resp, StatusCode::FORBIDDEN, "forbidden");
    }
    assert!(h.auth.webhooks().snapshot().is_empty());
}

async fn the_webhook_routes_refuse_bad_input(backend: Backend) {
    let h = Harness::new(backend).await;
    let admin = h.admin_user("root").await.access_token;
    let good = || json!({"id": "ok", "url": "http://127.0.0.1:9/", "events": ["room.created"], "secret": SECRET});
    let with = |field: &str, value: Value| {
        let mut body = good();
        body[field] = value;
        body
    };
    let long_url = format!("http://example.com/{}", "a".repeat(2048));
    for (body, needle) in [
        (with("id", json!("")), "id"),
        (with("id", json!("Bad.Id")), "id"),
        (with("id", json!("a".repeat(65))), "id"),
        (with("url", json!("not a url")), "URL"),
        (with("url", json!("ftp://example.com/")), "URL"),
        (
            with("url", json!("http://169.254.169.254/latest/meta-data/")),
            "link-local",
        ),
        (
            with("url", json!("http://metadata.google.internal/")),
            "metadata",
        ),
        (with("url", json!(long_url)), "2048"),
        (with("events", json!([])), "at least one"),
        (
            with("events", json!(["room.created", "room.exploded"])),
            "room.exploded",
        ),
        (with("secret", json!("short")), "16"),
        (with("secret", json!("s".repeat(257))), "256"),
        (json!({"id": "ok", "url": "http://127.0.0.1:9/"}), ""),
        (with("events", json!("room.created")), ""),
    ] {
        let resp = call(&h, "POST", "/v1/admin/webhooks", &admin, Some(body.clone())).await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
        let message = resp.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let resp = h
        .request(
            "POST",
            "/v1/admin/webhooks",
            Some(&admin),
            Some("{not json"),
        )
        .await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");

    let made = call(&h, "POST", "/v1/admin/webhooks", &admin, Some(good())).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json);
    for body in [
        json!({"url": "http://169.254.169.254/"}),
        json!({"url": "nope"}),
        json!({"events": []}),
        json!({"events": ["nope"]}),
        json!({"secret": "short"}),
        json!({"enabled": "yes"}),
    ] {
        let resp = call(
            &h,
            "PATCH",
            "/v1/admin/webhooks/ok",
            &admin,
            Some(body.clone()),
        )
        .await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(
        h.auth.webhooks().get("ok").unwrap().url,
        "http://127.0.0.1:9/",
        "nothing changed"
    );
}

async fn the_webhook_routes_refuse_conflicts_and_unknown_ids(backend: Backend) {
    let conf = endpoint("conf", &[EventType::UserRegistered]);
    let h = Harness::with_config(backend, |cfg| cfg.webhooks.endpoints = vec![conf]).await;
    let admin = h.admin_user("root").await.access_token;
    let body =
        |id: &str| json!({"id": id, "url": "http://127.0.0.1:9/", "events": ["room.created"]});

    let resp = call(
        &h,
        "PATCH",
        "/v1/admin/webhooks/nope",
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_error(&resp, StatusCode::NOT_FOUND, "not_found");
    let resp = call(&h, "DELETE", "/v1/admin/webhooks/nope", &admin, None).await;
    assert_error(&resp, StatusCode::NOT_FOUND, "not_found");

    // The configured endpoint: listed as such; only `enabled` changes.
    let list = call(&h, "GET", "/v1/admin/webhooks", &admin, None).await;
    assert_eq!(list.json["webhooks"][0]["source"], "config");
    for patch in [
        json!({"url": "http://127.0.0.1:1/"}),
        json!({"events": ["room.created"]}),
        json!({"secret": SECRET, "enabled": false}),
    ] {
        let resp = call(&h, "PATCH", "/v1/admin/webhooks/conf", &admin, Some(patch)).await;
        assert_error(&resp, StatusCode::CONFLICT, "conflict");
    }
    let resp = call(&h, "DELETE", "/v1/admin/webhooks/conf", &admin, None).await;
    assert_error(&resp, StatusCode::CONFLICT, "conflict");
    let resp = call(
        &h,
        "PATCH",
        "/v1/admin/webhooks/conf",
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    let resp = call(&h, "POST", "/v1/admin/webhooks", &admin, Some(body("conf"))).await;
    assert_error(&resp, StatusCode::CONFLICT, "conflict");

    // 100 endpoints at most (the configured one counts).
    for i in 1..100 {
        let resp = call(
            &h,
            "POST",
            "/v1/admin/webhooks",
            &admin,
            Some(body(&format!("e{i}"))),
        )
        .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{i}: {}", resp.json);
    }
    let resp = call(
        &h,
        "POST",
        "/v1/admin/webhooks",
        &admin,
        Some(body("one-more")),
    )
    .await;
    assert_error(&resp, StatusCode::CONFLICT, "conflict");
    assert!(resp.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("100"));
    let resp = call(&h, "POST", "/v1/admin/webhooks", &admin, Some(body("e1"))).await;
    assert_error(&resp, StatusCode::CONFLICT, "conflict");
}
