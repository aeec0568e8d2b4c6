//! `connect`: open N connections (handshake + subscribe to one room), report connects per
//! second, the time until all are subscribed, and the server's resident memory per idle
//! subscribed connection (RSS after minus RSS before, divided by N); hold them idle, then
//! close them all.

use std::time::Duration;

use super::{per, RunContext};
use crate::error::Result;
use crate::procstat::{self, ServerUsage};
use crate::report::RunRecord;
use crate::subscriber::Finish;
use crate::target::Target;
use crate::worker::Fleet;

/// Pause between "all subscribed" and the memory reading, so that work queued by the last
/// connections (and the allocator's bookkeeping) has settled.
pub const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ConnectParams {
    pub conns: usize,
    /// How long the connections stay open (idle) after the reading.
    pub hold: Duration,
    /// New connections per second (0: as fast as the connect concurrency allows).
    pub rate: f64,
}

pub async fn run(
    ctx: &RunContext,
    target: &mut dyn Target,
    params: &ConnectParams,
) -> Result<RunRecord> {
    let mut record = ctx.record("connect");
    record.param("conns", params.conns);
    record.param("hold_secs", params.hold.as_secs_f64());
    record.param("rate", params.rate);
    record.param("read_buffer", ctx.read_buffer);
    record.param("source_ips", ctx.source_ips.len());

    let rooms = target.prepare_rooms(1).await?;
    let before = procstat::sample_or_zero(&ctx.server_pids)?;
    let job = ctx.job(target, rooms, params.conns, params.conns, params.rate);
    let (fleet, ready) = Fleet::start(job, &ctx.fleet).await?;
    let connect_secs = ready.finished_us.saturating_sub(ready.started_us) as f64 / 1e6;
    tokio::time::sleep(SETTLE).await;
    let after = procstat::sample_or_zero(&ctx.server_pids)?;
    tokio::time::sleep(params.hold).await;
    let end_of_hold = procstat::sample_or_zero(&ctx.server_pids)?;
    let result = fleet.finish(Finish::default()).await?;

    let opened = ready.opened as f64;
    let delta = |a: u64, b: u64| a as f64 - b as f64;
    record.figure("conns_opened", opened);
    record.figure("conns_failed", ready.failed as f64);
    record.figure("all_subscribed_secs", connect_secs);
    record.figure("connects_per_sec", per(opened, connect_secs));
    record.figure("rss_delta_bytes", delta(after.rss_bytes, before.rss_bytes));
    record.figure(
        "rss_per_conn_bytes",
        per(delta(after.rss_bytes, before.rss_bytes), opened),
    );
    record.figure(
        "rss_anon_per_conn_bytes",
        per(delta(after.rss_anon_bytes, before.rss_anon_bytes), opened),
    );
    record.figure(
        "rss_per_conn_end_of_hold_bytes",
        per(delta(end_of_hold.rss_bytes, before.rss_bytes), opened),
    );
    record.figure("dropped_during_hold", result.disconnected as f64);
    let usage = ServerUsage::between(before, after);
    record.figure("server_cpu_secs", usage.cpu_secs);
    record.server = usage;
    if let Some(error) = ready.first_error {
        record.notes.push(format!("connect: {error}"));
    }
    if let Some(error) = result.first_error {
        record.notes.push(format!("during hold: {error}"));
    }
    Ok(record)
}
