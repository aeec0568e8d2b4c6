//! `switchboard-bench`: the load generator's command line (see `bench/README.md`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use switchboard_bench::markdown::{self, ReportOptions};
use switchboard_bench::net::DEFAULT_READ_BUFFER;
use switchboard_bench::report;
use switchboard_bench::scenario::connect::ConnectParams;
use switchboard_bench::scenario::fanout::FanoutParams;
use switchboard_bench::scenario::persist::PersistParams;
use switchboard_bench::scenario::rooms::RoomsParams;
use switchboard_bench::scenario::{self, RunContext};
use switchboard_bench::target::{self, TargetConfig, TargetKind};
use switchboard_bench::worker::{self, FleetOptions};

/// Load generator for Switchboard and Pusher-protocol servers. Every scenario is bounded in
/// count and time and connects only to the given addresses.
#[derive(Debug, Parser)]
#[command(name = "switchboard-bench", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Protocol of the server under test.
    #[arg(long, global = true, value_enum, default_value_t = TargetKind::Switchboard)]
    target: TargetKind,
    /// WebSocket URL of the server; repeat (or comma-separate) for a cluster, used round-robin.
    /// Switchboard: `ws://host:port` (`/v1/ws` is added); Pusher: `ws://host:port`
    /// (`/app/{key}?protocol=7...` is added).
    #[arg(
        long = "url",
        global = true,
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:8080"
    )]
    urls: Vec<String>,
    /// HTTP base URL of the API (default: the first --url with http://).
    #[arg(long, global = true)]
    api: Option<String>,
    /// Pid whose CPU time and RSS are read before and after the measured phase; repeat (or
    /// comma-separate) for a cluster: the figures are sums.
    #[arg(long = "server-pid", global = true, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// Local addresses subscriber sockets bind to, round-robin (e.g. 127.0.0.2,127.0.0.3):
    /// each source has about 28,000 ephemeral ports.
    #[arg(long = "source-ip", global = true, value_delimiter = ',')]
    source_ips: Vec<IpAddr>,
    /// Spread subscriber connections over this many child processes (0: in this process).
    #[arg(long, global = true, default_value_t = 0)]
    workers: usize,
    /// Results file: one JSON line per run is appended; the SVG chart goes next to it.
    #[arg(long, global = true, default_value = "bench/results/results.jsonl")]
    json: PathBuf,
    /// Free text stored with the run and used to group runs in the report (e.g. batched).
    #[arg(long, global = true, default_value = "")]
    label: String,
    /// Pusher app id.
    #[arg(long, global = true, default_value = "bench")]
    app_id: String,
    /// Pusher app key.
    #[arg(long, global = true, default_value = "bench-key")]
    app_key: String,
    /// Pusher app secret (signs the HTTP API requests).
    #[arg(long, global = true, default_value = "bench-secret")]
    app_secret: String,
    /// Switchboard: subscribers say hello with the bench user's token (default: anonymous,
    /// which public rooms allow).
    #[arg(long, global = true)]
    auth_subscribers: bool,
    /// Read buffer of each subscriber socket, in bytes.
    #[arg(long, global = true, default_value_t = DEFAULT_READ_BUFFER)]
    read_buffer: usize,
    /// Subscriber connections being opened at once, over all processes. Keep it below the
    /// server's listen backlog (128 for both servers here): beyond it the kernel drops SYNs and
    /// the client retries after a second.
    #[arg(long, global = true, default_value_t = 64)]
    connect_concurrency: usize,
    /// New subscriber connections per second in fanout and rooms (0: unpaced).
    #[arg(long, global = true, default_value = "0", value_parser = parse_rate)]
    connect_rate: f64,
    /// How long subscribers may take to receive the last messages after publishing stops.
    #[arg(long, global = true, default_value_t = 10)]
    drain_secs: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open N connections (handshake + subscribe), read the server's RSS per connection, hold
    /// them idle, close them.
    Connect {
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
        /// New connections per second, e.g. 2000 or 2000/s (0: as fast as possible).
        #[arg(long, default_value = "0", value_parser = parse_rate)]
        rate: f64,
    },
    /// S subscribers in one room, one publisher at a fixed rate.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        subs: usize,
        /// Messages per second (0: as fast as acknowledgements return, bounded in flight).
        #[arg(long, default_value = "100", value_parser = parse_rate)]
        rate: f64,
        /// Messages in flight (sent, not yet acknowledged).
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// Body size in bytes.
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Several subscriber counts, measured one after the other (replaces --subs).
        #[arg(long, value_delimiter = ',')]
        sweep: Vec<usize>,
    },
    /// R rooms × k subscribers; member publishers over the WebSocket, spread over rooms.
    Rooms {
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        #[arg(long, default_value_t = 10)]
        per_room: usize,
        /// Publisher connections (each owns every P-th room).
        #[arg(long, default_value_t = 10)]
        publishers: usize,
        /// Messages per second over all rooms (0: open loop).
        #[arg(long, default_value = "1000", value_parser = parse_rate)]
        rate: f64,
        /// Messages in flight per publisher.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        #[arg(long, default_value_t = 100)]
        size: usize,
    },
    /// P senders with bounded sends in flight each, for a duration: stored sends per second.
    Persist {
        #[arg(long, default_value_t = 64)]
        senders: usize,
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// Sends per second over all senders (0: as fast as acknowledgements return).
        #[arg(long, default_value = "0", value_parser = parse_rate)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        #[arg(long, default_value_t = 100)]
        size: usize,
    },
    /// Write docs/BENCHMARKS.md from the JSON lines (medians per group, ratios, charts).
    Report {
        #[arg(long, default_value = "bench/results/results.jsonl")]
        results: PathBuf,
        #[arg(long, default_value = "docs/BENCHMARKS.md")]
        out: PathBuf,
        /// Where the charts are copied (default: bench/ next to --out).
        #[arg(long)]
        charts_dir: Option<PathBuf>,
        /// A `key=value` line for the versions and settings table; repeatable.
        #[arg(long, value_parser = parse_meta)]
        meta: Vec<(String, String)>,
        /// A markdown file appended to the report (e.g. the command lines); repeatable.
        #[arg(long)]
        include: Vec<PathBuf>,
    },
    /// Internal: one subscriber group driven over stdin/stdout by a parent bench process.
    #[command(hide = true)]
    Worker,
}

