//! Talking to a separate auth node over HTTP: [`RemoteKeys`] (its JWKS, as a [`KeySource`])
//! and [`RemoteDirectory`] (user lookup). Used by hub nodes started with `--auth-url`.
//!
//! **Invariant:** verifying a token never waits on the auth node while its key is cached: the
//! network is touched only for a `kid` not seen yet (at most once per
//! [`DEFAULT_REFETCH_INTERVAL`]) and when the cache is older than [`MAX_CACHE_AGE`].
//!
//! Plain `http://` only (no TLS backend is compiled in): the auth node is reached inside the
//! cluster's network.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::DecodingKey;
use switchboard_protocol::error::ErrorBody;
use switchboard_protocol::rest::{RegisterResponse, User};
use switchboard_protocol::ErrorCode;

use crate::error::{AuthError, KeysUnavailable};
use crate::keys::KeySource;

/// Least time between two JWKS fetches caused by unknown `kid`s, so that a flood of tokens
/// with made-up `kid`s cannot turn into a flood of requests to the auth node.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// Age after which the cached keys are refetched on the next verification (which still uses
/// the cached key if the fetch fails). Bounds how long a key removed from the auth node's JWKS
/// keeps being trusted.
pub const MAX_CACHE_AGE: Duration = Duration::from_secs(10 * 60);

/// Time limit of a whole request to the auth node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit for opening a connection to the auth node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A request to the auth node failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No answer (connection refused, timeout), or a body that does not parse.
    #[error("request to {url} failed")]
    Http {
        /// The URL requested.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// An unexpected HTTP status without our JSON error body.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status.
        status: u16,
    },
    /// The JWKS parsed but holds no usable key (Ed25519 with a `kid`): an auth node always
    /// publishes its signing key, so this is a broken answer, not "every token is bad".
    #[error("{url} holds no usable Ed25519 key")]
    NoKeys {
        /// The URL requested.
        url: String,
    },
    /// The last JWKS fetch failed a moment ago and the next is not allowed yet.
    #[error("the JWKS fetch failed less than {0:?} ago")]
    Throttled(Duration),
}

/// An HTTP client for the auth node: timeouts set, proxies from the environment ignored (the
/// auth node is an internal address).
///
/// # Panics
/// If the HTTP client cannot be built (only with a broken TLS setup, and none is compiled in).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .no_proxy()
        .build()
        .expect("building an HTTP client without TLS cannot fail")
}

/// `auth_url` without trailing slashes.
fn base_url(auth_url: &str) -> String {
    auth_url.trim_end_matches('/').to_owned()
}

