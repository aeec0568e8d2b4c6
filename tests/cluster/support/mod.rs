//! The cluster harness: the real topology from the built binaries on loopback. One auth node
//! (`switchboard-auth`), N hubs (`switchboard-hub`, each on `127.0.0.1:0`, reporting its port),
//! and HAProxy in front of them with the repository's template config, on a fresh PostgreSQL
//! database and a fresh Redis key prefix — on the shared servers, or on servers the test owns
//! ([`ClusterOptions`]). A hub can be stopped with SIGTERM or SIGKILL and started again on its
//! address. Every process is SIGKILLed on drop; a shared database is dropped and shared keys
//! deleted after them.
//!
//! Waits are bounded: events by [`WAIT`] through [`within`], process start-up by [`START_WAIT`]
//! (polling health URLs). When a test fails, the end of every process's log is printed.

pub mod haproxy;
pub mod process;
pub mod traffic;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchboard_client::protocol::rest::{Room, TokenPair};
use switchboard_client::protocol::ws::{Message, ServerFrame};
use switchboard_client::protocol::Seq;
use switchboard_client::{Api, ClientError, Connection, HistoryQuery};
use tempfile::TempDir;

use haproxy::{hub_name, ServerStat};
use process::{binary, Process};
use switchboard_tests::services::{RedisPrefix, TestDatabase, REDIS_URL};

/// Upper bound on one awaited event or reply. Generous: the machine is small and busy.
pub const WAIT: Duration = Duration::from_secs(10);
/// Upper bound on a process coming up (migrations, binding, first health check).
pub const START_WAIT: Duration = Duration::from_secs(30);
/// Interval of the bounded polls of HAProxy's stats.
const STATS_POLL: Duration = Duration::from_millis(50);

/// Password of every test user.
pub const PASSWORD: &str = "correct horse battery";

