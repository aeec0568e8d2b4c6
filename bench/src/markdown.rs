//! `switchboard-bench report`: turns the JSON lines of many runs into `docs/BENCHMARKS.md`.
//!
//! Runs are grouped by scenario and shape (subscriber counts, rate, label, node count); within
//! a group each target's figures are the **median** over its runs, and the `us/peer` column is
//! Switchboard's median divided by the peer's. Persist groups labelled `batched` and
//! `unbatched` also get the batching gain. Each group links the chart of its latest run per
//! target, copied into the charts directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{BenchError, Result};
use crate::report::{format_number, RunRecord};

/// Options of the `report` subcommand.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The JSON lines (charts are looked up next to this file).
    pub results: PathBuf,
    pub out: PathBuf,
    /// Where charts are copied (default: `bench/` next to `out`).
    pub charts_dir: Option<PathBuf>,
    /// `key=value` lines for the versions and settings table.
    pub meta: Vec<(String, String)>,
    /// Markdown fragments appended verbatim (e.g. the exact command lines).
    pub include: Vec<PathBuf>,
}

/// The machine the report is written on (the one that ran the benchmarks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory: String,
}

impl Machine {
    /// Reads `/proc`.
    pub fn detect() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            memory,
        }
    }
}

/// Which figures a scenario's table shows, and whether more is better.
fn headline(scenario: &str) -> &'static [(&'static str, bool)] {
    match scenario {
        "connect" => &[
            ("conns_opened", true),
            ("connects_per_sec", true),
            ("all_subscribed_secs", false),
            ("rss_per_conn_bytes", false),
            ("rss_anon_per_conn_bytes", false),
            ("server_cpu_secs", false),
            ("dropped_during_hold", false),
        ],
        "persist" => &[
            ("acked_per_sec", true),
            ("acked_per_cpu_sec", true),
            ("latency_p50_ms", false),
            ("latency_p99_ms", false),
            ("failed", false),
            ("server_cpu_secs", false),
        ],
        _ => &[
            ("published_per_sec", true),
            ("deliveries_per_sec", true),
            ("deliveries_per_cpu_sec", true),
            ("latency_p50_ms", false),
            ("latency_p99_ms", false),
            ("latency_p999_ms", false),
            ("latency_max_ms", false),
            ("lost", false),
            ("duplicated", false),
            ("server_cpu_secs", false),
        ],
    }
}

/// A figure of a record, the latency summary included as `latency_*_ms`.
fn figure(record: &RunRecord, name: &str) -> Option<f64> {
    if let Some(value) = record.figures.get(name) {
        return Some(*value);
    }
    let l = record.latency.as_ref()?;
    match name {
        "latency_p50_ms" => Some(l.p50_ms),
        "latency_p90_ms" => Some(l.p90_ms),
        "latency_p99_ms" => Some(l.p99_ms),
        "latency_p999_ms" => Some(l.p999_ms),
        "latency_max_ms" => Some(l.max_ms),
        _ => None,
    }
}

/// The group a record belongs to: scenario, shape, label, node count.
pub fn group_key(record: &RunRecord) -> String {
    let p = |name: &str| {
        record
            .params
            .get(name)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into())
    };
    let mut key = match record.scenario.as_str() {
        "connect" => format!("connect: {} connections", p("conns")),
        "fanout" => format!(
            "fanout: 1 room × {} subscribers, {} msg/s",
            p("subscribers"),
            p("rate")
        ),
        "rooms" => format!(
            "rooms: {} rooms × {} subscribers, {} msg/s",
            p("rooms"),
            p("per_room"),
            p("rate")
        ),
        "persist" => format!(
            "persist: {} senders × {} in flight",
            p("senders"),
            p("in_flight")
        ),
        other => other.to_owned(),
    };
    if record.urls.len() > 1 {
        key.push_str(&format!(", {} nodes", record.urls.len()));
    }
    if !record.label.is_empty() {
        key.push_str(&format!(" [{}]", record.label));
    }
    key
}

