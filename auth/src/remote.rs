//! Talking to a separate auth node over HTTP: [`RemoteKeys`] (its JWKS, as a [`KeySource`]),
//! [`RemoteDirectory`] (user lookup, on a user's behalf or, with the service token, the
//! server API's) and [`RemoteWebhooks`] (the webhook endpoints and their 410-disable, with the
//! service token). Used by hub nodes started with `--auth-url`.
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
    /// The auth node refused the request with our JSON error body (e.g. 401 `unauthorized`
    /// for a wrong service token).
    #[error("{url} answered HTTP {status} {code}: {message}")]
    Refused {
        /// The URL requested.
        url: String,
        /// The status.
        status: u16,
        /// The auth node's code.
        code: ErrorCode,
        /// The auth node's message.
        message: String,
    },
    /// A service call on a client given no service token.
    #[error("no service token is configured for the auth node")]
    NoServiceToken,
}

/// The error of an answer that is not the one expected: [`RemoteError::Refused`] when it
/// carries our JSON error body, else [`RemoteError::Status`].
async fn refusal(url: String, resp: reqwest::Response) -> RemoteError {
    let status = resp.status().as_u16();
    match resp.json::<ErrorBody>().await {
        Ok(body) => RemoteError::Refused {
            url,
            status,
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => RemoteError::Status { url, status },
    }
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

/// Looks users up on a remote auth node: `GET {auth_url}/v1/users/{username}` authenticated
/// with the token of the user who asks, or `GET {auth_url}/v1/internal/users/{username}` with
/// the service token ([`RemoteDirectory::user_by_username_as_service`]).
#[derive(Clone)]
pub struct RemoteDirectory {
    http: reqwest::Client,
    base: String,
    /// `--service-token`, for the lookups of the server API.
    service_token: Option<String>,
}

impl std::fmt::Debug for RemoteDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteDirectory")
            .field("base", &self.base)
            .field("service_token", &self.service_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl RemoteDirectory {
    /// A directory on the auth node at `auth_url` (e.g. `http://auth:8090`).
    pub fn new(auth_url: &str) -> Self {
        Self {
            http: http_client(),
            base: base_url(auth_url),
            service_token: None,
        }
    }

    /// The same directory, able to look users up as the service
    /// ([`RemoteDirectory::user_by_username_as_service`]) with `token` (the auth node's
    /// `--service-token`).
    #[must_use]
    pub fn with_service_token(mut self, token: impl Into<String>) -> Self {
        self.service_token = Some(token.into());
        self
    }

    /// The user with this username, without e-mail address, or `None` if there is none (or
    /// the string is not a valid username, which is then not sent), asked with the service
    /// token: the server API's lookup, made on no user's behalf.
    ///
    /// # Errors
    /// [`RemoteError::NoServiceToken`] without [`RemoteDirectory::with_service_token`];
    /// [`RemoteError::Refused`] when the auth node refuses (401 `unauthorized`: a wrong
    /// token, or the node has none); [`RemoteError::Http`] or [`RemoteError::Status`] when it
    /// cannot be reached or answers nonsense.
    pub async fn user_by_username_as_service(
        &self,
        username: &str,
    ) -> Result<Option<User>, RemoteError> {
        let token = self
            .service_token
            .as_deref()
            .ok_or(RemoteError::NoServiceToken)?;
        if crate::validate::username(username).is_err() {
            return Ok(None);
        }
        let url = format!("{}/v1/internal/users/{username}", self.base);
        let http = |source| RemoteError::Http {
            url: url.clone(),
            source,
        };
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(http)?;
        if resp.status().as_u16() == 200 {
            let user: User = resp.json().await.map_err(http)?;
            return Ok(Some(user).filter(|u| !u.deleted));
        }
        match refusal(url, resp).await {
            RemoteError::Refused {
                code: ErrorCode::UserNotFound,
                ..
            } => Ok(None),
            other => Err(other),
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

/// The webhook endpoints of a remote auth node, read and disabled with the service token
/// (`GET /v1/internal/webhooks`, `POST /v1/internal/webhooks/{id}/disable`): what a hub with
/// `--auth-url` fills its registry from, and tells about a 410.
#[derive(Clone)]
pub struct RemoteWebhooks {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for RemoteWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWebhooks")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RemoteWebhooks {
    /// The endpoints of the auth node at `auth_url` (e.g. `http://auth:8090`), asked with
    /// `service_token` (its `--service-token`).
    pub fn new(auth_url: &str, service_token: impl Into<String>) -> Self {
        Self {
            http: http_client(),
            base: base_url(auth_url),
            token: service_token.into(),
        }
    }

    /// Every endpoint, enabled or not, with its secret (for
    /// [`switchboard_webhooks::Registry::replace`]). An event type this release does not know
    /// is left out of the endpoint's set.
    ///
    /// # Errors
    /// [`RemoteError::Refused`] (401: a wrong service token, or the node has none);
    /// [`RemoteError::Http`] or [`RemoteError::Status`] when the node cannot be reached or
    /// answers nonsense.
    pub async fn endpoints(&self) -> Result<Vec<switchboard_webhooks::Endpoint>, RemoteError> {
        let url = format!("{}/v1/internal/webhooks", self.base);
        let http = |source| RemoteError::Http {
            url: url.clone(),
            source,
        };
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(http)?;
        if resp.status().as_u16() != 200 {
            return Err(refusal(url, resp).await);
        }
        let list: switchboard_protocol::rest::InternalWebhookList =
            resp.json().await.map_err(http)?;
        Ok(list
            .webhooks
            .into_iter()
            .map(|w| switchboard_webhooks::Endpoint {
                events: w
                    .events
                    .iter()
                    .filter_map(|e| switchboard_webhooks::EventType::parse(e).ok())
                    .collect(),
                id: w.id,
                url: w.url,
                secret: w.secret,
                enabled: w.enabled,
            })
            .collect())
    }

    /// Disables `endpoint` on the auth node (`Ok` also when it does not exist there).
    ///
    /// # Errors
    /// As [`RemoteWebhooks::endpoints`].
    pub async fn disable_endpoint(&self, endpoint: &str, reason: &str) -> Result<(), RemoteError> {
        // An id outside its pattern names no endpoint (and keeps path syntax out of the URL).
        if crate::webhooks::validate::id(endpoint).is_err() {
            return Ok(());
        }
        let url = format!("{}/v1/internal/webhooks/{endpoint}/disable", self.base);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(&switchboard_protocol::rest::DisableWebhookRequest {
                reason: reason.to_owned(),
            })
            .send()
            .await
            .map_err(|source| RemoteError::Http {
                url: url.clone(),
                source,
            })?;
        if resp.status().as_u16() == 204 {
            return Ok(());
        }
        match refusal(url, resp).await {
            RemoteError::Refused {
                code: ErrorCode::NotFound,
                ..
            } => Ok(()),
            other => Err(other),
        }
    }
}

/// A hub's delivery handler tells the auth node about a 410 (the auth node disables the
/// endpoint for every node; this hub's registry learns it at its next refresh).
#[async_trait]
impl switchboard_webhooks::Disabler for RemoteWebhooks {
    async fn disable(&self, endpoint: &str, reason: &str) -> Result<(), String> {
        self.disable_endpoint(endpoint, reason)
            .await
            .map_err(|e| e.to_string())
    }
}
