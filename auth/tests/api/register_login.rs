//! Registration, login, and request-body errors.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{assert_error, Backend, Harness, PASSWORD};

async fn register_returns_201_with_the_user(backend: Backend) {
    let h = Harness::new(backend).await;
    let body = h.register("alice").await;
    let user = &body["user"];
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["role"], "user");
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert!(body.get("password").is_none() && user.get("password_hash").is_none());
}

async fn register_enforces_every_rule_with_bad_request(backend: Backend) {
    let h = Harness::new(backend).await;
    let long_name = "a".repeat(33);
    let long_password = "p".repeat(1025);
    let cases = [
        ("ab", "x@y.z", PASSWORD, "username too short"),
        (long_name.as_str(), "x@y.z", PASSWORD, "username too long"),
        ("Alice", "x@y.z", PASSWORD, "uppercase"),
        ("al ice", "x@y.z", PASSWORD, "space"),
        ("al!ce", "x@y.z", PASSWORD, "punctuation"),
        ("alice", "not-an-email", PASSWORD, "email without @"),
        ("alice", "x@y", PASSWORD, "email without a dot"),
        ("alice", "@y.z", PASSWORD, "email without local part"),
        ("alice", "x@y.z", "short", "password too short"),
        (
            "alice",
            "x@y.z",
            long_password.as_str(),
            "password too long",
        ),
    ];
    for (username, email, password, why) in cases {
        let resp = h
            .post(
                "/v1/auth/register",
                json!({"username": username, "email": email, "password": password}),
            )
            .await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{why}");
        assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    }
    // None of them created the user.
    assert_eq!(h.auth.user_by_username("alice").await.unwrap(), None);
}

async fn duplicate_username_is_409_username_taken(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let resp = h
        .post(
            "/v1/auth/register",
            json!({"username": "alice", "email": "other@example.com", "password": "another password"}),
        )
        .await;
    assert_error(&resp, StatusCode::CONFLICT, "username_taken");
}

async fn login_returns_a_token_pair(backend: Backend) {
    let h = Harness::new(backend).await;
    let registered = h.register("alice").await;
    let pair = h.login("alice").await;
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 15 * 60);
    assert_eq!(pair.user.username, "alice");
    assert_eq!(pair.user.id, registered["user"]["id"]);
    let (sid, _) = pair.refresh_token.split_once('.').unwrap();
    let claims = crate::support::claims_of(&h.auth, &pair.access_token).await;
    assert_eq!(claims.sid, sid);
    assert_eq!(claims.sub, pair.user.id);
    assert_eq!(claims.name, "alice");
    assert_eq!(claims.role, "user");
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("switchboard", "switchboard")
    );
    assert_eq!(claims.exp - claims.iat, 15 * 60);
}

async fn wrong_password_and_unknown_user_get_the_same_answer(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let wrong_password = h
        .post(
            "/v1/auth/login",
            json!({"username": "alice", "password": "not the password"}),
        )
        .await;
    let unknown_user = h
        .post(
            "/v1/auth/login",
            json!({"username": "mallory", "password": "not the password"}),
        )
        .await;
    let too_long = h
        .post(
            "/v1/auth/login",
            json!({"username": "alice", "password": "p".repeat(5000)}),
        )
        .await;
    assert_error(
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!(wrong_password.json, unknown_user.json);
    assert_eq!(wrong_password.status, unknown_user.status);
    assert_eq!(wrong_password.json, too_long.json);
}

async fn malformed_bodies_are_400_bad_request_json(backend: Backend) {
    let h = Harness::new(backend).await;
    let bodies = [
        "{not json",
        "",
        "[]",
        r#"{"username":"alice"}"#,
        r#"{"username":1,"email":"x@y.z","password":"12345678"}"#,
    ];
    for body in bodies {
        let resp = h
            .request("POST", "/v1/auth/register", None, Some(body))
            .await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    }
    for path in ["/v1/auth/login", "/v1/auth/refresh"] {
        let resp = h.request("POST", path, None, Some("{oops")).await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    }
    // No JSON content type at all.
    let req = Request::post("/v1/auth/login")
        .body(Body::from(r#"{"username":"a","password":"b"}"#))
        .unwrap();
    assert_error(&h.send(req).await, StatusCode::BAD_REQUEST, "bad_request");
}

async fn user_by_username_hides_the_email(backend: Backend) {
    let h = Harness::new(backend).await;
    let registered = h.register("alice").await;
    let user = h.auth.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(user.id, registered["user"]["id"]);
    assert_eq!(user.username, "alice");
    assert_eq!(user.role, "user");
    assert_eq!(user.email, None);
    assert_eq!(h.auth.user_by_username("bob").await.unwrap(), None);
}

backend_tests!(
    register_returns_201_with_the_user,
    register_enforces_every_rule_with_bad_request,
    duplicate_username_is_409_username_taken,
    login_returns_a_token_pair,
    wrong_password_and_unknown_user_get_the_same_answer,
    malformed_bodies_are_400_bad_request_json,
    user_by_username_hides_the_email,
);