/// Awaits `fut` for at most `limit`; panics naming `what` when it takes longer.
pub async fn within_for<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Awaits `fut` for at most [`WAIT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    within_for(WAIT, what, fut).await
}

/// A username starting with `prefix`, unique in this process.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The secret the hubs and the auth node share (`--service-token`).
pub const SERVICE_TOKEN: &str = "service-token-of-the-cluster-tests";

/// How to start a [`Cluster`]. `Default` is what [`Cluster::start`] starts: three hubs on a
/// fresh database of the shared PostgreSQL and a fresh key prefix on the shared Redis.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub hubs: usize,
    /// A PostgreSQL database the caller owns (e.g. on a
    /// [`PrivatePostgres`](switchboard_tests::private::PrivatePostgres)); `None`: a fresh
    /// database on the shared server, dropped after the processes.
    pub database_url: Option<String>,
    /// A Redis server the caller owns (e.g. a
    /// [`PrivateRedis`](switchboard_tests::private::PrivateRedis)), used with a fresh prefix;
    /// `None`: the shared server with a fresh prefix, whose keys are deleted after the processes.
    pub redis_url: Option<String>,
    /// `--shutdown-grace-ms` of every hub: how long a SIGTERMed hub waits for its connections.
    pub shutdown_grace: Duration,
    /// `--drain-delay-ms` of every hub: how long a SIGTERMed hub answers `/readyz` with 503
    /// before it closes its connections. Zero by default, so that a stop is quick; the drain
    /// tests set it.
    pub drain_delay: Duration,
    /// More flags for every hub (e.g. `--max-connections-per-ip 2`).
    pub hub_flags: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            hubs: 3,
            database_url: None,
            redis_url: None,
            shutdown_grace: Duration::from_secs(1),
            drain_delay: Duration::ZERO,
            hub_flags: Vec::new(),
        }
    }
}

/// The running topology. Field order is drop order: processes first, then their data.
pub struct Cluster {
    haproxy: Process,
    hubs: Vec<Process>,
    auth: Process,
    /// The auth node's command line and address, to start it again after a stop.
    auth_args: Vec<String>,
    auth_addr: SocketAddr,
    /// Each hub's command line, to start it again (on the same address) after a stop.
    hub_args: Vec<Vec<String>>,
    hub_addrs: Vec<SocketAddr>,
    lb_addr: SocketAddr,
    stats_addr: SocketAddr,
    /// The database of the auth node and the hubs (accounts in schema `auth`).
    database_url: String,
    _db: Option<TestDatabase>,
    _prefix: Option<RedisPrefix>,
    /// Logs, configs and data dirs; kept (and named) when a test fails.
    dir: Option<TempDir>,
}

impl Cluster {
    /// Starts an auth node, `hubs` hub nodes and HAProxy on the shared servers, and waits until
    /// HAProxy has seen every hub pass a health check.
    pub async fn start(hubs: usize) -> Self {
        Self::start_with(ClusterOptions {
            hubs,
            ..ClusterOptions::default()
        })
        .await
    }

    /// [`Cluster::start`] with the servers and settings of `options`.
    pub async fn start_with(options: ClusterOptions) -> Self {
        let hubs = options.hubs;
        let (db, database_url) = match options.database_url {
            Some(url) => (None, url),
            None => {
                let db = TestDatabase::create().await;
                let url = db.url.clone();
                (Some(db), url)
            }
        };
        let (prefix, redis_url, redis_prefix) = match options.redis_url {
            Some(url) => {
                let prefix = format!("sbtest:{}:", uuid::Uuid::new_v4().simple());
                (None, url, prefix)
            }
            None => {
                let prefix = RedisPrefix::new();
                let name = prefix.0.clone();
                (Some(prefix), REDIS_URL.to_owned(), name)
            }
        };
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = |name: &str| {
            dir.path()
                .join(name)
                .to_str()
                .expect("UTF-8 path")
                .to_owned()
        };

        let auth_args = flags(&[
            ("--listen", "127.0.0.1:0"),
            // The default metrics address is fixed; every node here gets a port of its own.
            ("--metrics-listen", "127.0.0.1:0"),
            ("--data-dir", &path("auth")),
            ("--database-url", &database_url),
            ("--redis-url", &redis_url),
            ("--redis-prefix", &redis_prefix),
            // The hubs forward the client's address; every test client is 127.0.0.1, so the
            // login and registration limits are lifted (tested in the e2e suite).
            ("--trusted-proxies", "127.0.0.1"),
            // A SIGTERMed auth node stops at once (the hubs' drain is what the tests time).
            ("--drain-delay-ms", "0"),
            ("--service-token", SERVICE_TOKEN),
            ("--hash-queue", "100000"),
            ("--login-account-rate-per-sec", "100000"),
            ("--login-account-burst", "100000"),
            ("--login-ip-rate-per-sec", "100000"),
            ("--login-ip-burst", "100000"),
            ("--register-ip-rate-per-sec", "100000"),
            ("--register-ip-burst", "100000"),
        ]);
        let (mut auth, auth_addr) =
            Process::spawn("auth", &binary("switchboard-auth"), &auth_args, dir.path());
        let auth_addr = auth.await_ready(auth_addr).await;
        auth.await_healthy(&format!("http://{auth_addr}/readyz"), START_WAIT)
            .await;

        // HAProxy's address is chosen first: it is the hubs' public URL (browser origins). Its
        // two ports stay bound here until HAProxy starts, so that no `127.0.0.1:0` bind in the
        // meantime (the hubs' listeners, any test's sockets) is given one of them.
        let hold = |what| {
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{what}: {e}"))
        };
        let (lb_hold, stats_hold) = (hold("HAProxy's port"), hold("HAProxy's stats port"));
        let lb_addr = lb_hold.local_addr().expect("a bound address");
        let stats_addr = stats_hold.local_addr().expect("a bound address");
        let public_url = format!("http://{lb_addr}");

        // All hubs at once: they race for the migration lock, as real nodes do.
        let auth_url = format!("http://{auth_addr}");
        let grace = options.shutdown_grace.as_millis().to_string();
        let drain = options.drain_delay.as_millis().to_string();
        let mut procs = Vec::new();
        let mut ready = Vec::new();
        let mut hub_args = Vec::new();
        for i in 0..hubs {
            let name = hub_name(i);
            let mut args = flags(&[
                ("--listen", "127.0.0.1:0"),
                ("--metrics-listen", "127.0.0.1:0"),
                ("--data-dir", &path(&name)),
                ("--node-id", &name),
                ("--database-url", &database_url),
                ("--redis-url", &redis_url),
                ("--redis-prefix", &redis_prefix),
                ("--auth-url", &auth_url),
                ("--service-token", SERVICE_TOKEN),
                // The tests send far faster than a person; the limiter is tested elsewhere.
                ("--rate-per-sec", "10000"),
                ("--rate-burst", "10000"),
                ("--user-rate-per-sec", "10000"),
                ("--user-rate-burst", "10000"),
                // Several clusters may run at once on one PostgreSQL (max_connections 100).
                ("--db-pool-size", "4"),
                ("--shutdown-grace-ms", &grace),
                ("--drain-delay-ms", &drain),
                // HAProxy connects from PROXY_SOURCE with a PROXY header (the template's
                // `source`); tests that talk to a hub directly come from 127.0.0.1.
                ("--proxy-protocol-from", haproxy::PROXY_SOURCE),
                ("--public-url", &public_url),
            ]);
            args.extend(options.hub_flags.iter().cloned());
            let (process, addr) =
                Process::spawn(&name, &binary("switchboard-hub"), &args, dir.path());
            procs.push(process);
            ready.push(addr);
            hub_args.push(args);
        }
        let mut hub_addrs = Vec::new();
        for (process, addr) in procs.iter_mut().zip(ready) {
            let addr = process.await_ready(addr).await;
            process
                .await_healthy(&format!("http://{addr}/readyz"), START_WAIT)
                .await;
            hub_addrs.push(addr);
        }

        let config = dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            haproxy::render_config(lb_addr, stats_addr, &hub_addrs),
        )
        .expect("write haproxy.cfg");
        let args = [
            "-db".to_owned(),
            "-f".to_owned(),
            config.to_str().expect("UTF-8").to_owned(),
        ];
        drop((lb_hold, stats_hold));
        let (mut haproxy, _) = Process::spawn(
            "haproxy",
            std::path::Path::new("haproxy"),
            &args,
            dir.path(),
        );
        haproxy
            .await_healthy(&format!("http://{stats_addr}/healthz"), START_WAIT)
            .await;

        let cluster = Cluster {
            haproxy,
            hubs: procs,
            auth,
            auth_args,
            auth_addr,
            hub_args,
            hub_addrs,
            lb_addr,
            stats_addr,
            database_url: database_url.clone(),
            _db: db,
            _prefix: prefix,
            dir: Some(dir),
        };
        cluster
            .await_servers("every hub to pass HAProxy's health check", |servers| {
                servers.len() == hubs
                    && servers
                        .iter()
                        .all(|s| s.status == "UP" && s.check_status == "L7OK")
            })
            .await;
        cluster
    }

    /// The number of hubs.
    pub fn hub_count(&self) -> usize {
        self.hub_addrs.len()
    }

    /// `http://` URL of hub `i` (0-based), bypassing HAProxy.
    pub fn hub_http(&self, i: usize) -> String {
        format!("http://{}", self.hub_addrs[i])
    }

    /// `ws://.../v1/ws` of hub `i`, bypassing HAProxy.
    pub fn hub_ws(&self, i: usize) -> String {
        format!("ws://{}/v1/ws", self.hub_addrs[i])
    }

    /// `http://` URL of HAProxy: what clients of the cluster use.
    pub fn lb_http(&self) -> String {
        format!("http://{}", self.lb_addr)
    }

    /// `ws://.../v1/ws` through HAProxy.
    pub fn lb_ws(&self) -> String {
        format!("ws://{}/v1/ws", self.lb_addr)
    }

    /// The hubs as HAProxy sees them now.
    pub async fn servers(&self) -> Vec<ServerStat> {
        haproxy::servers(self.stats_addr).await
    }

    /// Polls HAProxy's stats (bounded by [`WAIT`]) until `done` holds; returns that view.
    pub async fn await_servers(
        &self,
        what: &str,
        done: impl Fn(&[ServerStat]) -> bool,
    ) -> Vec<ServerStat> {
        let deadline = Instant::now() + WAIT;
        loop {
            let servers = self.servers().await;
            if done(&servers) {
                return servers;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; HAProxy reports {servers:?}"
            );
            tokio::time::sleep(STATS_POLL).await;
        }
    }

    /// The index of the hub that holds HAProxy's only client session: with no other client of
    /// HAProxy open, this tells which node a connection made through it landed on.
    pub async fn sole_session_hub(&self) -> usize {
        let servers = self
            .await_servers("exactly one session through HAProxy", |servers| {
                servers.iter().map(|s| s.sessions).sum::<u64>() == 1
            })
            .await;
        let name = &servers
            .iter()
            .find(|s| s.sessions == 1)
            .expect("one server with the session")
            .name;
        (0..self.hub_addrs.len())
            .find(|&i| hub_name(i) == *name)
            .expect("a known hub")
    }

    /// Kills hub `i` with SIGKILL (no shutdown, no flush) and reaps it.
    pub fn kill_hub(&mut self, i: usize) {
        let pid = self.hubs[i].id();
        self.hubs[i].kill();
        eprintln!("killed {} (pid {pid:?}) with SIGKILL", hub_name(i));
    }

    /// Stops hub `i` with SIGTERM (a graceful drain) and waits for it to exit, for at most
    /// `limit`. Returns its exit status and how long it took.
    pub async fn terminate_hub(&mut self, i: usize, limit: Duration) -> (ExitStatus, Duration) {
        let pid = self.hubs[i].id();
        let outcome = self.hubs[i].terminate(limit).await;
        eprintln!(
            "{} (pid {pid:?}) exited after SIGTERM in {:?} ({})",
            hub_name(i),
            outcome.1,
            outcome.0
        );
        outcome
    }

    /// Sends hub `i` SIGTERM without waiting: it drains (see [`ClusterOptions::drain_delay`]),
    /// then closes its connections; [`Cluster::await_hub_exit`] waits for the end.
    pub fn sigterm_hub(&mut self, i: usize) {
        self.hubs[i].send_term();
        eprintln!("sent SIGTERM to {}", hub_name(i));
    }

    /// Waits (bounded by `limit`) for hub `i` to exit after [`Cluster::sigterm_hub`].
    pub async fn await_hub_exit(&mut self, i: usize, limit: Duration) -> ExitStatus {
        self.hubs[i].await_exit(limit).await
    }

    /// `http://` URL of the auth node.
    pub fn auth_http(&self) -> String {
        format!("http://{}", self.auth_addr)
    }

    /// Starts hub `i` again, after it exited, on the same address and with the same settings,
    /// and waits until it answers its health URL (HAProxy may not have seen it yet).
    pub async fn restart_hub(&mut self, i: usize) {
        let addr = self.hub_addrs[i].to_string();
        let mut args = self.hub_args[i].clone();
        let listen = args
            .iter()
            .position(|arg| arg == "--listen")
            .expect("a --listen flag")
            + 1;
        args[listen] = addr;
        let name = hub_name(i);
        let dir = self
            .dir
            .as_ref()
            .expect("the run dir lives as long as the cluster");
        let (mut process, ready) =
            Process::spawn(&name, &binary("switchboard-hub"), &args, dir.path());
        let bound = process.await_ready(ready).await;
        assert_eq!(bound, self.hub_addrs[i], "{name} is back on its address");
        process
            .await_healthy(&format!("http://{bound}/healthz"), START_WAIT)
            .await;
        self.hubs[i] = process;
        eprintln!("{name} started again on {bound}");
    }

    /// Stops the auth node with SIGKILL and reaps it: its address refuses connections until
    /// [`Cluster::restart_auth`].
    pub fn kill_auth(&mut self) {
        let pid = self.auth.id();
        self.auth.kill();
        eprintln!("killed the auth node (pid {pid:?}) with SIGKILL");
    }

    /// Starts the auth node again, after a stop, on the same address, data directory (so the
    /// same signing key) and database, and waits until it answers its health URL.
    pub async fn restart_auth(&mut self) {
        let mut args = self.auth_args.clone();
        let listen = args
            .iter()
            .position(|arg| arg == "--listen")
            .expect("a --listen flag")
            + 1;
        args[listen] = self.auth_addr.to_string();
        let dir = self
            .dir
            .as_ref()
            .expect("the run dir lives as long as the cluster");
        let (mut process, ready) =
            Process::spawn("auth", &binary("switchboard-auth"), &args, dir.path());
        let bound = process.await_ready(ready).await;
        assert_eq!(
            bound, self.auth_addr,
            "the auth node is back on its address"
        );
        process
            .await_healthy(&format!("http://{bound}/healthz"), START_WAIT)
            .await;
        self.auth = process;
        eprintln!("the auth node started again on {bound}");
    }

    /// Makes `username` an admin as an operator does: `admin promote` on the cluster's accounts
    /// (the auth node's database). Tokens issued from then on carry the role.
    pub async fn promote(&self, username: &str) {
        let promote = switchboard_auth::admin::AdminCommand::Promote {
            username: username.to_owned(),
        };
        let data_dir = self
            .dir
            .as_ref()
            .expect("the cluster's dir")
            .path()
            .join("auth");
        let at = switchboard_auth::admin::StoreLocation {
            data_dir: &data_dir,
            database_url: Some(&self.database_url),
        };
        switchboard_auth::admin::run(&promote, at, &mut std::io::empty())
            .await
            .expect("admin promote");
    }

    /// Runs `switchboard-hub api-key ARGS` on the cluster's hub store (its PostgreSQL
    /// database), as an operator does; its standard output.
    ///
    /// # Panics
    /// If the command fails.
    pub fn api_key(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(binary("switchboard-hub"))
            .arg("api-key")
            .args(args)
            .args(["--database-url", &self.database_url])
            .env_remove("DATABASE_URL")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run switchboard-hub api-key");
        assert!(out.status.success(), "api-key {args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// Registers and logs in a new user through the HTTP API at `base` (a hub or HAProxy).
    pub async fn user(&self, prefix: &str, base: &str) -> TestUser {
        let api = Api::new(base);
        let username = unique_name(prefix);
        api.register(&username, &format!("{username}@example.com"), PASSWORD)
            .await
            .unwrap_or_else(|err| panic!("register {username} at {base}: {err}"));
        let tokens = api.login(&username, PASSWORD).await.expect("login");
        TestUser {
            api: api.with_token(&tokens.access_token),
            username,
            tokens,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for process in std::iter::once(&self.auth)
                .chain(&self.hubs)
                .chain(std::iter::once(&self.haproxy))
            {
                eprintln!(
                    "--- end of the {} log\n{}",
                    process.name,
                    process.log_tail(30)
                );
            }
            if let Some(dir) = self.dir.take() {
                eprintln!("--- the whole logs are kept in {}", dir.keep().display());
            }
        }
    }
}

/// `--flag value` pairs as command-line arguments.
fn flags(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect()
}

/// A registered, logged-in user.
pub struct TestUser {
    pub username: String,
    pub tokens: TokenPair,
    /// REST handle on the node the user registered through, with the access token.
    pub api: Api,
}

impl TestUser {
    pub fn token(&self) -> &str {
        &self.tokens.access_token
    }

    /// The same user's REST handle on another node (`base`).
    pub fn api_at(&self, base: &str) -> Api {
        Api::new(base).with_token(self.token())
    }

    /// A private group room with `members` added.
    pub async fn room_with(&self, members: &[&TestUser]) -> Room {
        let room = self
            .api
            .create_room(&unique_name("room"), false)
            .await
            .expect("create room");
        for member in members {
            self.api
                .add_member(&room.id, &member.username)
                .await
                .expect("add member");
        }
        room
    }
}

/// A WebSocket to `ws_url` authenticated as `token`, after `welcome`.
pub async fn connect(ws_url: &str, token: &str) -> Connection {
    let (conn, _welcome) = within(
        &format!("welcome from {ws_url}"),
        Connection::connect(ws_url, Some(token)),
    )
    .await
    .unwrap_or_else(|err| panic!("connect to {ws_url}: {err}"));
    conn
}

/// The next `message` event for `room` on `conn` (other events are skipped).
pub async fn next_message(conn: &mut Connection, room: &str) -> Message {
    within("a message event", async {
        loop {
            match conn.next_event().await {
                Ok(ServerFrame::Message(message)) if message.room == room => return message,
                Ok(_) => {}
                Err(err) => panic!("expected a message event, got {err}"),
            }
        }
    })
    .await
}

/// Reads until the server closes `conn` within `limit`; returns the close code (`None`: no
/// close frame).
pub async fn closed_within(conn: &mut Connection, limit: Duration) -> Option<u16> {
    within_for(limit, "the server to close the connection", async {
        loop {
            match conn.next_event().await {
                Ok(_) => {}
                Err(ClientError::Closed { code, .. }) => return code,
                Err(other) => panic!("expected a close, got {other}"),
            }
        }
    })
    .await
}

/// The room's whole history from the node at `base`, ascending, paged by `after`.
pub async fn full_history(api: &Api, room: &str) -> Vec<Message> {
    let mut all: Vec<Message> = Vec::new();
    for _page in 0..1_000 {
        let after = Some(all.last().map_or(0, |m| m.seq));
        let query = HistoryQuery {
            after,
            before: None,
            limit: Some(100),
        };
        let page = within("a history page", api.messages(room, query))
            .await
            .expect("history page");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
    panic!("history of {room} did not end within 1000 pages");
}

/// The seqs of `messages`.
pub fn seqs(messages: &[Message]) -> Vec<Seq> {
    messages.iter().map(|m| m.seq).collect()
}
