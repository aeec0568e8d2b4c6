//! The webhook configuration of the auth node: `--webhooks-file`, `--webhook-allow-link-local`,
//! `--webhook-reload-ms` and `--service-token`, and the start-up errors of bad values.

use std::time::Duration;

use clap::Parser as _;
use switchboard_auth::node::NodeConfig;
use switchboard_auth::AuthConfig;
use switchboard_webhooks::EventType;

use crate::support::within;

const FILE: &str = r#"[
  {"id": "crm", "url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef",
   "events": ["user.registered", "user.deleted"]},
  {"id": "meta", "url": "http://169.254.169.254/x", "secret": "0123456789abcdef",
   "events": ["room.created"]}
]"#;

#[test]
fn webhook_flags_map_onto_the_auth_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hooks.json");
    std::fs::write(&file, FILE).unwrap();
    let cfg = NodeConfig::try_parse_from([
        "switchboard-auth",
        "--webhooks-file",
        file.to_str().unwrap(),
        "--webhook-allow-link-local",
        "--webhook-reload-ms",
        "250",
        "--webhook-timeout-ms",
        "1500",
        "--service-token",
        "a-service-token-of-32-bytes-long",
    ])
    .unwrap();
    assert!(!format!("{cfg:?}").contains("a-service-token"), "{cfg:?}");
    let mut auth = cfg.auth_config();
    assert_eq!(
        auth.service_token.as_deref(),
        Some("a-service-token-of-32-bytes-long")
    );
    cfg.webhooks
        .apply(&cfg.webhook_delivery, &mut auth)
        .unwrap();
    assert!(auth.webhooks.allow_link_local);
    assert_eq!(auth.webhooks.reload_interval, Duration::from_millis(250));
    assert_eq!(auth.webhooks.delivery.timeout, Duration::from_millis(1500));
    assert!(auth.webhooks.delivery_config().policy.allow_link_local);
    let ids: Vec<&str> = auth
        .webhooks
        .endpoints
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(ids, ["crm", "meta"]);
    assert_eq!(
        auth.webhooks.endpoints[0].events,
        [EventType::UserRegistered, EventType::UserDeleted].into()
    );
    let shown = format!("{auth:?}");
    assert!(
        !shown.contains("0123456789abcdef") && !shown.contains("a-service-token"),
        "{shown}"
    );

    // Defaults: no file, link-local refused, 5 s, no token.
    let cfg = NodeConfig::try_parse_from(["switchboard-auth"]).unwrap();
    let mut auth = cfg.auth_config();
    cfg.webhooks
        .apply(&cfg.webhook_delivery, &mut auth)
        .unwrap();
    let default = AuthConfig::new("x").webhooks;
    assert!(auth.webhooks.endpoints.is_empty() && !auth.webhooks.allow_link_local);
    assert_eq!(auth.webhooks.reload_interval, Duration::from_secs(5));
    assert_eq!(default.reload_interval, Duration::from_secs(5));
    assert_eq!(auth.service_token, None);

    // Without --webhook-allow-link-local, the metadata entry stops the start.
    let cfg = NodeConfig::try_parse_from([
        "switchboard-auth",
        "--webhooks-file",
        file.to_str().unwrap(),
    ])
    .unwrap();
    let err = cfg
        .webhooks
        .apply(&cfg.webhook_delivery, &mut cfg.auth_config())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--webhooks-file") && err.contains("\"meta\""),
        "{err}"
    );

    // A short token passes the parser (which would repeat it) and stops `Auth::open`
    // (`webhooks_store::a_bad_configured_endpoint_or_service_token_stops_the_open`).
    let cfg = NodeConfig::try_parse_from(["switchboard-auth", "--service-token", "short"]).unwrap();
    assert_eq!(cfg.auth_config().service_token.as_deref(), Some("short"));
    for (flag, value) in [
        ("--webhook-reload-ms", "0"),
        ("--webhook-reload-ms", "soon"),
    ] {
        let err = NodeConfig::try_parse_from(["switchboard-auth", flag, value])
            .unwrap_err()
            .to_string();
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(!err.contains("fifteen-bytes"), "{err}");
    }
}

/// A bad entry in `--webhooks-file` stops the binary at start with an error naming the flag
/// and the entry.
#[tokio::test]
async fn a_bad_webhooks_file_is_a_start_up_error_naming_the_flag_and_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |id: &str, url: &str, secret: &str, events: &str| {
        format!(r#"[{{"id":"{id}","url":"{url}","secret":"{secret}","events":{events}}}]"#)
    };
    for (text, id) in [
        (
            entry(
                "bad-url",
                "not a url",
                "0123456789abcdef",
                r#"["room.created"]"#,
            ),
            "bad-url",
        ),
        (
            entry(
                "ssrf",
                "http://169.254.169.254/",
                "0123456789abcdef",
                r#"["room.created"]"#,
            ),
            "ssrf",
        ),
        (
            entry(
                "unknown",
                "http://127.0.0.1/",
                "0123456789abcdef",
                r#"["room.burnt"]"#,
            ),
            "unknown",
        ),
        (
            entry(
                "short",
                "http://127.0.0.1/",
                "s3cret",
                r#"["room.created"]"#,
            ),
            "short",
        ),
        ("not json".to_owned(), "not a JSON array"),
    ] {
        let file = dir.path().join("hooks.json");
        std::fs::write(&file, &text).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-auth"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--webhooks-file")
            .arg(&file)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("SWITCHBOARD_SERVICE_TOKEN")
            .kill_on_drop(true)
            .output();
        let out = within("the binary to exit", out).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}: {stderr}");
        assert!(stderr.contains("--webhooks-file"), "{text}: {stderr}");
        assert!(stderr.contains(id), "{text}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
        assert!(out.stdout.is_empty(), "it never started");
    }
}
