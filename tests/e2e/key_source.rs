//! A token the hub cannot check is `unavailable`, never `unauthorized`: a hub whose auth node's
//! JWKS (`--auth-url`) refuses connections or answers garbage answers a token with 503 and
//! `Retry-After` on REST and on the upgrade, and with `unavailable` and close 1013 in `hello`.
//! A bad token is still 401 / 1008 while the JWKS is down, when the hub holds its key.
//!
//! The JWKS is a stand-in the test controls ([`FakeJwks`]); the hub runs on the suite's backend
//! (with the scaled one, its own auth node is started but unused). The whole outage on the
//! scaled topology, with a real auth node stopped and started, is `tests/cluster/auth_outage.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use switchboard_auth::config::DEFAULT_ISSUER;
use switchboard_auth::error::KEYS_RETRY_AFTER;
use switchboard_auth::{Claims, LocalKeys};
use switchboard_client::protocol::ws::{ClientFrame, FrameId, ServerFrame};
use switchboard_client::protocol::{close, ErrorCode};
use switchboard_client::Connection;
use switchboard_tests::jwks::{Answer, FakeJwks};

use crate::support::{closed, within, TestServer};

/// Helpers on a hub started with `--auth-url` at a [`FakeJwks`].
trait KeyHub {
    async fn get(&self, path: &str, token: &str) -> (u16, Option<String>, Option<String>);
    async fn hello(&self, token: &str) -> (Vec<ServerFrame>, Option<u16>);
}

/// A hub (on the suite's backend) that verifies tokens with the keys at `auth_url`.
async fn key_hub(auth_url: &str) -> TestServer {
    TestServer::start_with(&["--auth-url", auth_url]).await
}

impl KeyHub for TestServer {
    /// `GET {path}` with `token` as Bearer: the status, the `code` of the error body (if any)
    /// and the `Retry-After` header (if any).
    async fn get(&self, path: &str, token: &str) -> (u16, Option<String>, Option<String>) {
        let response = within(
            "an HTTP answer",
            reqwest::Client::new()
                .get(format!("{}{path}", self.http_url()))
                .bearer_auth(token)
                .send(),
        )
        .await
        .expect("the hub answers");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ASCII").to_owned());
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let code = body["error"]["code"].as_str().map(str::to_owned);
        (status, code, retry_after)
    }

    /// `hello` with `token` on a fresh socket: the frames the hub sent and its close code
    /// (`None` in place of the close code when it answered `welcome` and kept the socket open).
    async fn hello(&self, token: &str) -> (Vec<ServerFrame>, Option<u16>) {
        let mut conn = within("upgrade", Connection::connect_raw(&self.ws_url(), &[]))
            .await
            .expect("upgrade");
        let hello = ClientFrame::Hello {
            id: Some(FrameId::Str("hello".into())),
            token: Some(token.into()),
        };
        conn.send(&hello).await.expect("send hello");
        let first = within("an answer to hello", conn.next_event())
            .await
            .expect("a frame");
        if matches!(first, ServerFrame::Welcome { .. }) {
            return (vec![first], None);
        }
        let (mut frames, code) = closed(&mut conn).await;
        frames.insert(0, first);
        (frames, code)
    }
}

/// The keys the stand-in auth node signs with, and its JWKS document.
fn signing_keys() -> (LocalKeys, String) {
    let keys = LocalKeys::from_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[11; 32]))
        .expect("keys");
    let jwks = serde_json::to_string(&keys.jwks()).expect("JWKS");
    (keys, jwks)
}

/// A token that is good in every way, expiring `ttl_secs` from now (negative: expired).
fn token(keys: &LocalKeys, ttl_secs: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    keys.sign(&Claims {
        iss: DEFAULT_ISSUER.into(),
        aud: DEFAULT_ISSUER.into(),
        sub: "u-alice".into(),
        sid: "s-alice".into(),
        jti: "j-1".into(),
        exp: now.saturating_add_signed(ttl_secs),
        iat: now,
        name: "alice".into(),
        role: "user".into(),
    })
    .expect("sign")
}

