//! End-to-end smoke test: the real hub served in-process on `127.0.0.1:0` (SQLite in a fresh
//! data dir, rate limits raised as `bench/README.md` prescribes), and every scenario run tiny
//! against it, in this process and, for fanout, through the binary with two worker processes.
//! Asserts that messages arrive, none is lost and none is duplicated.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use switchboard_bench::report::RunRecord;
use switchboard_bench::scenario::connect::ConnectParams;
use switchboard_bench::scenario::fanout::FanoutParams;
use switchboard_bench::scenario::persist::PersistParams;
use switchboard_bench::scenario::rooms::RoomsParams;
use switchboard_bench::scenario::{self, RunContext};
use switchboard_bench::target::{self, TargetConfig, TargetKind};
use switchboard_bench::worker::FleetOptions;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The raised limits of the bench's hub command line.
const HUB_FLAGS: &[&str] = &[
    "--rate-per-sec",
    "1000000",
    "--rate-burst",
    "1000000",
    "--user-rate-per-sec",
    "1000000",
    "--user-rate-burst",
    "1000000",
];

/// Upper bound on one scenario in this test.
const SCENARIO_LIMIT: Duration = Duration::from_secs(120);

struct Hub {
    addr: SocketAddr,
    _data: TempDir,
    _stop: oneshot::Sender<()>,
}

