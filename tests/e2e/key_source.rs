//! A token the hub cannot check is `unavailable`, never `unauthorized`: a hub whose auth node's
//! JWKS (`--auth-url`) refuses connections or answers garbage answers a token with 503 and
//! `Retry-After` on REST and on the upgrade, and with `unavailable` and close 1013 in `hello`.
//! A bad token is still 401 / 1008 while the JWKS is down, when the hub holds its key.
//!
//! The JWKS is a stand-in the test controls ([`FakeJwks`]), so these hubs run on SQLite with no
//! Redis whatever `SWITCHBOARD_TEST_BACKEND` says: the boundary under test is the same on both.
//! The whole outage on the scaled topology is `tests/cluster/auth_outage.rs`.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use switchboard_auth::config::DEFAULT_ISSUER;
use switchboard_auth::error::KEYS_RETRY_AFTER;
use switchboard_auth::{Claims, LocalKeys};
use switchboard_client::protocol::ws::{ClientFrame, FrameId, ServerFrame};
use switchboard_client::protocol::{close, ErrorCode};
use switchboard_client::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::{closed, within};

/// What [`FakeJwks`] answers.
#[derive(Clone)]
enum Answer {
    /// `200` with this body.
    Body(String),
    /// Nothing: the listener is closed, so connections are refused.
    Refuse,
}

/// A stand-in for the auth node's `/.well-known/jwks.json` (every path gets the same answer).
/// A minimal HTTP/1.1 responder: one request per connection, then `Connection: close`.
struct FakeJwks {
    url: String,
    body: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl FakeJwks {
    async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let body = Arc::new(Mutex::new(String::new()));
        let task = tokio::spawn(serve(listener, Arc::clone(&body)));
        let fake = Self { url, body, task };
        fake.answer(answer);
        fake
    }

    /// From now on, answer with `answer`. [`Answer::Refuse`] is for good: the listener closes.
    fn answer(&self, answer: Answer) {
        match answer {
            Answer::Body(body) => *self.body.lock().expect("lock") = body,
            Answer::Refuse => self.task.abort(),
        }
    }
}

impl Drop for FakeJwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, body: Arc<Mutex<String>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let body = body.lock().expect("lock").clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// A hub verifying tokens with the keys at `auth_url` (SQLite, no Redis); stops when dropped.
struct KeyHub {
    addr: std::net::SocketAddr,
    _data: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl KeyHub {
    async fn start(auth_url: &str) -> Self {
        let data = tempfile::tempdir().expect("data dir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let config = switchboard_hub::Config::try_parse_from([
            "switchboard-hub",
            "--data-dir",
            data.path().to_str().expect("UTF-8"),
            "--listen",
            &addr.to_string(),
            "--auth-url",
            auth_url,
        ])
        .expect("hub flags parse");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(switchboard_hub::run(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            _data: data,
            _stop: stop,
        }
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// `GET {path}` with `token` as Bearer: the status, the `code` of the error body (if any)
    /// and the `Retry-After` header (if any).
    async fn get(&self, path: &str, token: &str) -> (u16, Option<String>, Option<String>) {
        let response = within(
            "an HTTP answer",
            reqwest::Client::new()
                .get(format!("http://{}{path}", self.addr))
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
        let hub = KeyHub::start(&jwks.url).await;
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
    let hub = KeyHub::start(&fake.url).await;
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
