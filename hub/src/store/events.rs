//! The webhook events the hub's stores cause: each function returns the delivery jobs of one
//! event (none when no enabled endpoint receives its type, so a hub without webhooks pays a
//! read of an empty list), for the store to insert in the transaction that makes the change.
//!
//! **Invariant:** an event's data are the committed values (seq, ts as stored), and its jobs
//! commit or roll back with the change (a SQLite savepoint or transaction, the PostgreSQL
//! batch or statement transaction): a webhook is never sent for a change that did not happen,
//! nor lost for one that did.

use std::sync::{Arc, OnceLock};

use serde_json::json;
use switchboard_jobs::NewJob;
use switchboard_protocol::{Millis, Seq};
use switchboard_webhooks::{EventType, Registry};

use super::{is_bot_id, NewMessage, RoomRecord, UserRef};

/// What a store needs to cause webhooks: the endpoints (set once by the node, see
/// [`Webhooks::set`]) and a signal raised after a commit that inserted jobs, which the node
/// turns into a nudge of its job workers (so a delivery starts without waiting for a poll).
/// Cheap to clone; unset, it causes nothing.
#[derive(Clone, Default)]
pub struct Webhooks {
    inner: Arc<OnceLock<(Registry, Arc<tokio::sync::Notify>)>>,
}

impl Webhooks {
    /// From now on, events are delivered to `registry`'s endpoints, and `enqueued` is notified
    /// after each commit that inserted jobs. Set once: a second call changes nothing.
    pub fn set(&self, registry: Registry, enqueued: Arc<tokio::sync::Notify>) {
        let _ = self.inner.set((registry, enqueued));
    }

    /// Whether any endpoint receives `kind` now.
    pub(crate) fn wants(&self, kind: EventType) -> bool {
        self.inner.get().is_some_and(|(r, _)| r.wants(kind))
    }

    /// Raises the signal (call it after the commit of jobs).
    pub(crate) fn enqueued(&self) {
        if let Some((_, notify)) = self.inner.get() {
            notify.notify_one();
        }
    }

    fn jobs(
        &self,
        kind: EventType,
        room: &str,
        ts: Millis,
        data: impl FnOnce() -> serde_json::Value,
    ) -> Vec<NewJob> {
        match self.inner.get() {
            Some((registry, _)) => registry.jobs_for(kind, room, ts, data),
            None => Vec::new(),
        }
    }

    /// `message.created`: the message as stored, with its author's id, and the attachments
    /// its append linked (`linked`: their ids; absent when it carries none), as the `message`
    /// frame shows them.
    pub(crate) fn message_created(
        &self,
        msg: &NewMessage,
        seq: Seq,
        ts: Millis,
        linked: &[String],
    ) -> Vec<NewJob> {
        self.jobs(EventType::MessageCreated, &msg.room, ts, || {
            let mut data = json!({
                "room": msg.room,
                "seq": seq,
                "from": msg.sender.username,
                "from_id": msg.sender.id,
                "body": msg.body,
                "ts": ts,
                "client_msg_id": msg.client_msg_id,
                "bot": is_bot_id(&msg.sender.id),
            });
            let attachments: Vec<_> = msg
                .attachments
                .iter()
                .filter(|a| linked.contains(&a.id))
                .collect();
            if !attachments.is_empty() {
                data["attachments"] = json!(attachments);
            }
            data
        })
    }

    /// `message.edited`: the new body.
    pub(crate) fn message_edited(
        &self,
        room: &str,
        seq: Seq,
        body: &str,
        ts: Millis,
    ) -> Vec<NewJob> {
        self.jobs(
            EventType::MessageEdited,
            room,
            ts,
            || json!({"room": room, "seq": seq, "body": body, "edited_ts": ts}),
        )
    }

    /// `message.deleted`.
    pub(crate) fn message_deleted(&self, room: &str, seq: Seq, ts: Millis) -> Vec<NewJob> {
        self.jobs(
            EventType::MessageDeleted,
            room,
            ts,
            || json!({"room": room, "seq": seq, "deleted_ts": ts}),
        )
    }

    /// `member.joined` (not for a room's first members: `room.created` lists them).
    pub(crate) fn member_joined(&self, room: &str, user: &UserRef, ts: Millis) -> Vec<NewJob> {
        self.jobs(
            EventType::MemberJoined,
            room,
            ts,
            || json!({"room": room, "user_id": user.id, "username": user.username}),
        )
    }

    /// `member.left`.
    pub(crate) fn member_left(&self, room: &str, user: &UserRef, ts: Millis) -> Vec<NewJob> {
        self.jobs(
            EventType::MemberLeft,
            room,
            ts,
            || json!({"room": room, "user_id": user.id, "username": user.username}),
        )
    }

    /// `room.created`, with its first members.
    pub(crate) fn room_created(
        &self,
        room: &RoomRecord,
        members: &[&UserRef],
        ts: Millis,
    ) -> Vec<NewJob> {
        self.jobs(EventType::RoomCreated, &room.id, ts, || {
            json!({
                "room": room.id,
                "name": room.name,
                "public": room.public,
                "kind": room.kind,
                "created_by": room.created_by,
                "members": members.iter().map(|u| json!({"user_id": u.id, "username": u.username})).collect::<Vec<_>>(),
            })
        })
    }
}
