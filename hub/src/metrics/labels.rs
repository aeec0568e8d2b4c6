//! The label values of the hub's metrics, as enums whose discriminant indexes the array of
//! handles (see `HubMetrics`): choosing a label on the hot path is a `match`, not a string.

use switchboard_protocol::close;
use switchboard_protocol::ws::{ClientFrame, ServerFrame};

/// The `type` of a client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Hello,
    Sub,
    Unsub,
    Send,
    Typing,
    History,
    Read,
    Ping,
    /// Not a frame of the protocol: undecodable, unknown type, or a binary message.
    Invalid,
}

impl ClientType {
    /// Every value, in discriminant order.
    pub const ALL: [Self; 9] = [
        Self::Hello,
        Self::Sub,
        Self::Unsub,
        Self::Send,
        Self::Typing,
        Self::History,
        Self::Read,
        Self::Ping,
        Self::Invalid,
    ];

    /// The label value (the protocol's `type`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::Sub => "sub",
            Self::Unsub => "unsub",
            Self::Send => "send",
            Self::Typing => "typing",
            Self::History => "history",
            Self::Read => "read",
            Self::Ping => "ping",
            Self::Invalid => "invalid",
        }
    }

    /// The type of a decoded frame.
    pub fn of(frame: &ClientFrame) -> Self {
        match frame {
            ClientFrame::Hello { .. } => Self::Hello,
            ClientFrame::Sub { .. } => Self::Sub,
            ClientFrame::Unsub { .. } => Self::Unsub,
            ClientFrame::Send { .. } => Self::Send,
            ClientFrame::Typing { .. } => Self::Typing,
            ClientFrame::History { .. } => Self::History,
            ClientFrame::Read { .. } => Self::Read,
            ClientFrame::Ping { .. } => Self::Ping,
        }
    }
}

/// The `type` of a server frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerType {
    Welcome,
    Subbed,
    Unsubbed,
    Ack,
    Message,
    Edited,
    Deleted,
    MemberJoined,
    MemberLeft,
    Typing,
    Read,
    Presence,
    History,
    ReadOk,
    Pong,
    /// The custom emoticons changed (sent to every connection).
    Emoticons,
    Error,
    /// A type this build does not know (an event from a newer node).
    Other,
}

impl ServerType {
    /// Every value, in discriminant order.
    pub const ALL: [Self; 18] = [
        Self::Welcome,
        Self::Subbed,
        Self::Unsubbed,
        Self::Ack,
        Self::Message,
        Self::Edited,
        Self::Deleted,
        Self::MemberJoined,
        Self::MemberLeft,
        Self::Typing,
        Self::Read,
        Self::Presence,
        Self::History,
        Self::ReadOk,
        Self::Pong,
        Self::Emoticons,
        Self::Error,
        Self::Other,
    ];

    /// The label value (the protocol's `type`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::Subbed => "subbed",
            Self::Unsubbed => "unsubbed",
            Self::Ack => "ack",
            Self::Message => "message",
            Self::Edited => "edited",
            Self::Deleted => "deleted",
            Self::MemberJoined => "member_joined",
            Self::MemberLeft => "member_left",
            Self::Typing => "typing",
            Self::Read => "read",
            Self::Presence => "presence",
            Self::History => "history",
            Self::ReadOk => "read_ok",
            Self::Pong => "pong",
            Self::Emoticons => "emoticons",
            Self::Error => "error",
            Self::Other => "other",
        }
    }

    /// The type of `frame`.
    pub fn of(frame: &ServerFrame) -> Self {
        match frame {
            ServerFrame::Welcome { .. } => Self::Welcome,
            ServerFrame::Subbed { .. } => Self::Subbed,
            ServerFrame::Unsubbed { .. } => Self::Unsubbed,
            ServerFrame::Ack { .. } => Self::Ack,
            ServerFrame::Message(_) => Self::Message,
            ServerFrame::Edited { .. } => Self::Edited,
            ServerFrame::Deleted { .. } => Self::Deleted,
            ServerFrame::MemberJoined { .. } => Self::MemberJoined,
            ServerFrame::MemberLeft { .. } => Self::MemberLeft,
            ServerFrame::Typing { .. } => Self::Typing,
            ServerFrame::Read { .. } => Self::Read,
            ServerFrame::Presence { .. } => Self::Presence,
            ServerFrame::History { .. } => Self::History,
            ServerFrame::ReadOk { .. } => Self::ReadOk,
            ServerFrame::Pong { .. } => Self::Pong,
            ServerFrame::Emoticons { .. } => Self::Emoticons,
            ServerFrame::Error { .. } => Self::Error,
        }
    }

    /// The type named by a frame's `type` field (an event received from another node); `None`
    /// for a name this build does not know.
    pub fn from_label(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| *t != Self::Other && t.label() == name)
    }
}

