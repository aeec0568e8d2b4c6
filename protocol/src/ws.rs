//! WebSocket frames of protocol v1 (`GET /v1/ws`, subprotocol `switchboard.v1`, JSON text frames).
//!
//! Every frame is a JSON object with a `type`. A client frame may carry an `id` (a number or a
//! string); the server's reply to that frame echoes it. Events pushed by the server (`message`,
//! `edited`, ...) carry no `id`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::rest::User;
use crate::{ErrorCode, Millis, Seq};

/// A client-chosen request id, echoed in the reply: a non-negative integer or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FrameId {
    Num(u64),
    Str(String),
}

impl From<u64> for FrameId {
    fn from(n: u64) -> Self {
        Self::Num(n)
    }
}

/// A frame sent by a client. Decode with [`decode_client_frame`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Must be the first frame. Without a token (and without an `Authorization` header on the
    /// upgrade) the connection is anonymous: it may only read public rooms.
    Hello {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Subscribe to a room's events; with `since`, every message after that seq comes first.
    Sub {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "crate::seq::deserialize_opt"
        )]
        since: Option<Seq>,
    },
    /// Stop receiving a room's events.
    Unsub {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
    },
    /// Post a message; answered with `ack` once it is stored.
    Send {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
        body: String,
        /// Idempotency key: a repeat from the same user in the same room gets the first ack.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        /// Ids of attachments uploaded to this room by the sender and not yet sent (at most
        /// [`MAX_ATTACHMENTS_PER_MESSAGE`](crate::limits::MAX_ATTACHMENTS_PER_MESSAGE), no
        /// repeats). With attachments, `body` may be empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<String>,
    },
    /// "I am typing" (not stored; throttled per user and room).
    Typing {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
    },
    /// A page of history: messages before `before` (or the newest), ascending.
    History {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "crate::seq::deserialize_opt"
        )]
        before: Option<Seq>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Move the caller's read mark forward to `seq` (it never moves back).
    Read {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
        #[serde(deserialize_with = "crate::seq::deserialize")]
        seq: Seq,
    },
    /// Application-level ping; answered with `pong`.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
    },
}

/// The `type` names of [`ClientFrame`], used to tell `unknown_type` from `bad_request`.
pub const CLIENT_FRAME_TYPES: &[&str] = &[
    "hello", "sub", "unsub", "send", "typing", "history", "read", "ping",
];

impl ClientFrame {
    /// The frame's request id, if it carries one.
    pub fn id(&self) -> Option<&FrameId> {
        match self {
            Self::Hello { id, .. }
            | Self::Sub { id, .. }
            | Self::Unsub { id, .. }
            | Self::Send { id, .. }
            | Self::Typing { id, .. }
            | Self::History { id, .. }
            | Self::Read { id, .. }
            | Self::Ping { id } => id.as_ref(),
        }
    }

    /// Serialises the frame to JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client frames always serialise")
    }
}

/// Why a client frame could not be decoded, with the `id` if one could be recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DecodeError {
    pub id: Option<FrameId>,
    /// [`ErrorCode::BadRequest`] or [`ErrorCode::UnknownType`].
    pub code: ErrorCode,
    pub message: String,
}

impl DecodeError {
    /// The `error` frame that answers this decode error.
    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame::Error {
            id: self.id.clone(),
            code: self.code,
            message: self.message.clone(),
        }
    }
}

/// Parses one client frame. On failure the error says whether the `type` was unknown or the
/// frame malformed, and carries the frame's `id` when it could be read.
///
/// Only a JSON object is a frame: serde would also read an internally tagged enum from an array
/// (`["ping"]`, the tag first and then the fields in order), which the protocol does not allow.
pub fn decode_client_frame(text: &[u8]) -> Result<ClientFrame, DecodeError> {
    let first = text
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first.is_some_and(|&b| b != b'{') {
        return Err(DecodeError {
            id: None,
            code: ErrorCode::BadRequest,
            message: "a frame is a JSON object".into(),
        });
    }
    match serde_json::from_slice::<ClientFrame>(text) {
        Ok(frame) => Ok(frame),
        Err(err) => {
            // Lenient second look, only on the error path: is it an object with an id/type?
            let probe =
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(text).ok();
            let id = probe
                .as_ref()
                .and_then(|p| p.get("id"))
                .and_then(|v| serde_json::from_value::<FrameId>(v.clone()).ok());
            match probe.as_ref().map(|p| p.get("type")) {
                Some(Some(serde_json::Value::String(t)))
                    if !CLIENT_FRAME_TYPES.contains(&t.as_str()) =>
                {
                    Err(DecodeError {
                        id,
                        code: ErrorCode::UnknownType,
                        message: format!("unknown frame type {t:?}"),
                    })
                }
                Some(None) => Err(DecodeError {
                    id,
                    code: ErrorCode::BadRequest,
                    message: "missing field `type`".into(),
                }),
                _ => Err(DecodeError {
                    id,
                    code: ErrorCode::BadRequest,
                    message: err.to_string(),
                }),
            }
        }
    }
}

