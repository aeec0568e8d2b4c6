//! One run's result: [`RunRecord`], printed as a table, appended as one JSON line to the
//! results file, and drawn as an SVG chart next to it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::procstat::ServerUsage;
use crate::stats::LatencySummary;
use crate::svg;

/// Version of the JSON line layout.
pub const SCHEMA: u32 = 1;

/// Everything one run measured. One JSON line per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: u32,
    /// Seconds since the Unix epoch at the end of the run.
    pub unix_time: u64,
    /// `connect`, `fanout`, `rooms` or `persist`.
    pub scenario: String,
    /// `switchboard` or `pusher`.
    pub target: String,
    /// Free text from `--label` (e.g. `batched`), part of the grouping key of the report.
    pub label: String,
    /// The scenario's parameters (subscriber counts, rate, size, ...).
    pub params: BTreeMap<String, serde_json::Value>,
    pub urls: Vec<String>,
    pub server_pids: Vec<u32>,
    pub workers: usize,
    /// Server CPU and memory over the measured phase.
    pub server: ServerUsage,
    /// The scenario's figures by name (see `bench/README.md` for each name's meaning).
    pub figures: BTreeMap<String, f64>,
    pub latency: Option<LatencySummary>,
    /// `[quantile, ms]` points of the latency distribution.
    pub latency_curve: Vec<[f64; 2]>,
    /// Points of a `--sweep` over subscriber counts (fanout).
    pub sweep: Vec<SweepPoint>,
    /// The SVG chart's file name, in the directory of the JSON file.
    pub chart: Option<String>,
    /// Errors and warnings worth reading next to the figures.
    pub notes: Vec<String>,
}

/// One subscriber count of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub subscribers: u64,
    pub deliveries_per_sec: f64,
    pub deliveries_per_cpu_sec: f64,
    pub p99_ms: f64,
    pub lost: u64,
}

impl RunRecord {
    /// An empty record for `scenario` against `target`, stamped now.
    pub fn new(scenario: &str, target: &str, label: &str) -> Self {
        Self {
            schema: SCHEMA,
            unix_time: crate::payload::now_us() / 1_000_000,
            scenario: scenario.to_owned(),
            target: target.to_owned(),
            label: label.to_owned(),
            params: BTreeMap::new(),
            urls: Vec::new(),
            server_pids: Vec::new(),
            workers: 0,
            server: ServerUsage::default(),
            figures: BTreeMap::new(),
            latency: None,
            latency_curve: Vec::new(),
            sweep: Vec::new(),
            chart: None,
            notes: Vec::new(),
        }
    }

    pub fn param(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.params.insert(name.to_owned(), value.into());
    }

    pub fn figure(&mut self, name: &str, value: f64) {
        self.figures.insert(name.to_owned(), value);
    }

    /// The record as one JSON line (no newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("records always serialise")
    }

    /// Parses one JSON line.
    pub fn from_json_line(line: &str) -> Result<Self> {
        Ok(serde_json::from_str(line)?)
    }

    /// The human table: parameters, figures, latency, server usage.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        rows.push(("scenario".into(), self.scenario.clone()));
        rows.push(("target".into(), self.target.clone()));
        if !self.label.is_empty() {
            rows.push(("label".into(), self.label.clone()));
        }
        for (name, value) in &self.params {
            rows.push((format!("param {name}"), value.to_string()));
        }
        for (name, value) in &self.figures {
            rows.push((name.clone(), format_number(*value)));
        }
        if let Some(l) = &self.latency {
            rows.push((
                "latency ms p50/p90/p99/p99.9/max".into(),
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2} / {:.2} (n={})",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
                ),
            ));
        }
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        rows.push((
            "server RSS MiB before → after".into(),
            format!(
                "{:.1} → {:.1} (anon {:.1} → {:.1})",
                mib(self.server.rss_before_bytes),
                mib(self.server.rss_after_bytes),
                mib(self.server.rss_anon_before_bytes),
                mib(self.server.rss_anon_after_bytes)
            ),
        ));
        rows.push((
            "server CPU-seconds".into(),
            format!("{:.2}", self.server.cpu_secs),
        ));
        for point in &self.sweep {
            rows.push((
                format!("sweep {} subscribers", point.subscribers),
                format!(
                    "{} deliveries/s, {} per CPU-s, p99 {:.2} ms, lost {}",
                    format_number(point.deliveries_per_sec),
                    format_number(point.deliveries_per_cpu_sec),
                    point.p99_ms,
                    point.lost
                ),
            ));
        }
        for note in &self.notes {
            rows.push(("note".into(), note.clone()));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("{k:<width$}  {v}\n"));
        }
        out
    }
}

