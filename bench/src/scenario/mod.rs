//! The four scenarios, and the measured delivery phase that fanout and rooms share.
//!
//! Every scenario is bounded in count and time and stops by itself, and reads the server
//! processes' CPU and memory ([`crate::procstat`]) before and after its measured phase.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::{BenchError, Result};
use crate::procstat::{self, ServerUsage};
use crate::publish::{self, PublishOutcome, PublishPlan};
use crate::report::RunRecord;
use crate::stats::Latency;
use crate::subscriber::{Finish, GroupResult, Ready, SubscriberJob};
use crate::target::{Target, TargetConfig};
use crate::worker::{Fleet, FleetOptions};

pub mod connect;
pub mod fanout;
pub mod persist;
pub mod rooms;

/// What every scenario needs besides its own parameters.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub target: TargetConfig,
    /// Server processes whose CPU and memory are read (summed for a cluster).
    pub server_pids: Vec<u32>,
    pub fleet: FleetOptions,
    /// Local addresses for subscriber sockets, round-robin.
    pub source_ips: Vec<IpAddr>,
    /// Read buffer of each subscriber socket, in bytes.
    pub read_buffer: usize,
    /// Subscriber connections opened at once (over all processes).
    pub connect_concurrency: usize,
    /// New subscriber connections per second in fanout and rooms (0: unpaced).
    pub connect_rate: f64,
    /// How long subscribers may take to receive the last messages after publishing ends.
    pub drain: Duration,
    pub label: String,
}

impl RunContext {
    /// A record for `scenario` with the context's common fields filled in.
    pub fn record(&self, scenario: &str) -> RunRecord {
        let mut record = RunRecord::new(scenario, self.target.kind.name(), &self.label);
        record.urls = self.target.urls.clone();
        record.server_pids = self.server_pids.clone();
        record.workers = self.fleet.workers;
        record
    }

    /// The subscriber job for `count` subscribers, `per_room` to a room.
    pub fn job(
        &self,
        target: &dyn Target,
        rooms: Vec<String>,
        count: usize,
        per_room: usize,
        connect_rate: f64,
    ) -> SubscriberJob {
        SubscriberJob {
            spec: target.subscriber_spec(),
            rooms,
            first: 0,
            count,
            per_room: per_room.max(1),
            source_ips: self.source_ips.clone(),
            read_buffer: self.read_buffer,
            connect_rate,
            concurrency: self.connect_concurrency,
        }
    }
}

/// A measured delivery phase: `rooms` × `per_room` subscribers, `publishers` publishers
/// sharing `rate` and the rooms between them.
#[derive(Debug, Clone)]
pub struct DeliveryPlan {
    pub rooms: usize,
    pub per_room: usize,
    pub publishers: usize,
    /// Messages per second over all publishers (0: open loop).
    pub rate: f64,
    /// In flight per publisher.
    pub in_flight: usize,
    pub duration: Duration,
    pub size: usize,
}

/// What a delivery phase measured.
#[derive(Debug, Clone)]
pub struct DeliveryRun {
    pub ready: Ready,
    pub publish: PublishOutcome,
    pub result: GroupResult,
    pub usage: ServerUsage,
    /// Wall-clock µs when publishing started.
    pub publish_started_us: u64,
    pub plan: DeliveryPlan,
}

