//! Handlers of the webhook endpoints' administration (`/v1/admin/webhooks*`): admin only (401
//! without a token, 403 `forbidden` for a user, checked before the body or path is looked at).
//! At most 100 endpoints exist, so the list is one bounded page; bodies are bounded at 2 MiB
//! by the JSON extractor, and each field by its rule (URL 2048 bytes, secret 256).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use switchboard_kit::http::{AppJson, AppPath};
use switchboard_protocol::rest::{
    AdminWebhookList, AdminWebhookResponse, CreateWebhookRequest, CreateWebhookResponse,
    UpdateWebhookRequest,
};

use super::extractor::Admin;
use crate::error::AuthError;
use crate::Auth;

/// `GET /v1/admin/webhooks` (admin) → 200 every endpoint, secrets left out.
#[utoipa::path(
    get,
    path = "/v1/admin/webhooks",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every webhook endpoint (at most 100), by id; each secret only as `secret_hint`, its last 4 characters.", body = AdminWebhookList),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
    )
)]
pub(super) async fn list_webhooks(
    State(auth): State<Auth>,
    _: Admin,
) -> Result<Json<AdminWebhookList>, AuthError> {
    Ok(Json(auth.list_webhooks().await?))
}

/// `POST /v1/admin/webhooks` `{id, url, events, secret?}` (admin) → 201 with the secret, once.
///
/// Without `secret`, one is made: `whsec_` and 32 base64url characters. The answer is the only
/// place the secret is ever shown.
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks",
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "The endpoint, enabled, and its whole secret (shown only here).", body = CreateWebhookResponse),
        (status = 400, description = "`bad_request`: an id not of `[a-z0-9_-]{1,64}`, a URL that does not parse, is not http(s), is over 2048 bytes or names a forbidden address (link-local, cloud metadata: SSRF), no or an unknown event type, a secret outside 16–256 bytes, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
        (status = 409, description = "`conflict`: an endpoint has this id, or 100 endpoints exist."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
    )
)]
pub(super) async fn create_webhook(
    State(auth): State<Auth>,
    _: Admin,
    AppJson(req): AppJson<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<CreateWebhookResponse>), AuthError> {
    Ok((StatusCode::CREATED, Json(auth.create_webhook(req).await?)))
}

/// `PATCH /v1/admin/webhooks/{id}` `{url?, events?, enabled?, secret?}` (admin) → 200.
///
/// `enabled: true` re-enables an endpoint disabled by a 410 answer or an admin. An endpoint
/// from the configuration file may only change `enabled`.
#[utoipa::path(
    patch,
    path = "/v1/admin/webhooks/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The endpoint id.")),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, description = "The endpoint as it is now.", body = AdminWebhookResponse),
        (status = 400, description = "`bad_request`: a URL, event list or secret that breaks the rules of creation, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
        (status = 404, description = "`not_found`: no endpoint has this id."),
        (status = 409, description = "`conflict`: the endpoint comes from the configuration file and the change is more than `enabled`."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
    )
)]
pub(super) async fn update_webhook(
    State(auth): State<Auth>,
    _: Admin,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<UpdateWebhookRequest>,
) -> Result<Json<AdminWebhookResponse>, AuthError> {
    let webhook = auth.update_webhook(&id, req).await?;
    Ok(Json(AdminWebhookResponse { webhook }))
}

/// `DELETE /v1/admin/webhooks/{id}` (admin) → 204.
///
/// Deliveries already queued for it end without a request.
#[utoipa::path(
    delete,
    path = "/v1/admin/webhooks/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The endpoint id.")),
    responses(
        (status = 204, description = "The endpoint is deleted."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
        (status = 404, description = "`not_found`: no endpoint has this id."),
        (status = 409, description = "`conflict`: the endpoint comes from the configuration file (remove it there)."),
    )
)]
pub(super) async fn delete_webhook(
    State(auth): State<Auth>,
    _: Admin,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, AuthError> {
    auth.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
