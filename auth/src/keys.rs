//! Signing keys: the Ed25519 key pair that signs access tokens, its `kid`, the JWKS document,
//! and [`KeySource`], the seam through which a [`crate::Verifier`] finds verifying keys.
//!
//! **Invariant:** the private key exists only in `data_dir/signing-key.pem` (PKCS#8 PEM, mode
//! 0600 on Unix) and in [`LocalKeys`]; nothing else in this crate sees it. The `kid` is derived
//! from the public key (RFC 7638 thumbprint), so it is the same on every start and on every
//! node that loads the same file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use ed25519_dalek::SigningKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

use crate::error::KeysUnavailable;
use crate::tokens::Claims;

/// File name of the private signing key inside the data directory.
pub const SIGNING_KEY_FILE: &str = "signing-key.pem";

/// Where a [`crate::Verifier`] gets the public key for a token's `kid`.
///
/// Implemented by [`LocalKeys`] (the auth routes run in the same process) and
/// [`crate::remote::RemoteKeys`] (an auth node's `/.well-known/jwks.json`). An implementation
/// must only return Ed25519 keys; the verifier pins the algorithm to EdDSA regardless.
///
/// A source answers one of three things, and the types keep them apart: the key, "no such key"
/// (the token is bad), or "cannot tell now" ([`KeysUnavailable`]: the token is not judged).
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// The verifying key with this `kid`, or `None` when no such key is known (the token is
    /// then rejected with [`crate::TokenError::UnknownKid`]).
    ///
    /// # Errors
    /// [`KeysUnavailable`] when the keys cannot be obtained right now (e.g. a JWKS fetch
    /// failed); the verification then fails with [`crate::TokenError::Unavailable`], which
    /// clients are told to retry.
    async fn decoding_key(&self, kid: &str) -> Result<Option<DecodingKey>, KeysUnavailable>;
}

/// Failure to load, create or use the signing key. Fatal at start.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file exists but cannot be read.
    #[error("cannot read signing key {path}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file cannot be written.
    #[error("cannot write signing key {path}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not a PKCS#8 PEM Ed25519 private key.
    #[error("{path} is not a PKCS#8 PEM Ed25519 private key")]
    Parse {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ed25519_dalek::pkcs8::Error,
    },
    /// The key could not be encoded as PKCS#8.
    #[error("cannot encode the signing key as PKCS#8")]
    Encode(#[source] ed25519_dalek::pkcs8::Error),
    /// Signing a token failed.
    #[error("cannot sign a token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// The local Ed25519 key pair: signs access tokens, verifies them, and publishes the public half
/// as a JWKS document.
pub struct LocalKeys {
    /// RFC 7638 SHA-256 thumbprint of the public JWK, base64url.
    kid: String,
    /// PKCS#8 DER of the private key, as jsonwebtoken's EdDSA signer expects.
    encoding: EncodingKey,
    /// The raw 32-byte public key.
    decoding: DecodingKey,
    /// The public key as published (with `kid`, `alg`, `use`).
    jwk: Jwk,
}

impl std::fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("LocalKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl LocalKeys {
    /// Loads `data_dir/signing-key.pem`, or generates a new key and writes it there (mode 0600)
    /// when the file does not exist. Blocking file I/O: call it from a blocking context.
    ///
    /// The new file appears atomically (written to a temporary file, then hard-linked into
    /// place), so a crash never leaves a half-written key, and when two processes start at once
    /// on an empty directory both end up with the one key that won.
    ///
    /// # Errors
    /// [`KeyError`] when the file cannot be read, written or parsed.
    pub fn load_or_generate(data_dir: &Path) -> Result<Self, KeyError> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => {
                warn_if_readable_by_others(&path);
                pem
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_new_key(&path, &SigningKey::generate(&mut rand::rngs::OsRng))?;
                // Read back whatever is in place now: another process may have won the race.
                std::fs::read_to_string(&path).map_err(|source| KeyError::Read {
                    path: path.clone(),
                    source,
                })?
            }
            Err(source) => return Err(KeyError::Read { path, source }),
        };
        let key =
            SigningKey::from_pkcs8_pem(&pem).map_err(|source| KeyError::Parse { path, source })?;
        Self::from_signing_key(&key)
    }

    /// Key pair from an Ed25519 signing key (nothing is written to disk).
    ///
    /// # Errors
    /// [`KeyError::Encode`] if the key cannot be encoded as PKCS#8 (does not happen for a valid
    /// key).
    pub fn from_signing_key(key: &SigningKey) -> Result<Self, KeyError> {
        let der = key.to_pkcs8_der().map_err(KeyError::Encode)?;
        let public = key.verifying_key().to_bytes();
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(public),
            }),
        };
        // The thumbprint covers only crv, kty and x (RFC 7638 §3.2), so setting kid afterwards
        // does not change it.
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common.key_id = Some(kid.clone());
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            jwk,
        })
    }

    /// The `kid` put in the header of every token this key signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public keys as served on `/.well-known/jwks.json` (currently exactly one).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// Signs `claims` as an EdDSA JWT whose header carries this key's `kid`. The claims are
    /// signed as given: the caller is responsible for `iss`, `aud`, `exp` and the rest.
    ///
    /// # Errors
    /// [`KeyError::Sign`] if signing fails (does not happen for a valid key).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(KeyError::Sign)
    }
}

#[async_trait]
impl KeySource for LocalKeys {
    async fn decoding_key(&self, kid: &str) -> Result<Option<DecodingKey>, KeysUnavailable> {
        Ok((kid == self.kid).then(|| self.decoding.clone()))
    }
}

/// Writes `key` to `path` unless a file is already there (then leaves that one alone).
fn write_new_key(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(KeyError::Encode)?;
    let tmp = path.with_extension(format!("pem.tmp-{}", std::process::id()));
    let write_err = |source| KeyError::Write {
        path: tmp.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(write_err)?;
    file.write_all(pem.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    let linked = std::fs::hard_link(&tmp, path);
    // The temporary name is gone either way; a failure to remove it only leaves litter.
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new signing key");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(KeyError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Logs a warning when the key file can be read by group or others (someone copied it around).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                    "signing key is accessible by group or others; it should be 0600");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_generated_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalKeys::load_or_generate(dir.path()).unwrap();
        let second = LocalKeys::load_or_generate(dir.path()).unwrap();
        assert_eq!(first.kid(), second.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the key file remains: no temporary litter.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn jwks_has_the_documented_shape() {
        let keys = LocalKeys::from_signing_key(&SigningKey::from_bytes(&[7; 32])).unwrap();
        let json = serde_json::to_value(keys.jwks()).unwrap();
        let key = &json["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], keys.kid());
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(key["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(key.as_object().unwrap().len(), 6, "no other members: {key}");
    }

    #[test]
    fn garbage_key_file_is_a_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SIGNING_KEY_FILE), "not a key").unwrap();
        let err = LocalKeys::load_or_generate(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Parse { .. }), "{err:?}");
    }
}
