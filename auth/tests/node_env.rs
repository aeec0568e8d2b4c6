//! `switchboard-auth` reads every setting from the environment too. This test changes the
//! process environment, so it lives alone in its own test binary (its own process), where no
//! other test can read the environment meanwhile.

use std::time::Duration;

use clap::Parser as _;
use switchboard_auth::node::NodeConfig;

/// Every variable the node reads.
const VARS: [&str; 13] = [
    "SWITCHBOARD_AUTH_LISTEN",
    "DATABASE_URL",
    "SWITCHBOARD_AUTH_DATA_DIR",
    "REDIS_URL",
    "SWITCHBOARD_REDIS_PREFIX",
    "SWITCHBOARD_ACCESS_TTL_SECS",
    "SWITCHBOARD_REFRESH_TTL_SECS",
    "SWITCHBOARD_ISSUER",
    "SWITCHBOARD_AUDIENCE",
    "SWITCHBOARD_HASH_CONCURRENCY",
    "SWITCHBOARD_HASH_QUEUE",
    "SWITCHBOARD_LOGIN_IP_BURST",
    "SWITCHBOARD_TRUSTED_PROXIES",
];

fn parse(args: &[&str]) -> Result<NodeConfig, clap::Error> {
    NodeConfig::try_parse_from(std::iter::once("switchboard-auth").chain(args.iter().copied()))
}

#[test]
fn environment_variables_configure_the_node_and_flags_win() {
    for var in VARS {
        std::env::remove_var(var);
    }
    let defaults = parse(&[]).unwrap();
    assert_eq!(defaults.listen.to_string(), "127.0.0.1:8090");
    assert_eq!(defaults.data_dir.to_str(), Some("./switchboard-auth-data"));
    assert_eq!(defaults.database_url, None);
    assert_eq!(defaults.redis_url, None);
    assert_eq!(defaults.redis_prefix, "sb:");
    assert_eq!(defaults.access_ttl_secs, 900);
    assert_eq!(defaults.refresh_ttl_secs, 30 * 24 * 3600);
    assert_eq!(
        (defaults.issuer.as_str(), defaults.audience.as_str()),
        ("switchboard", "switchboard")
    );
    assert_eq!(defaults.hash_concurrency, 2);

    let values = [
        "0.0.0.0:9100",
        "postgres://postgres@db/sb",
        "/srv/auth",
        "redis://cache:6379",
        "test:",
        "120",
        "7200",
        "iss-env",
        "aud-env",
        "3",
        "5",
        "40",
        "10.0.0.0/8,192.168.1.1",
    ];
    for (var, value) in VARS.iter().zip(values) {
        std::env::set_var(var, value);
    }
    let cfg = parse(&[]).unwrap();
    assert_eq!(cfg.listen.to_string(), "0.0.0.0:9100");
    let auth = cfg.auth_config();
    assert_eq!(
        auth.database_url.as_deref(),
        Some("postgres://postgres@db/sb")
    );
    assert_eq!(auth.data_dir.to_str(), Some("/srv/auth"));
    assert_eq!(auth.redis_url.as_deref(), Some("redis://cache:6379"));
    assert_eq!(auth.redis_prefix, "test:");
    assert_eq!(auth.access_ttl, Duration::from_secs(120));
    assert_eq!(auth.refresh_ttl, Duration::from_secs(7200));
    assert_eq!(
        (auth.issuer.as_str(), auth.audience.as_str()),
        ("iss-env", "aud-env")
    );
    assert_eq!(auth.hash_concurrency, 3);
    assert_eq!(auth.hash_queue, 5);
    assert_eq!(auth.login_ip_limit.burst, 40);
    assert_eq!(auth.trusted_proxies.len(), 2);

    // A flag beats its variable.
    let cfg = parse(&["--access-ttl-secs", "30", "--redis-prefix", "flag:"]).unwrap();
    assert_eq!(
        (cfg.access_ttl_secs, cfg.redis_prefix.as_str()),
        (30, "flag:")
    );

    // A malformed value is an error naming the setting, not a silent default.
    std::env::set_var("SWITCHBOARD_ACCESS_TTL_SECS", "soon");
    let err = parse(&[]).unwrap_err().to_string();
    assert!(
        err.contains("access-ttl-secs") && err.contains("soon"),
        "{err}"
    );

    for var in VARS {
        std::env::remove_var(var);
    }
}

/// The webhook variables (their own test: the one above lists its variables in order).
#[test]
fn webhook_and_service_token_variables_configure_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hooks.json");
    std::fs::write(
        &file,
        r#"[{"id":"crm","url":"http://127.0.0.1:9/","secret":"0123456789abcdef","events":["user.deleted"]}]"#,
    )
    .unwrap();
    std::env::set_var("SWITCHBOARD_WEBHOOKS_FILE", &file);
    std::env::set_var("SWITCHBOARD_WEBHOOK_RELOAD_MS", "700");
    std::env::set_var("SWITCHBOARD_SERVICE_TOKEN", "a-token-from-the-environment");
    let parsed = parse(&[]);
    for var in [
        "SWITCHBOARD_WEBHOOKS_FILE",
        "SWITCHBOARD_WEBHOOK_RELOAD_MS",
        "SWITCHBOARD_SERVICE_TOKEN",
    ] {
        std::env::remove_var(var);
    }
    let cfg = parsed.unwrap();
    let mut auth = cfg.auth_config();
    assert_eq!(
        auth.service_token.as_deref(),
        Some("a-token-from-the-environment")
    );
    cfg.webhooks
        .apply(&cfg.webhook_delivery, &mut auth)
        .unwrap();
    assert_eq!(auth.webhooks.endpoints[0].id, "crm");
    assert_eq!(auth.webhooks.reload_interval, Duration::from_millis(700));
}
