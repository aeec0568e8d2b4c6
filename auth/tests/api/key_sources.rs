//! The contract of [`KeySource`]: a [`Verifier`] over either key source accepts a genuine token
//! and refuses every forged one, for the same reason. [`key_source_tests!`] stamps one test per
//! check per source (`check::local`, `check::remote`), so a failure names both:
//! - `local`: [`LocalKeys`], the key in this process (the embedded hub);
//! - `remote`: [`RemoteKeys`] over an auth node served on loopback whose data directory holds
//!   the same key, fetched from its JWKS (a hub in front of a separate auth node).
//!
//! The revocation set is the verifier's own in both (how revocations reach a remote hub is
//! `redis_feed`'s contract).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use switchboard_auth::keys::SIGNING_KEY_FILE;
use switchboard_auth::remote::RemoteKeys;
use switchboard_auth::{Claims, KeySource, LocalKeys, Revocations, TokenError, Verifier};

use crate::support::node::Node;

const ISSUER: &str = "switchboard";
const AUDIENCE: &str = "switchboard";

/// A verifier over the key source under test, and what the checks forge tokens with.
struct Subject {
    verifier: Verifier,
    /// The revocation set `verifier` consults.
    revocations: Revocations,
    /// The signing key the key source knows, and its kid.
    key: SigningKey,
    keys: LocalKeys,
    /// The auth node serving the JWKS (remote only).
    _node: Option<Node>,
    _dir: tempfile::TempDir,
}

impl Subject {
    fn new(source: Arc<dyn KeySource>, key: SigningKey, dir: tempfile::TempDir) -> Self {
        let revocations = Revocations::new();
        Self {
            verifier: Verifier::new(source, revocations.clone(), ISSUER, AUDIENCE),
            revocations,
            keys: LocalKeys::from_signing_key(&key).unwrap(),
            key,
            _node: None,
            _dir: dir,
        }
    }

    /// [`LocalKeys`] of the signing key.
    fn local() -> Self {
        let key = SigningKey::from_bytes(&[7; 32]);
        let source = Arc::new(LocalKeys::from_signing_key(&key).unwrap());
        Self::new(source, key, tempfile::tempdir().unwrap())
    }

    /// [`RemoteKeys`] of an auth node whose key file holds the signing key.
    async fn remote() -> Self {
        let key = SigningKey::from_bytes(&[7; 32]);
        let dir = tempfile::tempdir().unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let path = dir.path().join(SIGNING_KEY_FILE);
        std::fs::write(&path, pem.as_bytes()).unwrap();
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(&path, private).unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let node = Node::start("127.0.0.1:0", &["--data-dir", &data_dir]).await;
        let source = Arc::new(RemoteKeys::new(&node.url));
        let mut subject = Self::new(source, key, dir);
        subject._node = Some(node);
        subject
    }

    /// Genuine claims: right issuer and audience, valid for ten minutes.
    fn claims(&self) -> Claims {
        let now = now();
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "user-1".into(),
            sid: "session-1".into(),
            jti: "token-1".into(),
            exp: now + 600,
            iat: now,
            name: "alice".into(),
            role: "user".into(),
        }
    }

    /// `claims` signed with the key the source knows, under its kid.
    fn sign(&self, claims: &Claims) -> String {
        self.keys.sign(claims).unwrap()
    }

    /// Asserts that the verifier refuses `token` with an error `is_expected`.
    async fn assert_refused(&self, token: &str, why: &str, is_expected: fn(&TokenError) -> bool) {
        let err = self
            .verifier
            .verify(token)
            .await
            .expect_err(&format!("{why}: accepted"));
        assert!(is_expected(&err), "{why}: refused as {err:?}");
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// For each listed `async fn check(s: &Subject)`, a module `check` with the tests `local` and
/// `remote`. A check missing from the list is dead code, which the lints refuse.
macro_rules! key_source_tests {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[tokio::test]
            async fn local() {
                super::$check(&super::Subject::local()).await;
            }

            #[tokio::test]
            async fn remote() {
                super::$check(&super::Subject::remote().await).await;
            }
        }
    )*};
}

key_source_tests!(
    a_genuine_token_is_accepted,
    alg_none_is_refused,
    hs256_signed_with_the_public_key_is_refused,
    an_unknown_kid_is_refused,
    another_key_under_our_kid_is_refused,
    a_token_without_kid_is_refused,
    a_tampered_payload_is_refused,
    an_expired_token_is_refused,
    a_wrong_audience_is_refused,
    a_wrong_issuer_is_refused,
    a_revoked_session_is_refused,
);

