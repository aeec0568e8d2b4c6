//! The server API (`/v1/server/*`): REST handlers for backends holding an API key, thin
//! adapters over the service's server rules (`service/server.rs`).
//!
//! **Who may call:** a request with `Authorization: Bearer <api key>` of a live key
//! ([`ServerCaller`]); anything else is `401 unauthorized`, user access tokens included (the
//! user routes do not take API keys either). **Bounds:** each key has
//! `--server-api-rate-per-sec`/`--server-api-rate-burst` requests per node (429
//! `rate_limited`); bodies are at most 2 MiB (413), messages 4096 bytes (413), history pages
//! 100 messages.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchboard_protocol::limits::DEFAULT_HISTORY_LIMIT;
use switchboard_protocol::rest::{
    MessagePage, MessagesQuery, PresenceList, Room, ServerCreateRoomRequest,
    ServerDisconnectRequest, ServerMemberRequest, ServerPublishRequest, ServerPublishResponse,
};

use super::extract::{bearer_token, AppJson, AppPath, AppQuery};
use crate::error::{Error, Result};
use crate::service::{now_ms, Service};
use crate::state::AppState;
use crate::store::Page;

/// A server API caller: the API key it presented (checked against the store on every
/// request, so a revoked key fails at once on every node) within its rate limit.
pub struct ServerCaller {
    /// The key's public id.
    pub key_id: String,
    /// The key's name: the default bot name.
    pub name: String,
}

impl FromRequestParts<AppState> for ServerCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let refuse = |why| Error::Unauthorized(why).into_response();
        let Some(key) = bearer_token(&parts.headers)? else {
            return Err(refuse(
                "the server API needs an API key (Authorization: Bearer)",
            ));
        };
        if !key.starts_with(crate::apikeys::KEY_PREFIX) {
            return Err(refuse(
                "the server API takes API keys only, not access tokens",
            ));
        }
        let record = app
            .service
            .api_key(key, now_ms())
            .await
            .map_err(IntoResponse::into_response)?
            .ok_or_else(|| refuse("invalid or revoked API key"))?;
        // The request's span names the key by name, never by the key itself.
        switchboard_kit::http::trace::record_user(&format!("apikey:{}", record.name));
        app.service
            .server_request(&record.id)
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            key_id: record.id,
            name: record.name,
        })
    }
}

