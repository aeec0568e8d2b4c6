//! The machine's PostgreSQL and Redis, one fresh database and key prefix per test, and a TCP
//! proxy that can cut a client off from Redis. Nothing is skipped when a server is missing:
//! the test fails, saying which.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// PostgreSQL maintenance database of the machine's server (user `postgres`, trust auth).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The machine's Redis.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Its address, for the proxy.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A PostgreSQL database `sb_test_<uuid>`, created for one test and dropped (with any
/// connections still open to it) when this guard drops.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let name = format!("sb_test_{}", unique());
        let client = admin().await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Self { name, url }
    }

    /// A plain connection to this database, for assertions on its tables.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a runtime, where blocking is not allowed: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async { admin().await.batch_execute(&sql).await })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed for this test: {e}"));
    tokio::spawn(conn);
    client
}

async fn admin() -> tokio_postgres::Client {
    connect(PG_ADMIN_URL).await
}

/// A Redis key prefix `sbtest:auth:<uuid>:` of one test; its keys are deleted on drop.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new() -> Self {
        Self(format!("sbtest:auth:{}:", unique()))
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.0);
        let deleted = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(REDIS_URL)?.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
            }
            Ok(())
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not delete the Redis keys {}*: {deleted:?}", self.0);
        }
    }
}

/// A multiplexed connection to the machine's Redis.
pub async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379 is needed for this test")
}

/// A TCP proxy on `127.0.0.1:0` in front of `target`, which can cut every connection and
/// refuse new ones ([`Proxy::cut`]) until [`Proxy::restore`]: Redis "going away" for one client
/// without disturbing anyone else using the shared server.
pub struct Proxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target: SocketAddr = target.parse().unwrap();
        let (up, _) = watch::channel(true);
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (up_rx, tasks) = (up.subscribe(), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !*up_rx.borrow() {
                    continue; // dropped: the connection is closed at once
                }
                let mut down = up_rx.clone();
                let task = tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
                tasks.lock().unwrap().push(task);
            }
        });
        Self {
            addr,
            up,
            accept,
            conns,
        }
    }

    /// `redis://` URL of the proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Closes every proxied connection (returning once they are closed) and refuses new ones.
    pub async fn cut(&self) {
        self.up.send_replace(false);
        let open: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for conn in open {
            let _ = conn.await;
        }
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// Aborts a task (e.g. a `redis_feed::follow` follower) when dropped.
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
