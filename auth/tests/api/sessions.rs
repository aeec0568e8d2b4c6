//! /me, refresh-token rotation and reuse detection, logout and the revocation broadcast.

use std::time::Duration;

use axum::http::StatusCode;
use switchboard_auth::TokenError;
use switchboard_protocol::rest::TokenPair;

use crate::support::{assert_error, next_revocation, Backend, Harness};

fn pair(resp: crate::support::Resp) -> TokenPair {
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    serde_json::from_value(resp.json).unwrap()
}

async fn me_returns_the_user_and_session(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let login = h.login("alice").await;
    let resp = h.me(&login.access_token).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    assert_eq!(resp.json["user"]["username"], "alice");
    assert_eq!(resp.json["user"]["email"], "alice@example.com");
    let (sid, _) = login.refresh_token.split_once('.').unwrap();
    assert_eq!(resp.json["session"], sid);
}

async fn refresh_rotates_and_reuse_revokes_the_whole_session(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let mut revoked = h.auth.subscribe_revocations();
    let first = h.login("alice").await;
    let sid = first.refresh_token.split_once('.').unwrap().0.to_owned();

    let second = pair(h.refresh(&first.refresh_token).await);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(second.user.username, "alice");
    assert_eq!(h.me(&second.access_token).await.status, StatusCode::OK);
    // Same session throughout.
    assert!(second.refresh_token.starts_with(&format!("{sid}.")));

    // The new refresh token works once.
    let third = pair(h.refresh(&second.refresh_token).await);
    assert_error(
        &h.refresh(&second.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // That reuse revoked everything in the session.
    assert_eq!(next_revocation(&mut revoked).await, sid);
    for token in [
        &first.access_token,
        &second.access_token,
        &third.access_token,
    ] {
        assert_error(&h.me(token).await, StatusCode::UNAUTHORIZED, "unauthorized");
        let err = h.auth.verifier().verify(token).await.unwrap_err();
        assert!(matches!(err, TokenError::Revoked), "{err:?}");
    }
    assert_error(
        &h.refresh(&third.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert!(h.auth.revocations().is_revoked(&sid));

    // Other sessions of the same user are untouched.
    let other = h.login("alice").await;
    assert_eq!(h.me(&other.access_token).await.status, StatusCode::OK);
    assert_eq!(h.refresh(&other.refresh_token).await.status, StatusCode::OK);
}

async fn concurrent_refreshes_with_one_token_cannot_both_win(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let login = h.login("alice").await;
    let (a, b) = tokio::join!(
        h.refresh(&login.refresh_token),
        h.refresh(&login.refresh_token)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    // The loser counted as reuse: the winner's tokens are dead too.
    let winner = pair(if a.status == StatusCode::OK { a } else { b });
    assert_eq!(
        h.me(&winner.access_token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn garbage_refresh_tokens_are_401_and_revoke_nothing(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let login = h.login("alice").await;
    let sid = login.refresh_token.split_once('.').unwrap().0;
    let forged = format!("{sid}.{}", "A".repeat(43));
    for token in ["", "garbage", "a.b", forged.as_str()] {
        assert_error(
            &h.refresh(token).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    // Guessing a token of a known session did not revoke it.
    assert_eq!(h.me(&login.access_token).await.status, StatusCode::OK);
    assert_eq!(h.refresh(&login.refresh_token).await.status, StatusCode::OK);
}

async fn logout_revokes_the_session_and_broadcasts(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let mut revoked = h.auth.subscribe_revocations();
    let login = h.login("alice").await;
    let sid = login.refresh_token.split_once('.').unwrap().0;

    let resp = h
        .request("POST", "/v1/auth/logout", Some(&login.access_token), None)
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert_eq!(resp.json, serde_json::Value::Null, "204 has no body");
    assert_eq!(next_revocation(&mut revoked).await, sid);

    assert_error(
        &h.me(&login.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &h.refresh(&login.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // A second logout with the dead token is refused, not repeated.
    let again = h
        .request("POST", "/v1/auth/logout", Some(&login.access_token), None)
        .await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(revoked.try_recv().is_err(), "no second broadcast");
}

async fn logout_and_me_need_a_bearer_token(backend: Backend) {
    let h = Harness::new(backend).await;
    let logout = h.request("POST", "/v1/auth/logout", None, None).await;
    assert_error(&logout, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(logout.headers["www-authenticate"], "Bearer");
    let me = h.request("GET", "/v1/auth/me", None, None).await;
    assert_error(&me, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn an_expired_refresh_token_is_refused_without_revoking(backend: Backend) {
    let h = Harness::with_config(backend, |cfg| cfg.refresh_ttl = Duration::ZERO).await;
    h.register("alice").await;
    let login = h.login("alice").await;
    assert_error(
        &h.refresh(&login.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(h.me(&login.access_token).await.status, StatusCode::OK);
}

async fn issuer_audience_and_ttl_come_from_the_config(backend: Backend) {
    let h = Harness::with_config(backend, |cfg| {
        cfg.issuer = "https://auth.example".into();
        cfg.audience = "chat".into();
        cfg.access_ttl = Duration::from_secs(60);
    })
    .await;
    h.register("alice").await;
    let login = h.login("alice").await;
    assert_eq!(login.expires_in, 60);
    let claims = crate::support::claims_of(&h.auth, &login.access_token).await;
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("https://auth.example", "chat")
    );
    assert_eq!(claims.exp - claims.iat, 60);
}

backend_tests!(
    me_returns_the_user_and_session,
    refresh_rotates_and_reuse_revokes_the_whole_session,
    concurrent_refreshes_with_one_token_cannot_both_win,
    garbage_refresh_tokens_are_401_and_revoke_nothing,
    logout_revokes_the_session_and_broadcasts,
    logout_and_me_need_a_bearer_token,
    an_expired_refresh_token_is_refused_without_revoking,
    issuer_audience_and_ttl_come_from_the_config,
);
