//! [`Job`], [`NewJob`] and [`State`].

use serde_json::Value;

/// Attempts of a job unless [`NewJob::max_attempts`] says otherwise: with the default backoff
/// (1 s doubling to 10 min) the last attempt comes 14 to 27 minutes after the first
/// (the delays 1, 2, 4, ... 512 s, then 600 s, each drawn from its upper half).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 12;

/// Longest `last_error` stored (bytes, cut at a character boundary): an error message is for
/// the admin list, and a handler must not be able to grow a row without bound.
pub const MAX_ERROR_BYTES: usize = 1000;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting to be claimed (at `run_at` at the earliest).
    Ready,
    /// Claimed by a worker whose lease runs until `lease_until`.
    Running,
    /// A handler succeeded.
    Done,
    /// Failed permanently or ran out of attempts; only an admin's retry revives it.
    Dead,
}

impl State {
    /// Every state, in life order.
    pub const ALL: [State; 4] = [State::Ready, State::Running, State::Done, State::Dead];

    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Running => "running",
            State::Done => "done",
            State::Dead => "dead",
        }
    }

    /// The state of a stored (or wire) name.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// A job about to be enqueued. Build it with [`NewJob::new`] and set the optional fields.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// uuid v7, made by [`NewJob::new`]: unique, in enqueue order, and unguessable enough to
    /// seed a delivery id.
    pub id: String,
    /// Which [`crate::Handler`] runs it.
    pub kind: String,
    /// What the handler needs (kept small: it is stored and listed).
    pub payload: Value,
    /// Jobs of one lane run one at a time, in order (see the crate docs).
    pub lane: Option<String>,
    /// At least 1.
    pub max_attempts: u32,
    /// Not claimed before this (ms since the epoch).
    pub run_at: i64,
    /// Enqueue time (ms since the epoch).
    pub created_at: i64,
}

impl NewJob {
    /// A job of `kind` with `payload`, due now, without a lane, with
    /// [`DEFAULT_MAX_ATTEMPTS`].
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        let now = crate::clock::now_ms();
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind.into(),
            payload,
            lane: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_at: now,
            created_at: now,
        }
    }

    /// The same job in `lane`.
    #[must_use]
    pub fn in_lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }

    /// The same job with at most `n` attempts (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// A stored job. Times are ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The stable delivery id (see the crate docs).
    pub id: String,
    /// Which handler runs it.
    pub kind: String,
    /// What the handler needs.
    pub payload: Value,
    /// Its lane, if any.
    pub lane: Option<String>,
    /// Where it is in its life.
    pub state: State,
    /// Claims so far, this one included while running.
    pub attempts: u32,
    /// Dead after this many failed attempts.
    pub max_attempts: u32,
    /// Not claimed before this.
    pub run_at: i64,
    /// Running: claimable again after this.
    pub lease_until: Option<i64>,
    /// Running: the worker holding the lease.
    pub leased_by: Option<String>,
    /// The last failure, cut to [`MAX_ERROR_BYTES`].
    pub last_error: Option<String>,
    /// Enqueue time.
    pub created_at: i64,
    /// Done or dead: when.
    pub finished_at: Option<i64>,
}

/// `error` cut to [`MAX_ERROR_BYTES`] at a character boundary.
pub(crate) fn cut_error(error: &str) -> &str {
    if error.len() <= MAX_ERROR_BYTES {
        return error;
    }
    let mut end = MAX_ERROR_BYTES;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_errors_are_cut_on_a_char_boundary() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        assert_eq!(State::parse("Ready"), None);
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = cut_error(&long);
        assert!(cut.len() <= MAX_ERROR_BYTES && cut.len() >= MAX_ERROR_BYTES - 1);
        assert_eq!(cut_error("short"), "short");
    }

    #[test]
    fn new_jobs_have_ordered_ids_and_at_least_one_attempt() {
        let a = NewJob::new("k", Value::Null);
        let b = NewJob::new("k", Value::Null)
            .in_lane("mail")
            .max_attempts(0);
        assert!(a.id < b.id);
        assert_eq!(b.max_attempts, 1);
        assert_eq!(b.lane.as_deref(), Some("mail"));
    }
}
