//! Hardening of the auth routes and the data dir (issue 10, items 3, 4, 11 and 15):
//! - login bursts do not inflate memory, and excess concurrent logins get 503 + Retry-After;
//! - failed logins per account, logins and registrations per client address are throttled (429
//!   with Retry-After), with the real default limits, and a client-supplied `X-Forwarded-For`
//!   changes nothing;
//! - the data dir is 0700 and its files 0600 under umask 022;
//! - malformed e-mail addresses are refused.
//!
//! The memory and file-mode tests spawn the real `switchboard-hub` binary (embedded; RSS is
//! read from `/proc/<pid>/status`). The others run on the suite's backend; with the scaled one
//! the login flags go to the auth node and the hub forwards the client's address to it.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use switchboard_tests::binary::{binary, rss_bytes};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::support::{unique_name, within, within_for, TestServer, PASSWORD};

/// An HTTP answer, reduced to what these tests check.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
    /// The error body's code.
    code: Option<String>,
}

/// POSTs `body` to `base` + `path`, with `X-Forwarded-For: xff` if given.
async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
    xff: Option<&str>,
) -> Reply {
    let mut req = client.post(format!("{base}{path}")).json(&body);
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().await.expect("the hub answers");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"));
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    let code = json["error"]["code"].as_str().map(str::to_owned);
    Reply {
        status,
        retry_after,
        code,
    }
}

/// A client that never reuses a connection idle for longer than a second: the hub closes idle
/// keep-alive connections after `--keep-alive-timeout-ms` (5 s), and a request sent on one just
/// as it closes fails (`IncompleteMessage`) — a race of the client's pool, not of the hub.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

async fn login(base: &str, username: &str, password: &str, xff: Option<&str>) -> Reply {
    let body = json!({ "username": username, "password": password });
    post(&client(), base, "/v1/auth/login", body, xff).await
}

async fn register(base: &str, username: &str, email: &str, xff: Option<&str>) -> Reply {
    let body = json!({ "username": username, "email": email, "password": PASSWORD });
    post(&client(), base, "/v1/auth/register", body, xff).await
}

/// Asserts a 429 `rate_limited` whose Retry-After is between 1 and `max_secs`; returns it.
fn assert_rate_limited(reply: &Reply, max_secs: u64) -> u64 {
    assert_eq!(reply.status, 429, "{reply:?}");
    assert_eq!(reply.code.as_deref(), Some("rate_limited"), "{reply:?}");
    let wait = reply.retry_after.expect("429 has Retry-After");
    assert!((1..=max_secs).contains(&wait), "{reply:?}");
    wait
}

// ---- item 3: memory and the hash queue -------------------------------------------------------

/// Bound on the RSS growth of a hub after 5 bursts of 100 concurrent bad logins (the issue's
/// figure; before the fix it grew by ~900 MiB after one burst).
const MAX_RSS_GROWTH_KIB: u64 = 200 * 1024;
const BURSTS: usize = 5;
const BURST_LOGINS: usize = 100;

#[tokio::test]
async fn login_bursts_leave_hub_memory_bounded() {
    // Every login is hashed: the address, account and queue limits are lifted.
    let hub = HubProcess::spawn(&[
        "--hash-queue",
        "100000",
        "--login-ip-rate-per-sec",
        "100000",
        "--login-ip-burst",
        "100000",
        "--login-account-rate-per-sec",
        "100000",
        "--login-account-burst",
        "100000",
    ])
    .await;
    let start = hub.rss_kib();
    let client = client();
    for burst in 0..BURSTS {
        let logins = (0..BURST_LOGINS).map(|i| {
            let body =
                json!({ "username": format!("nobody{burst}x{i}"), "password": "wrong password" });
            post(&client, &hub.base, "/v1/auth/login", body, None)
        });
        let replies = within_for(
            Duration::from_secs(120),
            "a burst of logins",
            join_all(logins),
        )
        .await;
        for reply in replies {
            assert_eq!(reply.status, 401, "{reply:?}");
        }
    }
    let end = hub.rss_kib();
    let growth = end.saturating_sub(start);
    eprintln!("hub RSS: {start} KiB at start, {end} KiB after {BURSTS} bursts of {BURST_LOGINS} bad logins (+{growth} KiB)");
    assert!(
        growth < MAX_RSS_GROWTH_KIB,
        "RSS grew by {growth} KiB (from {start} to {end}), over {MAX_RSS_GROWTH_KIB} KiB"
    );
}