/// A stored message, as delivered live (`{"type":"message", ...}`) and in history pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub room: String,
    pub seq: Seq,
    /// Username of the author.
    pub from: String,
    /// The text; empty when `deleted`.
    pub body: String,
    /// When it was stored.
    pub ts: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// When it was last edited, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_ts: Option<Millis>,
    /// Deleted by its author: the seq stays, the body is gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Posted by a bot through the server API (`POST /v1/server/publish`): `from` is the bot's
    /// name, not a user's. Absent (false) for users' messages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bot: bool,
    /// The files sent with it, in the order the sender gave. Absent when none (and on a
    /// deleted message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentInfo>,
}

/// A file sent with a message: what a client shows and where it downloads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentInfo {
    /// Random (128 bits), unique within the room.
    pub id: String,
    /// The file name the uploader gave (cleaned: no path, no control characters).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The content type sniffed from the bytes (never the uploader's word).
    #[serde(rename = "type")]
    pub content_type: String,
    /// Where to download it (`/v1/rooms/{id}/attachments/{attachment_id}`), relative to the hub.
    pub url: String,
    /// A PNG thumbnail of at most 256×256 pixels (images only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
}

impl AttachmentInfo {
    /// The download URL of attachment `id` of `room` (path segments percent-encoded).
    pub fn url_of(room: &str, id: &str) -> String {
        format!(
            "/v1/rooms/{}/attachments/{}",
            encode_segment(room),
            encode_segment(id)
        )
    }

    /// The thumbnail URL of attachment `id` of `room`.
    pub fn thumbnail_url_of(room: &str, id: &str) -> String {
        format!("{}/thumbnail", Self::url_of(room, id))
    }
}

/// Percent-encodes everything in `s` but RFC 3986's unreserved characters.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A frame sent by the server: a reply (echoing the request `id`) or an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Answer to `hello`. `user` is absent for anonymous connections.
    Welcome {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// This connection's session id (the token's `sid`, or a fresh id when anonymous).
        session: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<User>,
        /// The server pings at this interval; a client may use it to detect a dead link.
        heartbeat_ms: u64,
    },
    /// Answer to `sub`, sent after any catch-up messages requested with `since`.
    Subbed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
        last_seq: Seq,
    },
    /// Answer to `unsub`.
    Unsubbed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
    },
    /// Answer to `send`: the message is stored with this seq.
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
        seq: Seq,
        ts: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// A new message in a subscribed room (or a catch-up message after `sub` with `since`).
    Message(Message),
    /// A message was edited.
    Edited {
        room: String,
        seq: Seq,
        body: String,
        edited_ts: Millis,
    },
    /// A message was deleted, by its author or (`moderated`) by an admin.
    Deleted {
        room: String,
        seq: Seq,
        /// Removed by an admin (moderation) rather than by its author. Absent (false) otherwise.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        moderated: bool,
    },
    /// A user became a member of the room.
    MemberJoined { room: String, user: String },
    /// A user left the room.
    MemberLeft { room: String, user: String },
    /// A user is typing in the room.
    Typing { room: String, user: String },
    /// A member's read mark moved to `seq`.
    Read {
        room: String,
        user: String,
        seq: Seq,
    },
    /// A user became present in the room (`online: true`: their first subscribed connection on
    /// any node) or is no longer present anywhere (`online: false`).
    Presence {
        room: String,
        user: String,
        online: bool,
    },
    /// Answer to `history`: messages in ascending seq order.
    History {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
        messages: Vec<Message>,
    },
    /// Answer to `read`.
    ReadOk {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        room: String,
        seq: Seq,
    },
    /// Answer to `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
    },
    /// The hub's custom emoticons changed (one was added or removed, on any node): sent to
    /// every connection, authenticated or anonymous, greeted or not. `etag` is the new
    /// `ETag` of `GET /v1/emoticons` without its quotes; a client refetches the list (or skips
    /// it when it already holds this one).
    Emoticons { etag: String },
    /// A request failed (or a frame could not be decoded); the connection stays open.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        code: ErrorCode,
        message: String,
    },
}

impl ServerFrame {
    /// Serialises the frame once; the same bytes can be queued to any number of connections.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("server frames always serialise"))
    }

    /// Builds an error reply.
    pub fn error(id: Option<FrameId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            id,
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `client_frame` fuzz target: serde reads an internally tagged enum from a JSON
    /// array too, so `["sub",1,"r"]` was a `sub` of room `r` with id 1.
    #[test]
    fn a_frame_that_is_not_an_object_is_refused() {
        for text in [
            &b"[\"ping\"]"[..],
            b" [\"sub\",1,\"r\"]",
            b"\"ping\"",
            b"7",
            b"null",
        ] {
            let err = decode_client_frame(text).expect_err(&String::from_utf8_lossy(text));
            assert_eq!(err.code, ErrorCode::BadRequest);
            assert_eq!(err.id, None);
        }
        // An object, even after whitespace, is still read.
        assert_eq!(
            decode_client_frame(b" \r\n\t{\"type\":\"ping\",\"id\":1}"),
            Ok(ClientFrame::Ping {
                id: Some(FrameId::Num(1))
            })
        );
    }
}