/// The control: without it, every refusal below could come from a verifier that refuses all.
async fn a_genuine_token_is_accepted(s: &Subject) {
    let claims = s.claims();
    assert_eq!(s.verifier.verify(&s.sign(&claims)).await.unwrap(), claims);
}

async fn alg_none_is_refused(s: &Subject) {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": s.keys.kid()}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&s.claims()).unwrap());
    // jsonwebtoken knows no algorithm "none": the header does not even parse.
    s.assert_refused(&format!("{header}.{payload}."), "alg none", |e| {
        matches!(e, TokenError::Malformed(_))
    })
    .await;
}

/// The classic algorithm confusion: HS256 with the public key as the HMAC secret.
async fn hs256_signed_with_the_public_key_is_refused(s: &Subject) {
    let jwks = serde_json::to_value(s.keys.jwks()).unwrap();
    let public = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    assert_eq!(public, s.key.verifying_key().as_bytes(), "the public key");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(s.keys.kid().to_owned());
    let token =
        jsonwebtoken::encode(&header, &s.claims(), &EncodingKey::from_secret(&public)).unwrap();
    s.assert_refused(&token, "HS256", |e| matches!(e, TokenError::Algorithm))
        .await;
}

async fn an_unknown_kid_is_refused(s: &Subject) {
    let other = LocalKeys::from_signing_key(&SigningKey::from_bytes(&[9; 32])).unwrap();
    s.assert_refused(&other.sign(&s.claims()).unwrap(), "unknown kid", |e| {
        matches!(e, TokenError::UnknownKid)
    })
    .await;
}

async fn another_key_under_our_kid_is_refused(s: &Subject) {
    let other = SigningKey::from_bytes(&[9; 32]);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(s.keys.kid().to_owned());
    let token = jsonwebtoken::encode(&header, &s.claims(), &ed_key(&other)).unwrap();
    s.assert_refused(&token, "another key, our kid", |e| {
        matches!(e, TokenError::Invalid(_))
    })
    .await;
}

async fn a_token_without_kid_is_refused(s: &Subject) {
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &s.claims(), &ed_key(&s.key)).unwrap();
    s.assert_refused(&token, "no kid", |e| matches!(e, TokenError::MissingKid))
        .await;
}

/// A genuine token whose payload was altered (role escalated) after signing.
async fn a_tampered_payload_is_refused(s: &Subject) {
    let claims = s.claims();
    let genuine = s.sign(&claims);
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut escalated = serde_json::to_value(&claims).unwrap();
    escalated["role"] = Value::from("admin");
    let payload = URL_SAFE_NO_PAD.encode(escalated.to_string());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    s.assert_refused(&tampered, "tampered", |e| {
        matches!(e, TokenError::Invalid(_))
    })
    .await;
}

async fn an_expired_token_is_refused(s: &Subject) {
    let expired = Claims {
        iat: now() - 7200,
        exp: now() - 3600,
        ..s.claims()
    };
    s.assert_refused(&s.sign(&expired), "expired", |e| {
        matches!(e, TokenError::Expired)
    })
    .await;
}

async fn a_wrong_audience_is_refused(s: &Subject) {
    let claims = Claims {
        aud: "someone-else".into(),
        ..s.claims()
    };
    s.assert_refused(&s.sign(&claims), "audience", |e| {
        matches!(e, TokenError::Invalid(_))
    })
    .await;
}

async fn a_wrong_issuer_is_refused(s: &Subject) {
    let claims = Claims {
        iss: "evil".into(),
        ..s.claims()
    };
    s.assert_refused(&s.sign(&claims), "issuer", |e| {
        matches!(e, TokenError::Invalid(_))
    })
    .await;
}

async fn a_revoked_session_is_refused(s: &Subject) {
    let claims = s.claims();
    let token = s.sign(&claims);
    s.verifier.verify(&token).await.unwrap();
    s.revocations.revoke(&claims.sid, claims.exp);
    s.assert_refused(&token, "revoked", |e| matches!(e, TokenError::Revoked))
        .await;
    let other_session = Claims {
        sid: "session-2".into(),
        ..claims
    };
    s.verifier.verify(&s.sign(&other_session)).await.unwrap();
}

/// `key` as a jsonwebtoken signing key.
fn ed_key(key: &SigningKey) -> EncodingKey {
    EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes())
}