/// A rate limit of the hub (the auth service adds `login` and `register`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Client frames per connection (`--rate-per-sec`, `--rate-burst`).
    Frames,
    /// Sends per user (`--user-rate-per-sec`, `--user-rate-burst`).
    Sends,
    /// One `typing` per user and room every 2 s (dropped silently).
    Typing,
    /// Rooms created per user per hour (`--rooms-per-hour`).
    Rooms,
    /// WebSocket connections per client IP (`--max-connections-per-ip`).
    ConnectionsPerIp,
    /// Server API requests per API key (`--server-api-rate-per-sec`, `--server-api-rate-burst`).
    ServerApi,
    /// Avatar uploads per user (one per 10 s after a burst of 5), and attachment and avatar
    /// uploads under way per user.
    Uploads,
    /// Attachment bytes per user per day (`--upload-bytes-per-day`).
    UploadBytes,
}

impl Limit {
    /// Every value, in discriminant order.
    pub const ALL: [Self; 8] = [
        Self::Frames,
        Self::Sends,
        Self::Typing,
        Self::Rooms,
        Self::ConnectionsPerIp,
        Self::ServerApi,
        Self::Uploads,
        Self::UploadBytes,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Frames => "frames",
            Self::Sends => "sends",
            Self::Typing => "typing",
            Self::Rooms => "rooms",
            Self::ConnectionsPerIp => "connections_per_ip",
            Self::ServerApi => "server_api",
            Self::Uploads => "uploads",
            Self::UploadBytes => "upload_bytes",
        }
    }
}

/// The close codes the hub sends, with their labels; any other is counted as `other` (the
/// index after the last).
pub const CLOSE_CODES: [(u16, &str); 11] = [
    (close::NORMAL, "1000"),
    (close::GOING_AWAY, "1001"),
    (close::PROTOCOL_ERROR, "1002"),
    (close::INVALID_UTF8, "1007"),
    (close::POLICY, "1008"),
    (close::TOO_BIG, "1009"),
    (close::INTERNAL, "1011"),
    (close::RESTARTING, "1012"),
    (close::TRY_AGAIN_LATER, "1013"),
    (close::SLOW_CONSUMER, "4000"),
    (close::DISCONNECTED, "4001"),
];

/// The index of `code`'s handle.
pub fn close_index(code: u16) -> usize {
    CLOSE_CODES
        .iter()
        .position(|(c, _)| *c == code)
        .unwrap_or(CLOSE_CODES.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_follow_the_arrays() {
        for (i, t) in ClientType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
        for (i, t) in ServerType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
            if *t != ServerType::Other {
                assert_eq!(ServerType::from_label(t.label()), Some(*t));
            }
        }
        for (i, l) in Limit::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i);
        }
        assert_eq!(close_index(4000), 9);
        assert_eq!(close_index(4999), CLOSE_CODES.len());
    }

    /// The labels are the protocol's own `type` names.
    #[test]
    fn labels_are_the_wire_names() {
        for name in switchboard_protocol::ws::CLIENT_FRAME_TYPES {
            assert!(ClientType::ALL.iter().any(|t| t.label() == *name), "{name}");
        }
        let pong = ServerFrame::Pong { id: None };
        let json: serde_json::Value = serde_json::from_slice(&pong.to_bytes()).unwrap();
        assert_eq!(json["type"], ServerType::of(&pong).label());
    }
}