/// The median (the mean of the two middle values for an even count); `None` for no values.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// Reads the results, writes the report and copies the charts.
pub fn write_report(opts: &ReportOptions) -> Result<()> {
    let text = std::fs::read_to_string(&opts.results)?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        records.push(RunRecord::from_json_line(line).map_err(|err| {
            BenchError::Config(format!("{} line {}: {err}", opts.results.display(), n + 1))
        })?);
    }
    let out_dir = opts
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let charts_dir = opts
        .charts_dir
        .clone()
        .unwrap_or_else(|| out_dir.join("bench"));
    std::fs::create_dir_all(&charts_dir)?;
    let link_prefix = charts_dir
        .strip_prefix(&out_dir)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| charts_dir.to_string_lossy().into_owned());
    let results_dir = opts
        .results
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Copy the charts the report links: the latest per group and target that exists.
    let available = |chart: &str| results_dir.join(chart).exists();
    for chart in linked_charts(&records, &available) {
        std::fs::copy(results_dir.join(chart), charts_dir.join(chart))?;
    }
    let mut includes = Vec::new();
    for path in &opts.include {
        includes.push(std::fs::read_to_string(path)?);
    }
    let existing = |chart: &str| charts_dir.join(chart).exists();
    let markdown = render(
        &records,
        &Machine::detect(),
        &opts.meta,
        &includes,
        &link_prefix,
        &existing,
    );
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(&opts.out, markdown)?;
    Ok(())
}

/// Records by group (in first-seen order of the groups), then by target.
fn grouped(records: &[RunRecord]) -> Vec<(String, BTreeMap<String, Vec<&RunRecord>>)> {
    let mut groups: Vec<(String, BTreeMap<String, Vec<&RunRecord>>)> = Vec::new();
    for r in records {
        let key = group_key(r);
        let index = match groups.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                groups.push((key, BTreeMap::new()));
                groups.len() - 1
            }
        };
        groups[index].1.entry(r.target.clone()).or_default().push(r);
    }
    groups
}

/// The chart of the latest run of `runs` whose chart `exists`.
fn latest_chart<'a>(runs: &[&'a RunRecord], exists: &dyn Fn(&str) -> bool) -> Option<&'a str> {
    runs.iter()
        .filter(|r| r.chart.as_deref().is_some_and(exists))
        .max_by_key(|r| r.unix_time)
        .and_then(|r| r.chart.as_deref())
}

/// Every chart the report links (one per group and target).
pub fn linked_charts<'a>(records: &'a [RunRecord], exists: &dyn Fn(&str) -> bool) -> Vec<&'a str> {
    grouped(records)
        .iter()
        .flat_map(|(_, by_target)| {
            by_target
                .values()
                .filter_map(|runs| latest_chart(runs, exists))
        })
        .collect()
}

