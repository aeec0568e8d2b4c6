//! Spreading subscribers over processes.
//!
//! One process may hold at most 20,000 open files here (a hard limit), so tens of thousands of
//! connections need several processes. With `--workers W` the bench starts W copies of itself
//! with the hidden `worker` subcommand; each runs one [`Group`] on a current-thread runtime.
//! The conversation is JSON lines over the child's stdin and stdout:
//!
//! ```text
//! parent → child   SubscriberJob     (its share of the subscribers)
//! child  → parent  Ready             (every socket subscribed or failed)
//! parent → child   Finish            (what the publishers sent)
//! child  → parent  GroupResult       (then the child closes its sockets and exits)
//! ```
//!
//! A child whose stdin closes early (the parent died) closes its sockets and exits. With
//! `--workers 0` the group runs inside the bench process instead; the results are the same.

use std::path::PathBuf;
use std::process::Stdio;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::error::{BenchError, Result};
use crate::stats::{Latency, Tally};
use crate::subscriber::{Finish, Group, GroupResult, Ready, SubscriberJob};

/// Where subscribers run, and the program to start for worker processes.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Worker processes; 0 runs the subscribers in this process.
    pub workers: usize,
    /// The bench binary (`std::env::current_exe()` from `main`).
    pub exe: PathBuf,
}

/// Subscribers being held, in this process or in workers.
pub enum Fleet {
    Local(Group),
    Children(Vec<Worker>),
}

/// One worker process and its pipes.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Fleet {
    /// Opens `job`'s subscribers (split over `opts.workers` processes) and waits until every
    /// one is subscribed or failed.
    pub async fn start(job: SubscriberJob, opts: &FleetOptions) -> Result<(Fleet, Ready)> {
        if opts.workers == 0 {
            let (group, ready) = Group::open(job).await;
            return Ok((Fleet::Local(group), ready));
        }
        let mut workers = Vec::new();
        for part in split(&job, opts.workers) {
            let mut child = Command::new(&opts.exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|err| {
                    BenchError::Worker(format!("starting {}: {err}", opts.exe.display()))
                })?;
            let stdin = child.stdin.take().expect("piped");
            let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
            let mut worker = Worker {
                child,
                stdin,
                stdout,
            };
            write_line(&mut worker.stdin, &part).await?;
            workers.push(worker);
        }
        let mut readies = Vec::new();
        for worker in &mut workers {
            readies.push(read_line::<Ready>(&mut worker.stdout, "Ready").await?);
        }
        Ok((Fleet::Children(workers), merge_ready(&readies)))
    }

    /// Hands `finish` to every group and collects their results, merged.
    pub async fn finish(self, finish: Finish) -> Result<GroupResult> {
        match self {
            Fleet::Local(group) => Ok(group.finish(finish).await),
            Fleet::Children(mut workers) => {
                for worker in &mut workers {
                    write_line(&mut worker.stdin, &finish).await?;
                }
                let mut results = Vec::new();
                for worker in &mut workers {
                    results
                        .push(read_line::<GroupResult>(&mut worker.stdout, "GroupResult").await?);
                }
                for mut worker in workers {
                    drop(worker.stdin);
                    let _ = worker.child.wait().await;
                }
                Ok(merge_results(results))
            }
        }
    }
}

/// Splits `job` into `parts` contiguous ranges of global subscriber indexes (sizes differ by
/// at most one), each with its share of the connect rate and of the connect concurrency (so
/// the server sees the same number of handshakes in flight however many processes there are).
pub fn split(job: &SubscriberJob, parts: usize) -> Vec<SubscriberJob> {
    let parts = parts.clamp(1, job.count.max(1));
    (0..parts)
        .map(|p| {
            let from = job.count * p / parts;
            let to = job.count * (p + 1) / parts;
            SubscriberJob {
                first: job.first + from,
                count: to - from,
                connect_rate: job.connect_rate / parts as f64,
                concurrency: job.concurrency.div_ceil(parts),
                ..job.clone()
            }
        })
        .collect()
}

/// Sums the groups' readiness; the connect window spans all of them.
pub fn merge_ready(readies: &[Ready]) -> Ready {
    Ready {
        opened: readies.iter().map(|r| r.opened).sum(),
        failed: readies.iter().map(|r| r.failed).sum(),
        first_error: readies.iter().find_map(|r| r.first_error.clone()),
        started_us: readies.iter().map(|r| r.started_us).min().unwrap_or(0),
        finished_us: readies.iter().map(|r| r.finished_us).max().unwrap_or(0),
    }
}

