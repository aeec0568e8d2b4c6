//! `switchboard-auth`: the auth node of a scaled-out Switchboard (accounts, sessions, tokens,
//! JWKS). See `switchboard-auth --help` for the flags and `switchboard_auth::node` for the code.

use anyhow::Context as _;
use clap::Parser as _;
use switchboard_auth::admin::{self, StoreLocation};
use switchboard_auth::node::{self, NodeCommand, NodeConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = NodeConfig::parse();
    switchboard_kit::logging::init(&switchboard_kit::logging::Logging {
        default_filter: "info",
        format: cfg.log_format,
    });
    if let Some(NodeCommand::Admin(command)) = &cfg.command {
        let at = StoreLocation {
            data_dir: &cfg.data_dir,
            database_url: cfg.database_url.as_deref(),
        };
        let done = admin::run(command, at, &mut std::io::stdin().lock())
            .await
            .context("admin")?;
        println!("{done}");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let metrics = node::bind_metrics(cfg.metrics_listen).await?;
    let registry =
        switchboard_kit::metrics::Registry::for_node(metrics.as_ref(), "switchboard-auth");
    let auth = node::open(&cfg, &registry).await?;
    let _metrics = metrics.map(|l| switchboard_kit::metrics::spawn(l, registry));
    let readiness = node::readiness(&auth, cfg.redis_url.as_deref())?;
    // Printed once the service can answer, so scripts can wait for this line.
    println!(
        "switchboard-auth listening on http://{}",
        listener.local_addr()?
    );
    let drain = node::Drain {
        delay: std::time::Duration::from_millis(cfg.drain_delay_ms),
        hurry: switchboard_kit::shutdown::signal(),
    };
    node::serve_with(
        listener,
        &auth,
        readiness,
        switchboard_kit::shutdown::signal(),
        drain,
    )
    .await
}
