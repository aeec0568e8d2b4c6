//! Servers of a test's own, for tests that stop, restart or pause them: a private PostgreSQL
//! ([`PrivatePostgres`]) and a private Redis ([`PrivateRedis`]), each on a free loopback port
//! with its data in a temp dir. The machine's shared servers (see [`crate::services`]) are never
//! touched. Both are stopped with SIGKILL-like force when dropped, panics included.
//!
//! Every wait is bounded: [`START_LIMIT`] for a server to come up, [`POLL`] between checks.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use tempfile::TempDir;

/// Upper bound on a server coming up (PostgreSQL's crash recovery after an immediate stop
/// included) on a small, busy machine.
pub const START_LIMIT: Duration = Duration::from_secs(30);
/// Interval of the bounded polls for a port to answer or a process to exit.
const POLL: Duration = Duration::from_millis(20);

/// A loopback port that was free a moment ago (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Sends `signal` to `child`.
///
/// # Panics
/// If the signal cannot be sent (the process was reaped already).
pub fn signal(child: &Child, signal: Signal) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a child's pid is a positive i32");
    rustix::process::kill_process(pid, signal)
        .unwrap_or_else(|err| panic!("send {signal:?} to pid {pid:?}: {err}"));
}

/// A PostgreSQL server of the test's own: `initdb` into a temp dir (trust authentication, user
/// `postgres`), then `pg_ctl` on a free port. As root, the tools run as the `postgres` OS user
/// (`initdb` refuses root). Stopped in immediate mode when dropped.
pub struct PrivatePostgres {
    dir: TempDir,
    /// The `bin` directory of the newest installed PostgreSQL.
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
}

impl PrivatePostgres {
    /// Creates the cluster and starts the server; returns once it accepts connections.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let as_postgres = std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0;
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(status.success(), "chown the data dir to postgres");
        }
        let server = Self {
            dir,
            bin: postgres_bin_dir(),
            as_postgres,
            port: free_port(),
        };
        let data = server.data_dir();
        server
            .run(
                "initdb",
                &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"],
            )
            .await;
        server.start_again().await;
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name`; returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let admin = self.url("postgres");
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| panic!("connect to {admin}: {err}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|err| panic!("create database {name}: {err}"));
        self.url(name)
    }

    /// Starts the server (again) on the same port and data; returns once it accepts
    /// connections (`pg_ctl -w`, bounded by `-t`).
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c shared_buffers=16MB -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        let data = self.data_dir();
        let log = self.log_path();
        let log = log.to_str().expect("UTF-8 path");
        let limit = START_LIMIT.as_secs().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", log, "-o", &options, "-w", "-t", &limit, "start",
            ],
        )
        .await;
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`): no checkpoint, every
    /// connection cut; the next start runs crash recovery.
    pub async fn stop_immediately(&self) {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .await;
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// `tool args` from the server's `bin` directory, as `postgres` when we are root.
    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(exe);
            cmd
        } else {
            Command::new(exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// Runs a tool to completion; panics with its output and the server log if it fails.
    async fn run(&self, tool: &str, args: &[&str]) {
        let out = tokio::process::Command::from(self.command(tool, args))
            .output()
            .await
            .unwrap_or_else(|err| panic!("run {tool}: {err}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}\n{}\nend of the server log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(30)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The newest installed PostgreSQL's `bin` directory (`/usr/lib/postgresql/<major>/bin`).
fn postgres_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
        .1
}

/// A Redis server of the test's own: `redis-server` on a free loopback port, nothing persisted
/// (`--save "" --appendonly no`), so a restart starts empty, as a crashed cache would. It can be
/// killed and started again on the same port, or paused (SIGSTOP: the process hangs, its
/// sockets stay open) and resumed. Killed when dropped.
pub struct PrivateRedis {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts the server; returns once it answers `PING`.
    pub async fn start() -> Self {
        let mut redis = Self {
            dir: tempfile::tempdir().expect("a temp dir"),
            port: free_port(),
            child: None,
        };
        redis.start_again().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)); returns once it
    /// answers `PING`.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is running already");
        let log = self.dir.path().join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("start redis-server: {err}"));
        self.child = Some(child);
        self.await_ping().await;
    }

    /// Kills the server with SIGKILL (a crash: no shutdown, every connection reset) and reaps
    /// it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server with SIGSTOP: its sockets stay open and the kernel keeps accepting
    /// and buffering, but nothing is answered until [`resume`](Self::resume).
    pub fn pause(&self) {
        signal(self.running(), Signal::STOP);
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        signal(self.running(), Signal::CONT);
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.path().join("redis.log"), lines)
    }

    fn running(&self) -> &Child {
        self.child.as_ref().expect("redis-server is running")
    }

    /// Polls `PING` until `PONG`, within [`START_LIMIT`]; panics (with the log) if the server
    /// exits or the time runs out.
    async fn await_ping(&mut self) {
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let pong = async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                redis::cmd("PING").query_async::<String>(&mut conn).await
            };
            if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(1), pong).await {
                if reply == "PONG" {
                    return;
                }
            }
            let child = self.child.as_mut().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "redis-server exited ({status}); end of its log:\n{}",
                    self.log_tail(20)
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within {START_LIMIT:?}; end of its log:\n{}",
                self.log_tail(20)
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        self.kill();
    }
}

/// The last `lines` lines of the file at `path` (empty if unreadable).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `child` until it exits, for at most `limit`; returns its status, or `None` if it is
/// still running then. The child is reaped when it has exited.
pub async fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}