/// Sums the groups' results and merges their latency histograms.
pub fn merge_results(results: Vec<GroupResult>) -> GroupResult {
    let mut latency = Latency::new();
    let mut merged = GroupResult::default();
    let mut tally = Tally::default();
    for r in &results {
        latency.merge(&Latency::from_pairs(&r.latency));
        tally.add(&r.tally);
        merged.subscribers += r.subscribers;
        merged.disconnected += r.disconnected;
        merged.errors += r.errors;
        if merged.first_error.is_none() {
            merged.first_error.clone_from(&r.first_error);
        }
        if r.first_delivery_us > 0
            && (merged.first_delivery_us == 0 || r.first_delivery_us < merged.first_delivery_us)
        {
            merged.first_delivery_us = r.first_delivery_us;
        }
        merged.last_delivery_us = merged.last_delivery_us.max(r.last_delivery_us);
    }
    merged.tally = tally;
    merged.latency = latency.to_pairs();
    merged
}

/// The hidden `worker` subcommand: one group, driven over stdin/stdout (see the module docs).
pub fn worker_main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut stdin = BufReader::new(tokio::io::stdin()).lines();
        let mut stdout = tokio::io::stdout();
        let job: SubscriberJob = read_line(&mut stdin, "SubscriberJob").await?;
        let (group, ready) = Group::open(job).await;
        write_line(&mut stdout, &ready).await?;
        let finish: Finish = match stdin.next_line().await? {
            Some(line) => serde_json::from_str(&line)?,
            // The parent is gone: nothing is owed to anyone.
            None => Finish::default(),
        };
        let result = group.finish(finish).await;
        write_line(&mut stdout, &result).await
    })
}

async fn write_line<W: AsyncWriteExt + Unpin, T: Serialize>(out: &mut W, value: &T) -> Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await?;
    Ok(())
}

async fn read_line<T: DeserializeOwned>(
    lines: &mut Lines<impl tokio::io::AsyncBufRead + Unpin>,
    what: &str,
) -> Result<T> {
    match lines.next_line().await? {
        Some(line) => serde_json::from_str(&line)
            .map_err(|err| BenchError::Worker(format!("expected {what}, got {line:?}: {err}"))),
        None => Err(BenchError::Worker(format!(
            "worker exited before sending {what} (see its stderr above)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::SubscriberSpec;

    fn job(count: usize) -> SubscriberJob {
        SubscriberJob {
            spec: SubscriberSpec::Pusher {
                ws_urls: vec!["ws://x".into()],
            },
            rooms: vec!["r".into()],
            first: 0,
            count,
            per_room: count,
            source_ips: vec![],
            read_buffer: 4096,
            connect_rate: 1000.0,
            concurrency: 100,
        }
    }

    #[test]
    fn split_covers_every_index_once() {
        let parts = split(&job(10), 3);
        assert_eq!(
            parts.iter().map(|p| (p.first, p.count)).collect::<Vec<_>>(),
            vec![(0, 3), (3, 3), (6, 4)]
        );
        assert!(parts
            .iter()
            .all(|p| (p.connect_rate - 1000.0 / 3.0).abs() < 1e-9));
        assert!(parts.iter().all(|p| p.concurrency == 34));
        // Never more parts than subscribers, never zero parts.
        assert_eq!(split(&job(2), 5).len(), 2);
        assert_eq!(split(&job(0), 5).len(), 1);
        let json = serde_json::to_string(&parts[2]).unwrap();
        let back: SubscriberJob = serde_json::from_str(&json).unwrap();
        assert_eq!((back.first, back.count), (6, 4));
    }

    #[test]
    fn results_and_readiness_merge() {
        let mut a = Latency::new();
        a.record(1000);
        let mut b = Latency::new();
        b.record(3000);
        let r = |lat: &Latency, first, last, lost| GroupResult {
            subscribers: 5,
            tally: Tally {
                expected: 10,
                deliveries: 10,
                duplicates: 1,
                lost,
                unexpected: 0,
            },
            disconnected: 1,
            errors: 0,
            first_error: None,
            latency: lat.to_pairs(),
            first_delivery_us: first,
            last_delivery_us: last,
        };
        let merged = merge_results(vec![r(&a, 0, 0, 2), r(&b, 50, 90, 0), r(&a, 40, 70, 0)]);
        assert_eq!(merged.subscribers, 15);
        assert_eq!(merged.tally.deliveries, 30);
        assert_eq!(merged.tally.lost, 2);
        assert_eq!(merged.disconnected, 3);
        assert_eq!(
            (merged.first_delivery_us, merged.last_delivery_us),
            (40, 90)
        );
        assert_eq!(Latency::from_pairs(&merged.latency).count(), 3);

        let ready = merge_ready(&[
            Ready {
                opened: 3,
                failed: 0,
                first_error: None,
                started_us: 10,
                finished_us: 20,
            },
            Ready {
                opened: 2,
                failed: 1,
                first_error: Some("boom".into()),
                started_us: 5,
                finished_us: 30,
            },
        ]);
        assert_eq!((ready.opened, ready.failed), (5, 1));
        assert_eq!((ready.started_us, ready.finished_us), (5, 30));
        assert_eq!(ready.first_error.as_deref(), Some("boom"));
    }
}
