//! `switchboard-hub`: with no flags, a complete chat server on 127.0.0.1:8080.

use anyhow::Context;
use clap::Parser;
use switchboard_hub::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard_kit::logging::init(&switchboard_kit::logging::Logging {
        default_filter: "info,tower_http=warn",
    });
    let cfg = Config::parse();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    println!(
        "Switchboard is running at http://{}/ (data in {})",
        listener.local_addr()?,
        cfg.data_dir.display()
    );
    switchboard_hub::run(listener, cfg, switchboard_kit::shutdown::signal()).await
}
