//! JSON bodies of the job queue's administration (`/v1/admin/jobs*`).

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run (at `run_ts` at the earliest).
    Ready,
    /// A worker holds it (until `lease_until_ts`).
    Running,
    /// It succeeded.
    Done,
    /// It failed permanently or ran out of attempts; an admin may retry it.
    #[default]
    Dead,
}

/// Query of `GET /v1/admin/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct AdminJobsQuery {
    /// Jobs in this state (default `dead`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Page size, 1..=[`MAX_ACCOUNT_PAGE`](crate::limits::MAX_ACCOUNT_PAGE) (default
    /// [`DEFAULT_ACCOUNT_PAGE`](crate::limits::DEFAULT_ACCOUNT_PAGE)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A job as an admin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminJob {
    /// The job's id, also its stable delivery id (a mail's Message-ID, a webhook's event id).
    pub id: String,
    /// What it does, e.g. `welcome_mail`.
    pub kind: String,
    pub state: JobState,
    /// Jobs of one lane run one at a time, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// Dead after this many failed attempts.
    pub max_attempts: u32,
    /// What the job works on (kind-specific JSON).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// Why the last attempt failed (at most 1000 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Enqueue time.
    pub created_ts: Millis,
    /// Earliest time of the next attempt.
    pub run_ts: Millis,
    /// Running: when the worker's lease runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ts: Option<Millis>,
    /// Done or dead: when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ts: Option<Millis>,
}

/// `GET /v1/admin/jobs` answer: one page of jobs in the state asked for, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminJobList {
    pub jobs: Vec<AdminJob>,
    /// Opaque: pass it as `cursor` to get the next page. Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /v1/admin/jobs/{id}/retry` answer: the job, ready again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminJobResponse {
    pub job: AdminJob,
}
