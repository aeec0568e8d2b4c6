//! Access tokens: [`Claims`] and [`Verifier`]. Signing lives on [`crate::LocalKeys::sign`].
//!
//! An access token is an EdDSA (Ed25519) JWT with `kid` in its header. It is self-contained:
//! verifying one needs the public key and the revocation set, never the database, so the hub
//! verifies without calling the auth service per request or per message.

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use crate::error::TokenError;
use crate::keys::KeySource;
use crate::revocation::Revocations;

/// Clock skew tolerated on `exp`, in seconds. Small (the spec allows at most 30 s) because a
/// revoked or expired token should die promptly; it only covers skew between the node that
/// issued a token and the node verifying it.
pub const EXP_LEEWAY_SECS: u64 = 5;

/// Role given to every registered user.
pub const ROLE_USER: &str = "user";
/// Role of an administrator: the first is made from the command line only (`admin
/// create|promote`); later ones by an admin (`PUT /v1/admin/users/{id}/role`). Carried in the
/// `role` claim, so hubs allow moderation without asking auth (a demotion over HTTP ends the
/// user's sessions, so the claim does not outlive it).
pub const ROLE_ADMIN: &str = "admin";

/// The claims of an access token. All are required when verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer; must equal the configured issuer.
    pub iss: String,
    /// Audience; must equal the configured audience.
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id: one per login, shared by every token the session's refreshes issue.
    /// Revocation works on this id.
    pub sid: String,
    /// Unique id of this token.
    pub jti: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
    /// The username (so the hub can show it without a lookup).
    pub name: String,
    /// The user's role, `user` or `admin`.
    pub role: String,
}

/// Verifies access tokens. Cheap to clone; shares the key source and the revocation set.
///
/// A token passes only if all of these hold: the header's `alg` is EdDSA (the only algorithm
/// accepted, whatever the header says); the header has a `kid` the [`KeySource`] knows; the
/// signature verifies with that key; `iss` and `aud` equal the configured values; `exp` has not
/// passed (give or take [`EXP_LEEWAY_SECS`]); every [`Claims`] field is present; and the `sid`
/// is not in the [`Revocations`].
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<dyn KeySource>,
    revocations: Revocations,
    validation: Arc<Validation>,
    /// Where failures are counted (`None`: nowhere).
    failures: Option<crate::metrics::TokenFailures>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("iss", &self.validation.iss)
            .field("aud", &self.validation.aud)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier accepting tokens signed by `keys` for `issuer`/`audience`, and rejecting those
    /// whose session is in `revocations`.
    pub fn new(
        keys: Arc<dyn KeySource>,
        revocations: Revocations,
        issuer: &str,
        audience: &str,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        // sid, jti, iat, name and role are required by `Claims` itself (non-optional fields).
        validation.required_spec_claims =
            HashSet::from(["exp", "iss", "aud", "sub"].map(str::to_owned));
        validation.leeway = EXP_LEEWAY_SECS;
        validation.validate_exp = true;
        Self {
            keys,
            revocations,
            validation: Arc::new(validation),
            failures: None,
        }
    }

    /// The same verifier, counting its failures in `failures`.
    pub fn with_failures(mut self, failures: crate::metrics::TokenFailures) -> Self {
        self.failures = Some(failures);
        self
    }

    /// Verifies `token` and returns its claims.
    ///
    /// # Errors
    /// A [`TokenError`] saying why the token was rejected, or [`TokenError::Unavailable`] when
    /// the key source could not say whether its `kid` is known (the token is then not judged).
    ///
    /// # Cancel safety
    /// Cancel safe: it changes no state.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let verdict = self.check(token).await;
        if let (Err(e), Some(failures)) = (&verdict, &self.failures) {
            failures.count(e);
        }
        verdict
    }

    async fn check(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let key = self
            .keys
            .decoding_key(&kid)
            .await?
            .ok_or(TokenError::UnknownKid)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e),
            }
        })?;
        if self.revocations.is_revoked(&data.claims.sid) {
            return Err(TokenError::Revoked);
        }
        Ok(data.claims)
    }
}
