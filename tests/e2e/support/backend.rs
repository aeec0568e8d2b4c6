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

/// PostgreSQL server used by scaled tests (the machine's shared one).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Redis server used by scaled tests.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// True when the suite runs against PostgreSQL + Redis + a separate auth node.
pub fn scaled() -> bool {
    match std::env::var("SWITCHBOARD_TEST_BACKEND").as_deref() {
        Ok("scaled") => true,
        Ok("embedded") | Err(_) => false,
        Ok(other) => panic!("SWITCHBOARD_TEST_BACKEND must be embedded or scaled, not {other:?}"),
    }
}

/// A uniquely named PostgreSQL database, dropped on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("sb_test_{}", uuid_simple());
        let (client, conn) = tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL at 127.0.0.1:5432");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside a runtime: do the blocking work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&sql).await;
                }
            });
        })
        .join();
    }
}

/// A unique Redis key prefix whose keys are deleted on drop.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new() -> Self {
        Self(format!("sbtest:{}:", uuid_simple()))
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.0);
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(REDIS_URL) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        })
        .join();
    }
}

fn uuid_simple() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The shared services of one scaled test: database, Redis prefix and a running auth node.
pub struct ScaledEnv {
    pub db: TestDatabase,
    pub prefix: RedisPrefix,
    pub auth_addr: SocketAddr,
    _auth_dir: TempDir,
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(auth_flags.iter().cloned());
        let cfg =
            switchboard_auth::node::NodeConfig::try_parse_from(&args).expect("auth flags parse");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            if let Err(e) = switchboard_auth::node::run(listener, cfg, async {
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
            _auth_dir: dir,
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
        ]
    }
}
