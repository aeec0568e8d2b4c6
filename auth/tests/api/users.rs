//! `GET /v1/users/{username}` and `DELETE /v1/auth/me`.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::json;
use switchboard_auth::TokenError;

use crate::support::{assert_error, next_revocation, Backend, Harness};

async fn user_lookup_needs_a_bearer_and_hides_the_email(backend: Backend) {
    let h = Harness::new(backend).await;
    let registered = h.register("alice").await;
    let (bob, _) = h.user("bob").await;

    let resp = h
        .request("GET", "/v1/users/alice", Some(&bob.access_token), None)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    assert_eq!(
        resp.json,
        json!({"user": {"id": registered["user"]["id"], "username": "alice", "role": "user"}})
    );

    for missing in ["carol", "Alice", "a", "no%20such"] {
        let resp = h
            .request(
                "GET",
                &format!("/v1/users/{missing}"),
                Some(&bob.access_token),
                None,
            )
            .await;
        assert_error(&resp, StatusCode::NOT_FOUND, "user_not_found");
    }

    let anonymous = h.request("GET", "/v1/users/alice", None, None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
    let forged = h
        .request("GET", "/v1/users/alice", Some("not.a.token"), None)
        .await;
    assert_error(&forged, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn deleting_an_account_revokes_every_session_and_keeps_the_name(backend: Backend) {
    let h = Harness::new(backend).await;
    let (first, sid1) = h.user("alice").await;
    let second = h.login("alice").await;
    let sid2 = crate::support::sid_of(&second);
    let (bob, _) = h.user("bob").await;
    let mut revoked = h.auth.subscribe_revocations();

    let resp = h
        .request("DELETE", "/v1/auth/me", Some(&first.access_token), None)
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.json);
    assert_eq!(resp.json, serde_json::Value::Null, "204 has no body");

    // Both sessions were revoked and announced, each once.
    let announced = BTreeSet::from([
        next_revocation(&mut revoked).await,
        next_revocation(&mut revoked).await,
    ]);
    assert_eq!(announced, BTreeSet::from([sid1, sid2]));
    assert!(revoked.try_recv().is_err(), "nothing else announced");
    for pair in [&first, &second] {
        assert_error(
            &h.me(&pair.access_token).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        let err = h.auth.verifier().verify(&pair.access_token).await;
        assert!(matches!(err, Err(TokenError::Revoked)), "{err:?}");
        assert_error(
            &h.refresh(&pair.refresh_token).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }

    // The account is gone: no login, no second deletion; a lookup finds its tombstone.
    let login = h
        .post(
            "/v1/auth/login",
            json!({"username": "alice", "password": crate::support::PASSWORD}),
        )
        .await;
    assert_error(&login, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let lookup = h
        .request("GET", "/v1/users/alice", Some(&bob.access_token), None)
        .await;
    assert_eq!(lookup.status, StatusCode::OK, "{}", lookup.json);
    assert_eq!(lookup.json["user"]["deleted"], true, "{}", lookup.json);
    assert_eq!(lookup.json["user"]["id"], json!(first.user.id));
    assert!(
        lookup.json["user"].get("email").is_none(),
        "{}",
        lookup.json
    );
    assert_eq!(h.auth.user_by_username("alice").await.unwrap(), None);
    let again = h
        .request("DELETE", "/v1/auth/me", Some(&first.access_token), None)
        .await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "unauthorized");

    // The username stays reserved, so nobody can pose as the deleted user.
    let register = h
        .post(
            "/v1/auth/register",
            json!({"username": "alice", "email": "new@example.com", "password": "another password"}),
        )
        .await;
    assert_error(&register, StatusCode::CONFLICT, "username_taken");

    // Other users are untouched.
    assert_eq!(h.me(&bob.access_token).await.status, StatusCode::OK);
    let no_bearer = h.request("DELETE", "/v1/auth/me", None, None).await;
    assert_error(&no_bearer, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn a_deleted_account_stays_revoked_after_a_reopen(backend: Backend) {
    let h = Harness::new(backend).await;
    let (alice, _) = h.user("alice").await;
    let resp = h
        .request("DELETE", "/v1/auth/me", Some(&alice.access_token), None)
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);

    let h = h.reopen().await;
    let err = h.auth.verifier().verify(&alice.access_token).await;
    assert!(matches!(err, Err(TokenError::Revoked)), "{err:?}");
    assert_eq!(h.auth.user_by_username("alice").await.unwrap(), None);
}

backend_tests!(
    user_lookup_needs_a_bearer_and_hides_the_email,
    deleting_an_account_revokes_every_session_and_keeps_the_name,
    a_deleted_account_stays_revoked_after_a_reopen,
);
