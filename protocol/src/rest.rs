//! JSON bodies of the HTTP API (`/v1/auth/*`, `/v1/rooms/*`, `/v1/direct/*`).

use serde::{Deserialize, Serialize};

use crate::{Millis, Seq};

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Stable opaque id.
    pub id: String,
    /// Unique login name, 3–32 of `[a-z0-9_.-]`.
    pub username: String,
    /// E-mail address (shown only to the user themself and to operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    /// The account was deleted: this is its tombstone, as `GET /v1/users/{username}` answers it
    /// (messages keep naming the username). Absent (false) for a live account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// `POST /v1/auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9_.-]{3,32}$"))]
    pub username: String,
    pub email: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 1024))]
    pub password: String,
}

/// `POST /v1/auth/register` answer (201).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterResponse {
    pub user: User,
}

/// `POST /v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// `POST /v1/auth/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Answer to login and refresh: a short-lived access token and a single-use refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenPair {
    /// EdDSA-signed JWT, sent as `Authorization: Bearer` or in `hello`.
    pub access_token: String,
    /// Opaque, single use: each refresh returns a new one. Reusing an old one revokes the session.
    pub refresh_token: String,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    /// Always `Bearer`.
    pub token_type: String,
    pub user: User,
}

/// `GET /v1/auth/me` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeResponse {
    pub user: User,
    /// The session the presented token belongs to.
    pub session: String,
}

/// A room as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Room {
    pub id: String,
    pub name: String,
    /// Readable (history, live) by anyone, even without an account.
    pub public: bool,
    /// `group` or `direct`.
    pub kind: String,
    /// Username of the creator.
    pub created_by: String,
    /// Seq of the newest message (0 when empty).
    pub last_seq: Seq,
    /// Messages after the caller's read mark; present in the caller's room list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u64>,
    /// The caller's read mark; present in the caller's room list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_seq: Option<Seq>,
    /// Usernames of the members; present on `GET /v1/rooms/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

/// `POST /v1/rooms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRoomRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 80))]
    pub name: String,
    #[serde(default)]
    pub public: bool,
}

/// Query of `GET /v1/rooms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct RoomsQuery {
    /// Page size, 1..=[`MAX_ROOM_PAGE`](crate::limits::MAX_ROOM_PAGE) (default
    /// [`DEFAULT_ROOM_PAGE`](crate::limits::DEFAULT_ROOM_PAGE)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `GET /v1/rooms` answer: one page of the caller's rooms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomList {
    pub rooms: Vec<Room>,
    /// Opaque: pass it as `cursor` to get the next page. Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /v1/rooms/{id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddMemberRequest {
    pub username: String,
}

/// `POST /v1/rooms/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostMessageRequest {
    /// The text; may be empty (or absent) when `attachments` is not.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub client_msg_id: Option<String>,
    /// Ids of attachments uploaded to this room by the caller and not yet sent (at most 10,
    /// no repeats).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub attachments: Vec<String>,
}

/// Answer to `POST /v1/rooms/{id}/messages` (the same data as a WebSocket `ack`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostMessageResponse {
    pub room: String,
    pub seq: Seq,
    pub ts: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// `PATCH /v1/rooms/{id}/messages/{seq}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditMessageRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
    pub body: String,
}

/// `POST /v1/rooms/{id}/read`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadRequest {
    #[serde(deserialize_with = "crate::seq::deserialize")]
    pub seq: Seq,
}

/// Query of `GET /v1/rooms/{id}/messages`; seqs are checked like every client seq.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct MessagesQuery {
    /// Only messages with a smaller seq (the newest `limit` of them).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::seq::deserialize_opt"
    )]
    pub before: Option<Seq>,
    /// Only messages with a larger seq (the first `limit` of them).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::seq::deserialize_opt"
    )]
    pub after: Option<Seq>,
    /// Page size, 1..=[`MAX_HISTORY_LIMIT`](crate::limits::MAX_HISTORY_LIMIT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
}

/// Path of `PATCH`/`DELETE /v1/rooms/{id}/messages/{seq}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Path)
)]
pub struct MessagePath {
    /// The room id.
    pub id: String,
    #[serde(deserialize_with = "crate::seq::deserialize")]
    pub seq: Seq,
}

/// `GET /v1/rooms/{id}/messages` answer: messages in ascending seq order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagePage {
    pub messages: Vec<crate::ws::Message>,
}

/// `GET /v1/rooms/{id}/presence` answer: who is online in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceList {
    pub room: String,
    /// Usernames with at least one connection subscribed to the room, sorted.
    pub users: Vec<String>,
}

mod accounts;
pub use accounts::*;
mod emoticons;
pub use emoticons::*;
mod server;
pub use server::*;

mod jobs;
pub use jobs::*;

mod webhooks;
pub use webhooks::*;

mod avatars;
pub use avatars::*;