/// `token` with one character of its signature changed (the same `kid`, a bad signature).
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let at = token.rfind('.').expect("a JWT") + 10;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

fn error_code(frames: &[ServerFrame]) -> Option<ErrorCode> {
    match frames.first() {
        Some(ServerFrame::Error { code, .. }) => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn a_token_the_hub_cannot_check_is_503_with_retry_after_and_1013_never_401_or_1008() {
    let (keys, _) = signing_keys();
    let good = token(&keys, 600);
    let retry_after = Some(KEYS_RETRY_AFTER.as_secs().to_string());
    let unavailable = Some("unavailable".to_owned());
    for answer in [
        Answer::Refuse,
        Answer::Body("<html>502 Bad Gateway</html>".into()),
        Answer::Body(r#"{"keys":[]}"#.into()),
    ] {
        let jwks = FakeJwks::start(answer.clone()).await;
        let hub = key_hub(&jwks.url).await;
        let what = match &answer {
            Answer::Refuse => "refused".to_owned(),
            Answer::Body(body) => body.clone(),
        };

        let rest = hub.get("/v1/rooms", &good).await;
        assert_eq!(
            rest,
            (503, unavailable.clone(), retry_after.clone()),
            "{what}"
        );
        let upgrade = hub.get("/v1/ws", &good).await;
        assert_eq!(
            upgrade,
            (503, unavailable.clone(), retry_after.clone()),
            "{what}"
        );
        let (frames, code) = hub.hello(&good).await;
        assert_eq!(error_code(&frames), Some(ErrorCode::Unavailable), "{what}");
        assert_eq!(code, Some(close::TRY_AGAIN_LATER), "{what}: {frames:?}");

        // A token that is bad without any key is still refused as bad.
        let rest = hub.get("/v1/rooms", "not-a-jwt").await;
        assert_eq!(rest, (401, Some("unauthorized".into()), None), "{what}");
        let (frames, code) = hub.hello("not-a-jwt").await;
        assert_eq!(error_code(&frames), Some(ErrorCode::Unauthorized), "{what}");
        assert_eq!(code, Some(close::POLICY), "{what}");
    }
}

#[tokio::test]
async fn a_bad_token_is_still_refused_while_the_hub_holds_the_key_and_the_jwks_is_down() {
    let (keys, jwks) = signing_keys();
    let good = token(&keys, 600);
    let fake = FakeJwks::start(Answer::Body(jwks)).await;
    let hub = key_hub(&fake.url).await;
    let (frames, code) = hub.hello(&good).await;
    assert!(
        matches!(frames[..], [ServerFrame::Welcome { .. }]) && code.is_none(),
        "the key is fetched: {frames:?} {code:?}"
    );

    let bad = [
        (tampered(&good), "a bad signature"),
        (token(&keys, -600), "expired"),
    ];
    for (answer, outage) in [
        (Answer::Body("garbage".into()), "garbage"),
        (Answer::Refuse, "refused"),
    ] {
        fake.answer(answer);
        assert_eq!(hub.get("/v1/rooms", &good).await.0, 200, "{outage}");
        let (frames, code) = hub.hello(&good).await;
        assert!(
            matches!(frames[..], [ServerFrame::Welcome { .. }]) && code.is_none(),
            "{outage}: the cached key still admits a good token: {frames:?} {code:?}"
        );
        for (token, what) in &bad {
            let rest = hub.get("/v1/rooms", token).await;
            assert_eq!(
                rest,
                (401, Some("unauthorized".into()), None),
                "{outage}: {what}"
            );
            let upgrade = hub.get("/v1/ws", token).await;
            assert_eq!(
                upgrade,
                (401, Some("unauthorized".into()), None),
                "{outage}: {what}"
            );
            let (frames, code) = hub.hello(token).await;
            assert_eq!(
                error_code(&frames),
                Some(ErrorCode::Unauthorized),
                "{outage}: {what}"
            );
            assert_eq!(code, Some(close::POLICY), "{outage}: {what}");
        }
    }
}
