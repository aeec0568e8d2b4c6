//! Test fixtures: a throwaway database on the machine's PostgreSQL, a private PostgreSQL server
//! that a test may stop and start, and a TCP proxy that can go silent (a network partition).
//!
//! Nothing here touches the shared server beyond creating and dropping its own uniquely named
//! databases.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The machine's shared PostgreSQL (trust auth).
pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const SHARED_ADDR: &str = "127.0.0.1:5432";

/// A client on `url`, its connection driven by a spawned task.
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// A database `sb_test_<uuid>` on the shared server, dropped (`WITH (FORCE)`, so even with
/// connections still open) when this is dropped, panics included.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
        client(ADMIN_URL)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let url = format!("postgres://postgres@{SHARED_ADDR}/{name}");
        Self { name, url }
    }

    /// The URL of this database reached through `addr` (a [`Proxy`]).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a runtime, which cannot be blocked on: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async { client(ADMIN_URL).await.batch_execute(&sql).await })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// A PostgreSQL server of the test's own (initdb in a temp dir, a free port), so that it can be
/// stopped and started. As root, the tools run as the `postgres` user (initdb refuses root).
/// Stopped (immediate mode) when dropped.
pub struct PrivateServer {
    dir: TempDir,
    bin: PathBuf,
    as_postgres: bool,
    pub port: u16,
}

impl PrivateServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0;
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the data dir to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = Self {
            dir,
            bin: bin_dir(),
            as_postgres,
            port,
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

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits (`pg_ctl -w`, bounded by `-t`) until it accepts connections.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c shared_buffers=16MB -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let data = self.data_dir();
        let log = log.to_str().expect("utf-8 path");
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
        .await;
    }

    /// Kills the server as a crash would (`pg_ctl stop -m immediate`): no clean shutdown.
    pub async fn stop_immediately(&self) {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .await;
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

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

    async fn run(&self, tool: &str, args: &[&str]) {
        let out = tokio::process::Command::from(self.command(tool, args))
            .output()
            .await
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("server.log"));
            panic!(
                "{tool} {args:?} failed: {}\n{}\n{}\nserver log: {log:?}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// The newest installed PostgreSQL's `bin` directory (`/usr/lib/postgresql/<major>/bin`).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
        .1
}

/// A TCP relay to the shared PostgreSQL that can go silent: while frozen it accepts and keeps
/// connections but moves no byte either way, as a partitioned network would.
pub struct Proxy {
    pub addr: SocketAddr,
    open: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (open, gate) = watch::channel(true);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(SHARED_ADDR).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (up_read, up_write) = upstream.into_split();
                tokio::spawn(pump(in_read, up_write, gate.clone()));
                tokio::spawn(pump(up_read, in_write, gate.clone()));
            }
        });
        Self { addr, open, accept }
    }

    pub fn freeze(&self) {
        self.open.send_replace(false);
    }

    pub fn thaw(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to` while the gate is open; closes `to` when `from` ends.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut gate: watch::Receiver<bool>) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        if gate.wait_for(|open| *open).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if gate.wait_for(|open| *open).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}
