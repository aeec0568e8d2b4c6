//! The page keeps its session through a hub that cannot check tokens (its auth node's JWKS is
//! broken: `unavailable` and close 1013 in answer to `hello`): it shows "reconnecting", retries
//! with backoff and the same token, never asks for a refresh or a new login, and is online with
//! the same session once the JWKS is back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use switchboard_auth::config::DEFAULT_ISSUER;
use switchboard_auth::{Claims, LocalKeys};
use switchboard_tests::jwks::{Answer, FakeJwks};

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, WAIT};

/// JWKS requests the hub must have made (each for a verification, at most one a second) before
/// the JWKS is mended: the page has been refused several times by then.
const REFUSED_FETCHES: usize = 3;
/// Bound on the page being refused that often, and on it coming back online.
const OUTAGE_LIMIT: Duration = Duration::from_secs(60);
/// Interval of the bounded poll of the stand-in's requests.
const POLL: Duration = Duration::from_millis(100);

const SESSION_JS: &str = "return sessionStorage.getItem('switchboard.session');";

#[tokio::test]
async fn the_page_keeps_its_session_while_the_hub_cannot_check_its_token() {
    let _turn = turn().await;
    let keys = LocalKeys::from_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[13; 32]))
        .expect("keys");
    let jwks = FakeJwks::start(Answer::Body("<html>502 Bad Gateway</html>".into())).await;
    let hub = Hub::start_with(&["--auth-url", &jwks.url]).await;
    let driver = Driver::start().await;
    let carol = driver.browser("carol", 1024, 768).await;

    // A logged-in session as the page stores it, with a token only the stand-in's keys verify.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let token = keys
        .sign(&Claims {
            iss: DEFAULT_ISSUER.into(),
            aud: DEFAULT_ISSUER.into(),
            sub: "u-carol".into(),
            sid: "s-carol".into(),
            jti: "j-carol".into(),
            exp: now.as_secs() + 600,
            iat: now.as_secs(),
            name: "carol".into(),
            role: "user".into(),
        })
        .expect("sign");
    let now_ms = u64::try_from(now.as_millis()).expect("ms fit");
    let session = json!({
        "access_token": token,
        "refresh_token": "r-carol",
        "user": {"id": "u-carol", "username": "carol", "role": "user"},
        "issued_at": now_ms,
        "expires_at": now_ms + 600_000,
    })
    .to_string();
    carol.open(&hub.http_url()).await;
    let _: Value = carol
        .js(
            "sessionStorage.setItem('switchboard.session', arguments[0]); return null;",
            vec![Value::from(session.clone())],
        )
        .await;
    // Loaded again (not `reload`, which waits until online): the page starts with the session.
    carol.open(&hub.http_url()).await;

    // Refused again and again: reconnecting, the chat still shown, the session untouched.
    carol.until_connection(WAIT, "reconnecting").await;
    let deadline = tokio::time::Instant::now() + OUTAGE_LIMIT;
    while jwks.requests().len() < REFUSED_FETCHES {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub asked for its keys only {:?}",
            jwks.requests()
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(carol.visible("chat-view").await, "still logged in");
    assert_eq!(carol.connection().await, "reconnecting");
    let stored: Option<String> = carol.js(SESSION_JS, vec![]).await;
    assert_eq!(stored.as_deref(), Some(session.as_str()));

    // The JWKS is back: online, with the same session, and no refresh or login was asked for.
    jwks.answer(Answer::Body(
        serde_json::to_string(&keys.jwks()).expect("JWKS"),
    ));
    carol.until_connection(OUTAGE_LIMIT, "online").await;
    let stored: Option<String> = carol.js(SESSION_JS, vec![]).await;
    assert_eq!(stored.as_deref(), Some(session.as_str()), "the same tokens");
    let requests = jwks.requests();
    assert!(
        requests
            .iter()
            .all(|line| line.starts_with("GET /.well-known/jwks.json ")),
        "only key fetches reached the auth node, no refresh or login: {requests:?}"
    );
    carol.close().await;
}
