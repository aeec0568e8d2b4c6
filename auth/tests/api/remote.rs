//! `RemoteKeys` and `RemoteDirectory` against an auth node served over HTTP on loopback.

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use switchboard_auth::error::KEYS_RETRY_AFTER;
use switchboard_auth::remote::{RemoteDirectory, RemoteKeys};
use switchboard_auth::{AuthError, Claims, LocalKeys, Revocations, TokenError, Verifier};
use switchboard_protocol::ErrorCode;
use tokio::net::TcpListener;

use crate::support::node::{Http, Node};

fn verifier(keys: RemoteKeys) -> Verifier {
    Verifier::new(
        Arc::new(keys),
        Revocations::new(),
        "switchboard",
        "switchboard",
    )
}

/// A node on `listen` with a data directory of its own (so a key of its own).
async fn node(listen: &str, dir: &tempfile::TempDir) -> Node {
    Node::start(listen, &["--data-dir", dir.path().to_str().unwrap()]).await
}

/// A loopback address nothing listens on.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A token for `claims` signed by a key the node does not know (kid included).
fn foreign_token(claims: &Claims) -> String {
    let other =
        LocalKeys::from_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[3; 32])).unwrap();
    other.sign(claims).unwrap()
}

#[tokio::test]
async fn remote_keys_verify_the_nodes_tokens_and_refuse_unknown_kids() {
    let dir = tempfile::tempdir().unwrap();
    let node = node("127.0.0.1:0", &dir).await;
    let alice = Http::new(&node.url).user("alice").await;
    let verifier = verifier(RemoteKeys::new(&format!("{}/", node.url)));

    let claims = verifier.verify(&alice.access_token).await.unwrap();
    assert_eq!(claims.name, "alice");
    let err = verifier.verify(&foreign_token(&claims)).await.unwrap_err();
    assert!(matches!(err, TokenError::UnknownKid), "{err:?}");
    // Still fine afterwards, from the cache.
    verifier.verify(&alice.access_token).await.unwrap();
    node.stop().await;
}

#[tokio::test]
async fn remote_keys_refetch_when_the_nodes_key_changes_at_most_once_per_interval() {
    let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old = node("127.0.0.1:0", &old_dir).await;
    let addr = old.addr.to_string();
    let url = old.url.clone();
    let before = Http::new(&url).user("alice").await;
    let eager = verifier(RemoteKeys::new(&url).with_refetch_interval(Duration::ZERO));
    let throttled =
        verifier(RemoteKeys::new(&url).with_refetch_interval(Duration::from_secs(3600)));
    eager.verify(&before.access_token).await.unwrap();
    throttled.verify(&before.access_token).await.unwrap();

    // The node comes back on the same address with another data directory: a new key.
    old.stop().await;
    let new = node(&addr, &new_dir).await;
    let after = Http::new(&url).user("alice").await;
    assert_ne!(
        jsonwebtoken::decode_header(&before.access_token)
            .unwrap()
            .kid,
        jsonwebtoken::decode_header(&after.access_token)
            .unwrap()
            .kid
    );

    // The unknown kid makes the eager source refetch: the new token passes, and the old key,
    // gone from the node's JWKS, is no longer trusted.
    assert_eq!(
        eager.verify(&after.access_token).await.unwrap().name,
        "alice"
    );
    let err = eager.verify(&before.access_token).await.unwrap_err();
    assert!(matches!(err, TokenError::UnknownKid), "{err:?}");

    // Within its interval the throttled one does not ask the node again.
    let err = throttled.verify(&after.access_token).await.unwrap_err();
    assert!(matches!(err, TokenError::UnknownKid), "{err:?}");
    new.stop().await;
}

/// A stand-in for an auth node's JWKS URL that answers `200` with whatever body the test put
/// in the returned cell.
async fn fake_jwks() -> (String, Arc<Mutex<String>>) {
    let body = Arc::new(Mutex::new(String::new()));
    let app =
        Router::new()
            .route(
                "/.well-known/jwks.json",
                get(|State(body): State<Arc<Mutex<String>>>| async move {
                    body.lock().unwrap().clone()
                }),
            )
            .with_state(Arc::clone(&body));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());
    (url, body)
}

