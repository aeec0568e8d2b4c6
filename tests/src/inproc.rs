//! The hub run in-process by a test: `switchboard_hub::run` on a listener bound first (so early
//! connections wait in the backlog), with a fresh data dir, on the backend
//! `SWITCHBOARD_TEST_BACKEND` names ([`crate::backend`]: embedded, or PostgreSQL + Redis + an
//! auth node), restartable on the same port, data dir and flags. Shared by the e2e, CLI and
//! browser suites (the e2e and browser suites wrap it to add helpers of their own); dropping it
//! signals shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use switchboard_client::Api;
use switchboard_hub::Config;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Flags that lift the login, registration and hashing-queue limits (the e2e suite's
/// `login_limits` tests them with real values).
pub const LIFTED_AUTH_LIMITS: &[(&str, &str)] = &[
    ("--hash-queue", "100000"),
    ("--login-account-rate-per-sec", "100000"),
    ("--login-account-burst", "100000"),
    ("--login-ip-rate-per-sec", "100000"),
    ("--login-ip-burst", "100000"),
    ("--register-ip-rate-per-sec", "100000"),
    ("--register-ip-burst", "100000"),
];

/// How long a hub may take to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);

/// A hub running in this process; see the module documentation.
pub struct InProcessHub {
    /// The scaled backend's services; `None` when embedded. Kept across restarts.
    scaled: Option<crate::backend::ScaledEnv>,
    addr: SocketAddr,
    /// The metrics listener's address (`127.0.0.1`, a fresh port the first time; kept across
    /// restarts).
    metrics_addr: SocketAddr,
    data_dir: TempDir,
    flags: Vec<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl InProcessHub {
    /// A hub with default flags.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A hub on a fresh port and data dir with extra `flags`, e.g. `&["--rate-per-sec", "2"]`
    /// (flags of the auth node, such as `--access-ttl-secs`, go to it on the scaled backend).
    /// The login and registration limits are lifted ([`LIFTED_AUTH_LIMITS`]) unless `flags`
    /// set them: every test client is 127.0.0.1.
    pub async fn start_with(flags: &[&str]) -> Self {
        let mut all: Vec<&str> = flags.to_vec();
        for (flag, value) in LIFTED_AUTH_LIMITS {
            if !flags.contains(flag) {
                all.extend([*flag, *value]);
            }
        }
        Self::start_with_auth_limits(&all).await
    }

    /// As [`InProcessHub::start_with`], with the login and registration limits at their
    /// defaults unless `flags` set them. No drain delay (`--drain-delay-ms 0`) unless `flags`
    /// set one: a test's shutdown or restart need not wait for a load balancer.
    pub async fn start_with_auth_limits(flags: &[&str]) -> Self {
        let data_dir = tempfile::tempdir().expect("create a temporary data dir");
        let mut flags: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
        if !flags.iter().any(|flag| flag == "--drain-delay-ms") {
            flags.extend(["--drain-delay-ms".to_owned(), "0".to_owned()]);
        }
        let scaled = crate::backend::prepare(&mut flags).await;
        let mut hub = Self {
            scaled,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            flags,
            shutdown: None,
            task: None,
        };
        hub.launch().await;
        hub
    }

    /// Starts the hub again on its port (a fresh one the first time), data dir and flags.
    pub async fn launch(&mut self) {
        assert!(self.task.is_none(), "the hub is already running");
        let listener = TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|err| panic!("bind {}: {err}", self.addr));
        self.addr = listener.local_addr().expect("listener address");
        let metrics = TcpListener::bind(self.metrics_addr)
            .await
            .unwrap_or_else(|err| panic!("bind {}: {err}", self.metrics_addr));
        self.metrics_addr = metrics.local_addr().expect("metrics listener address");
        let data_dir = self.data_dir.path().to_str().expect("UTF-8 temp path");
        let listen = self.addr.to_string();
        let mut args = vec![
            "switchboard-hub",
            "--data-dir",
            data_dir,
            "--listen",
            &listen,
        ];
        args.extend(self.flags.iter().map(String::as_str));
        let config = Config::try_parse_from(&args).expect("hub flags parse");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender (the hub handle went away) also means "shut down".
            let _ = rx.await;
        };
        self.task = Some(tokio::spawn(switchboard_hub::run_with_metrics(
            listener,
            Some(metrics),
            config,
            shutdown,
        )));
        self.shutdown = Some(tx);
    }

    /// Shuts down and starts again on the same data dir, flags and port, so that existing
    /// [`Api`] handles and URLs keep working.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        self.launch().await;
    }

    /// Signals shutdown and waits until `run` has returned (sockets closed with 1012, storage
    /// closed). Panics if `run` failed. Does nothing when stopped.
    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(SHUTDOWN_WAIT, task)
                .await
                .expect("the hub shuts down in time")
                .expect("the hub task does not panic");
            result.expect("switchboard_hub::run returns Ok");
        }
    }

    /// The address it listens on (kept across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/metrics`: the metrics listener (not the public port).
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_addr)
    }

    /// The separate auth node's metrics URL (scaled backend); `None` when auth is embedded
    /// (its metrics are on [`metrics_url`](Self::metrics_url)).
    pub fn auth_metrics_url(&self) -> Option<String> {
        self.scaled
            .as_ref()
            .map(|env| format!("http://{}/metrics", env.auth_metrics_addr))
    }

    /// `http://127.0.0.1:PORT`: the page and the REST API.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// `ws://127.0.0.1:PORT/v1/echo`.
    pub fn echo_url(&self) -> String {
        format!("ws://{}/v1/echo", self.addr)
    }

    /// An anonymous REST handle.
    pub fn api(&self) -> Api {
        Api::new(&self.http_url())
    }

    /// A REST handle logged in as `username` (a session of its own).
    ///
    /// # Panics
    /// If the login fails.
    pub async fn login(&self, username: &str, password: &str) -> Api {
        let api = self.api();
        let tokens = api.login(username, password).await.expect("login");
        api.with_token(&tokens.access_token)
    }

    /// The hub's data directory (the embedded auth's `auth.db` is in it).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// The data directory of the process that runs auth (and so sends the mails: its
    /// `outbox/`): the hub's when embedded, the auth node's when scaled.
    pub fn auth_data_dir(&self) -> &std::path::Path {
        match &self.scaled {
            Some(env) => env.auth_dir.path(),
            None => self.data_dir(),
        }
    }

    /// With the scaled backend, the database the hub and its auth node share.
    pub fn database_url(&self) -> Option<&str> {
        self.scaled.as_ref().map(|env| env.db.url.as_str())
    }

    /// Makes `username` an admin as an operator does, with the `admin promote` command on this
    /// hub's accounts (its data dir, or the auth node's database with the scaled backend). The
    /// role reaches tokens issued from then on.
    ///
    /// # Panics
    /// If the command fails (e.g. no such user).
    pub async fn promote(&self, username: &str) {
        let at = switchboard_auth::admin::StoreLocation {
            data_dir: self.data_dir(),
            database_url: self.database_url(),
        };
        let promote = switchboard_auth::admin::AdminCommand::Promote {
            username: username.to_owned(),
        };
        switchboard_auth::admin::run(&promote, at, &mut std::io::empty())
            .await
            .expect("admin promote");
    }
}

impl Drop for InProcessHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
