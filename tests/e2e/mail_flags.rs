//! The hub's mail flags (`--smtp-url`, `--mail-from`, `--mail-rate-per-sec`,
//! `--smtp-timeout-secs`): their defaults, the configuration they make, and a malformed value
//! as a start-up error of the binary naming the flag; with `--auth-url`, a warning that
//! `--smtp-url` is not used. (The mail itself: `jobs.rs` here, auth's `api` suite and the
//! cluster suite, against a real SMTP sink.)

use std::time::Duration;

use clap::Parser as _;
use switchboard_auth::mail::{MailConfig, MailFrom, SmtpUrl};
use switchboard_hub::Config;

use crate::support::within;

#[test]
fn the_mail_flags_make_the_embedded_auths_mail_config() {
    let parse = |args: &[&str]| Config::try_parse_from([&["switchboard-hub"], args].concat());
    assert_eq!(parse(&[]).unwrap().mail.config(), MailConfig::default());
    let cfg = parse(&[
        "--smtp-url",
        "smtps://mailer:s3cret@relay.example.com",
        "--mail-from",
        "chat@example.com",
        "--mail-rate-per-sec",
        "2.5",
        "--smtp-timeout-secs",
        "3",
    ])
    .unwrap()
    .mail
    .config();
    assert_eq!(
        cfg,
        MailConfig {
            smtp_url: Some(SmtpUrl::parse("smtps://mailer:s3cret@relay.example.com").unwrap()),
            from: MailFrom::parse("chat@example.com").unwrap(),
            rate_per_sec: 2.5,
            send_timeout: Duration::from_secs(3),
        }
    );
    assert!(!format!("{cfg:?}").contains("s3cret"), "{cfg:?}");
    for (flag, value) in [
        ("--smtp-url", "http://relay"),
        ("--mail-from", "@"),
        ("--mail-rate-per-sec", "NaN"),
        ("--smtp-timeout-secs", "never"),
    ] {
        let err = parse(&[flag, value]).unwrap_err().to_string();
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}

#[tokio::test]
async fn a_bad_smtp_url_stops_the_hub_at_start_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let hub = switchboard_tests::binary::binary("switchboard-hub", "switchboard-hub");
    for value in ["smtp://mailer:s3cret@relay?tls=sometimes", "relay:25"] {
        let out = tokio::process::Command::new(&hub)
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--smtp-url", value])
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("SWITCHBOARD_AUTH_URL")
            .kill_on_drop(true)
            .output();
        let out = within("the hub to exit", out).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("--smtp-url"), "{value}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{value}: {stderr}");
        assert!(!dir.path().join("data").exists(), "it never started");
    }
}

/// With `--auth-url` the auth node sends the mails: a hub given `--smtp-url` too says at start
/// that it is not used (without the URL's password).
#[tokio::test]
async fn a_hub_with_an_auth_url_warns_that_its_smtp_url_is_not_used() {
    use tokio::io::AsyncBufReadExt as _;

    let dir = tempfile::tempdir().unwrap();
    let hub = switchboard_tests::binary::binary("switchboard-hub", "switchboard-hub");
    let mut child = tokio::process::Command::new(&hub)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--auth-url", "http://127.0.0.1:9"])
        .args(["--smtp-url", "smtp://mailer:s3cret@127.0.0.1:2525"])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let warning = within("the warning about --smtp-url", async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the hub's log goes on");
            if line.contains("--smtp-url is not used with --auth-url") {
                return line;
            }
        }
    })
    .await;
    assert!(warning.contains("WARN"), "{warning}");
    assert!(!warning.contains("s3cret"), "{warning}");
}