#[tokio::test]
async fn remote_keys_that_cannot_be_fetched_leave_the_token_unjudged() {
    let dir = tempfile::tempdir().unwrap();
    let node = node("127.0.0.1:0", &dir).await;
    let alice = Http::new(&node.url).user("alice").await;
    let claims = verifier(RemoteKeys::new(&node.url))
        .verify(&alice.access_token)
        .await
        .unwrap();
    let (garbage, body) = fake_jwks().await;
    *body.lock().unwrap() = "<html>gateway error</html>".into();
    let (empty, empty_body) = fake_jwks().await;
    *empty_body.lock().unwrap() = r#"{"keys":[]}"#.into();

    // Nothing listening; a server answering 404 for the JWKS path; one answering garbage; and a
    // JWKS without a key. None of them says anything about the token: unavailable, not 401.
    for url in [
        closed_port().await,
        format!("{}/nope", node.url),
        garbage,
        empty,
    ] {
        let err = verifier(RemoteKeys::new(&url))
            .verify(&alice.access_token)
            .await
            .unwrap_err();
        assert!(matches!(err, TokenError::Unavailable(_)), "{url}: {err:?}");
        assert_eq!(err.code(), ErrorCode::Unavailable);
        assert_eq!(err.retry_after(), Some(KEYS_RETRY_AFTER));
        let err = AuthError::from(err);
        assert_eq!(err.code(), ErrorCode::Unavailable);
        assert_eq!(err.retry_after(), Some(KEYS_RETRY_AFTER));
    }
    // A failed fetch is not retried within the interval, and still says why.
    let failing = verifier(RemoteKeys::new(&closed_port().await));
    for _ in 0..2 {
        let err = failing.verify(&foreign_token(&claims)).await.unwrap_err();
        assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_broken_jwks_answer_keeps_the_cached_keys_and_bad_tokens_stay_bad() {
    let dir = tempfile::tempdir().unwrap();
    let node = node("127.0.0.1:0", &dir).await;
    let alice = Http::new(&node.url).user("alice").await;
    let jwks = reqwest::get(format!("{}/.well-known/jwks.json", node.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (url, body) = fake_jwks().await;
    *body.lock().unwrap() = jwks;
    let eager = verifier(RemoteKeys::new(&url).with_refetch_interval(Duration::ZERO));
    let claims = eager.verify(&alice.access_token).await.unwrap();

    // The JWKS breaks. A new kid makes the verifier refetch; the broken answers leave that
    // token unjudged and keep the keys it had.
    for broken in [r#"{"keys":[]}"#, "garbage"] {
        *body.lock().unwrap() = broken.into();
        let err = eager.verify(&foreign_token(&claims)).await.unwrap_err();
        assert!(
            matches!(err, TokenError::Unavailable(_)),
            "{broken}: {err:?}"
        );
        assert_eq!(eager.verify(&alice.access_token).await.unwrap(), claims);
    }

    // A token the known key can judge is judged: bad is still 401 while the JWKS is broken.
    let mut tampered = alice.access_token.clone().into_bytes();
    let inside_signature = alice.access_token.rfind('.').unwrap() + 10;
    tampered[inside_signature] = if tampered[inside_signature] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered = String::from_utf8(tampered).unwrap();
    let expired = LocalKeys::load_or_generate(dir.path())
        .unwrap()
        .sign(&Claims {
            exp: 1,
            ..claims.clone()
        })
        .unwrap();
    for (token, what) in [(&tampered, "a bad signature"), (&expired, "expired")] {
        let err = eager.verify(token).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthorized, "{what}: {err:?}");
        assert_eq!(err.retry_after(), None, "{what}");
    }
    node.stop().await;
}

#[tokio::test]
async fn remote_directory_finds_users_with_the_callers_token() {
    let dir = tempfile::tempdir().unwrap();
    let node = node("127.0.0.1:0", &dir).await;
    let http = Http::new(&node.url);
    let alice = http.user("alice").await;
    let bob = http.user("bob").await;
    let users = RemoteDirectory::new(&node.url);

    let found = users
        .user_by_username(&bob.access_token, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, alice.user.id);
    assert_eq!(found.username, "alice");
    assert_eq!(found.email, None, "other users' addresses are not shown");

    for nobody in ["carol", "../auth/me", "a/b", "Alice"] {
        let none = users.user_by_username(&bob.access_token, nobody).await;
        assert_eq!(none.unwrap(), None, "{nobody}");
    }

    let err = users
        .user_by_username("not-a-token", "alice")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Upstream {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::Unauthorized);

    let err = RemoteDirectory::new(&closed_port().await)
        .user_by_username(&bob.access_token, "alice")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Remote(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Unavailable);
    node.stop().await;
}
