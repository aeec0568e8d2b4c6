//! Password reset by mail: `POST /v1/auth/password/reset` and `.../confirm` through the router,
//! the mail received by a real SMTP server (testkit's [`SmtpSink`]) and parsed as a mail
//! client would; and the `ResetStore` contract (window, expiry, single use) with explicit
//! times, on each store.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};
use sha2::Digest as _;
use switchboard_auth::mail::SmtpUrl;
use switchboard_auth::store::{
    NewPasswordReset, PasswordReset, ResetPassword, ResetRequested, UserRecord,
};
use switchboard_auth::{AuthConfig, AuthStore, PgStore, SqliteStore};
use switchboard_jobs::{NewJob, State};
use switchboard_testkit::smtp::{Received, SmtpSink};

use crate::support::{assert_error, Backend, Harness, Resp, TestDatabase, PASSWORD};

const PUBLIC_URL: &str = "https://chat.example.com";
const NEW_PASSWORD: &str = "battery staple horse";

/// A harness whose mails go to `sink` and whose links start with [`PUBLIC_URL`].
async fn harness(
    backend: Backend,
    sink: &SmtpSink,
    tweak: impl FnOnce(&mut AuthConfig),
) -> Harness {
    let url = SmtpUrl::parse(&sink.url()).unwrap();
    Harness::with_config(backend, |cfg| {
        cfg.mail.smtp_url = Some(url);
        // The auth test harness starts no workers; these tests send their mails.
        cfg.jobs.workers = 2;
        cfg.public_url = Some(PUBLIC_URL.to_owned());
        // No pacing to speak of between mails here (the queue's own tests check the spacing).
        cfg.mail.rate_per_sec = 1000.0;
        tweak(cfg);
    })
    .await
}

async fn ask(h: &Harness, email: &str) -> Resp {
    h.post("/v1/auth/password/reset", json!({ "email": email }))
        .await
}

async fn confirm(h: &Harness, token: &str, password: &str) -> Resp {
    h.post(
        "/v1/auth/password/reset/confirm",
        json!({ "token": token, "password": password }),
    )
    .await
}

async fn login(h: &Harness, username: &str, password: &str) -> Resp {
    h.post(
        "/v1/auth/login",
        json!({ "username": username, "password": password }),
    )
    .await
}

/// The recipient and the token of the link of a received reset mail (from the decoded text
/// part, as a reader would click it).
fn token_of(mail: &Received) -> (String, String) {
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.raw)
        .expect("the mail parses");
    let text = parsed.body_text(0).unwrap();
    let prefix = format!("{PUBLIC_URL}/#reset=");
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no link: {text}"))
        + prefix.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "{text}");
    let html = parsed.body_html(0).unwrap();
    assert!(html.contains(&format!("{prefix}{token}")), "{html}");
    (mail.rcpt_to.join(","), token)
}

/// Waits for the `n`th reset mail (welcome mails of the registrations are skipped) and returns
/// its recipient and token.
async fn nth_mail(sink: &SmtpSink, n: usize) -> (String, String) {
    let mut total = n;
    loop {
        let got = sink.wait_for(total, Duration::from_secs(10)).await;
        let resets: Vec<&Received> = got.iter().filter(|m| is_reset(m)).collect();
        if resets.len() >= n {
            return token_of(resets[n - 1]);
        }
        total = got.len() + 1;
    }
}

fn is_reset(mail: &Received) -> bool {
    mail.header("subject").as_deref() == Some(switchboard_auth::mail::RESET_SUBJECT)
}

/// The reset mails received so far.
fn resets(sink: &SmtpSink) -> usize {
    sink.received().iter().filter(|m| is_reset(m)).count()
}

/// The answer to a request, the same whatever the address: 202, no body.
fn assert_accepted(resp: &Resp) {
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.json);
    assert_eq!(resp.json, Value::Null);
}

