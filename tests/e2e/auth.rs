//! Accounts and sessions: register, login, refresh (rotation, reuse detection), logout, and the
//! revocation of a session's sockets.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};

use switchboard_client::protocol::{close, ErrorCode};
use switchboard_client::Connection;

use crate::support::{api_err, closed, unique_name, within, TestServer, PASSWORD};

/// Revoked sessions lose their sockets within this time (PROTOCOL.md §10.5).
const REVOCATION_DEADLINE: Duration = Duration::from_secs(1);

#[tokio::test]
async fn register_creates_a_user_and_refuses_a_taken_username() {
    let server = TestServer::start().await;
    let api = server.api();
    let name = unique_name("reg");
    let email = format!("{name}@example.com");

    let created = api
        .register(&name, &email, PASSWORD)
        .await
        .expect("register");
    assert_eq!(created.user.username, name);
    assert_eq!(created.user.email.as_deref(), Some(email.as_str()));
    assert_eq!(created.user.role, "user");
    assert!(!created.user.id.is_empty());

    let again = api.register(&name, "other@example.com", PASSWORD).await;
    assert_eq!(api_err(again), (409, ErrorCode::UsernameTaken));
}

#[tokio::test]
async fn register_validates_username_email_and_password() {
    let server = TestServer::start().await;
    let api = server.api();
    let long_password = "x".repeat(1025);
    let invalid: &[(&str, &str, &str)] = &[
        ("ab", "ab@example.com", PASSWORD), // username too short
        (&"a".repeat(33), "long@example.com", PASSWORD), // username too long
        ("Alice", "alice@example.com", PASSWORD), // upper case
        ("al ice", "alice@example.com", PASSWORD), // space
        ("valid_name", "not-an-email", PASSWORD), // no @
        ("valid_name", "", PASSWORD),       // empty email
        ("valid_name", "v@example.com", "seven77"), // 7 characters
        ("valid_name", "v@example.com", &long_password), // over 1024 bytes
    ];
    for (username, email, password) in invalid {
        let result = api.register(username, email, password).await;
        assert_eq!(
            api_err(result),
            (400, ErrorCode::BadRequest),
            "register({username:?}, {email:?}, password of {} bytes)",
            password.len()
        );
    }

    // The edges are accepted: 3 and 32 characters, every allowed symbol, an 8-character password.
    api.register("a.-", "short@example.com", "12345678")
        .await
        .expect("3-character username");
    let long = format!("{:a<32}", unique_name("x.y-z_"));
    api.register(&long, "long@example.com", PASSWORD)
        .await
        .expect("32-character username");
}

#[tokio::test]
async fn login_failures_look_the_same_for_unknown_users_and_wrong_passwords() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let api = server.api();

    let wrong_password = api.login(&alice.username, "wrong password").await;
    let unknown_user = api.login(&unique_name("ghost"), PASSWORD).await;
    let (wrong_msg, unknown_msg) = match (wrong_password, unknown_user) {
        (
            Err(switchboard_client::ClientError::Api {
                status: 401,
                code: ErrorCode::InvalidCredentials,
                message: a,
            }),
            Err(switchboard_client::ClientError::Api {
                status: 401,
                code: ErrorCode::InvalidCredentials,
                message: b,
            }),
        ) => (a, b),
        other => panic!("expected two 401 invalid_credentials, got {other:?}"),
    };
    assert_eq!(
        wrong_msg, unknown_msg,
        "the answer must not tell them apart"
    );

    let tokens = api.login(&alice.username, PASSWORD).await.expect("login");
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 900);
    assert_eq!(tokens.user.username, alice.username);
}

#[tokio::test]
async fn me_needs_a_valid_bearer_token() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;

    let me = alice.api.me().await.expect("me");
    assert_eq!(me.user.username, alice.username);
    assert_eq!(me.user.id, alice.user.id);
    assert!(!me.session.is_empty());

    assert_eq!(
        api_err(server.api().me().await),
        (401, ErrorCode::Unauthorized)
    );
    let forged = server.api().with_token("eyJhbGciOiJub25lIn0.e30.");
    assert_eq!(api_err(forged.me().await), (401, ErrorCode::Unauthorized));
    // A real token with one signature character changed.
    let mut tampered = alice.token().to_owned();
    let last = tampered.pop().expect("non-empty token");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = server.api().with_token(tampered);
    assert_eq!(api_err(tampered.me().await), (401, ErrorCode::Unauthorized));
}

