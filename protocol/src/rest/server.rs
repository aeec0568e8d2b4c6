//! Bodies of the server API (`/v1/server/*`), called by backends with an API key.

use serde::{Deserialize, Serialize};

use crate::{Millis, Seq};

/// `POST /v1/server/publish`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServerPublishRequest {
    /// The room id.
    pub room: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
    pub body: String,
    /// A repeat with the same key, room and bot answers with the first message and stores
    /// nothing (1–64 bytes).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub idempotency_key: String,
    /// The bot's name (the rules of usernames: 3–32 of `a-z 0-9 _ . -`); default the API
    /// key's name.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_bot: Option<String>,
}

/// Answer to `POST /v1/server/publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerPublishResponse {
    pub room: String,
    pub seq: Seq,
    pub ts: Millis,
    /// The bot that posted it.
    pub from: String,
    pub idempotency_key: String,
}

/// `POST /v1/server/disconnect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServerDisconnectRequest {
    /// The username whose sockets close.
    pub user: String,
}

/// `POST /v1/server/rooms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServerCreateRoomRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 80))]
    pub name: String,
    #[serde(default)]
    pub public: bool,
    /// The bot that owns the room and is its first member; default the API key's name.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_bot: Option<String>,
}

/// `POST` and `DELETE /v1/server/rooms/{id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServerMemberRequest {
    pub username: String,
}
