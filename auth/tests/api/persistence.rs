//! Everything survives closing and reopening the same data directory.

use axum::http::StatusCode;
use switchboard_auth::TokenError;

use crate::support::{assert_error, claims_of, Backend, Harness};

async fn users_keys_sessions_and_revocations_survive_a_reopen(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let kept = h.login("alice").await;
    let logged_out = h.login("alice").await;
    let status = h
        .request(
            "POST",
            "/v1/auth/logout",
            Some(&logged_out.access_token),
            None,
        )
        .await
        .status;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let kid_before = h.keys().kid().to_owned();

    let h = h.reopen().await;

    assert_eq!(h.keys().kid(), kid_before, "same signing key");
    // The user can log in; the old access token still verifies; its refresh token still works.
    h.login("alice").await;
    assert_eq!(claims_of(&h.auth, &kept.access_token).await.name, "alice");
    assert_eq!(h.me(&kept.access_token).await.status, StatusCode::OK);
    assert_eq!(h.refresh(&kept.refresh_token).await.status, StatusCode::OK);
    // The session revoked before the restart is still revoked.
    let err = h
        .auth
        .verifier()
        .verify(&logged_out.access_token)
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::Revoked), "{err:?}");
    assert_error(
        &h.refresh(&logged_out.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // And the username stays taken.
    let resp = h
        .post(
            "/v1/auth/register",
            serde_json::json!({"username": "alice", "email": "a@b.cd", "password": "12345678"}),
        )
        .await;
    assert_error(&resp, StatusCode::CONFLICT, "username_taken");
}

async fn open_creates_the_files(backend: Backend) {
    let h = Harness::new(backend).await;
    let data = h.env.data_dir();
    assert!(data.join("signing-key.pem").is_file());
    // Users and sessions are in the database, not in the data directory.
    assert_eq!(data.join("auth.db").is_file(), backend == Backend::Sqlite);
}

backend_tests!(
    users_keys_sessions_and_revocations_survive_a_reopen,
    open_creates_the_files,
);
