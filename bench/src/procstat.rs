//! CPU time and resident memory of the server processes, from `/proc`.
//!
//! CPU is `utime + stime` (fields 14 and 15 of `/proc/PID/stat`, in clock ticks) divided by the
//! tick rate, read once with `getconf CLK_TCK` (100 on Linux; assumed when `getconf` fails).
//! Memory is `VmRSS` and `RssAnon` of `/proc/PID/status`; `RssAnon` is the process's own heap
//! and stacks, without mapped files such as the binary. A cluster is several pids: the
//! figures are sums.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// One reading of some processes, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// VmRSS, in bytes.
    pub rss_bytes: u64,
    /// RssAnon, in bytes.
    pub rss_anon_bytes: u64,
}

/// `utime + stime` from the text of `/proc/PID/stat`.
///
/// The command name (field 2) is in parentheses and may contain spaces and parentheses, so the
/// fields are counted from the last `)`: after it come field 3 (state), ..., 14 (utime), 15
/// (stime).
pub fn parse_stat(text: &str) -> Result<u64> {
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| BenchError::Proc(format!("no ')' in stat line {text:?}")))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3, so field N is fields[N - 3].
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| BenchError::Proc(format!("stat field {n} missing in {text:?}")))
    };
    Ok(field(14)? + field(15)?)
}

/// `(VmRSS, RssAnon)` in bytes from the text of `/proc/PID/status` (missing lines read as 0).
pub fn parse_status(text: &str) -> (u64, u64) {
    let kib = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    (kib("VmRSS:"), kib("RssAnon:"))
}

/// Reads `pids` now and sums them.
///
/// # Errors
/// [`BenchError::Proc`] when a process does not exist (any more) or its files do not parse.
pub fn sample(pids: &[u32]) -> Result<ProcSample> {
    let mut total = ProcSample::default();
    for pid in pids {
        let read = |file: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .map_err(|err| BenchError::Proc(format!("reading /proc/{pid}/{file}: {err}")))
        };
        total.cpu_ticks += parse_stat(&read("stat")?)?;
        let (rss, anon) = parse_status(&read("status")?);
        total.rss_bytes += rss;
        total.rss_anon_bytes += anon;
    }
    Ok(total)
}

/// Clock ticks per second (`getconf CLK_TCK`, read once; 100 if that fails).
pub fn clock_ticks_per_sec() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// What the server processes used between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// CPU-seconds (user + system) used in between.
    pub cpu_secs: f64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_anon_before_bytes: u64,
    pub rss_anon_after_bytes: u64,
}

impl ServerUsage {
    pub fn between(before: ProcSample, after: ProcSample) -> Self {
        Self {
            cpu_secs: after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64
                / clock_ticks_per_sec() as f64,
            rss_before_bytes: before.rss_bytes,
            rss_after_bytes: after.rss_bytes,
            rss_anon_before_bytes: before.rss_anon_bytes,
            rss_anon_after_bytes: after.rss_anon_bytes,
        }
    }
}

/// Samples `pids`, or nothing (all zero) when no pid was given.
pub fn sample_or_zero(pids: &[u32]) -> Result<ProcSample> {
    if pids.is_empty() {
        Ok(ProcSample::default())
    } else {
        sample(pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        // A command name with spaces and a ')' of its own; utime 1234, stime 567.
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 \
                    3 0 12345 1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(parse_stat(line).unwrap(), 1801);
        assert!(parse_stat("4242 (x) S 1 2").is_err());
        assert!(parse_stat("garbage").is_err());
    }

    #[test]
    fn status_gives_rss_and_anon_in_bytes() {
        let text = "Name:\tswitchboard-hub\nVmPeak:\t  900000 kB\nVmRSS:\t   51200 kB\n\
                    RssAnon:\t   40960 kB\nRssFile:\t   10240 kB\n";
        assert_eq!(parse_status(text), (51200 * 1024, 40960 * 1024));
        assert_eq!(parse_status("Name: x\n"), (0, 0));
    }

    #[test]
    fn reads_its_own_process_and_sums_pids() {
        let me = std::process::id();
        // Burn a little CPU so utime moves past zero on a coarse clock.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 42);
        let one = sample(&[me]).unwrap();
        assert!(one.rss_bytes > 0 && one.rss_anon_bytes > 0);
        assert!(one.rss_anon_bytes <= one.rss_bytes);
        let two = sample(&[me, me]).unwrap();
        assert!(two.rss_bytes >= one.rss_bytes * 2 - 4 * 1024 * 1024);
        assert!(two.cpu_ticks >= one.cpu_ticks * 2);
        assert!(sample(&[u32::MAX]).is_err());
        assert_eq!(sample_or_zero(&[]).unwrap(), ProcSample::default());
        assert!(clock_ticks_per_sec() >= 1);
        let usage = ServerUsage::between(
            ProcSample {
                cpu_ticks: 100,
                ..one
            },
            ProcSample {
                cpu_ticks: 100 + clock_ticks_per_sec() * 3,
                ..one
            },
        );
        assert!((usage.cpu_secs - 3.0).abs() < 1e-9);
    }
}
