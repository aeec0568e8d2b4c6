//! The machine's PostgreSQL and Redis, as a fresh database and a fresh key prefix per test,
//! both removed when the test ends. Absent servers fail the test: nothing is skipped.

use std::net::SocketAddr;

/// PostgreSQL server of the tests (trust authentication, user `postgres`): its maintenance
/// database.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The address of that PostgreSQL server (for a [`crate::Proxy`] in front of it).
pub const PG_ADDR: &str = "127.0.0.1:5432";
/// Redis server of the tests.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The address of that Redis server (for a [`crate::Proxy`] in front of it).
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// A fresh random name part (a UUID without dashes).
fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A client on `url`, its connection driven by a spawned task.
///
/// # Panics
/// If PostgreSQL cannot be reached at `url`.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("PostgreSQL at {url} is needed for this test: {err}"));
    tokio::spawn(conn);
    client
}

/// A uniquely named database (`sb_test_<uuid>`) on the machine's PostgreSQL, created for one
/// test and dropped (`WITH (FORCE)`, so with any connection still open to it) when this guard
/// drops. A drop that fails fails the test, unless it is already failing.
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl TestDatabase {
    /// Creates the database.
    ///
    /// # Panics
    /// If PostgreSQL cannot be reached or refuses.
    pub async fn create() -> Self {
        let name = format!("sb_test_{}", unique());
        connect(PG_ADMIN_URL)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|err| panic!("create database {name}: {err}"));
        let url = format!("postgres://postgres@{PG_ADDR}/{name}");
        Self { name, url }
    }

    /// A plain connection to this database, for assertions on its tables.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// The URL of this database reached through `addr` (a [`crate::Proxy`] in front of
    /// [`PG_ADDR`]).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // WITH (FORCE): a SIGKILLed hub's connections may not be gone yet.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside the test's runtime, where blocking is not allowed: block on a
        // thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let (client, conn) =
                    tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                client.batch_execute(&sql).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// A unique Redis key prefix (`sbtest:<uuid>:`) of one test; its keys are deleted on drop. A
/// delete that fails fails the test, unless it is already failing.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    /// A fresh prefix.
    pub fn new() -> Self {
        Self(format!("sbtest:{}:", unique()))
    }
}

impl Default for RedisPrefix {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.0);
        // A thread of its own: drop may run inside a runtime (see `TestDatabase`).
        let deleted = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(REDIS_URL)?.get_connection()?;
            let keys: Vec<String> =
                redis::Commands::scan_match(&mut conn, &pattern)?.collect::<Result<_, _>>()?;
            for chunk in keys.chunks(500) {
                redis::cmd("DEL").arg(chunk).query::<()>(&mut conn)?;
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
///
/// # Panics
/// If Redis cannot be reached.
pub async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|err| panic!("Redis at {REDIS_URL} is needed for this test: {err}"))
}
