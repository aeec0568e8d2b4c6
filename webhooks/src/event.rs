//! [`Event`] and [`EventType`]: what a delivery's body holds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of event, by their wire name (`message.created`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// A message was posted (by a user or a bot). Scope: its room.
    #[serde(rename = "message.created")]
    MessageCreated,
    /// A message's body was replaced. Scope: its room.
    #[serde(rename = "message.edited")]
    MessageEdited,
    /// A message became a tombstone. Scope: its room.
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    /// A user became a member of a room (not its creator: see `room.created`). Scope: the room.
    #[serde(rename = "member.joined")]
    MemberJoined,
    /// A user stopped being a member of a room. Scope: the room.
    #[serde(rename = "member.left")]
    MemberLeft,
    /// A room was created (its creator, or both users of a direct room, its first members).
    /// Scope: the room.
    #[serde(rename = "room.created")]
    RoomCreated,
    /// An account was registered. Scope: the user.
    #[serde(rename = "user.registered")]
    UserRegistered,
    /// An account was deleted. Scope: the user.
    #[serde(rename = "user.deleted")]
    UserDeleted,
}

impl EventType {
    /// Every type, in documentation order.
    pub const ALL: [EventType; 8] = [
        EventType::MessageCreated,
        EventType::MessageEdited,
        EventType::MessageDeleted,
        EventType::MemberJoined,
        EventType::MemberLeft,
        EventType::RoomCreated,
        EventType::UserRegistered,
        EventType::UserDeleted,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageCreated => "message.created",
            EventType::MessageEdited => "message.edited",
            EventType::MessageDeleted => "message.deleted",
            EventType::MemberJoined => "member.joined",
            EventType::MemberLeft => "member.left",
            EventType::RoomCreated => "room.created",
            EventType::UserRegistered => "user.registered",
            EventType::UserDeleted => "user.deleted",
        }
    }

    /// The type of a wire name.
    ///
    /// # Errors
    /// [`crate::WebhookError::UnknownEvent`] for a name nobody sends.
    pub fn parse(s: &str) -> Result<EventType, crate::WebhookError> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| crate::WebhookError::UnknownEvent(s.to_owned()))
    }

    /// Whether the auth service causes it (the others come from the hub).
    pub fn is_user_event(self) -> bool {
        matches!(self, EventType::UserRegistered | EventType::UserDeleted)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event: the JSON body of every delivery of it.
///
/// ```json
/// {"id":"0193...","type":"message.created","ts":1733400000000,"data":{...}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// uuid v7, the same in every endpoint's delivery: receivers drop repeats by it.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened (committed), ms since the Unix epoch.
    pub ts: i64,
    /// The details, by type (see PROTOCOL.md, "Webhooks").
    pub data: Value,
}

impl Event {
    /// A new event of `kind` at `ts` with `data`, with a fresh id.
    pub fn new(kind: EventType, ts: i64, data: Value) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            ts,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_wire_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Ok(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert!(EventType::parse("message.created ").is_err());
        assert!(EventType::parse("").is_err());
    }
}
