//! Self-service (`PATCH /v1/auth/me`, `POST /v1/auth/me/password`), the session list
//! (`/v1/auth/sessions*`) and `--single-session`.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use switchboard_auth::config::RateLimit;
use switchboard_auth::TokenError;
use switchboard_protocol::rest::TokenPair;

use crate::support::{assert_error, next_revocation, sid_of, Backend, Harness, PASSWORD};

/// Logs `username` in with this `User-Agent`.
async fn login_as(h: &Harness, username: &str, agent: &str) -> TokenPair {
    let body = json!({"username": username, "password": PASSWORD}).to_string();
    let req = Request::builder()
        .method("POST")
        .uri("/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, agent)
        .body(Body::from(body))
        .unwrap();
    let resp = h.send(req).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    serde_json::from_value(resp.json).unwrap()
}

async fn users_change_their_email(backend: Backend) {
    let h = Harness::new(backend).await;
    let (alice, _) = h.user("alice").await;
    h.register("bob").await;
    let patch = |body: Value, token: Option<&str>| {
        let token = token.map(str::to_owned);
        let h = &h;
        async move {
            h.request(
                "PATCH",
                "/v1/auth/me",
                token.as_deref(),
                Some(&body.to_string()),
            )
            .await
        }
    };
    let ok = patch(
        json!({"email": "alice@example.org"}),
        Some(&alice.access_token),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(
        ok.json,
        json!({"user": {"id": alice.user.id, "username": "alice", "email": "alice@example.org", "role": "user"}})
    );
    assert_eq!(
        h.me(&alice.access_token).await.json["user"]["email"],
        "alice@example.org"
    );
    assert_error(
        &patch(json!({"email": "a@b"}), Some(&alice.access_token)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &patch(
            json!({"email": "BOB@example.com"}),
            Some(&alice.access_token),
        )
        .await,
        StatusCode::CONFLICT,
        "email_taken",
    );
    assert_error(
        &patch(json!({"email": "x@example.com"}), None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(
        h.me(&alice.access_token).await.json["user"]["email"],
        "alice@example.org",
        "refusals change nothing"
    );
}

async fn changing_the_password_ends_the_other_sessions(backend: Backend) {
    let h = Harness::new(backend).await;
    let (current, _) = h.user("alice").await;
    let other = h.login("alice").await;
    let (bob, _) = h.user("bob").await;
    let mut revoked = h.auth.subscribe_revocations();
    let change = |current_pw: &str, new_pw: &str, token: Option<&str>| {
        let body = json!({"current": current_pw, "new": new_pw}).to_string();
        let token = token.map(str::to_owned);
        let h = &h;
        async move {
            h.request(
                "POST",
                "/v1/auth/me/password",
                token.as_deref(),
                Some(&body),
            )
            .await
        }
    };
    let new_pw = "a brand new passphrase";
    assert_error(
        &change("wrong password", new_pw, Some(&current.access_token)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_error(
        &change(PASSWORD, "short", Some(&current.access_token)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &change(PASSWORD, new_pw, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert!(revoked.try_recv().is_err(), "refusals end nothing");

    let ok = change(PASSWORD, new_pw, Some(&current.access_token)).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.json);
    assert_eq!(next_revocation(&mut revoked).await, sid_of(&other));
    assert!(revoked.try_recv().is_err(), "only the other session ends");
    let err = h.auth.verifier().verify(&other.access_token).await;
    assert!(matches!(err, Err(TokenError::Revoked)), "{err:?}");
    assert_error(
        &h.refresh(&other.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // The current session goes on; another user is untouched.
    assert_eq!(h.me(&current.access_token).await.status, StatusCode::OK);
    assert_eq!(
        h.refresh(&current.refresh_token).await.status,
        StatusCode::OK
    );
    assert_eq!(h.me(&bob.access_token).await.status, StatusCode::OK);
    // Only the new password logs in.
    let old = h
        .post(
            "/v1/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let new = h
        .post(
            "/v1/auth/login",
            json!({"username": "alice", "password": new_pw}),
        )
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.json);
}

/// A stolen access token cannot guess the password faster than logins can.
async fn a_wrong_current_password_counts_as_a_failed_login(backend: Backend) {
    let h = Harness::with_config(backend, |cfg| {
        cfg.login_account_limit = RateLimit {
            per_sec: 0.001,
            burst: 2,
        };
    })
    .await;
    let (alice, _) = h.user("alice").await;
    let body = json!({"current": "guess number one", "new": "whatever it is"}).to_string();
    for _ in 0..2 {
        let resp = h
            .request(
                "POST",
                "/v1/auth/me/password",
                Some(&alice.access_token),
                Some(&body),
            )
            .await;
        assert_error(&resp, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let resp = h
        .request(
            "POST",
            "/v1/auth/me/password",
            Some(&alice.access_token),
            Some(&body),
        )
        .await;
    assert_error(&resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(resp.headers.contains_key(header::RETRY_AFTER));
    // The account's logins are locked too.
    let login = h
        .post(
            "/v1/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_error(&login, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

async fn sessions_are_listed_and_ended(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let phone = login_as(&h, "alice", "Phone/1.0").await;
    let long_agent = format!("Laptop/{}", "é".repeat(300));
    let laptop = login_as(&h, "alice", &long_agent).await;
    let desk = login_as(&h, "alice", "Desk/3.0").await;
    let (bob, _) = h.user("bob").await;
    let mut revoked = h.auth.subscribe_revocations();

    let list = |token: &str, query: &str| {
        let path = format!("/v1/auth/sessions{query}");
        let token = token.to_owned();
        let h = &h;
        async move { h.request("GET", &path, Some(&token), None).await }
    };
    let all = list(&desk.access_token, "").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.json);
    let sessions = all.json["sessions"].as_array().unwrap();
    let ids: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
    // Newest first; only the caller's; the current one flagged.
    assert_eq!(ids, [sid_of(&desk), sid_of(&laptop), sid_of(&phone)]);
    let current: Vec<bool> = sessions.iter().map(|s| s["current"] == true).collect();
    assert_eq!(current, [true, false, false]);
    assert_eq!(sessions[0]["user_agent"], "Desk/3.0");
    let cut = sessions[1]["user_agent"].as_str().unwrap();
    assert!(cut.len() <= 256 && cut.len() > 250, "{}", cut.len());
    assert!(long_agent.starts_with(cut));
    for s in sessions {
        assert!(s["created_ts"].as_i64().unwrap() > 1_700_000_000_000);
        assert!(s["last_seen_ts"].as_i64() >= s["created_ts"].as_i64());
    }
    // A page of one, then the rest.
    let first = list(&desk.access_token, "?limit=1").await;
    assert_eq!(first.json["sessions"].as_array().unwrap().len(), 1);
    let cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    let rest = list(&desk.access_token, &format!("?limit=5&cursor={cursor}")).await;
    assert_eq!(rest.json["sessions"].as_array().unwrap().len(), 2);
    assert!(rest.json.get("next_cursor").is_none());
    for bad in ["?limit=0", "?limit=101"] {
        assert_error(
            &list(&desk.access_token, bad).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    assert_error(
        &h.request("GET", "/v1/auth/sessions", None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // Ending one session: only one's own, and only a live one.
    let end = |token: &str, sid: &str| {
        let path = format!("/v1/auth/sessions/{sid}");
        let token = token.to_owned();
        let h = &h;
        async move { h.request("DELETE", &path, Some(&token), None).await }
    };
    assert_error(
        &end(&bob.access_token, &sid_of(&phone)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &end(&desk.access_token, "no-such-session").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &h.request(
            "DELETE",
            &format!("/v1/auth/sessions/{}", sid_of(&phone)),
            None,
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert!(revoked.try_recv().is_err(), "refusals end nothing");
    let ended = end(&desk.access_token, &sid_of(&phone)).await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.json);
    assert_eq!(next_revocation(&mut revoked).await, sid_of(&phone));
    assert_error(
        &h.me(&phone.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &end(&desk.access_token, &sid_of(&phone)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Log out the other devices: the current session stays.
    let laptop_again = login_as(&h, "alice", "Laptop/2").await;
    let others = h
        .request(
            "DELETE",
            "/v1/auth/sessions",
            Some(&desk.access_token),
            None,
        )
        .await;
    assert_eq!(others.status, StatusCode::NO_CONTENT, "{}", others.json);
    let announced = BTreeSet::from([
        next_revocation(&mut revoked).await,
        next_revocation(&mut revoked).await,
    ]);
    assert_eq!(
        announced,
        BTreeSet::from([sid_of(&laptop), sid_of(&laptop_again)])
    );
    assert!(
        revoked.try_recv().is_err(),
        "bob's session and the current one stay"
    );
    let left = list(&desk.access_token, "").await;
    let ids: Vec<&str> = left.json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [sid_of(&desk)]);
    assert_eq!(h.me(&bob.access_token).await.status, StatusCode::OK);

    // A refresh moves last_seen, not created.
    let before = left.json["sessions"][0].clone();
    assert_eq!(h.refresh(&desk.refresh_token).await.status, StatusCode::OK);
    let after = list(&desk.access_token, "").await.json["sessions"][0].clone();
    assert_eq!(after["created_ts"], before["created_ts"]);
    assert!(after["last_seen_ts"].as_i64() >= before["last_seen_ts"].as_i64());

    // Ending the current session is a logout.
    let own = end(&desk.access_token, &sid_of(&desk)).await;
    assert_eq!(own.status, StatusCode::NO_CONTENT, "{}", own.json);
    assert_eq!(next_revocation(&mut revoked).await, sid_of(&desk));
    assert_error(
        &h.me(&desk.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

async fn single_session_ends_the_other_sessions_at_login(backend: Backend) {
    let h = Harness::with_config(backend, |cfg| cfg.accounts.single_session = true).await;
    let (first, _) = h.user("alice").await;
    let (bob, _) = h.user("bob").await;
    let mut revoked = h.auth.subscribe_revocations();
    let second = h.login("alice").await;
    assert_eq!(next_revocation(&mut revoked).await, sid_of(&first));
    assert!(
        revoked.try_recv().is_err(),
        "only alice's earlier session ends"
    );
    assert_error(
        &h.me(&first.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(h.me(&second.access_token).await.status, StatusCode::OK);
    assert_eq!(h.me(&bob.access_token).await.status, StatusCode::OK);
}

/// Off by default: logins add sessions.
async fn without_single_session_logins_add_sessions(backend: Backend) {
    let h = Harness::new(backend).await;
    let (first, _) = h.user("alice").await;
    let mut revoked = h.auth.subscribe_revocations();
    let second = h.login("alice").await;
    assert!(revoked.try_recv().is_err());
    assert_eq!(h.me(&first.access_token).await.status, StatusCode::OK);
    assert_eq!(h.me(&second.access_token).await.status, StatusCode::OK);
}

/// Concurrent logins of one user all succeed (they queue on the user row; none deadlocks), and
/// each is its own session.
async fn concurrent_logins_of_one_user_all_succeed(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let logins = (0..6).map(|_| h.login("alice"));
    let pairs = futures_util::future::join_all(logins).await;
    let sids: BTreeSet<String> = pairs.iter().map(sid_of).collect();
    assert_eq!(sids.len(), 6);
}

/// What a hostile user can send: a body over the 2 MiB cap is refused before parsing, and a
/// `current` password longer than any stored one is refused without hashing it.
async fn oversized_account_requests_are_refused(backend: Backend) {
    let h = Harness::new(backend).await;
    let (alice, _) = h.user("alice").await;
    let huge = format!(
        r#"{{"email":"{}@example.com"}}"#,
        "a".repeat(3 * 1024 * 1024)
    );
    for (method, path) in [("PATCH", "/v1/auth/me"), ("POST", "/v1/auth/me/password")] {
        let resp = h
            .request(method, path, Some(&alice.access_token), Some(&huge))
            .await;
        assert_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    }
    let long = json!({"current": "x".repeat(2000), "new": "a fine new password"}).to_string();
    let resp = h
        .request(
            "POST",
            "/v1/auth/me/password",
            Some(&alice.access_token),
            Some(&long),
        )
        .await;
    assert_error(&resp, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let resp = h
        .request("PATCH", "/v1/auth/me", Some(&alice.access_token), Some("{"))
        .await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(
        h.me(&alice.access_token).await.json["user"]["email"],
        "alice@example.com"
    );
}

backend_tests!(
    oversized_account_requests_are_refused,
    concurrent_logins_of_one_user_all_succeed,
    users_change_their_email,
    changing_the_password_ends_the_other_sessions,
    a_wrong_current_password_counts_as_a_failed_login,
    sessions_are_listed_and_ended,
    single_session_ends_the_other_sessions_at_login,
    without_single_session_logins_add_sessions,
);
