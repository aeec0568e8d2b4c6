//! `switchboard-hub`: with no flags, a complete chat server on 127.0.0.1:8080.
//! `switchboard-hub admin create|promote|demote USERNAME`: manages the admins of the embedded
//! auth (see `switchboard_auth::admin`).
//! `switchboard-hub api-key create|list|revoke`: the server API's keys (see
//! `switchboard_hub::apikeys`).

use anyhow::Context;
use clap::Parser;
use switchboard_auth::admin::{self, AdminCommand, StoreLocation};
use switchboard_hub::Config;
use switchboard_kit::shutdown::signal;

/// The hub's command line: its flags, or a command.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard-hub",
    version,
    about = "Switchboard realtime chat hub",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    cfg: Config,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Makes and unmakes admins of the embedded auth (the first admin is made only here). With
    /// --auth-url the accounts are the auth node's: use `switchboard-auth admin` there.
    Admin(AdminArgs),
    /// Makes, lists and revokes the API keys of the server API (`/v1/server/*`), in the hub's
    /// store (never over HTTP).
    ApiKey(ApiKeyArgs),
}

#[derive(Debug, clap::Args)]
struct ApiKeyArgs {
    #[command(subcommand)]
    command: switchboard_hub::apikeys::ApiKeyCommand,
    /// The hub's data directory (the keys are in hub.db there without --database-url).
    #[arg(
        long,
        env = "SWITCHBOARD_DATA_DIR",
        default_value = "./switchboard-data",
        global = true
    )]
    data_dir: std::path::PathBuf,
    /// The hub's PostgreSQL URL, when its store lives there.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
}

#[derive(Debug, clap::Args)]
struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
    /// The hub's data directory (the accounts are in auth.db there without --database-url).
    #[arg(
        long,
        env = "SWITCHBOARD_DATA_DIR",
        default_value = "./switchboard-data",
        global = true
    )]
    data_dir: std::path::PathBuf,
    /// The hub's PostgreSQL URL, when its accounts live there (schema `auth`).
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { command, cfg } = Cli::parse();
    // `api-key` prints a key a script may capture: no progress lines (migrations) around it.
    let quiet = matches!(command, Some(Command::ApiKey(_)));
    switchboard_kit::logging::init(&switchboard_kit::logging::Logging {
        default_filter: if quiet {
            "warn"
        } else {
            "info,tower_http=warn"
        },
        format: cfg.log_format,
    });
    if let Some(Command::ApiKey(args)) = &command {
        let store =
            switchboard_hub::apikeys::open_store(&args.data_dir, args.database_url.as_deref())
                .await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let done = switchboard_hub::apikeys::run(&args.command, &*store, now)
            .await
            .context("api-key")?;
        println!("{done}");
        return Ok(());
    }
    if let Some(Command::Admin(args)) = command {
        let at = StoreLocation {
            data_dir: &args.data_dir,
            database_url: args.database_url.as_deref(),
        };
        let done = admin::run(&args.command, at, &mut std::io::stdin().lock())
            .await
            .context("admin")?;
        println!("{done}");
        return Ok(());
    }
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