#[tokio::test]
async fn excess_concurrent_logins_get_503_with_retry_after_and_a_later_login_works() {
    let server = TestServer::start_with(&["--hash-concurrency", "1", "--hash-queue", "2"]).await;
    let base = server.http_url();
    let user = server.user("queued").await;
    let client = client();
    let logins = (0..60).map(|i| {
        let body = json!({ "username": format!("nobody{i}"), "password": "wrong password" });
        post(&client, &base, "/v1/auth/login", body, None)
    });
    let replies = within_for(Duration::from_secs(60), "60 logins", join_all(logins)).await;
    let mut refused = 0;
    for reply in &replies {
        match reply.status {
            401 => {}
            503 => {
                refused += 1;
                assert_eq!(reply.code.as_deref(), Some("unavailable"), "{reply:?}");
                assert_eq!(reply.retry_after, Some(1), "{reply:?}");
            }
            _ => panic!("{reply:?}"),
        }
    }
    assert!(
        refused > 0,
        "one slot and a queue of 2 cannot take 60 logins at once"
    );
    let ok = within(
        "a login after the burst",
        login(&base, &user.username, PASSWORD, None),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

// ---- item 4: throttling --------------------------------------------------------------------

#[tokio::test]
async fn failed_logins_are_throttled_per_account_with_the_default_limits() {
    let server = TestServer::start_with_auth_limits(&[]).await;
    let base = server.http_url();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    for _ in 0..3 {
        let reply = login(&base, &alice.username, "wrong password", None).await;
        assert_eq!(reply.status, 401, "{reply:?}");
    }
    // The fourth failure in a row is over the burst of 3 (then about one per 6 s).
    assert_rate_limited(
        &login(&base, &alice.username, "wrong password", None).await,
        7,
    );
    // Locked: even the right password waits.
    assert_rate_limited(&login(&base, &alice.username, PASSWORD, None).await, 7);
    // Another account is not affected.
    let reply = login(&base, &bob.username, PASSWORD, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn a_correct_password_works_once_the_account_throttle_lifts() {
    // One failure allowed, then one more every 250 ms.
    let server = TestServer::start_with_auth_limits(&[
        "--login-account-rate-per-sec",
        "4",
        "--login-account-burst",
        "1",
    ])
    .await;
    let base = server.http_url();
    let alice = server.user("lifted").await;
    let reply = login(&base, &alice.username, "wrong password", None).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    let wait = assert_rate_limited(
        &login(&base, &alice.username, "wrong password", None).await,
        1,
    );
    // The client does what Retry-After says (a short configured rate: 1 s rounded up).
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let reply = login(&base, &alice.username, PASSWORD, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn logins_are_throttled_per_address_whatever_x_forwarded_for_says() {
    let server = TestServer::start_with_auth_limits(&[]).await;
    let base = server.http_url();
    // The default burst is 10 attempts per address; each claims another address and another
    // (unknown) account, so only the per-address limit can refuse.
    for i in 0..10 {
        let xff = format!("203.0.113.{i}");
        let reply = login(&base, &unique_name("ghost"), "wrong password", Some(&xff)).await;
        assert_eq!(reply.status, 401, "attempt {i}: {reply:?}");
    }
    let reply = login(
        &base,
        &unique_name("ghost"),
        "wrong password",
        Some("198.51.100.1"),
    )
    .await;
    assert_rate_limited(&reply, 3);
}

#[tokio::test]
async fn registrations_are_throttled_per_address_whatever_x_forwarded_for_says() {
    let server = TestServer::start_with_auth_limits(&[]).await;
    let base = server.http_url();
    for i in 0..3 {
        let name = unique_name("signup");
        let xff = format!("203.0.113.{i}, 198.51.100.{i}");
        let reply = register(&base, &name, &format!("{name}@example.com"), Some(&xff)).await;
        assert_eq!(reply.status, 201, "registration {i}: {reply:?}");
    }
    let name = unique_name("signup");
    let reply = register(
        &base,
        &name,
        &format!("{name}@example.com"),
        Some("192.0.2.99"),
    )
    .await;
    assert_rate_limited(&reply, 7);
}

// ---- item 15: e-mail addresses -------------------------------------------------------------

#[tokio::test]
async fn registration_refuses_malformed_email_addresses() {
    let server = TestServer::start().await;
    let base = server.http_url();
    for email in [
        "<script>alert(1)</script>@x.yz",
        "a@-.-",
        "a@b..c",
        "a b@c.d",
    ] {
        let reply = register(&base, &unique_name("mail"), email, None).await;
        assert_eq!(reply.status, 400, "{email}: {reply:?}");
        assert_eq!(
            reply.code.as_deref(),
            Some("bad_request"),
            "{email}: {reply:?}"
        );
    }
    let name = unique_name("mail");
    let reply = register(&base, &name, &format!("{name}+tag@mail.example.com"), None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

// ---- item 11: file modes -------------------------------------------------------------------

/// The umask the binary runs under: the common default, under which files would be 0644.
const UMASK: &str = "022";

#[tokio::test]
async fn data_files_are_private_whatever_the_umask() {
    let hub = HubProcess::spawn(&[]).await;
    let base = hub.base.clone();
    // Writes to both databases, so both have their -wal and -shm.
    let name = unique_name("modes");
    let reply = register(&base, &name, &format!("{name}@example.com"), None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reply = login(&base, &name, PASSWORD, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let dir = hub.data_dir();
    assert_eq!(mode(&dir), 0o700, "data dir");
    for file in [
        "hub.db",
        "hub.db-wal",
        "hub.db-shm",
        "auth.db",
        "auth.db-wal",
        "auth.db-shm",
        "signing-key.pem",
    ] {
        assert!(dir.join(file).exists(), "{file} exists while the hub runs");
    }
    // The welcome mail lands in the outbox (no --smtp-url): it holds an address, so it is
    // private too.
    let outbox = dir.join("outbox");
    within("the welcome mail in the outbox", async {
        while !std::fs::read_dir(&outbox)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "eml"))
            })
            .unwrap_or(false)
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_private(&dir);
}

/// Every directory under `dir` (itself included) is 0700 and every file 0600.
fn assert_private(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_eq!(mode(&path), 0o700, "{}", path.display());
            assert_private(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[tokio::test]
async fn loose_data_files_are_tightened_at_start_with_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in ["hub.db", "notes.txt"] {
        std::fs::write(dir.join(file), "").unwrap();
        std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut hub = HubProcess::spawn_in(root, &[]).await;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("hub.db")), 0o600);
    assert_eq!(mode(&dir.join("notes.txt")), 0o600);
    let warning = within("the warning", hub.log_line("tightened")).await;
    assert!(warning.contains("WARN"), "{warning}");
    let warning = within("the warning", hub.log_line("notes.txt")).await;
    assert!(warning.contains("tightened"), "{warning}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---- the real binary -----------------------------------------------------------------------

/// A `switchboard-hub` process (embedded: no database, Redis or auth URL) on `127.0.0.1:0`,
/// started by `sh` with umask [`UMASK`], its data dir `root/data`, its stderr `root/hub.err`.
/// Killed when dropped.
struct HubProcess {
    child: tokio::process::Child,
    base: String,
    root: tempfile::TempDir,
    /// Its log (stdout) lines after the address line, read by a task so the pipe never fills.
    log: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl HubProcess {
    async fn spawn(flags: &[&str]) -> Self {
        Self::spawn_in(tempfile::tempdir().unwrap(), flags).await
    }

    async fn spawn_in(root: tempfile::TempDir, flags: &[&str]) -> Self {
        let data = root.path().join("data");
        let stderr = std::fs::File::create(root.path().join("hub.err")).unwrap();
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {UMASK}; exec \"$0\" \"$@\""))
            .arg(binary("switchboard-hub", "switchboard-hub"))
            // No metrics listener (its default address is fixed; tests run at once).
            .args([
                "--metrics-listen",
                "off",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(&data)
            .args(flags)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("SWITCHBOARD_AUTH_URL")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn switchboard-hub");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr: SocketAddr = within_for(Duration::from_secs(30), "the hub's address", async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("the hub prints its address before exiting");
                if let Some(rest) = line.strip_prefix("Switchboard is running at http://") {
                    break rest.split('/').next().unwrap().parse().unwrap();
                }
            }
        })
        .await;
        // Keep reading stdout, so the hub never blocks on a full pipe.
        let (tx, log) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        let base = format!("http://{addr}");
        let health = client().get(format!("{base}/healthz")).send();
        let health = within_for(Duration::from_secs(30), "/healthz", health).await;
        assert!(health.expect("/healthz answers").status().is_success());
        Self {
            child,
            base,
            root,
            log,
        }
    }

    /// The next log line containing `needle` (lines before it are consumed).
    async fn log_line(&mut self, needle: &str) -> String {
        loop {
            let line = self.log.recv().await.expect("the hub logs until it exits");
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The process's resident set (`VmRSS`), in KiB.
    fn rss_kib(&self) -> u64 {
        rss_bytes(self.child.id().expect("the hub is running")) / 1024
    }
}