#[tokio::test]
async fn jwks_publishes_the_ed25519_signing_key() {
    let server = TestServer::start().await;
    let jwks = server.api().jwks().await.expect("jwks");
    let keys = jwks["keys"].as_array().expect("a keys array");
    assert!(!keys.is_empty());
    let key = &keys[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].as_str().is_some_and(|kid| !kid.is_empty()));
    // 32 bytes of public key, base64url without padding: 43 characters.
    assert_eq!(key["x"].as_str().map(str::len), Some(43));
}

#[tokio::test]
async fn refresh_rotates_both_tokens_within_the_same_session() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let session = alice.api.me().await.expect("me").session;

    let second = server
        .api()
        .refresh(&alice.tokens.refresh_token)
        .await
        .expect("refresh");
    assert_ne!(second.access_token, alice.tokens.access_token);
    assert_ne!(second.refresh_token, alice.tokens.refresh_token);
    assert_eq!(second.user.username, alice.username);
    let me = server.api().with_token(&second.access_token).me().await;
    assert_eq!(me.expect("me with the new token").session, session);

    // The new refresh token works in turn.
    let third = server
        .api()
        .refresh(&second.refresh_token)
        .await
        .expect("refresh again");
    assert_ne!(third.refresh_token, second.refresh_token);
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_session() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let api = server.api();
    let mut socket = server.connect(&alice).await;
    // Another session of the same user must survive.
    let other = api.login(&alice.username, PASSWORD).await.expect("login");

    let second = api
        .refresh(&alice.tokens.refresh_token)
        .await
        .expect("refresh");
    let reuse = api.refresh(&alice.tokens.refresh_token).await;
    let revoked_at = Instant::now();
    assert_eq!(api_err(reuse), (401, ErrorCode::Unauthorized));

    let (_, code) = closed(&mut socket).await;
    assert_eq!(code, Some(close::POLICY));
    assert!(
        revoked_at.elapsed() <= REVOCATION_DEADLINE,
        "socket closed after {:?}",
        revoked_at.elapsed()
    );
    for token in [&alice.tokens.access_token, &second.access_token] {
        let me = api.with_token(token).me().await;
        assert_eq!(api_err(me), (401, ErrorCode::Unauthorized));
    }
    let current = api.refresh(&second.refresh_token).await;
    assert_eq!(api_err(current), (401, ErrorCode::Unauthorized));

    api.with_token(&other.access_token)
        .me()
        .await
        .expect("the other session is untouched");
    api.refresh(&other.refresh_token)
        .await
        .expect("the other session can still refresh");
}

#[tokio::test]
async fn an_unknown_refresh_token_is_refused_and_revokes_nothing() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let api = server.api();

    for bogus in ["rt_not-a-real-token", "", "x"] {
        assert_eq!(
            api_err(api.refresh(bogus).await),
            (401, ErrorCode::Unauthorized),
            "refresh({bogus:?})"
        );
    }
    alice.api.me().await.expect("session still valid");
    api.refresh(&alice.tokens.refresh_token)
        .await
        .expect("refresh token still valid");
}