/// The report's markdown. `chart_exists` says whether a chart file may be linked.
pub fn render(
    records: &[RunRecord],
    machine: &Machine,
    meta: &[(String, String)],
    includes: &[String],
    chart_prefix: &str,
    chart_exists: &dyn Fn(&str) -> bool,
) -> String {
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(
        "Generated by `switchboard-bench report` from the JSON lines of the runs (one line per \
         run). Each figure is the **median** over the runs of its group; `us/peer` is \
         Switchboard's median divided by the peer's (Pusher protocol, sockudo), and the arrow \
         says which direction is better. The load generator runs on the same machine and \
         shares its cores, so the fair throughput figure is **deliveries per server \
         CPU-second** (server = the measured pids).\n\n",
    );
    md.push_str("## Machine\n\n| | |\n|---|---|\n");
    md.push_str(&format!("| CPUs | {} |\n", machine.cpus));
    md.push_str(&format!("| CPU model | {} |\n", machine.cpu_model));
    md.push_str(&format!("| kernel | {} |\n", machine.kernel));
    md.push_str(&format!("| memory | {} |\n\n", machine.memory));
    if !meta.is_empty() {
        md.push_str("## Versions and settings\n\n| | |\n|---|---|\n");
        for (k, v) in meta {
            md.push_str(&format!("| {k} | {} |\n", v.replace('|', "\\|")));
        }
        md.push('\n');
    }

    md.push_str("## Results\n\n");
    for (key, by_target) in &grouped(records) {
        let scenario = by_target
            .values()
            .next()
            .and_then(|v| v.first())
            .map_or("", |r| r.scenario.as_str());
        // Switchboard first, then the peers.
        let mut targets: Vec<&String> = by_target.keys().collect();
        targets.sort_by_key(|t| (t.as_str() != "switchboard", t.as_str()));
        md.push_str(&format!("### {key}\n\n"));
        let runs: Vec<String> = targets
            .iter()
            .map(|t| format!("{t}: {} run(s)", by_target[*t].len()))
            .collect();
        md.push_str(&format!("{}\n\n", runs.join(", ")));
        let comparable = by_target.contains_key("switchboard") && by_target.contains_key("pusher");
        md.push_str("| figure |");
        for t in &targets {
            md.push_str(&format!(" {t} |"));
        }
        if comparable {
            md.push_str(" us/peer |");
        }
        md.push_str("\n|---|");
        for _ in &targets {
            md.push_str("---:|");
        }
        if comparable {
            md.push_str("---:|");
        }
        md.push('\n');
        for &(name, higher_better) in headline(scenario) {
            let medians: Vec<Option<f64>> = targets
                .iter()
                .map(|t| {
                    let mut values: Vec<f64> = by_target[*t]
                        .iter()
                        .filter_map(|r| figure(r, name))
                        .collect();
                    median(&mut values)
                })
                .collect();
            if medians.iter().all(Option::is_none) {
                continue;
            }
            let arrow = if higher_better { "↑" } else { "↓" };
            md.push_str(&format!("| {name} {arrow} |"));
            for m in &medians {
                md.push_str(&format!(" {} |", m.map_or("–".into(), format_number)));
            }
            if comparable {
                let get = |t: &str| {
                    targets
                        .iter()
                        .position(|x| x.as_str() == t)
                        .and_then(|i| medians[i])
                };
                let ratio = match (get("switchboard"), get("pusher")) {
                    (Some(us), Some(peer)) if peer != 0.0 => format!("{:.2}×", us / peer),
                    _ => "–".into(),
                };
                md.push_str(&format!(" {ratio} |"));
            }
            md.push('\n');
        }
        md.push('\n');
        for t in &targets {
            if let Some(chart) = latest_chart(&by_target[*t], chart_exists) {
                md.push_str(&format!("![{key} — {t}]({chart_prefix}/{chart})\n\n"));
            }
        }
        for r in by_target.values().flatten() {
            for note in &r.notes {
                md.push_str(&format!("- note ({}): {}\n", r.target, note));
            }
        }
    }
    batching_gain(&mut md, records);
    for include in includes {
        md.push_str(include.trim_end());
        md.push_str("\n\n");
    }
    md
}

