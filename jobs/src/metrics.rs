//! The queue's metrics, registered once on the node's [`Registry`]: the depth of the queue by
//! state (sampled by the pool, [`crate::pool::SAMPLE_EVERY`]; every node of a component sees the
//! same queue, so aggregate with `max`, not `sum`), attempts and failures, and run time.

use std::sync::Arc;

use switchboard_kit::metrics::{Counter, Gauge, Histogram, Registry};

use crate::State;

/// Jobs per state (`state` label), as last sampled.
pub const JOBS: &str = "switchboard_jobs";
/// Attempts run, by result (`ok`, `transient`, `permanent`, `timeout`).
pub const ATTEMPTS: &str = "switchboard_job_attempts_total";
/// Jobs that went dead on this node.
pub const DEAD: &str = "switchboard_jobs_dead_total";
/// Time a handler ran, per attempt.
pub const DURATION: &str = "switchboard_job_duration_seconds";

/// The handles. Cheap to clone.
#[derive(Clone, Debug)]
pub struct JobMetrics {
    depth: Arc<[Gauge; 4]>,
    pub(crate) ok: Counter,
    pub(crate) transient: Counter,
    pub(crate) permanent: Counter,
    pub(crate) timeout: Counter,
    pub(crate) dead: Counter,
    pub(crate) duration: Histogram,
}

impl JobMetrics {
    /// The handles of the auth service's queue (label `queue="auth"`), registered on
    /// `registry`.
    pub fn new(registry: &Registry) -> Self {
        Self::for_queue(registry, "auth")
    }

    /// The handles of one component's queue, labelled `queue` (`auth`, `hub`: in the embedded
    /// configuration one process runs both queues on one registry), registered on `registry`.
    pub fn for_queue(registry: &Registry, queue: &'static str) -> Self {
        const ATTEMPTS_HELP: &str =
            "Job attempts run on this node, by result (ok, transient, permanent, timeout).";
        let attempt = |result| {
            registry.counter(
                ATTEMPTS,
                ATTEMPTS_HELP,
                &[("queue", queue), ("result", result)],
            )
        };
        Self {
            depth: Arc::new(State::ALL.map(|state| {
                registry.gauge(
                    JOBS,
                    "Jobs in the queue by state, as last sampled (the same on every node).",
                    &[("queue", queue), ("state", state.as_str())],
                )
            })),
            ok: attempt("ok"),
            transient: attempt("transient"),
            permanent: attempt("permanent"),
            timeout: attempt("timeout"),
            dead: registry.counter(
                DEAD,
                "Jobs that went dead on this node.",
                &[("queue", queue)],
            ),
            duration: registry.histogram(
                DURATION,
                "Time a job handler ran, per attempt.",
                &[("queue", queue)],
            ),
        }
    }

    /// Sets the depth gauges.
    pub(crate) fn depth(&self, counts: &crate::store::Counts) {
        for (gauge, state) in self.depth.iter().zip(State::ALL) {
            gauge.set(counts.get(state) as f64);
        }
    }
}
