//! REST handlers for rooms, members and messages: thin adapters over the service layer.

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

pub async fn create(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppJson(req): AppJson<CreateRoomRequest>,
) -> Result<Response> {
    let room = app.service.create_room(&who, &req.name, req.public).await?;
    Ok((StatusCode::CREATED, Json(room)).into_response())
}

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

pub async fn get(
    State(app): State<AppState>,
    MaybeCaller(who): MaybeCaller,
    AppPath(room): AppPath<String>,
) -> Result<Json<Room>> {
    Ok(Json(app.service.room(who.as_ref(), &room).await?))
}

pub async fn add_member(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(room): AppPath<String>,
    AppJson(req): AppJson<AddMemberRequest>,
) -> Result<StatusCode> {
    app.service.add_member(&who, &room, &req.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn leave(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(room): AppPath<String>,
) -> Result<StatusCode> {
    app.service.leave(&who, &room).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn direct(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(username): AppPath<String>,
) -> Result<Json<Room>> {
    Ok(Json(app.service.direct(&who, &username).await?))
}

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

pub async fn post_message(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(room): AppPath<String>,
    AppJson(req): AppJson<PostMessageRequest>,
) -> Result<Response> {
    let ack = app
        .service
        .post(&who, &room, req.body, req.client_msg_id)
        .await?;
    let body = PostMessageResponse {
        room,
        seq: ack.seq,
        ts: ack.ts,
        client_msg_id: ack.client_msg_id,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn edit_message(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(MessagePath { id: room, seq }): AppPath<MessagePath>,
    AppJson(req): AppJson<EditMessageRequest>,
) -> Result<Json<Message>> {
    Ok(Json(app.service.edit(&who, &room, seq, req.body).await?))
}

pub async fn delete_message(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(MessagePath { id: room, seq }): AppPath<MessagePath>,
) -> Result<StatusCode> {
    app.service.delete(&who, &room, seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn read(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(room): AppPath<String>,
    AppJson(req): AppJson<ReadRequest>,
) -> Result<StatusCode> {
    app.service.mark_read(&who, &room, req.seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn presence(
    State(app): State<AppState>,
    MaybeCaller(who): MaybeCaller,
    AppPath(room): AppPath<String>,
) -> Result<Json<PresenceList>> {
    let users = app.service.presence(who.as_ref(), &room).await?;
    Ok(Json(PresenceList { room, users }))
}