#[tokio::test]
async fn logout_revokes_the_session_and_closes_its_sockets() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mut first = server.connect(&alice).await;
    let mut second = server.connect(&alice).await;
    let other = server
        .api()
        .login(&alice.username, PASSWORD)
        .await
        .expect("second login");
    let (mut other_socket, _) = Connection::connect(&server.ws_url(), Some(&other.access_token))
        .await
        .expect("connect with the other session");

    alice.api.logout().await.expect("logout");
    let revoked_at = Instant::now();
    for socket in [&mut first, &mut second] {
        let (_, code) = closed(socket).await;
        assert_eq!(code, Some(close::POLICY));
    }
    assert!(
        revoked_at.elapsed() <= REVOCATION_DEADLINE,
        "sockets closed after {:?}",
        revoked_at.elapsed()
    );

    assert_eq!(
        api_err(alice.api.me().await),
        (401, ErrorCode::Unauthorized)
    );
    assert_eq!(
        api_err(alice.api.logout().await),
        (401, ErrorCode::Unauthorized)
    );
    let refresh = server.api().refresh(&alice.tokens.refresh_token).await;
    assert_eq!(api_err(refresh), (401, ErrorCode::Unauthorized));

    // The revoked token cannot open a new socket: `unauthorized`, then 1008.
    let mut again = within("upgrade", Connection::connect_raw(&server.ws_url(), &[]))
        .await
        .expect("upgrade");
    again
        .send(&switchboard_client::protocol::ws::ClientFrame::Hello {
            id: None,
            token: Some(alice.token().to_owned()),
        })
        .await
        .expect("send hello");
    let (frames, code) = closed(&mut again).await;
    assert!(
        matches!(
            frames.as_slice(),
            [switchboard_client::protocol::ws::ServerFrame::Error {
                code: ErrorCode::Unauthorized,
                ..
            }]
        ),
        "got {frames:?}"
    );
    assert_eq!(code, Some(close::POLICY));

    // Other sessions of the same user are not affected.
    within("pong", other_socket.ping())
        .await
        .expect("the other session's socket is open");
    server
        .api()
        .with_token(&other.access_token)
        .me()
        .await
        .expect("the other session's token works");
}

/// Decodes one base64url (unpadded) JWT segment.
fn segment(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(part).expect("base64url segment")
}

fn json_segment(part: &str) -> serde_json::Value {
    serde_json::from_slice(&segment(part)).expect("a JSON segment")
}

#[tokio::test]
async fn access_tokens_are_eddsa_jwts_signed_by_a_published_key() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let session = alice.api.me().await.expect("me").session;
    let parts: Vec<&str> = alice.token().split('.').collect();
    let [header, claims, signature] = parts[..] else {
        panic!("a JWT has three parts, got {parts:?}");
    };

    let head = json_segment(header);
    assert_eq!(head["alg"], "EdDSA");
    let kid = head["kid"].as_str().expect("a kid");
    let jwks = server.api().jwks().await.expect("jwks");
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in {jwks}"));
    let x: [u8; 32] = segment(key["x"].as_str().expect("x"))
        .try_into()
        .expect("a 32-byte key");
    let key = VerifyingKey::from_bytes(&x).expect("an Ed25519 key");
    let signature = Signature::from_slice(&segment(signature)).expect("a 64-byte signature");
    key.verify_strict(format!("{header}.{claims}").as_bytes(), &signature)
        .expect("the signature verifies with the published key");

    let body = json_segment(claims);
    assert_eq!(body["iss"], "switchboard");
    assert_eq!(body["aud"], "switchboard");
    assert_eq!(body["sub"], alice.user.id.as_str());
    assert_eq!(body["sid"], session.as_str());
    assert_eq!(body["name"], alice.username.as_str());
    assert_eq!(body["role"], "user");
    let (iat, exp) = (body["iat"].as_u64(), body["exp"].as_u64());
    assert_eq!(exp.zip(iat).map(|(exp, iat)| exp - iat), Some(900));
    let jti = body["jti"].as_str().expect("a jti");
    let refreshed = server
        .api()
        .refresh(&alice.tokens.refresh_token)
        .await
        .expect("refresh");
    let refreshed_claims = json_segment(refreshed.access_token.split('.').nth(1).expect("claims"));
    assert_ne!(
        refreshed_claims["jti"].as_str(),
        Some(jti),
        "each token has its own jti"
    );

    // Verification pins the algorithm and covers the claims.
    let unsigned = format!(
        "{}.{claims}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let mut promoted = body.clone();
    promoted["role"] = "admin".into();
    let promoted = format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(promoted.to_string())
    );
    for forged in [unsigned, promoted] {
        let me = server.api().with_token(&forged).me().await;
        assert_eq!(api_err(me), (401, ErrorCode::Unauthorized), "{forged}");
    }
}

#[tokio::test]
async fn the_access_token_lifetime_follows_access_ttl_secs() {
    let server = TestServer::start_with(&["--access-ttl-secs", "60"]).await;
    let alice = server.user("alice").await;
    assert_eq!(alice.tokens.expires_in, 60);
    let claims = json_segment(alice.token().split('.').nth(1).expect("claims"));
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    assert_eq!(exp.zip(iat).map(|(exp, iat)| exp - iat), Some(60));
}
