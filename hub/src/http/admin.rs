//! The hub's administration routes: its job queue (webhook deliveries of the hub's events),
//! `/v1/admin/hub/jobs*`, beside the auth service's `/v1/admin/jobs*`. Admin only: 401 without
//! a token, 403 `forbidden` for a user's, checked before the query or path is looked at. A page
//! holds at most 100 jobs (each with a small payload and an error cut to 1000 bytes).

use axum::extract::State;
use axum::Json;
use switchboard_protocol::rest::{AdminJobList, AdminJobResponse, AdminJobsQuery};

use super::extract::{AppPath, AppQuery, Caller};
use crate::error::{Error, Result};
use crate::state::AppState;

/// The caller, if an admin (the token's `role` claim).
fn admin(caller: &Caller) -> Result<()> {
    if caller.0.role == switchboard_auth::tokens::ROLE_ADMIN {
        Ok(())
    } else {
        Err(Error::Forbidden("only an admin may do this"))
    }
}

/// `GET /v1/admin/hub/jobs?state=&limit=&cursor=` (admin) → 200 one page of the hub's jobs.
#[utoipa::path(
    get,
    path = "/v1/admin/hub/jobs",
    tag = "admin",
    security(("bearer" = [])),
    params(AdminJobsQuery),
    responses(
        (status = 200, description = "A page of the hub's jobs (webhook deliveries of messages, members and rooms) in the state asked for (default `dead`), oldest first.", body = AdminJobList),
        (status = 400, description = "`bad_request`: a `state` other than `ready`, `running`, `done` or `dead`, a `limit` outside 1–100, or a `cursor` this server did not make."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
    )
)]
pub(super) async fn jobs(
    State(app): State<AppState>,
    caller: Caller,
    AppQuery(query): AppQuery<AdminJobsQuery>,
) -> Result<Json<AdminJobList>> {
    admin(&caller)?;
    Ok(Json(
        switchboard_auth::jobs::list_jobs_in(&*app.jobs, &query).await?,
    ))
}

/// `POST /v1/admin/hub/jobs/{id}/retry` (admin) → 200 `{job}`, ready again.
#[utoipa::path(
    post,
    path = "/v1/admin/hub/jobs/{id}/retry",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The job id.")),
    responses(
        (status = 200, description = "The job, ready again with its attempts reset; it runs (again, with the same id) as soon as a worker is free and its lane allows.", body = AdminJobResponse),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
        (status = 404, description = "`not_found`: no job has this id (done jobs are deleted after the retention period)."),
        (status = 409, description = "`conflict`: the job is not dead (it is ready, running or done)."),
    )
)]
pub(super) async fn retry_job(
    State(app): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<AdminJobResponse>> {
    admin(&caller)?;
    let job = switchboard_auth::jobs::retry_job_in(&*app.jobs, &id).await?;
    app.job_nudge.notify_one();
    Ok(Json(AdminJobResponse { job }))
}