/// `2000`, `2000/s` or `2000.5` → 2000.0.
fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s");
    match number.parse::<f64>() {
        Ok(rate) if rate >= 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!("expected a rate like 2000 or 2000/s, got {text:?}")),
    }
}

fn parse_meta(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("expected key=value, got {text:?}"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Worker => return worker::worker_main().context("worker"),
        Command::Report {
            results,
            out,
            charts_dir,
            meta,
            include,
        } => {
            let opts = ReportOptions {
                results,
                out: out.clone(),
                charts_dir,
                meta,
                include,
            };
            markdown::write_report(&opts).context("writing the report")?;
            println!("wrote {}", out.display());
            return Ok(());
        }
        _ => {}
    }
    // The generator shares a small machine with the server: two threads are plenty (more
    // connections go to worker processes).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    let ctx = RunContext {
        target: TargetConfig {
            kind: g.target,
            urls: g.urls,
            api: g.api,
            app_id: g.app_id,
            app_key: g.app_key,
            app_secret: g.app_secret,
            auth_subscribers: g.auth_subscribers,
        },
        server_pids: g.server_pids,
        fleet: FleetOptions {
            workers: g.workers,
            exe: std::env::current_exe().context("locating the bench binary")?,
        },
        source_ips: g.source_ips,
        read_buffer: g.read_buffer,
        connect_concurrency: g.connect_concurrency,
        connect_rate: g.connect_rate,
        drain: Duration::from_secs(g.drain_secs),
        label: g.label,
    };
    let mut target = target::connect(&ctx.target)
        .await
        .with_context(|| format!("setting up the {} target", ctx.target.kind.name()))?;
    let target = target.as_mut();
    let mut record = match cli.command {
        Command::Connect {
            conns,
            hold_secs,
            rate,
        } => {
            let params = ConnectParams {
                conns,
                hold: Duration::from_secs(hold_secs),
                rate,
            };
            scenario::connect::run(&ctx, target, &params).await
        }
        Command::Fanout {
            subs,
            rate,
            in_flight,
            duration_secs,
            size,
            sweep,
        } => {
            let params = FanoutParams {
                subscribers: if sweep.is_empty() { vec![subs] } else { sweep },
                rate,
                in_flight,
                duration: Duration::from_secs(duration_secs),
                size,
            };
            scenario::fanout::run(&ctx, target, &params).await
        }
        Command::Rooms {
            rooms,
            per_room,
            publishers,
            rate,
            in_flight,
            duration_secs,
            size,
        } => {
            let params = RoomsParams {
                rooms,
                per_room,
                publishers,
                rate,
                in_flight,
                duration: Duration::from_secs(duration_secs),
                size,
            };
            scenario::rooms::run(&ctx, target, &params).await
        }
        Command::Persist {
            senders,
            in_flight,
            rate,
            duration_secs,
            size,
        } => {
            let params = PersistParams {
                senders,
                in_flight,
                rate,
                duration: Duration::from_secs(duration_secs),
                size,
            };
            scenario::persist::run(&ctx, target, &params).await
        }
        Command::Report { .. } | Command::Worker => unreachable!("handled in main"),
    }
    .context("running the scenario")?;
    report::emit(&mut record, &g.json).context("writing the results")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_meta_parse() {
        assert_eq!(parse_rate("2000/s"), Ok(2000.0));
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_meta("git = abc"), Ok(("git".into(), "abc".into())));
        assert!(parse_meta("nope").is_err());
    }

    #[test]
    fn the_cli_is_consistent_and_globals_go_anywhere() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "switchboard-bench",
            "fanout",
            "--subs",
            "5",
            "--url",
            "ws://a:1,ws://b:2",
            "--server-pid",
            "1",
            "--server-pid",
            "2",
        ])
        .unwrap();
        assert_eq!(cli.global.urls.len(), 2);
        assert_eq!(cli.global.server_pids, vec![1, 2]);
        assert!(matches!(cli.command, Command::Fanout { subs: 5, .. }));
    }
}
