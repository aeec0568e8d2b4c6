//! `rooms`: R rooms × k subscribers; publishers are members posting over the WebSocket
//! (Switchboard stores every message before acknowledging it), each publisher owning every
//! P-th room, the total rate spread evenly over the rooms.

use std::time::Duration;

use super::{run_delivery, DeliveryPlan, RunContext};
use crate::error::Result;
use crate::report::RunRecord;
use crate::target::Target;

#[derive(Debug, Clone)]
pub struct RoomsParams {
    pub rooms: usize,
    pub per_room: usize,
    /// Publisher connections (each owns rooms p, p+P, ...).
    pub publishers: usize,
    /// Messages per second over all rooms (0: open loop).
    pub rate: f64,
    pub in_flight: usize,
    pub duration: Duration,
    pub size: usize,
}

pub async fn run(
    ctx: &RunContext,
    target: &mut dyn Target,
    params: &RoomsParams,
) -> Result<RunRecord> {
    let mut record = ctx.record("rooms");
    record.param("rooms", params.rooms);
    record.param("per_room", params.per_room);
    record.param("publishers", params.publishers);
    record.param("rate", params.rate);
    record.param("in_flight", params.in_flight);
    record.param("duration_secs", params.duration.as_secs_f64());
    record.param("size", params.size);
    let plan = DeliveryPlan {
        rooms: params.rooms,
        per_room: params.per_room,
        publishers: params.publishers,
        rate: params.rate,
        in_flight: params.in_flight,
        duration: params.duration,
        size: params.size,
    };
    let run = run_delivery(ctx, target, &plan).await?;
    run.fill(&mut record);
    Ok(record)
}
