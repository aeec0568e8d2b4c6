//! Test harness: an `Auth` on a temp dir (SQLite) or a fresh PostgreSQL database, optionally
//! with a Redis key prefix of its own, and helpers to call its routes.

pub mod node;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use http_body_util::BodyExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use switchboard_auth::config::RateLimit;
use switchboard_auth::keys::SIGNING_KEY_FILE;
use switchboard_auth::{Auth, AuthConfig, Claims, LocalKeys};
use switchboard_protocol::rest::TokenPair;
use tempfile::TempDir;
use tower::ServiceExt as _;

pub use switchboard_testkit::services::{self, RedisPrefix, TestDatabase};

/// Password used by `register`.
pub const PASSWORD: &str = "correct horse battery";

/// Where users and sessions are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a harness keeps across [`Harness::reopen`]: the data directory, the database and the
/// Redis prefix. Dropping it drops the database and deletes the Redis keys.
pub struct Env {
    pub dir: TempDir,
    pub db: Option<TestDatabase>,
    pub redis: Option<RedisPrefix>,
}

impl Env {
    pub async fn new(backend: Backend, redis: bool) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            db: match backend {
                Backend::Sqlite => None,
                Backend::Postgres => Some(TestDatabase::create().await),
            },
            redis: redis.then(RedisPrefix::new),
        }
    }

    /// The data directory given to `Auth` (does not exist until the first open).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// The default configuration on this environment, with the login, registration and
    /// hashing-queue limits lifted (every request here comes from one client; `throttle` tests
    /// them), and no job workers: a registration's welcome mail stays ready for the test to
    /// look at (the mail tests, `welcome_mail`, set workers).
    pub fn config(&self) -> AuthConfig {
        let mut cfg = AuthConfig::new(self.data_dir());
        let lifted = RateLimit {
            per_sec: 100_000.0,
            burst: 100_000,
        };
        cfg.hash_queue = 100_000;
        cfg.login_account_limit = lifted;
        cfg.login_ip_limit = lifted;
        cfg.register_ip_limit = lifted;
        cfg.jobs.workers = 0;
        cfg.database_url = self.db.as_ref().map(|db| db.url.clone());
        if let Some(prefix) = &self.redis {
            cfg.redis_url = Some(services::REDIS_URL.to_owned());
            cfg.redis_prefix = prefix.0.clone();
        }
        cfg
    }
}

// Field order matters: `auth` (and its database pool) is dropped before `env` drops the
// database.
pub struct Harness {
    pub auth: Auth,
    app: Router,
    pub env: Env,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: Value,
}

impl Harness {
    pub async fn new(backend: Backend) -> Self {
        Self::open(Env::new(backend, false).await, |_| {}).await
    }

    /// A harness whose revocations also go to Redis, under a prefix of its own.
    pub async fn with_redis(backend: Backend) -> Self {
        Self::open(Env::new(backend, true).await, |_| {}).await
    }

    /// A harness whose config is the default changed by `tweak`.
    pub async fn with_config(backend: Backend, tweak: impl FnOnce(&mut AuthConfig)) -> Self {
        Self::open(Env::new(backend, false).await, tweak).await
    }

    pub async fn open(env: Env, tweak: impl FnOnce(&mut AuthConfig)) -> Self {
        // The data directory does not exist yet on first open: `open` must create it.
        let mut cfg = env.config();
        tweak(&mut cfg);
        let auth = Auth::open(cfg).await.unwrap();
        let app = auth.router();
        Self { auth, app, env }
    }

    /// Drops this instance (closing the database) and opens a new one on the same directory,
    /// database and Redis prefix.
    pub async fn reopen(self) -> Self {
        let Self { auth, app, env } = self;
        drop((auth, app));
        Self::open(env, |_| {}).await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(text) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(text.to_owned())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{status}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Resp {
            status,
            headers,
            json,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request("POST", path, None, Some(&body.to_string()))
            .await
    }

    pub async fn register(&self, username: &str) -> Value {
        let resp = self
            .post(
                "/v1/auth/register",
                json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.json);
        resp.json
    }

    pub async fn login(&self, username: &str) -> TokenPair {
        let resp = self
            .post(
                "/v1/auth/login",
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
        serde_json::from_value(resp.json).unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        self.post(
            "/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    /// Registers and logs in `username`; returns the token pair and its session id.
    pub async fn user(&self, username: &str) -> (TokenPair, String) {
        self.register(username).await;
        let pair = self.login(username).await;
        let sid = sid_of(&pair);
        (pair, sid)
    }

    pub async fn me(&self, access_token: &str) -> Resp {
        self.request("GET", "/v1/auth/me", Some(access_token), None)
            .await
    }

    /// Runs an `admin` command of the binaries (as `switchboard-auth admin ...` would) on this
    /// harness's store, with `stdin` as standard input.
    pub async fn admin(
        &self,
        command: switchboard_auth::admin::AdminCommand,
        stdin: &str,
    ) -> Result<String, switchboard_auth::AuthError> {
        let data_dir = self.env.data_dir();
        let at = switchboard_auth::admin::StoreLocation {
            data_dir: &data_dir,
            database_url: self.env.db.as_ref().map(|db| db.url.as_str()),
        };
        switchboard_auth::admin::run(&command, at, &mut stdin.as_bytes()).await
    }

    /// Registers `username`, makes it an admin from the command line, and logs in.
    pub async fn admin_user(&self, username: &str) -> TokenPair {
        self.register(username).await;
        let promote = switchboard_auth::admin::AdminCommand::Promote {
            username: username.to_owned(),
        };
        self.admin(promote, "").await.unwrap();
        self.login(username).await
    }

    /// The service's own signing key, loaded from its file.
    pub fn keys(&self) -> LocalKeys {
        LocalKeys::load_or_generate(&self.env.data_dir()).unwrap()
    }

    /// The service's signing key as a jsonwebtoken key, to sign arbitrary JSON claims.
    pub fn encoding_key(&self) -> EncodingKey {
        let pem = std::fs::read_to_string(self.env.data_dir().join(SIGNING_KEY_FILE)).unwrap();
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
        EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes())
    }

    /// Signs arbitrary claims with the service's key and kid.
    pub fn sign_json(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.keys().kid().to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).unwrap()
    }
}

/// The session id of a token pair (the part of the refresh token before the dot).
pub fn sid_of(pair: &TokenPair) -> String {
    pair.refresh_token.split_once('.').unwrap().0.to_owned()
}

/// `fut`, failing the test if it does not finish within 10 seconds.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Aborts a task (e.g. a `redis_feed::follow` follower) when dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The next session id announced on `rx`, failing the test if none comes within 10 seconds.
pub async fn next_revocation(rx: &mut tokio::sync::broadcast::Receiver<String>) -> String {
    within("a revocation", rx.recv()).await.unwrap()
}

/// The claims of a token this service issued (verified).
pub async fn claims_of(auth: &Auth, token: &str) -> Claims {
    auth.verifier().verify(token).await.unwrap()
}

/// Asserts an error answer: status, JSON `{"error":{"code","message"}}`, and the code.
pub fn assert_error(resp: &Resp, status: StatusCode, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.json);
    assert_eq!(resp.json["error"]["code"], code, "{}", resp.json);
    assert!(
        resp.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        resp.json
    );
    assert_eq!(
        resp.headers[header::CONTENT_TYPE],
        "application/json",
        "error bodies are JSON"
    );
}