/// A figure for people: integers without decimals, small values with two.
pub fn format_number(value: f64) -> String {
    if value.is_nan() {
        "n/a".into()
    } else if value.abs() >= 1000.0 || value.fract() == 0.0 {
        group_thousands(value.round() as i64)
    } else {
        format!("{value:.2}")
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Prints the table, writes the chart next to `json`, and appends the record to `json`.
/// Returns the chart's path.
pub fn emit(record: &mut RunRecord, json: &Path) -> Result<PathBuf> {
    let dir = json
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = chart_name(record);
    let chart = dir.join(&name);
    std::fs::write(&chart, svg::chart(record))?;
    record.chart = Some(name);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(json)?;
    writeln!(file, "{}", record.to_json_line())?;
    print!("{}", record.table());
    println!("chart: {}", chart.display());
    println!("appended to {}", json.display());
    Ok(chart)
}

/// `{scenario}-{target}[-{label}]-{unix time}.svg`, with the label made file-name safe.
pub fn chart_name(record: &RunRecord) -> String {
    let safe: String = record
        .label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let label = if safe.is_empty() {
        String::new()
    } else {
        format!("-{safe}")
    };
    format!(
        "{}-{}{label}-{}.svg",
        record.scenario, record.target, record.unix_time
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_record() -> RunRecord {
        let mut r = RunRecord::new("fanout", "switchboard", "x y");
        r.param("subscribers", 1000);
        r.param("rate", 200.0);
        r.figure("deliveries_per_sec", 199_876.5);
        r.figure("lost", 0.0);
        r.latency = Some(LatencySummary {
            count: 10,
            mean_ms: 1.0,
            p50_ms: 0.9,
            p90_ms: 1.5,
            p99_ms: 3.0,
            p999_ms: 4.0,
            max_ms: 5.0,
        });
        r.latency_curve = vec![[0.0, 0.1], [0.5, 0.9], [0.99, 3.0], [1.0, 5.0]];
        r.sweep = vec![SweepPoint {
            subscribers: 1000,
            deliveries_per_sec: 199_876.5,
            deliveries_per_cpu_sec: 400_000.0,
            p99_ms: 3.0,
            lost: 0,
        }];
        r.notes.push("a note".into());
        r
    }

    #[test]
    fn json_line_round_trip() {
        let record = sample_record();
        let line = record.to_json_line();
        assert!(!line.contains('\n'));
        assert_eq!(RunRecord::from_json_line(&line).unwrap(), record);
        assert!(RunRecord::from_json_line("{}").is_err());
    }

    #[test]
    fn table_and_numbers_read_well() {
        let table = sample_record().table();
        assert!(table.contains("deliveries_per_sec"));
        assert!(table.contains("199,877"));
        assert!(table.contains("0.90 / 1.50 / 3.00 / 4.00 / 5.00"));
        assert_eq!(format_number(1234567.0), "1,234,567");
        assert_eq!(format_number(-1500.0), "-1,500");
        assert_eq!(format_number(12.0), "12");
        assert_eq!(format_number(0.125), "0.12");
        assert_eq!(format_number(f64::NAN), "n/a");
    }

    #[test]
    fn emit_appends_lines_and_writes_the_chart() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("sub/results.jsonl");
        let mut a = sample_record();
        let chart = emit(&mut a, &json).unwrap();
        assert!(chart.exists());
        assert_eq!(a.chart.as_deref(), Some(chart_name(&a).as_str()));
        assert!(chart_name(&a).starts_with("fanout-switchboard-x_y-"));
        let mut b = sample_record();
        b.label = "second".into();
        emit(&mut b, &json).unwrap();
        let text = std::fs::read_to_string(&json).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(RunRecord::from_json_line(lines[1]).unwrap().label, "second");
    }
}
