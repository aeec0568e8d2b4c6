//! REST handlers for rooms, members and messages: thin adapters over the service layer.
//!
//! Each handler's `#[utoipa::path]` is its OpenAPI entry: the first doc line the summary, the
//! rest the description; each error response names its codes in backticks, from which the
//! document's error bodies are derived (`switchboard_protocol::openapi`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchboard_protocol::limits::DEFAULT_HISTORY_LIMIT;
use switchboard_protocol::rest::{
    AddMemberRequest, CreateRoomRequest, EditMessageRequest, MessagePage, MessagePath,
    MessagesQuery, PostMessageRequest, PostMessageResponse, PresenceList, ReadRequest, Room,
    RoomList, RoomsQuery,
};
use switchboard_protocol::ws::Message;

use super::extract::{AppJson, AppPath, AppQuery, Caller, MaybeCaller};
use crate::error::Result;
use crate::state::AppState;
use crate::store::Page;

/// Create a group room; the caller becomes its first member.
///
/// Each user may create `--rooms-per-hour` group rooms per hour on a node (default 30).
#[utoipa::path(
    post,
    path = "/v1/rooms",
    tag = "rooms",
    security(("bearer" = [])),
    request_body = CreateRoomRequest,
    responses(
        (status = 201, description = "The room.", body = Room),
        (status = 400, description = "`bad_request`: a name empty after trimming or over 80 characters, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
        (status = 429, description = "`rate_limited`: over the room quota; retry after `Retry-After` seconds."),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppJson(req): AppJson<CreateRoomRequest>,
) -> Result<Response> {
    let room = app.service.create_room(&who, &req.name, req.public).await?;
    Ok((StatusCode::CREATED, Json(room)).into_response())
}

/// The caller's rooms, newest activity first, one page at a time.
///
/// Follow `next_cursor` until it is absent to list every room.
#[utoipa::path(
    get,
    path = "/v1/rooms",
    tag = "rooms",
    security(("bearer" = [])),
    params(RoomsQuery),
    responses(
        (status = 200, description = "A page of rooms, with `unread` and `read_seq`.", body = RoomList),
        (status = 400, description = "`bad_request`: a `limit` outside 1–100 or a `cursor` this server did not make."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppQuery(q): AppQuery<RoomsQuery>,
) -> Result<Json<RoomList>> {
    let (rooms, next_cursor) = app
        .service
        .rooms_of(&who, q.limit, q.cursor.as_deref())
        .await?;
    Ok(Json(RoomList { rooms, next_cursor }))
}

/// One room, with its members.
///
/// Members may see any of their rooms; anyone, even anonymous, may see a public room.
#[utoipa::path(
    get,
    path = "/v1/rooms/{id}",
    tag = "rooms",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The room id.")),
    responses(
        (status = 200, description = "The room with `members`.", body = Room),
        (status = 400, description = "`bad_request`: a room id that is not valid UTF-8."),
        (status = 401, description = "`unauthorized`: an invalid, expired or revoked token (without one the caller is anonymous)."),
        (status = 404, description = "`not_found`: no such room, or a private room the caller is not in."),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    MaybeCaller(who): MaybeCaller,
    AppPath(room): AppPath<String>,
) -> Result<Json<Room>> {
    Ok(Json(app.service.room(who.as_ref(), &room).await?))
}

/// Add a user to a group room (any member may; adding a member again changes nothing).
#[utoipa::path(
    post,
    path = "/v1/rooms/{id}/members",
    tag = "rooms",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The room id.")),
    request_body = AddMemberRequest,
    responses(
        (status = 204, description = "The user is a member."),
        (status = 400, description = "`bad_request`: a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not a member, or the room is a direct room."),
        (status = 404, description = "`not_found`: no such room; `user_not_found`: no such user."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
    )
)]
pub async fn add_member(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(room): AppPath<String>,
    AppJson(req): AppJson<AddMemberRequest>,
) -> Result<StatusCode> {
    app.service.add_member(&who, &room, &req.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leave a room (a direct room is hidden instead: its member stays a member).
#[utoipa::path(
    post,
    path = "/v1/rooms/{id}/leave",
    tag = "rooms",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The room id.")),
    responses(
        (status = 204, description = "Left (or hidden)."),
        (status = 400, description = "`bad_request`: a room id that is not valid UTF-8."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not a member."),
        (status = 404, description = "`not_found`: no such room."),
    )
)]
pub async fn leave(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(room): AppPath<String>,
) -> Result<StatusCode> {
    app.service.leave(&who, &room).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The direct room of the caller and `{username}`, created on first use.
#[utoipa::path(
    post,
    path = "/v1/direct/{username}",
    tag = "rooms",
    security(("bearer" = [])),
    params(("username" = String, Path, description = "The other user.")),
    responses(
        (status = 200, description = "The direct room.", body = Room),
        (status = 400, description = "`bad_request`: a path that is not one valid segment."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 404, description = "`user_not_found`: no such user."),
        (status = 409, description = "`conflict`: `{username}` is the caller."),
    )
)]
pub async fn direct(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(username): AppPath<String>,
) -> Result<Json<Room>> {
    Ok(Json(app.service.direct(&who, &username).await?))
}

/// A page of a room's messages in ascending seq order, tombstones included.
///
/// Public rooms are readable by anyone, private rooms by their members.
#[utoipa::path(
    get,
    path = "/v1/rooms/{id}/messages",
    tag = "messages",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The room id."), MessagesQuery),
    responses(
        (status = 200, description = "The messages.", body = MessagePage),
        (status = 400, description = "`bad_request`: a `limit` outside 1–100, or a seq over 2^63 − 1."),
        (status = 401, description = "`unauthorized`: an invalid, expired or revoked token (without one the caller is anonymous)."),
        (status = 403, description = "`forbidden`: a private room the caller is not a member of."),
        (status = 404, description = "`not_found`: no such room."),
    )
)]
pub async fn messages(
    State(app): State<AppState>,
    MaybeCaller(who): MaybeCaller,
    AppPath(room): AppPath<String>,
    AppQuery(q): AppQuery<MessagesQuery>,
) -> Result<Json<MessagePage>> {
    let page = Page {
        before: q.before,
        after: q.after,
        limit: q.limit.unwrap_or(DEFAULT_HISTORY_LIMIT),
    };
    Ok(Json(MessagePage {
        messages: app.service.history(who.as_ref(), &room, page).await?,
    }))
}