async fn start_hub() -> Hub {
    let data = tempfile::tempdir().unwrap();
    let mut args = vec![
        "switchboard-hub".to_owned(),
        "--data-dir".to_owned(),
        data.path().display().to_string(),
    ];
    args.extend(HUB_FLAGS.iter().map(|f| f.to_string()));
    let config = switchboard_hub::Config::try_parse_from(&args).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    // No metrics listener: its default address is fixed, and tests run at once.
    tokio::spawn(switchboard_hub::run_with_metrics(
        listener,
        None,
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    Hub {
        addr,
        _data: data,
        _stop: stop,
    }
}

fn context(hub: &Hub, workers: usize) -> RunContext {
    RunContext {
        target: TargetConfig {
            kind: TargetKind::Switchboard,
            urls: vec![format!("ws://{}", hub.addr)],
            api: None,
            app_id: String::new(),
            app_key: String::new(),
            app_secret: String::new(),
            auth_subscribers: false,
        },
        // The hub runs in this process.
        server_pids: vec![std::process::id()],
        fleet: FleetOptions {
            workers,
            exe: PathBuf::from(env!("CARGO_BIN_EXE_switchboard-bench")),
        },
        source_ips: vec![],
        read_buffer: 4096,
        connect_concurrency: 16,
        connect_rate: 0.0,
        drain: Duration::from_secs(10),
        label: "smoke".into(),
    }
}

fn fig(record: &RunRecord, name: &str) -> f64 {
    *record
        .figures
        .get(name)
        .unwrap_or_else(|| panic!("figure {name} missing in {record:#?}"))
}

/// Nothing lost, nothing duplicated or misrouted, every acknowledged message delivered to
/// every subscriber of its room.
fn assert_clean_delivery(record: &RunRecord, per_room: f64) {
    assert!(fig(record, "published") > 0.0, "{}", record.table());
    assert_eq!(fig(record, "publish_failed"), 0.0, "{}", record.table());
    assert!(fig(record, "deliveries") > 0.0, "{}", record.table());
    assert_eq!(fig(record, "lost"), 0.0, "{}", record.table());
    assert_eq!(fig(record, "duplicated"), 0.0, "{}", record.table());
    assert_eq!(fig(record, "misrouted"), 0.0, "{}", record.table());
    assert_eq!(
        fig(record, "deliveries"),
        fig(record, "published") * per_room,
        "{}",
        record.table()
    );
    assert_eq!(
        fig(record, "deliveries"),
        fig(record, "expected_deliveries")
    );
    assert!(fig(record, "deliveries_per_cpu_sec") > 0.0);
    let latency = record.latency.expect("latency recorded");
    assert_eq!(latency.count as f64, fig(record, "deliveries"));
    assert!(latency.p50_ms <= latency.max_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_tiny_against_the_hub() {
    let hub = start_hub().await;
    let ctx = context(&hub, 0);
    let mut target = target::connect(&ctx.target).await.unwrap();
    let target = target.as_mut();

    let connect = ConnectParams {
        conns: 50,
        hold: Duration::from_millis(200),
        rate: 0.0,
    };
    let record = tokio::time::timeout(
        SCENARIO_LIMIT,
        scenario::connect::run(&ctx, target, &connect),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(fig(&record, "conns_opened"), 50.0, "{}", record.table());
    assert_eq!(fig(&record, "conns_failed"), 0.0);
    assert_eq!(fig(&record, "dropped_during_hold"), 0.0);
    assert!(fig(&record, "connects_per_sec") > 0.0);
    assert!(record.server.rss_after_bytes > 0);

    let fanout = FanoutParams {
        subscribers: vec![20],
        rate: 50.0,
        in_flight: 8,
        duration: Duration::from_secs(1),
        size: 100,
    };
    let record = tokio::time::timeout(SCENARIO_LIMIT, scenario::fanout::run(&ctx, target, &fanout))
        .await
        .unwrap()
        .unwrap();
    assert_clean_delivery(&record, 20.0);
    assert!(record.server.cpu_secs > 0.0);

    let rooms = RoomsParams {
        rooms: 5,
        per_room: 3,
        publishers: 2,
        rate: 50.0,
        in_flight: 8,
        duration: Duration::from_secs(1),
        size: 100,
    };
    let record = tokio::time::timeout(SCENARIO_LIMIT, scenario::rooms::run(&ctx, target, &rooms))
        .await
        .unwrap()
        .unwrap();
    assert_clean_delivery(&record, 3.0);

    let persist = PersistParams {
        senders: 4,
        in_flight: 4,
        rate: 0.0,
        duration: Duration::from_secs(1),
        size: 100,
    };
    let record = tokio::time::timeout(
        SCENARIO_LIMIT,
        scenario::persist::run(&ctx, target, &persist),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(fig(&record, "acked") > 0.0, "{}", record.table());
    assert_eq!(fig(&record, "failed"), 0.0, "{}", record.table());
    assert!(record.latency.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_spreads_subscribers_over_worker_processes() {
    let hub = start_hub().await;
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("results.jsonl");
    let url = format!("ws://{}", hub.addr);
    let pid = std::process::id().to_string();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-bench"))
        .args([
            "--url",
            &url,
            "--server-pid",
            &pid,
            "--workers",
            "2",
            "--label",
            "smoke",
        ])
        .arg("--json")
        .arg(&json)
        .args([
            "fanout",
            "--sweep",
            "4,10",
            "--rate",
            "40",
            "--duration-secs",
            "1",
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCENARIO_LIMIT, run)
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("deliveries_per_cpu_sec"), "{stdout}");
    let text = std::fs::read_to_string(&json).unwrap();
    let record = RunRecord::from_json_line(text.lines().next().unwrap()).unwrap();
    assert_eq!(record.workers, 2);
    assert_eq!(record.sweep.len(), 2);
    assert!(record.sweep.iter().all(|p| p.lost == 0));
    assert_clean_delivery(&record, 10.0);
    let chart = out.path().join(record.chart.as_deref().unwrap());
    let svg = std::fs::read_to_string(chart).unwrap();
    assert!(svg.contains("deliveries/s against subscribers"));

    // The report subcommand turns the line into markdown.
    let md = out.path().join("BENCHMARKS.md");
    let report = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-bench"))
        .arg("report")
        .arg("--results")
        .arg(&json)
        .arg("--out")
        .arg(&md)
        .output()
        .await
        .unwrap();
    assert!(report.status.success(), "{report:?}");
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("fanout: 1 room × 10 subscribers"), "{md}");
}
