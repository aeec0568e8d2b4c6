//! `switchboard-hub`: with no flags, a complete chat server on 127.0.0.1:8080.

use anyhow::Context;
use clap::Parser;
use switchboard_hub::Config;
use switchboard_kit::shutdown::signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    switchboard_kit::logging::init(&switchboard_kit::logging::Logging {
        default_filter: "info,tower_http=warn",
        format: cfg.log_format,
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    println!(
        "Switchboard is running at http://{}/ (data in {})",
        listener.local_addr()?,
        cfg.data_dir.display()
    );
    // The first SIGTERM/Ctrl-C drains (`--drain-delay-ms`); a second one cuts the drain short.
    switchboard_hub::run_until(listener, cfg, signal(), signal()).await
}
