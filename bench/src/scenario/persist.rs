//! `persist`: P concurrent senders over the WebSocket, each with a bounded number of sends in
//! flight to its own room, for a duration; reports acknowledged (= stored) sends per second
//! and the acknowledgement latency. Nobody subscribes, so the figure is the store's.
//!
//! The batched-versus-unbatched comparison runs this twice against a hub on PostgreSQL,
//! started with `--batch-max-size 512` and with `--batch-max-size 1`; `--label` tells them
//! apart.

use std::time::Duration;

use super::{per, RunContext};
use crate::error::{BenchError, Result};
use crate::procstat::{self, ServerUsage};
use crate::publish::{self, PublishOutcome, PublishPlan};
use crate::report::RunRecord;
use crate::target::Target;

#[derive(Debug, Clone)]
pub struct PersistParams {
    pub senders: usize,
    /// Sends in flight per sender.
    pub in_flight: usize,
    /// Sends per second over all senders (0: as fast as acknowledgements return).
    pub rate: f64,
    pub duration: Duration,
    pub size: usize,
}

pub async fn run(
    ctx: &RunContext,
    target: &mut dyn Target,
    params: &PersistParams,
) -> Result<RunRecord> {
    if !target.stores_messages() {
        return Err(BenchError::Config(format!(
            "persist measures stored sends; the {} target stores nothing",
            target.kind().name()
        )));
    }
    let mut record = ctx.record("persist");
    record.param("senders", params.senders);
    record.param("in_flight", params.in_flight);
    record.param("rate", params.rate);
    record.param("duration_secs", params.duration.as_secs_f64());
    record.param("size", params.size);

    let senders = params.senders.max(1);
    let rooms = target.prepare_rooms(senders).await?;
    let mut publishers = Vec::new();
    for s in 0..senders {
        publishers.push(target.publisher(s).await?);
    }
    let before = procstat::sample_or_zero(&ctx.server_pids)?;
    let mut handles = Vec::new();
    for (s, mut publisher) in publishers.into_iter().enumerate() {
        let plan = PublishPlan {
            rate: params.rate / senders as f64,
            in_flight: params.in_flight,
            duration: params.duration,
            size: params.size,
            streams: vec![(s as u32, rooms[s].clone())],
            drain: ctx.drain,
        };
        handles.push(tokio::spawn(async move {
            publish::drive(publisher.as_mut(), &plan).await
        }));
    }
    let mut outcome = PublishOutcome::default();
    for handle in handles {
        outcome.merge(
            handle
                .await
                .map_err(|err| BenchError::Config(format!("sender task: {err}")))??,
        );
    }
    let after = procstat::sample_or_zero(&ctx.server_pids)?;
    let usage = ServerUsage::between(before, after);

    let acked = outcome.acked as f64;
    record.figure("acked", acked);
    record.figure("failed", outcome.failed as f64);
    record.figure("acked_per_sec", per(acked, params.duration.as_secs_f64()));
    record.figure("server_cpu_secs", usage.cpu_secs);
    record.figure("acked_per_cpu_sec", per(acked, usage.cpu_secs));
    record.latency = outcome.ack_latency.summary();
    record.latency_curve = outcome.ack_latency.curve();
    record.server = usage;
    if let Some(error) = outcome.first_error {
        record.notes.push(format!("send: {error}"));
    }
    Ok(record)
}
