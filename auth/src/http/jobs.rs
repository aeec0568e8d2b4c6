//! Handlers of the job queue's administration (`/v1/admin/jobs*`): admin only (401 without a
//! token, 403 `forbidden` for a user, checked before the query or path is looked at). A page
//! holds at most 100 jobs, each with a small payload and an error cut to 1000 bytes.

use axum::extract::State;
use axum::Json;
use switchboard_kit::http::{AppPath, AppQuery};
use switchboard_protocol::rest::{AdminJobList, AdminJobResponse, AdminJobsQuery};

use super::extractor::Admin;
use crate::error::AuthError;
use crate::Auth;

/// `GET /v1/admin/jobs?state=&limit=&cursor=` (admin) → 200 one page of jobs.
#[utoipa::path(
    get,
    path = "/v1/admin/jobs",
    tag = "admin",
    security(("bearer" = [])),
    params(AdminJobsQuery),
    responses(
        (status = 200, description = "A page of jobs in the state asked for (default `dead`), oldest first.", body = AdminJobList),
        (status = 400, description = "`bad_request`: a `state` other than `ready`, `running`, `done` or `dead`, a `limit` outside 1–100, or a `cursor` this server did not make."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
    )
)]
pub(super) async fn list_jobs(
    State(auth): State<Auth>,
    _: Admin,
    AppQuery(query): AppQuery<AdminJobsQuery>,
) -> Result<Json<AdminJobList>, AuthError> {
    Ok(Json(auth.list_jobs(&query).await?))
}

/// `POST /v1/admin/jobs/{id}/retry` (admin) → 200 `{job}`, ready again with its attempts reset.
#[utoipa::path(
    post,
    path = "/v1/admin/jobs/{id}/retry",
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
    State(auth): State<Auth>,
    _: Admin,
    AppPath(id): AppPath<String>,
) -> Result<Json<AdminJobResponse>, AuthError> {
    let job = auth.retry_job(&id).await?;
    Ok(Json(AdminJobResponse { job }))
}