/// Opens the subscribers, publishes for the plan's duration, waits for the deliveries.
pub async fn run_delivery(
    ctx: &RunContext,
    target: &mut dyn Target,
    plan: &DeliveryPlan,
) -> Result<DeliveryRun> {
    let rooms = target.prepare_rooms(plan.rooms).await?;
    let count = plan.rooms * plan.per_room;
    let job = ctx.job(
        target,
        rooms.clone(),
        count,
        plan.per_room,
        ctx.connect_rate,
    );
    let (fleet, ready) = Fleet::start(job, &ctx.fleet).await?;
    if ready.opened == 0 && count > 0 {
        let _ = fleet.finish(Finish::default()).await;
        return Err(BenchError::Server(format!(
            "no subscriber could subscribe: {}",
            ready.first_error.unwrap_or_default()
        )));
    }

    let publishers = plan.publishers.clamp(1, plan.rooms.max(1));
    let mut handles = Vec::new();
    let mut opened = Vec::new();
    for p in 0..publishers {
        opened.push(target.publisher(p).await?);
    }
    let before = procstat::sample_or_zero(&ctx.server_pids)?;
    let publish_started_us = crate::payload::now_us();
    for (p, mut publisher) in opened.into_iter().enumerate() {
        let streams = (p..plan.rooms)
            .step_by(publishers)
            .map(|r| (r as u32, rooms[r].clone()))
            .collect();
        let publish_plan = PublishPlan {
            rate: plan.rate / publishers as f64,
            in_flight: plan.in_flight,
            duration: plan.duration,
            size: plan.size,
            streams,
            drain: ctx.drain,
        };
        handles.push(tokio::spawn(async move {
            publish::drive(publisher.as_mut(), &publish_plan).await
        }));
    }
    let mut publish = PublishOutcome::default();
    for handle in handles {
        let outcome = handle
            .await
            .map_err(|err| BenchError::Config(format!("publisher task: {err}")))??;
        publish.merge(outcome);
    }
    let finish = Finish {
        expect: publish.expect_list(plan.rooms),
        drain_ms: ctx.drain.as_millis() as u64,
    };
    let result = fleet.finish(finish).await?;
    let after = procstat::sample_or_zero(&ctx.server_pids)?;
    Ok(DeliveryRun {
        ready,
        publish,
        result,
        usage: ServerUsage::between(before, after),
        publish_started_us,
        plan: plan.clone(),
    })
}

impl DeliveryRun {
    /// Deliveries per second over the window from the first publish to the last delivery.
    pub fn deliveries_per_sec(&self) -> f64 {
        let window_us = self
            .result
            .last_delivery_us
            .saturating_sub(self.publish_started_us);
        if window_us == 0 {
            0.0
        } else {
            self.result.tally.deliveries as f64 / (window_us as f64 / 1e6)
        }
    }

    pub fn deliveries_per_cpu_sec(&self) -> f64 {
        per(self.result.tally.deliveries as f64, self.usage.cpu_secs)
    }

    pub fn latency(&self) -> Latency {
        Latency::from_pairs(&self.result.latency)
    }

    /// Fills `record` with this phase's figures, latency and server usage.
    pub fn fill(&self, record: &mut RunRecord) {
        let tally = &self.result.tally;
        let acked = self.publish.acked as f64;
        record.figure("subscribers_opened", self.ready.opened as f64);
        record.figure("subscribers_failed", self.ready.failed as f64);
        record.figure("published", acked);
        record.figure("publish_failed", self.publish.failed as f64);
        record.figure(
            "published_per_sec",
            per(acked, self.plan.duration.as_secs_f64()),
        );
        record.figure("deliveries", tally.deliveries as f64);
        record.figure("expected_deliveries", tally.expected as f64);
        record.figure("deliveries_per_sec", self.deliveries_per_sec());
        record.figure("lost", tally.lost as f64);
        record.figure("duplicated", tally.duplicates as f64);
        record.figure("misrouted", tally.unexpected as f64);
        record.figure("disconnected", self.result.disconnected as f64);
        record.figure("error_frames", self.result.errors as f64);
        record.figure("server_cpu_secs", self.usage.cpu_secs);
        record.figure("deliveries_per_cpu_sec", self.deliveries_per_cpu_sec());
        if let Some(ack) = self.publish.ack_latency.summary() {
            record.figure("ack_p50_ms", ack.p50_ms);
            record.figure("ack_p99_ms", ack.p99_ms);
        }
        let latency = self.latency();
        record.latency = latency.summary();
        record.latency_curve = latency.curve();
        record.server = self.usage;
        for note in [
            self.ready
                .first_error
                .as_ref()
                .map(|e| format!("subscribe: {e}")),
            self.publish
                .first_error
                .as_ref()
                .map(|e| format!("publish: {e}")),
            self.result
                .first_error
                .as_ref()
                .map(|e| format!("subscriber: {e}")),
        ]
        .into_iter()
        .flatten()
        {
            record.notes.push(note);
        }
    }
}

/// `n / secs`, 0 when no time passed.
pub fn per(n: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        n / secs
    } else {
        0.0
    }
}
