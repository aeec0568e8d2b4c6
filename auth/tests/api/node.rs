//! The auth node: its flags, its routes over HTTP, and the `switchboard-auth` binary.
//! (Configuration through environment variables is in `tests/node_env.rs`, a process of its
//! own, because it changes the environment.)

use std::time::Duration;

use clap::Parser as _;
use reqwest::Method;
use serde_json::Value;
use switchboard_auth::config::RateLimit;
use switchboard_auth::node::NodeConfig;
use tokio::io::AsyncBufReadExt as _;

use crate::support::node::{Http, Node};
use crate::support::services::{RedisPrefix, REDIS_URL};
use crate::support::{within, TestDatabase, PASSWORD};

#[test]
fn flags_map_onto_the_auth_config() {
    let cfg = NodeConfig::try_parse_from([
        "switchboard-auth",
        "--listen",
        "0.0.0.0:9000",
        "--database-url",
        "postgres://u:secret@db/sb",
        "--data-dir",
        "/var/lib/sb-auth",
        "--redis-url",
        "redis://cache:6379",
        "--redis-prefix",
        "prod:",
        "--access-ttl-secs",
        "60",
        "--refresh-ttl-secs",
        "3600",
        "--issuer",
        "https://auth.example",
        "--audience",
        "chat",
        "--hash-concurrency",
        "4",
        "--hash-queue",
        "8",
        "--login-account-rate-per-sec",
        "0.5",
        "--login-account-burst",
        "5",
        "--login-ip-rate-per-sec",
        "2",
        "--login-ip-burst",
        "20",
        "--register-ip-rate-per-sec",
        "0.01",
        "--register-ip-burst",
        "1",
        "--trusted-proxies",
        "10.0.0.0/8,192.0.2.7",
    ])
    .unwrap();
    assert_eq!(cfg.listen.to_string(), "0.0.0.0:9000");
    let auth = cfg.auth_config();
    assert_eq!(auth.data_dir.to_str(), Some("/var/lib/sb-auth"));
    assert_eq!(
        auth.database_url.as_deref(),
        Some("postgres://u:secret@db/sb")
    );
    assert_eq!(auth.redis_url.as_deref(), Some("redis://cache:6379"));
    assert_eq!(auth.redis_prefix, "prod:");
    assert_eq!(auth.access_ttl, Duration::from_secs(60));
    assert_eq!(auth.refresh_ttl, Duration::from_secs(3600));
    assert_eq!(
        (auth.issuer.as_str(), auth.audience.as_str()),
        ("https://auth.example", "chat")
    );
    assert_eq!(auth.hash_concurrency, 4);
    assert_eq!(auth.hash_queue, 8);
    let limit = |per_sec, burst| RateLimit { per_sec, burst };
    assert_eq!(auth.login_account_limit, limit(0.5, 5));
    assert_eq!(auth.login_ip_limit, limit(2.0, 20));
    assert_eq!(auth.register_ip_limit, limit(0.01, 1));
    let trusted: Vec<String> = auth
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(trusted, ["10.0.0.0/8", "192.0.2.7/32"]);
    let defaults = NodeConfig::try_parse_from(["switchboard-auth"])
        .unwrap()
        .auth_config();
    assert_eq!(defaults.hash_queue, 32);
    assert_eq!(defaults.login_account_limit, limit(0.17, 3));
    assert_eq!(defaults.login_ip_limit, limit(0.5, 10));
    assert_eq!(defaults.register_ip_limit, limit(0.17, 3));
    assert!(defaults.trusted_proxies.is_empty());
    let drain = |args: &[&str]| {
        NodeConfig::try_parse_from([&["switchboard-auth"], args].concat())
            .map(|cfg| cfg.drain_delay_ms)
            .map_err(|e| e.to_string())
    };
    assert_eq!(drain(&[]), Ok(5_000));
    assert_eq!(drain(&["--drain-delay-ms", "0"]), Ok(0));
    let err = drain(&["--drain-delay-ms", "soon"]).unwrap_err();
    assert!(err.contains("--drain-delay-ms"), "{err}");
    let metrics = |args: &[&str]| {
        NodeConfig::try_parse_from([&["switchboard-auth"], args].concat())
            .map(|cfg| cfg.metrics_listen.to_string())
            .map_err(|e| e.to_string())
    };
    assert_eq!(metrics(&[]).as_deref(), Ok("127.0.0.1:9465"));
    assert_eq!(metrics(&["--metrics-listen", "off"]).as_deref(), Ok("off"));
    assert_eq!(
        metrics(&["--metrics-listen", "0.0.0.0:9100"]).as_deref(),
        Ok("0.0.0.0:9100")
    );
    let err = metrics(&["--metrics-listen", "everywhere"]).unwrap_err();
    assert!(err.contains("--metrics-listen"), "{err}");
    let err = NodeConfig::try_parse_from(["switchboard-auth", "--trusted-proxies", "hubs"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--trusted-proxies") && err.contains("hubs"),
        "{err}"
    );
    // The password never shows in logs.
    assert!(!format!("{auth:?}").contains("secret"), "{auth:?}");

    let err = NodeConfig::try_parse_from(["switchboard-auth", "--access-ttl-secs", "soon"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--access-ttl-secs"), "{err}");
}

#[tokio::test]
async fn a_node_on_postgres_and_redis_serves_the_auth_routes() {
    let (db, prefix, dir) = (
        TestDatabase::create().await,
        RedisPrefix::new(),
        tempfile::tempdir().unwrap(),
    );
    let node = Node::start(
        "127.0.0.1:0",
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            &db.url,
            "--redis-url",
            REDIS_URL,
            "--redis-prefix",
            &prefix.0,
        ],
    )
    .await;
    let http = Http::new(&node.url);

    assert_eq!(
        http.call(Method::GET, "/healthz", None, None).await,
        (200, Value::String("ok".into()))
    );
    let (status, body) = http.call(Method::GET, "/v1/nope", None, None).await;
    assert_eq!((status, &body["error"]["code"]), (404, &"not_found".into()));
    let (status, body) = http.call(Method::PUT, "/v1/auth/me", None, None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (405, &"bad_request".into())
    );

    let alice = http.user("alice").await;
    let bob = http.user("bob").await;
    let (status, body) = http
        .call(
            Method::GET,
            "/v1/users/bob",
            Some(&alice.access_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], bob.user.id.as_str());
    let (status, _) = http
        .call(Method::DELETE, "/v1/auth/me", Some(&bob.access_token), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = http
        .call(
            Method::GET,
            "/v1/users/bob",
            Some(&alice.access_token),
            None,
        )
        .await;
    // The tombstone of the deleted account (its name stays reserved).
    assert_eq!(
        (status, &body["user"]["deleted"]),
        (200, &true.into()),
        "{body}"
    );

    // Users live in the database, in schema `auth`.
    let users: i64 = db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM auth.users WHERE deleted_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1);
    node.stop().await;
}

/// The value of the sample `series` (a name with its labels, as rendered) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

/// The node's metrics listener counts logins (ok and failed), registrations, refreshes and token
/// failures; the public port has no `/metrics` (the JSON 404 of any unknown route).
#[tokio::test]
async fn the_metrics_listener_counts_the_routes_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start("127.0.0.1:0", &["--data-dir", dir.path().to_str().unwrap()]).await;
    let http = Http::new(&node.url);
    let alice = http.user("alice").await;
    let wrong = serde_json::json!({"username": "alice", "password": "not the password"});
    let (status, _) = http
        .call(Method::POST, "/v1/auth/login", None, Some(wrong))
        .await;
    assert_eq!(status, 401);
    let spend = serde_json::json!({"refresh_token": alice.refresh_token});
    let (status, _) = http
        .call(Method::POST, "/v1/auth/refresh", None, Some(spend))
        .await;
    assert_eq!(status, 200);
    let garbage = serde_json::json!({"refresh_token": "garbage"});
    let (status, _) = http
        .call(Method::POST, "/v1/auth/refresh", None, Some(garbage))
        .await;
    assert_eq!(status, 401);
    let (status, _) = http
        .call(Method::GET, "/v1/auth/me", Some("not-a-token"), None)
        .await;
    assert_eq!(status, 401);

    let (status, body) = http.call(Method::GET, "/metrics", None, None).await;
    assert_eq!((status, &body["error"]["code"]), (404, &"not_found".into()));

    let scrape = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = within("a scrape", scrape.get(&node.metrics_url).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    for (series, value) in [
        ("switchboard_auth_logins_total{result=\"ok\"}", 1.0),
        ("switchboard_auth_logins_total{result=\"failed\"}", 1.0),
        ("switchboard_auth_registrations_total", 1.0),
        ("switchboard_auth_refreshes_total{result=\"ok\"}", 1.0),
        ("switchboard_auth_refreshes_total{result=\"failed\"}", 1.0),
        (
            "switchboard_token_verification_failures_total{reason=\"malformed\"}",
            1.0,
        ),
        (
            "switchboard_token_verification_failures_total{reason=\"expired\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("switchboard_build_info{")
                && l.contains("binary=\"switchboard-auth\"")
                && l.ends_with(" 1")),
        "{text}"
    );
    let (status, body) = Http::new(node.metrics_url.trim_end_matches("/metrics"))
        .call(Method::GET, "/v1/auth/me", None, None)
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &"not_found".into()),
        "the metrics listener serves nothing else"
    );
    node.stop().await;
}

/// `GET /readyz` until `done(status, body)`, polling every 20 ms (bounded by [`within`]).
async fn readyz_until(http: &Http, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    within("the /readyz answer wanted", async {
        loop {
            let (status, body) = http.call(Method::GET, "/readyz", None, None).await;
            if done(status, &body) {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Shut down, the node answers `/readyz` with 503 `draining` at once and goes on serving every
/// route for `--drain-delay-ms`; only then does it stop.
#[tokio::test]
async fn a_draining_node_answers_503_and_serves_until_the_delay_ends() {
    const DRAIN: Duration = Duration::from_millis(700);
    let drain = DRAIN.as_millis().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let node = Node::start(
        "127.0.0.1:0",
        &["--data-dir", data_dir, "--drain-delay-ms", &drain],
    )
    .await;
    let http = Http::new(&node.url);
    let alice = http.user("drainer").await;
    assert_eq!(readyz_until(&http, |_, _| true).await.0, 200);

    let observed = async {
        let started = std::time::Instant::now();
        let (status, body) = readyz_until(&http, |status, _| status == 503).await;
        assert_eq!(
            (status, body),
            (503, serde_json::json!({"status": "draining", "checks": {}}))
        );
        // Still serving: liveness, a token check, a login.
        let (health, _) = http.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(health, 200);
        let (me, body) = http
            .call(Method::GET, "/v1/auth/me", Some(&alice.access_token), None)
            .await;
        assert_eq!(me, 200, "{body}");
        let credentials = serde_json::json!({"username": "drainer", "password": PASSWORD});
        let (login, body) = http
            .call(Method::POST, "/v1/auth/login", None, Some(credentials))
            .await;
        assert_eq!(login, 200, "{body}");
        started
    };
    let stopped = async {
        node.stop().await;
        std::time::Instant::now()
    };
    let (started, stopped_at) = tokio::join!(observed, stopped);
    // The draining answer came at once; the stop waited for the delay.
    assert!(
        stopped_at.duration_since(started) + Duration::from_millis(100) >= DRAIN,
        "stopped {:?} after the drain began, before the {DRAIN:?} delay",
        stopped_at.duration_since(started)
    );
}

#[tokio::test]
async fn the_binary_prints_its_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-auth"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            // Far longer than the test waits: the second signal must end it.
            "--drain-delay-ms",
            "600000",
            "--data-dir",
        ])
        // Created by the node (0700): an existing looser dir would be tightened with a warning.
        .arg(dir.path().join("data"))
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within("the listening line", lines.next_line())
        .await
        .unwrap()
        .expect("a line on stdout");
    let url = line
        .strip_prefix("switchboard-auth listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    let http = Http::new(url);
    let (status, _) = http.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);

    let pid = child.id().unwrap().to_string();
    let term = || {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(kill.success());
    };
    // The first SIGTERM starts the drain; the second ends it at once.
    term();
    let (status, body) = readyz_until(&http, |status, _| status == 503).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "draining");
    term();
    let status = within("the binary to exit", child.wait()).await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn mail_flags_map_onto_the_mail_config() {
    use switchboard_auth::mail::{MailConfig, MailFrom, SmtpUrl};
    let defaults = NodeConfig::try_parse_from(["switchboard-auth"])
        .unwrap()
        .auth_config();
    assert_eq!(defaults.mail, MailConfig::default());
    assert_eq!(defaults.mail.smtp_url, None);
    assert_eq!(
        defaults.mail.from.to_string(),
        "Switchboard <noreply@localhost>"
    );
    assert_eq!(defaults.mail.rate_per_sec, 1.0);
    assert_eq!(defaults.mail.send_timeout, Duration::from_secs(30));

    let cfg = NodeConfig::try_parse_from([
        "switchboard-auth",
        "--smtp-url",
        "smtp://mailer:s3cret@relay.example.com:587?tls=required",
        "--mail-from",
        "Chat <chat@example.com>",
        "--mail-rate-per-sec",
        "0.5",
        "--smtp-timeout-secs",
        "5",
    ])
    .unwrap()
    .auth_config();
    assert_eq!(
        cfg.mail.smtp_url,
        Some(SmtpUrl::parse("smtp://mailer:s3cret@relay.example.com:587?tls=required").unwrap())
    );
    assert_eq!(
        cfg.mail.from,
        MailFrom::parse("Chat <chat@example.com>").unwrap()
    );
    assert_eq!(cfg.mail.rate_per_sec, 0.5);
    assert_eq!(cfg.mail.send_timeout, Duration::from_secs(5));
    assert!(!format!("{cfg:?}").contains("s3cret"), "{cfg:?}");

    for (flag, value) in [
        ("--smtp-url", "relay.example.com:25"),
        ("--smtp-url", "smtp://relay?tls=maybe"),
        ("--mail-from", "nobody"),
        ("--mail-rate-per-sec", "0"),
        ("--mail-rate-per-sec", "fast"),
        ("--smtp-timeout-secs", "0"),
    ] {
        let err = NodeConfig::try_parse_from(["switchboard-auth", flag, value])
            .unwrap_err()
            .to_string();
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}

/// A malformed mail flag stops the binary at start with an error naming the flag, and the
/// relay's password is not repeated.
#[tokio::test]
async fn a_bad_mail_flag_is_a_start_up_error_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--smtp-url", "smtp://mailer:s3cret@relay?tls=bogus"),
        ("--smtp-url", "mailer:s3cret@relay"),
        ("--mail-from", "not an address"),
        ("--mail-rate-per-sec", "0"),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-auth"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([flag, value])
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .kill_on_drop(true)
            .output();
        let out = within("the binary to exit", out).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{flag} {value}: {stderr}");
        assert!(out.stdout.is_empty(), "it never started");
    }
}
