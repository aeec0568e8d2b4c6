//! The machine's PostgreSQL and Redis, as a fresh database and a fresh key prefix per test,
//! both removed when the test ends. Absent servers fail the test: nothing is skipped.

/// PostgreSQL server of the tests (trust authentication, user `postgres`).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Redis server of the tests.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A uniquely named database (`sb_test_<uuid>`), dropped (with its connections) on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| panic!("connect to PostgreSQL at {PG_ADMIN_URL}: {err}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|err| panic!("create database {name}: {err}"));
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // WITH (FORCE): a SIGKILLed hub's connections may not be gone yet.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside the test's runtime: block on a thread with a runtime of its own.
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
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A unique Redis key prefix (`sbtest:<uuid>:`); its keys are deleted on drop.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new() -> Self {
        Self(format!("sbtest:{}:", uuid::Uuid::new_v4().simple()))
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
        let _ = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(REDIS_URL)?.get_connection()?;
            let keys: Vec<String> =
                redis::Commands::scan_match(&mut conn, &pattern)?.collect::<Result<_, _>>()?;
            for chunk in keys.chunks(500) {
                redis::cmd("DEL").arg(chunk).query::<()>(&mut conn)?;
            }
            Ok(())
        })
        .join();
    }
}
