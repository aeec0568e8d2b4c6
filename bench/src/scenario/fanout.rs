//! `fanout`: S subscribers in one room, one publisher at a fixed rate. With a sweep, one
//! measured phase per subscriber count (fresh room and sockets each), the record's headline
//! figures being those of the last count.

use std::time::Duration;

use super::{run_delivery, DeliveryPlan, RunContext};
use crate::error::Result;
use crate::report::{RunRecord, SweepPoint};
use crate::target::Target;

#[derive(Debug, Clone)]
pub struct FanoutParams {
    /// Subscriber counts to measure, in order (one value without a sweep).
    pub subscribers: Vec<usize>,
    /// Messages per second (0: as fast as acknowledgements return).
    pub rate: f64,
    pub in_flight: usize,
    pub duration: Duration,
    pub size: usize,
}

pub async fn run(
    ctx: &RunContext,
    target: &mut dyn Target,
    params: &FanoutParams,
) -> Result<RunRecord> {
    let mut record = ctx.record("fanout");
    let last = *params.subscribers.last().unwrap_or(&0);
    record.param("subscribers", last);
    if params.subscribers.len() > 1 {
        record.param("sweep", params.subscribers.clone());
    }
    record.param("rate", params.rate);
    record.param("in_flight", params.in_flight);
    record.param("duration_secs", params.duration.as_secs_f64());
    record.param("size", params.size);
    for &subscribers in &params.subscribers {
        let plan = DeliveryPlan {
            rooms: 1,
            per_room: subscribers,
            publishers: 1,
            rate: params.rate,
            in_flight: params.in_flight,
            duration: params.duration,
            size: params.size,
        };
        let run = run_delivery(ctx, target, &plan).await?;
        record.sweep.push(SweepPoint {
            subscribers: subscribers as u64,
            deliveries_per_sec: run.deliveries_per_sec(),
            deliveries_per_cpu_sec: run.deliveries_per_cpu_sec(),
            p99_ms: run.latency().summary().map_or(0.0, |l| l.p99_ms),
            lost: run.result.tally.lost,
        });
        if subscribers == last {
            record.notes.clear();
            record.figures.clear();
            run.fill(&mut record);
        }
    }
    if params.subscribers.len() <= 1 {
        record.sweep.clear();
    }
    Ok(record)
}