/// The verifying keys of a remote auth node, fetched from `{auth_url}/.well-known/jwks.json`
/// and cached.
///
/// A `kid` missing from the cache causes a refetch (the auth node may have a new key), but at
/// most once per refetch interval; within it the token is refused as
/// [`crate::TokenError::UnknownKid`]. Concurrent misses share one fetch. A failed fetch (no
/// answer, an HTTP error, a body that is not a JWKS, a JWKS without a usable key) is
/// [`KeysUnavailable`], so the token is not judged (unless the key is cached: then the cached
/// key is used). A failed fetch never replaces the cached keys.
pub struct RemoteKeys {
    http: reqwest::Client,
    jwks_url: String,
    refetch_interval: Duration,
    cache: RwLock<Cache>,
    /// Held while fetching, so concurrent misses wait for one fetch instead of each starting
    /// their own. The `cache` lock is never held across an `.await`.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cache {
    /// kid → key, from the last successful fetch.
    keys: HashMap<String, DecodingKey>,
    /// When the last successful fetch finished.
    fetched_at: Option<Instant>,
    /// When the last fetch started, and whether it failed.
    last_attempt: Option<(Instant, bool)>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl RemoteKeys {
    /// Keys of the auth node at `auth_url` (e.g. `http://auth:8090`). Nothing is fetched until
    /// the first verification.
    pub fn new(auth_url: &str) -> Self {
        Self {
            http: http_client(),
            jwks_url: format!("{}/.well-known/jwks.json", base_url(auth_url)),
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
            cache: RwLock::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Changes the least time between two fetches caused by unknown `kid`s (default
    /// [`DEFAULT_REFETCH_INTERVAL`]).
    #[must_use]
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// The cached key for `kid` if the cache is younger than [`MAX_CACHE_AGE`].
    fn fresh(&self, kid: &str) -> Option<DecodingKey> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let fresh = cache
            .fetched_at
            .is_some_and(|t| t.elapsed() < MAX_CACHE_AGE);
        fresh.then(|| cache.keys.get(kid).cloned()).flatten()
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, RemoteError> {
        let url = &self.jwks_url;
        let http = |source| RemoteError::Http {
            url: url.clone(),
            source,
        };
        let resp = self.http.get(url).send().await.map_err(http)?;
        if !resp.status().is_success() {
            return Err(RemoteError::Status {
                url: url.clone(),
                status: resp.status().as_u16(),
            });
        }
        let set: JwkSet = resp.json().await.map_err(http)?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let ed25519 = matches!(&jwk.algorithm,
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519);
            let (Some(kid), true) = (&jwk.common.key_id, ed25519) else {
                tracing::warn!(url = %url, "ignoring a JWKS key that is not Ed25519 with a kid");
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid.clone(), key);
                }
                Err(error) => tracing::warn!(%error, kid, "ignoring a malformed JWKS key"),
            }
        }
        if keys.is_empty() {
            return Err(RemoteError::NoKeys { url: url.clone() });
        }
        Ok(keys)
    }
}

#[async_trait]
impl KeySource for RemoteKeys {
    async fn decoding_key(&self, kid: &str) -> Result<Option<DecodingKey>, KeysUnavailable> {
        if let Some(key) = self.fresh(kid) {
            return Ok(Some(key));
        }
        let _fetching = self.fetching.lock().await;
        // Another verification may have fetched while this one waited.
        if let Some(key) = self.fresh(kid) {
            return Ok(Some(key));
        }
        let (cached, throttled) = {
            let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            let throttled = cache
                .last_attempt
                .filter(|(at, _)| at.elapsed() < self.refetch_interval)
                .map(|(_, failed)| failed);
            (cache.keys.get(kid).cloned(), throttled)
        };
        if let Some(last_failed) = throttled {
            return match (cached, last_failed) {
                (Some(stale), _) => Ok(Some(stale)),
                (None, false) => Ok(None),
                (None, true) => Err(KeysUnavailable::new(RemoteError::Throttled(
                    self.refetch_interval,
                ))),
            };
        }
        let started = Instant::now();
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.last_attempt = Some((started, fetched.is_err()));
        match fetched {
            Ok(keys) => {
                tracing::debug!(url = %self.jwks_url, keys = keys.len(), "fetched JWKS");
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                Ok(cache.keys.get(kid).cloned())
            }
            Err(error) => match cache.keys.get(kid) {
                Some(stale) => {
                    tracing::warn!(error = %error, "JWKS refetch failed; using the cached key");
                    Ok(Some(stale.clone()))
                }
                None => {
                    // At most once per refetch interval: the failures in between are throttled.
                    tracing::warn!(error = %error, kid, "JWKS fetch failed; token not checked");
                    Err(KeysUnavailable::new(error))
                }
            },
        }
    }
}

/// Looks users up on a remote auth node (`GET {auth_url}/v1/users/{username}`), authenticated
/// with the token of the user who asks.
#[derive(Debug, Clone)]
pub struct RemoteDirectory {
    http: reqwest::Client,
    base: String,
}

impl RemoteDirectory {
    /// A directory on the auth node at `auth_url` (e.g. `http://auth:8090`).
    pub fn new(auth_url: &str) -> Self {
        Self {
            http: http_client(),
            base: base_url(auth_url),
        }
    }

    /// The user with this username, without e-mail address, or `None` if there is none (a
    /// string that is not a valid username has none, and is not sent; a deleted user's
    /// tombstone counts as none). `bearer` is the access
    /// token of the user on whose behalf the lookup is made.
    ///
    /// # Errors
    /// [`AuthError::Upstream`] with the auth node's code when it refuses (e.g. `unauthorized`
    /// for a token it rejects; a 5xx code maps to `unavailable`); [`AuthError::Remote`]
    /// (`unavailable`) when it cannot be reached or answers nonsense.
    pub async fn user_by_username(
        &self,
        bearer: &str,
        username: &str,
    ) -> Result<Option<User>, AuthError> {
        // Also keeps path syntax (`/`, `..`, `?`) out of the URL.
        if crate::validate::username(username).is_err() {
            return Ok(None);
        }
        let url = format!("{}/v1/users/{username}", self.base);
        let http = |source| RemoteError::Http {
            url: url.clone(),
            source,
        };
        let resp = self
            .http
            .get(&url)
            .bearer_auth(bearer)
            .send()
            .await
            .map_err(http)?;
        let status = resp.status().as_u16();
        if status == 200 {
            let body: RegisterResponse = resp.json().await.map_err(http)?;
            return Ok(Some(body.user).filter(|user| !user.deleted));
        }
        match resp.json::<ErrorBody>().await {
            Ok(body) if body.error.code == ErrorCode::UserNotFound => Ok(None),
            Ok(body) => Err(AuthError::Upstream {
                code: body.error.code,
                message: body.error.message,
            }),
            Err(_) => Err(RemoteError::Status { url, status }.into()),
        }
    }
}
