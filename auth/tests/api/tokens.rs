//! Access-token verification: every kind of bad token is refused, and the JWKS document is
//! enough to verify a good one.

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use switchboard_auth::{Claims, LocalKeys, TokenError};

use crate::support::{assert_error, claims_of, Backend, Harness};

/// A logged-in harness and the claims of a genuine token, to tweak.
async fn setup(backend: Backend) -> (Harness, Claims) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let login = h.login("alice").await;
    let claims = claims_of(&h.auth, &login.access_token).await;
    (h, claims)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Asserts that /me refuses `token` with 401 and the verifier with an error `is_expected`.
async fn assert_refused(h: &Harness, token: &str, why: &str, is_expected: fn(&TokenError) -> bool) {
    let resp = h.me(token).await;
    assert_eq!(
        resp.status,
        StatusCode::UNAUTHORIZED,
        "{why}: {}",
        resp.json
    );
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
    let err = h.auth.verifier().verify(token).await.unwrap_err();
    assert!(is_expected(&err), "{why}: got {err:?}");
}

async fn a_genuine_token_signed_by_the_key_file_is_accepted(backend: Backend) {
    let (h, claims) = setup(backend).await;
    let token = h.keys().sign(&claims).unwrap();
    assert_eq!(h.me(&token).await.status, StatusCode::OK);
}

async fn tokens_with_bad_claims_are_refused(backend: Backend) {
    let (h, claims) = setup(backend).await;
    let keys = h.keys();
    let expired = Claims {
        iat: now() - 7200,
        exp: now() - 3600,
        ..claims.clone()
    };
    assert_refused(&h, &keys.sign(&expired).unwrap(), "expired", |e| {
        matches!(e, TokenError::Expired)
    })
    .await;
    let wrong_aud = Claims {
        aud: "someone-else".into(),
        ..claims.clone()
    };
    assert_refused(&h, &keys.sign(&wrong_aud).unwrap(), "audience", |e| {
        matches!(e, TokenError::Invalid(_))
    })
    .await;
    let wrong_iss = Claims {
        iss: "evil".into(),
        ..claims.clone()
    };
    assert_refused(&h, &keys.sign(&wrong_iss).unwrap(), "issuer", |e| {
        matches!(e, TokenError::Invalid(_))
    })
    .await;
    for missing in [
        "sid", "jti", "iat", "exp", "sub", "iss", "aud", "name", "role",
    ] {
        let mut value = serde_json::to_value(&claims).unwrap();
        value.as_object_mut().unwrap().remove(missing);
        assert_refused(&h, &h.sign_json(&value), missing, |e| {
            matches!(e, TokenError::Invalid(_))
        })
        .await;
    }
}

async fn forged_and_malformed_tokens_are_refused(backend: Backend) {
    let (h, claims) = setup(backend).await;
    let real = h.keys();

    for garbage in ["garbage", "a.b.c", "", "Bearer"] {
        assert_refused(&h, garbage, "garbage", |e| {
            matches!(e, TokenError::Malformed(_))
        })
        .await;
    }

    // HS256 "signed" with the public key as the HMAC secret: the classic algorithm confusion.
    let jwks = serde_json::to_value(real.jwks()).unwrap();
    let public = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(real.kid().to_owned());
    let hs256 =
        jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(&public)).unwrap();
    assert_refused(&h, &hs256, "HS256", |e| matches!(e, TokenError::Algorithm)).await;

    // alg "none" with no signature.
    let none_header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": real.kid()}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let none = format!("{none_header}.{payload}.");
    assert_refused(&h, &none, "alg none", |e| {
        matches!(e, TokenError::Malformed(_))
    })
    .await;

    // Signed by another Ed25519 key: under its own kid, and under ours.
    let other =
        LocalKeys::from_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[9; 32])).unwrap();
    let foreign = other.sign(&claims).unwrap();
    assert_refused(&h, &foreign, "unknown kid", |e| {
        matches!(e, TokenError::UnknownKid)
    })
    .await;
    let (foreign_header, rest) = foreign.split_once('.').unwrap();
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(foreign_header).unwrap()).unwrap();
    header["kid"] = real.kid().into();
    let impostor = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
    assert_refused(&h, &impostor, "wrong key, our kid", |e| {
        matches!(e, TokenError::Invalid(_))
    })
    .await;

    // Our key but no kid in the header.
    let no_kid =
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &h.encoding_key()).unwrap();
    assert_refused(&h, &no_kid, "no kid", |e| {
        matches!(e, TokenError::MissingKid)
    })
    .await;

    // A genuine token with its payload altered (role escalated).
    let genuine = real.sign(&claims).unwrap();
    let parts: Vec<&str> = genuine.split('.').collect();
    let escalated = Claims {
        role: "admin".into(),
        ..claims.clone()
    };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&escalated).unwrap()),
        parts[2]
    );
    assert_refused(&h, &tampered, "tampered", |e| {
        matches!(e, TokenError::Invalid(_))
    })
    .await;
}

async fn jwks_lists_the_key_and_its_x_verifies_tokens(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let login = h.login("alice").await;

    let resp = h.request("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(resp.status, StatusCode::OK);
    let keys = resp.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");

    let header = jsonwebtoken::decode_header(&login.access_token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());

    let decoding = DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["switchboard"]);
    validation.set_issuer(&["switchboard"]);
    let data = jsonwebtoken::decode::<Claims>(&login.access_token, &decoding, &validation).unwrap();
    assert_eq!(data.claims.name, "alice");
}

backend_tests!(
    a_genuine_token_signed_by_the_key_file_is_accepted,
    tokens_with_bad_claims_are_refused,
    forged_and_malformed_tokens_are_refused,
    jwks_lists_the_key_and_its_x_verifies_tokens,
);
