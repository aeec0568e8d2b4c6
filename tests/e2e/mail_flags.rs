//! The hub's mail flags (`--smtp-url`, `--mail-from`, `--mail-rate-per-sec`,
//! `--smtp-timeout-secs`): their defaults, the configuration they make, and a malformed value
//! as a start-up error of the binary naming the flag. (The mail itself is tested in auth's
//! `api` suite, against a real SMTP sink.)

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