/// Post a message into a room as a bot.
///
/// The bot (`as`, default the key's name) is created on first use and made a member of the
/// room when it first posts there; its messages carry `bot: true`. A repeated
/// `idempotency_key` (same room and bot) answers with the first message and stores nothing.
#[utoipa::path(
    post,
    path = "/v1/server/publish",
    tag = "server",
    security(("api_key" = [])),
    request_body = ServerPublishRequest,
    responses(
        (status = 201, description = "Stored (or stored before, for a repeated key).", body = ServerPublishResponse),
        (status = 400, description = "`bad_request`: a body empty after trimming, an `idempotency_key` empty or over 64 bytes, an invalid bot name, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid or revoked API key, or a user's access token."),
        (status = 403, description = "`forbidden`: a direct room."),
        (status = 404, description = "`not_found`: no such room."),
        (status = 413, description = "`too_large`: a message body over 4096 bytes, or a request body over 2 MiB."),
        (status = 429, description = "`rate_limited`: over the key's request limit or the bot's send limit; nothing was stored."),
    )
)]
pub async fn publish(
    State(app): State<AppState>,
    caller: ServerCaller,
    AppJson(req): AppJson<ServerPublishRequest>,
) -> Result<Response> {
    let bot = Service::bot(
        req.as_bot.as_deref().unwrap_or(&caller.name),
        &caller.key_id,
    )?;
    let ack = app
        .service
        .server_publish(&bot, &req.room, req.body, req.idempotency_key.clone())
        .await?;
    let body = ServerPublishResponse {
        room: req.room,
        seq: ack.seq,
        ts: ack.ts,
        from: bot.username.to_string(),
        idempotency_key: req.idempotency_key,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Close a user's WebSockets on every node (close code 4001).
///
/// The user's sessions stay valid: a client may reconnect.
#[utoipa::path(
    post,
    path = "/v1/server/disconnect",
    tag = "server",
    security(("api_key" = [])),
    request_body = ServerDisconnectRequest,
    responses(
        (status = 204, description = "Every node is told to close the user's connections."),
        (status = 400, description = "`bad_request`: a `user` that is no valid username, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid or revoked API key, or a user's access token."),
        (status = 404, description = "`user_not_found`: no such user (checked with the embedded auth only)."),
        (status = 413, description = "`too_large`: a request body over 2 MiB."),
        (status = 429, description = "`rate_limited`: over the key's request limit."),
    )
)]
pub async fn disconnect(
    State(app): State<AppState>,
    _caller: ServerCaller,
    AppJson(req): AppJson<ServerDisconnectRequest>,
) -> Result<StatusCode> {
    app.service.server_disconnect(&req.user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a group room owned by a bot (`as`, default the key's name), its first member.
#[utoipa::path(
    post,
    path = "/v1/server/rooms",
    tag = "server",
    security(("api_key" = [])),
    request_body = ServerCreateRoomRequest,
    responses(
        (status = 201, description = "The room.", body = Room),
        (status = 400, description = "`bad_request`: a name empty after trimming or over 80 characters, an invalid bot name, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid or revoked API key, or a user's access token."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
        (status = 429, description = "`rate_limited`: over the key's request limit, or the bot's room quota (`--rooms-per-hour`)."),
    )
)]
pub async fn create_room(
    State(app): State<AppState>,
    caller: ServerCaller,
    AppJson(req): AppJson<ServerCreateRoomRequest>,
) -> Result<Response> {
    let bot = Service::bot(
        req.as_bot.as_deref().unwrap_or(&caller.name),
        &caller.key_id,
    )?;
    let room = app
        .service
        .server_create_room(&bot, &req.name, req.public)
        .await?;
    Ok((StatusCode::CREATED, Json(room)).into_response())
}

/// Add a user to a group room (adding a member again changes nothing).
#[utoipa::path(
    post,
    path = "/v1/server/rooms/{id}/members",
    tag = "server",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The room id.")),
    request_body = ServerMemberRequest,
    responses(
        (status = 204, description = "The user is a member."),
        (status = 400, description = "`bad_request`: a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid or revoked API key, or a user's access token."),
        (status = 403, description = "`forbidden`: a direct room."),
        (status = 404, description = "`not_found`: no such room; `user_not_found`: no such user."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
        (status = 429, description = "`rate_limited`: over the key's request limit."),
    )
)]
pub async fn add_member(
    State(app): State<AppState>,
    _caller: ServerCaller,
    AppPath(room): AppPath<String>,
    AppJson(req): AppJson<ServerMemberRequest>,
) -> Result<StatusCode> {
    app.service.server_add_member(&room, &req.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a user from a group room (removing a non-member changes nothing); in a private
/// room their subscriptions end.
#[utoipa::path(
    delete,
    path = "/v1/server/rooms/{id}/members",
    tag = "server",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The room id.")),
    request_body = ServerMemberRequest,
    responses(
        (status = 204, description = "The user is not a member."),
        (status = 400, description = "`bad_request`: a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid or revoked API key, or a user's access token."),
        (status = 403, description = "`forbidden`: a direct room."),
        (status = 404, description = "`not_found`: no such room; `user_not_found`: no such user."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
        (status = 429, description = "`rate_limited`: over the key's request limit."),
    )
)]
pub async fn remove_member(
    State(app): State<AppState>,
    _caller: ServerCaller,
    AppPath(room): AppPath<String>,
    AppJson(req): AppJson<ServerMemberRequest>,
) -> Result<StatusCode> {
    app.service
        .server_remove_member(&room, &req.username)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of a group room's history (the paging of `GET /v1/rooms/{id}/messages`).
#[utoipa::path(
    get,
    path = "/v1/server/rooms/{id}/messages",
    tag = "server",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The room id."), MessagesQuery),
    responses(
        (status = 200, description = "The messages, ascending.", body = MessagePage),
        (status = 400, description = "`bad_request`: a `limit` outside 1–100, or a seq over 2^63 − 1."),
        (status = 401, description = "`unauthorized`: a missing, invalid or revoked API key, or a user's access token."),
        (status = 403, description = "`forbidden`: a direct room."),
        (status = 404, description = "`not_found`: no such room."),
        (status = 429, description = "`rate_limited`: over the key's request limit."),
    )
)]
pub async fn messages(
    State(app): State<AppState>,
    _caller: ServerCaller,
    AppPath(room): AppPath<String>,
    AppQuery(q): AppQuery<MessagesQuery>,
) -> Result<Json<MessagePage>> {
    let page = Page {
        before: q.before,
        after: q.after,
        limit: q.limit.unwrap_or(DEFAULT_HISTORY_LIMIT),
    };
    Ok(Json(MessagePage {
        messages: app.service.server_history(&room, page).await?,
    }))
}

/// Who is online in a group room, across every node (sorted usernames).
#[utoipa::path(
    get,
    path = "/v1/server/rooms/{id}/presence",
    tag = "server",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The room id.")),
    responses(
        (status = 200, description = "The users present.", body = PresenceList),
        (status = 400, description = "`bad_request`: a room id that is not valid UTF-8."),
        (status = 401, description = "`unauthorized`: a missing, invalid or revoked API key, or a user's access token."),
        (status = 403, description = "`forbidden`: a direct room."),
        (status = 404, description = "`not_found`: no such room."),
        (status = 429, description = "`rate_limited`: over the key's request limit."),
    )
)]
pub async fn presence(
    State(app): State<AppState>,
    _caller: ServerCaller,
    AppPath(room): AppPath<String>,
) -> Result<Json<PresenceList>> {
    let users = app.service.server_presence(&room).await?;
    Ok(Json(PresenceList { room, users }))
}