/// Post a message (the REST twin of the WebSocket `send`, with its idempotency).
///
/// Answered after the message is stored; a repeated `client_msg_id` answers with the first
/// message's seq.
#[utoipa::path(
    post,
    path = "/v1/rooms/{id}/messages",
    tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The room id.")),
    request_body = PostMessageRequest,
    responses(
        (status = 201, description = "Stored.", body = PostMessageResponse),
        (status = 400, description = "`bad_request`: a body empty after trimming (without attachments), a `client_msg_id` over 64 bytes, more than 10 attachments or one named twice, an attachment already sent or uploaded by someone else, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not a member."),
        (status = 404, description = "`not_found`: no such room, or an attachment id that is not one of this room's."),
        (status = 413, description = "`too_large`: a message body over 4096 bytes, or a request body over 2 MiB."),
        (status = 429, description = "`rate_limited`: over the per-user send limit; nothing was stored."),
    )
)]
pub async fn post_message(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(room): AppPath<String>,
    AppJson(req): AppJson<PostMessageRequest>,
) -> Result<Response> {
    let ack = app
        .service
        .post(&who, &room, req.body, req.client_msg_id, req.attachments)
        .await?;
    let body = PostMessageResponse {
        room,
        seq: ack.seq,
        ts: ack.ts,
        client_msg_id: ack.client_msg_id,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Edit a message (its author only).
#[utoipa::path(
    patch,
    path = "/v1/rooms/{id}/messages/{seq}",
    tag = "messages",
    security(("bearer" = [])),
    params(MessagePath),
    request_body = EditMessageRequest,
    responses(
        (status = 200, description = "The edited message.", body = Message),
        (status = 400, description = "`bad_request`: an empty body, a seq over 2^63 − 1, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not the author or not a member."),
        (status = 404, description = "`not_found`: no such room or message, or a deleted message."),
        (status = 413, description = "`too_large`: a message body over 4096 bytes, or a request body over 2 MiB."),
    )
)]
pub async fn edit_message(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(MessagePath { id: room, seq }): AppPath<MessagePath>,
    AppJson(req): AppJson<EditMessageRequest>,
) -> Result<Json<Message>> {
    Ok(Json(app.service.edit(&who, &room, seq, req.body).await?))
}

/// Delete a message (its author only): it becomes a tombstone.
#[utoipa::path(
    delete,
    path = "/v1/rooms/{id}/messages/{seq}",
    tag = "messages",
    security(("bearer" = [])),
    params(MessagePath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`bad_request`: a seq over 2^63 − 1."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not the author or not a member."),
        (status = 404, description = "`not_found`: no such room or message."),
    )
)]
pub async fn delete_message(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(MessagePath { id: room, seq }): AppPath<MessagePath>,
) -> Result<StatusCode> {
    app.service.delete(&who, &room, seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move the caller's read mark forward (it never moves back; clamped to the room's last seq).
#[utoipa::path(
    post,
    path = "/v1/rooms/{id}/read",
    tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The room id.")),
    request_body = ReadRequest,
    responses(
        (status = 204, description = "The mark is set."),
        (status = 400, description = "`bad_request`: a seq over 2^63 − 1, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not a member."),
        (status = 404, description = "`not_found`: no such room."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
    )
)]
pub async fn read(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(room): AppPath<String>,
    AppJson(req): AppJson<ReadRequest>,
) -> Result<StatusCode> {
    app.service.mark_read(&who, &room, req.seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who is online in the room, across every node (sorted usernames).
#[utoipa::path(
    get,
    path = "/v1/rooms/{id}/presence",
    tag = "rooms",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The room id.")),
    responses(
        (status = 200, description = "The users present.", body = PresenceList),
        (status = 400, description = "`bad_request`: a room id that is not valid UTF-8."),
        (status = 401, description = "`unauthorized`: an invalid, expired or revoked token (without one the caller is anonymous)."),
        (status = 403, description = "`forbidden`: a private room the caller is not a member of."),
        (status = 404, description = "`not_found`: no such room."),
    )
)]
pub async fn presence(
    State(app): State<AppState>,
    MaybeCaller(who): MaybeCaller,
    AppPath(room): AppPath<String>,
) -> Result<Json<PresenceList>> {
    let users = app.service.presence(who.as_ref(), &room).await?;
    Ok(Json(PresenceList { room, users }))
}