/// The persist groups' batched ÷ unbatched ratio of acknowledged sends per second.
fn batching_gain(md: &mut String, records: &[RunRecord]) {
    let rate = |label: &str| {
        let mut values: Vec<f64> = records
            .iter()
            .filter(|r| r.scenario == "persist" && r.label == label)
            .filter_map(|r| figure(r, "acked_per_sec"))
            .collect();
        median(&mut values)
    };
    if let (Some(batched), Some(unbatched)) = (rate("batched"), rate("unbatched")) {
        md.push_str("### Batching gain (persist)\n\n");
        md.push_str(&format!(
            "Acknowledged sends/s, median: batched {}, unbatched {}: **{:.1}×**.\n\n",
            format_number(batched),
            format_number(unbatched),
            if unbatched > 0.0 {
                batched / unbatched
            } else {
                0.0
            }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::LatencySummary;

    fn run(target: &str, subs: u64, dps: f64, p99: f64, t: u64) -> String {
        let mut r = RunRecord::new("fanout", target, "");
        r.unix_time = t;
        r.param("subscribers", subs);
        r.param("rate", 100.0);
        r.figure("deliveries_per_cpu_sec", dps);
        r.figure("lost", 0.0);
        r.latency = Some(LatencySummary {
            count: 1,
            mean_ms: p99,
            p50_ms: p99 / 2.0,
            p90_ms: p99,
            p99_ms: p99,
            p999_ms: p99,
            max_ms: p99,
        });
        r.chart = Some(format!("fanout-{target}-{t}.svg"));
        r.to_json_line()
    }

    fn persist(label: &str, acked: f64) -> String {
        let mut r = RunRecord::new("persist", "switchboard", label);
        r.param("senders", 64);
        r.param("in_flight", 16);
        r.figure("acked_per_sec", acked);
        r.to_json_line()
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn report_from_sample_lines() {
        let lines = [
            run("switchboard", 1000, 900_000.0, 4.0, 1),
            run("pusher", 1000, 100_000.0, 8.0, 2),
            run("switchboard", 1000, 1_100_000.0, 6.0, 3),
            run("pusher", 1000, 120_000.0, 9.0, 4),
            run("switchboard", 1000, 1_000_000.0, 5.0, 5),
            run("pusher", 1000, 80_000.0, 10.0, 6),
            run("switchboard", 10000, 2_000_000.0, 20.0, 7),
            persist("batched", 60_000.0),
            persist("unbatched", 4_000.0),
        ];
        let records: Vec<RunRecord> = lines
            .iter()
            .map(|l| RunRecord::from_json_line(l).unwrap())
            .collect();
        let machine = Machine {
            cpus: 2,
            cpu_model: "Test CPU".into(),
            kernel: "6.1".into(),
            memory: "24.0 GiB".into(),
        };
        let meta = vec![("git".to_owned(), "abc123".to_owned())];
        let md = render(
            &records,
            &machine,
            &meta,
            &["## Configurations\n\nhub --flags\n".to_owned()],
            "bench",
            &|chart| chart != "fanout-pusher-6.svg",
        );
        assert!(md.contains("| CPU model | Test CPU |"));
        assert!(md.contains("| git | abc123 |"));
        assert!(md.contains("### fanout: 1 room × 1000 subscribers, 100.0 msg/s"));
        assert!(md.contains("switchboard: 3 run(s)"));
        // Medians 1,000,000 and 100,000: 10×.
        assert!(
            md.contains("| deliveries_per_cpu_sec ↑ | 1,000,000 | 100,000 | 10.00× |"),
            "{md}"
        );
        assert!(md.contains("| latency_p99_ms ↓ | 5 | 9 | 0.56× |"), "{md}");
        // The latest chart per target, skipping one that is missing.
        assert!(md.contains("(bench/fanout-switchboard-5.svg)"));
        assert!(md.contains("(bench/fanout-pusher-4.svg)"));
        // A group with one target has no ratio column.
        assert!(md.contains("### fanout: 1 room × 10000 subscribers"));
        assert!(md.contains("| figure | switchboard |\n"));
        assert!(md.contains("[batched]") && md.contains("[unbatched]"));
        assert!(md.contains("batched 60,000, unbatched 4,000: **15.0×**"));
        assert!(md.trim_end().ends_with("hub --flags"));
    }

    #[test]
    fn write_report_copies_charts_and_rejects_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results/results.jsonl");
        std::fs::create_dir_all(results.parent().unwrap()).unwrap();
        std::fs::write(
            dir.path().join("results/fanout-switchboard-1.svg"),
            "<svg></svg>",
        )
        .unwrap();
        std::fs::write(
            &results,
            format!("{}\n\n", run("switchboard", 10, 1.0, 1.0, 1)),
        )
        .unwrap();
        let opts = ReportOptions {
            results: results.clone(),
            out: dir.path().join("docs/BENCHMARKS.md"),
            charts_dir: Some(dir.path().join("docs/bench")),
            meta: vec![],
            include: vec![],
        };
        write_report(&opts).unwrap();
        let md = std::fs::read_to_string(&opts.out).unwrap();
        assert!(md.contains("(bench/fanout-switchboard-1.svg)"));
        assert!(dir
            .path()
            .join("docs/bench/fanout-switchboard-1.svg")
            .exists());
        std::fs::write(&results, "not json\n").unwrap();
        assert!(write_report(&opts).is_err());
    }
}
