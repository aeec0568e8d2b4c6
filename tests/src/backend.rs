//! Which configuration the suite runs against, chosen by `SWITCHBOARD_TEST_BACKEND`:
//! - `embedded` (default): the hub alone, SQLite in its data dir, in-process fanout and auth;
//! - `scaled`: the hub on the machine's PostgreSQL (a fresh database per test) and Redis (a fresh
//!   key prefix per test), with a separate auth node (`switchboard_auth::node::run`, in-process on
//!   `127.0.0.1:0`) that the hub reaches through `--auth-url`.
//!
//! Everything a scaled test creates is removed when it ends: the database is dropped and the
//! Redis keys under the prefix deleted.

use std::net::SocketAddr;

use clap::Parser;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use switchboard_testkit::services::{RedisPrefix, TestDatabase, REDIS_URL};

/// True when the suite runs against PostgreSQL + Redis + a separate auth node.
pub fn scaled() -> bool {
    match std::env::var("SWITCHBOARD_TEST_BACKEND").as_deref() {
        Ok("scaled") => true,
        Ok("embedded") | Err(_) => false,
        Ok(other) => panic!("SWITCHBOARD_TEST_BACKEND must be embedded or scaled, not {other:?}"),
    }
}

/// Flags that belong to the auth node when it runs separately (scaled backend).
const AUTH_FLAGS: &[&str] = &[
    "--access-ttl-secs",
    "--hash-concurrency",
    "--hash-queue",
    "--login-account-rate-per-sec",
    "--login-account-burst",
    "--login-ip-rate-per-sec",
    "--login-ip-burst",
    "--register-ip-rate-per-sec",
    "--register-ip-burst",
    // Mails are the auth node's when it runs separately.
    "--smtp-url",
    "--mail-from",
    "--mail-rate-per-sec",
    "--smtp-timeout-secs",
    // Webhook endpoints live in the auth store.
    "--webhooks-file",
];

/// Flags that go to both the hub and the auth node: the public URL is the hub's Origin rule and
/// the base of the auth node's reset links.
const SHARED_FLAGS: &[&str] = &[
    "--public-url",
    // Both run a job queue: the auth node's (mails, user events), the hub's (its events).
    "--job-workers",
    "--job-lease-ms",
    "--job-timeout-ms",
    "--job-poll-ms",
    "--job-retention-hours",
    // Both deliver webhooks.
    "--webhook-timeout-ms",
];

/// Switches that go to both the hub and the auth node.
const SHARED_SWITCHES: &[&str] = &["--webhook-allow-link-local"];

/// The secret the hubs and the auth node share in scaled tests (`--service-token`).
pub const SERVICE_TOKEN: &str = "service-token-of-the-scaled-tests";

/// The auth node's `--public-url` when the test gives none: reset links need a base, and a test
/// that follows one takes only its token (the hub's port is not known yet).
const DEFAULT_AUTH_PUBLIC_URL: &str = "http://localhost";

/// Switches of the auth node (flags without a value) when it runs separately.
const AUTH_SWITCHES: &[&str] = &["--single-session", "--free-deleted-usernames"];

/// With the scaled backend: moves the auth node's flags (with their values) out of `flags`,
/// starts the services, and adds the hub's flags for them (but not `--auth-url` when `flags`
/// has its own). `None` when embedded.
pub async fn prepare(flags: &mut Vec<String>) -> Option<ScaledEnv> {
    if !scaled() {
        return None;
    }
    let mut auth_flags = Vec::new();
    let mut i = 0;
    while i < flags.len() {
        if AUTH_FLAGS.contains(&flags[i].as_str()) && i + 1 < flags.len() {
            auth_flags.extend(flags.drain(i..i + 2));
        } else if SHARED_FLAGS.contains(&flags[i].as_str()) && i + 1 < flags.len() {
            auth_flags.extend(flags[i..i + 2].iter().cloned());
            i += 2;
        } else if AUTH_SWITCHES.contains(&flags[i].as_str()) {
            auth_flags.push(flags.remove(i));
        } else if SHARED_SWITCHES.contains(&flags[i].as_str()) {
            auth_flags.push(flags[i].clone());
            i += 1;
        } else {
            i += 1;
        }
    }
    if !auth_flags.iter().any(|flag| flag == "--public-url") {
        auth_flags.extend([
            "--public-url".to_owned(),
            DEFAULT_AUTH_PUBLIC_URL.to_owned(),
        ]);
    }
    let env = ScaledEnv::start(&auth_flags).await;
    // A test that names its own auth node (e.g. a stand-in JWKS) keeps it, without the service
    // token (a stand-in serves no internal routes, and counts what reaches it).
    let own_auth = flags.iter().any(|flag| flag == "--auth-url");
    let mut hub_flags = env.hub_flags().into_iter();
    while let Some(flag) = hub_flags.next() {
        let value = hub_flags.next().expect("hub flags come in pairs");
        if !(own_auth && (flag == "--auth-url" || flag == "--service-token")) {
            flags.extend([flag, value]);
        }
    }
    Some(env)
}

/// The shared services of one scaled test: database, Redis prefix and a running auth node.
pub struct ScaledEnv {
    pub db: TestDatabase,
    pub prefix: RedisPrefix,
    pub auth_addr: SocketAddr,
    /// The auth node's metrics listener.
    pub auth_metrics_addr: SocketAddr,
    /// The auth node's data dir (its `outbox/`).
    pub auth_dir: TempDir,
    _auth_stop: oneshot::Sender<()>,
}

impl ScaledEnv {
    /// Starts an auth node; `auth_flags` are extra flags for it (e.g. `--access-ttl-secs`).
    pub async fn start(auth_flags: &[String]) -> Self {
        let db = TestDatabase::create().await;
        let prefix = RedisPrefix::new();
        let dir = tempfile::tempdir().expect("auth data dir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind auth");
        let auth_addr = listener.local_addr().unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind auth metrics");
        let auth_metrics_addr = metrics.local_addr().unwrap();
        let mut args: Vec<String> = [
            "switchboard-auth",
            "--listen",
            &auth_addr.to_string(),
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            &db.url,
            "--redis-url",
            REDIS_URL,
            "--redis-prefix",
            &prefix.0,
            // The hub in front forwards the client's address (X-Forwarded-For).
            "--trusted-proxies",
            "127.0.0.1",
            // Stopped at the end of the test: no need to let a load balancer notice.
            "--drain-delay-ms",
            "0",
            "--service-token",
            SERVICE_TOKEN,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(auth_flags.iter().cloned());
        let cfg =
            switchboard_auth::node::NodeConfig::try_parse_from(&args).expect("auth flags parse");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            if let Err(e) =
                switchboard_auth::node::run_with_metrics(listener, Some(metrics), cfg, async {
                    let _ = rx.await;
                })
                .await
            {
                panic!("auth node failed: {e:#}");
            }
        });
        Self {
            db,
            prefix,
            auth_addr,
            auth_metrics_addr,
            auth_dir: dir,
            _auth_stop: tx,
        }
    }

    /// The hub flags that point at these services.
    pub fn hub_flags(&self) -> Vec<String> {
        vec![
            "--database-url".into(),
            self.db.url.clone(),
            "--redis-url".into(),
            REDIS_URL.into(),
            "--redis-prefix".into(),
            self.prefix.0.clone(),
            "--auth-url".into(),
            format!("http://{}", self.auth_addr),
            "--service-token".into(),
            SERVICE_TOKEN.into(),
        ]
    }
}
