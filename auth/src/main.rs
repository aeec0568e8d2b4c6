//! `switchboard-auth`: the auth node of a scaled-out Switchboard (accounts, sessions, tokens,
//! JWKS). See `switchboard-auth --help` for the flags and `switchboard_auth::node` for the code.

use anyhow::Context as _;
use clap::Parser as _;
use switchboard_auth::node::{self, NodeConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = NodeConfig::parse();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let auth = node::open(&cfg).await?;
    // Printed once the service can answer, so scripts can wait for this line.
    println!(
        "switchboard-auth listening on http://{}",
        listener.local_addr()?
    );
    node::serve(listener, &auth, shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