async fn the_mailed_link_sets_the_password_and_ends_every_session(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink, |_| {}).await;
    let (pair, _) = h.user("alice").await;
    let second = h.login("alice").await;
    let mut revoked = h.auth.subscribe_revocations();

    // The address is compared ignoring case and surrounding spaces.
    assert_accepted(&ask(&h, "  ALICE@Example.com ").await);
    let (to, token) = nth_mail(&sink, 1).await;
    assert_eq!(to, "alice@example.com");

    assert_eq!(
        confirm(&h, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &login(&h, "alice", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!(
        login(&h, "alice", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    // Both earlier sessions are revoked: announced, access tokens and refresh tokens refused.
    let mut ended = vec![
        crate::support::next_revocation(&mut revoked).await,
        crate::support::next_revocation(&mut revoked).await,
    ];
    ended.sort();
    let mut expected = vec![
        crate::support::sid_of(&pair),
        crate::support::sid_of(&second),
    ];
    expected.sort();
    assert_eq!(ended, expected);
    assert_error(
        &h.me(&pair.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &h.refresh(&second.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // Single use.
    assert_error(
        &confirm(&h, &token, "another good password").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(
        login(&h, "alice", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn an_unknown_address_gets_the_same_answer_and_no_mail(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink, |_| {}).await;
    h.register("bob").await;
    let unknown = ask(&h, "nobody@example.com").await;
    let known = ask(&h, "bob@example.com").await;
    assert_accepted(&unknown);
    assert_accepted(&known);
    assert_eq!(
        unknown.headers.get("content-type"),
        known.headers.get("content-type")
    );
    // The unknown address spawned nothing: the first mail is bob's, and no other follows the
    // barrier (a second request for bob).
    assert_eq!(nth_mail(&sink, 1).await.0, "bob@example.com");
    assert_accepted(&ask(&h, "bob@example.com").await);
    assert_eq!(nth_mail(&sink, 2).await.0, "bob@example.com");
    assert_eq!(resets(&sink), 2);
}

async fn a_fourth_request_in_an_hour_sends_nothing_and_a_reset_voids_the_others(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink, |_| {}).await;
    h.register("carol").await;
    h.register("dave").await;
    let mut tokens = Vec::new();
    for n in 1..=3 {
        assert_accepted(&ask(&h, "carol@example.com").await);
        tokens.push(nth_mail(&sink, n).await.1);
    }
    // The fourth, in any spelling of the address: still 202, nothing made, nothing sent.
    assert_accepted(&ask(&h, "Carol@Example.com").await);
    assert_accepted(&ask(&h, "dave@example.com").await);
    let (to, _) = nth_mail(&sink, 4).await;
    assert_eq!(
        to, "dave@example.com",
        "the fourth mail is dave's: carol's fourth was not sent"
    );

    // One token sets the password; the others (unspent until now) stop working.
    assert_eq!(
        confirm(&h, &tokens[1], NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    for token in [&tokens[0], &tokens[2]] {
        assert_error(
            &confirm(&h, token, "another good password").await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    assert_eq!(
        login(&h, "carol", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn bad_tokens_and_passwords_are_refused_and_change_nothing(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink, |_| {}).await;
    let (pair, _) = h.user("erin").await;
    assert_accepted(&ask(&h, "erin@example.com").await);
    let (_, token) = nth_mail(&sink, 1).await;

    for malformed in [
        String::new(),
        "short".to_owned(),
        token[1..].to_owned(),
        format!("{token}A"),
        format!("{}+", &token[1..]),
        format!("{}=", &token[1..]),
        "é".repeat(22),
    ] {
        assert_error(
            &confirm(&h, &malformed, NEW_PASSWORD).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    // Well formed, but no token of ours.
    let unknown = "A".repeat(43);
    assert_error(
        &confirm(&h, &unknown, NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // A password breaking the registration rules: refused, and the token stays usable.
    for weak in ["short", ""] {
        assert_error(
            &confirm(&h, &token, weak).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    let huge = "x".repeat(1025);
    assert_error(
        &confirm(&h, &token, &huge).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    // Malformed bodies.
    let resp = h
        .request(
            "POST",
            "/v1/auth/password/reset/confirm",
            None,
            Some("{\"token\":1}"),
        )
        .await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    // Nothing changed: the old password and the session still work.
    assert_eq!(login(&h, "erin", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(h.me(&pair.access_token).await.status, StatusCode::OK);
    assert_eq!(
        confirm(&h, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
}

async fn an_expired_token_is_refused_and_changes_nothing(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink, |_| {}).await;
    h.register("frank").await;
    // A token made 31 minutes ago (through the store, with an explicit time: the rule of a
    // 30-minute token without waiting 30 minutes). Its string is ours, so its hash is known.
    let token = format!("{}E", "A".repeat(42));
    let made = now() - 31 * 60;
    let store = open_store(&h).await;
    let mut req = new_reset("frank@example.com", 0, made, 3);
    req.hash = sha2::Sha256::digest(token.as_bytes()).into();
    assert!(matches!(
        store.request_password_reset(req).await.unwrap(),
        ResetRequested::Issued(_)
    ));
    assert_error(
        &confirm(&h, &token, NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(login(&h, "frank", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(resets(&sink), 0);
}

async fn requests_and_bad_input_are_bounded(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink, |cfg| {
        cfg.login_ip_limit = switchboard_auth::config::RateLimit {
            per_sec: 0.01,
            burst: 3,
        };
    })
    .await;
    // Not an address: refused (this says nothing about accounts).
    for bad in [
        "not an address",
        "",
        &format!("{}@example.com", "a".repeat(300)),
    ] {
        assert_error(&ask(&h, bad).await, StatusCode::BAD_REQUEST, "bad_request");
    }
    // The three attempts above counted: the client's address is now out of allowance, for
    // requests and confirms alike.
    let resp = ask(&h, "gina@example.com").await;
    assert_error(&resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(resp.headers.contains_key("retry-after"));
    let resp = confirm(&h, &"A".repeat(43), NEW_PASSWORD).await;
    assert_error(&resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(resets(&sink), 0);
}

async fn without_a_public_url_no_token_is_made(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink, |cfg| cfg.public_url = None).await;
    h.register("hank").await;
    assert_accepted(&ask(&h, "hank@example.com").await);
    // No token was stored: the store's own count says so.
    let store = open_store(&h).await;
    let outcome = store
        .request_password_reset(new_reset("hank@example.com", 1, now(), 1))
        .await
        .unwrap();
    assert!(matches!(outcome, ResetRequested::Issued(_)), "{outcome:?}");
    assert_eq!(resets(&sink), 0);
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A second handle on the harness's store.
async fn open_store(h: &Harness) -> Box<dyn AuthStore> {
    match &h.env.db {
        Some(db) => Box::new(PgStore::connect(&db.url).await.unwrap()),
        None => Box::new(
            SqliteStore::open(&h.env.data_dir().join(switchboard_auth::DATABASE_FILE))
                .await
                .unwrap(),
        ),
    }
}

/// A request for `email` with token hash `[seed; 32]` and a job `mail-{seed}` to enqueue.
fn new_reset(email: &str, seed: u8, now: u64, max: u32) -> NewPasswordReset {
    NewPasswordReset {
        email: email.to_owned(),
        hash: [seed; 32],
        now,
        expires_at: now + 1800,
        window_start: now.saturating_sub(3600),
        max_in_window: max,
        jobs: vec![NewJob {
            id: format!("mail-{seed}"),
            ..NewJob::new("password_reset_mail", json!({"seed": seed}))
        }],
    }
}

fn user(id: &str, name: &str, email: &str) -> UserRecord {
    UserRecord {
        id: id.to_owned(),
        username: name.to_owned(),
        email: email.to_owned(),
        role: "user".to_owned(),
        password_hash: "old".to_owned(),
        created_at: 1,
        last_login_at: None,
    }
}

/// The `ResetStore` contract with explicit times: the window slides, the expiry is exact,
/// a token works once, and a reset voids the user's other tokens.
async fn the_reset_store_counts_per_address_and_spends_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let store: Box<dyn AuthStore> = match &db {
        Some(db) => Box::new(PgStore::connect(&db.url).await.unwrap()),
        None => Box::new(
            SqliteStore::open(&dir.path().join("auth.db"))
                .await
                .unwrap(),
        ),
    };
    store
        .create_user(user("u1", "ivy", "Ivy@Example.com"), Vec::new())
        .await
        .unwrap();
    let t0 = 1_000_000;
    assert_eq!(
        store
            .request_password_reset(new_reset("nobody@example.com", 9, t0, 3))
            .await
            .unwrap(),
        ResetRequested::NoAccount
    );
    for (seed, at) in [(1, t0), (2, t0 + 10), (3, t0 + 20)] {
        let outcome = store
            .request_password_reset(new_reset("ivy@example.com", seed, at, 3))
            .await;
        assert!(matches!(outcome.unwrap(), ResetRequested::Issued(u) if u.id == "u1"));
    }
    assert_eq!(
        store
            .request_password_reset(new_reset("ivy@example.com", 4, t0 + 3599, 3))
            .await
            .unwrap(),
        ResetRequested::Throttled
    );
    // A job was enqueued with each token stored, and with nothing else.
    let queued: Vec<String> = store
        .job_store()
        .list(State::Ready, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(queued, ["mail-1", "mail-2", "mail-3"]);
    // An hour after the first, one slot is free again.
    assert!(matches!(
        store
            .request_password_reset(new_reset("ivy@example.com", 5, t0 + 3600, 3))
            .await
            .unwrap(),
        ResetRequested::Issued(_)
    ));
    // Token 2 expires at t0 + 10 + 1800: live the second before, dead at that second.
    assert!(store
        .password_reset_user([2; 32], t0 + 1809)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .password_reset_user([2; 32], t0 + 1810)
        .await
        .unwrap()
        .is_none());
    let reset = |seed: u8, now: u64| ResetPassword {
        hash: [seed; 32],
        password_hash: format!("new-{seed}"),
        now,
    };
    assert_eq!(
        store.reset_password(reset(2, t0 + 1810)).await.unwrap(),
        PasswordReset::Invalid
    );
    assert_eq!(
        store.reset_password(reset(4, t0 + 100)).await.unwrap(),
        PasswordReset::Invalid
    );
    assert_eq!(
        store.user_by_id("u1").await.unwrap().unwrap().password_hash,
        "old"
    );
    assert!(matches!(
        store.reset_password(reset(3, t0 + 100)).await.unwrap(),
        PasswordReset::Reset { user_id, .. } if user_id == "u1"
    ));
    assert_eq!(
        store.user_by_id("u1").await.unwrap().unwrap().password_hash,
        "new-3"
    );
    // Spent, and the other unspent tokens voided.
    for seed in [3, 1, 5] {
        assert_eq!(
            store.reset_password(reset(seed, t0 + 101)).await.unwrap(),
            PasswordReset::Invalid
        );
    }
    drop(store);
    drop(db);
}

backend_tests!(
    the_mailed_link_sets_the_password_and_ends_every_session,
    an_unknown_address_gets_the_same_answer_and_no_mail,
    a_fourth_request_in_an_hour_sends_nothing_and_a_reset_voids_the_others,
    bad_tokens_and_passwords_are_refused_and_change_nothing,
    an_expired_token_is_refused_and_changes_nothing,
    requests_and_bad_input_are_bounded,
    without_a_public_url_no_token_is_made,
    the_reset_store_counts_per_address_and_spends_once,
);
