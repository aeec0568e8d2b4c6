//! Room rules: creating (with the per-user quota), listing a page at a time, joining, leaving
//! (hiding, for direct rooms) and direct rooms.

use std::sync::Arc;

use switchboard_protocol::limits::{DEFAULT_ROOM_PAGE, MAX_ROOM_NAME_CHARS, MAX_ROOM_PAGE};
use switchboard_protocol::rest::Room;
use switchboard_protocol::ws::ServerFrame;
use switchboard_protocol::{Millis, Seq};

use super::{now_ms, Identity, Service};
use crate::error::{Error, Result};
use crate::fanout::Target;
use crate::store::{NewRoom, RoomPage, RoomRecord, UserRef, KIND_DIRECT};

impl Service {
    /// Creates a group room with `who` as its first member.
    ///
    /// # Errors
    /// `bad_request` for a bad name; `rate_limited` ([`Error::RetryAfter`]) once the caller
    /// spent their room quota (a refused request costs nothing).
    pub async fn create_room(&self, who: &Identity, name: &str, public: bool) -> Result<Room> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_ROOM_NAME_CHARS || name.contains('\0') {
            return Err(Error::BadRequest(format!(
                "room name must be 1 to {MAX_ROOM_NAME_CHARS} characters"
            )));
        }
        if let Some(quota) = &self.room_quota {
            if let Err(wait) = quota.take(&who.id) {
                self.fanout
                    .registry()
                    .metrics()
                    .rate_limited(crate::metrics::Limit::Rooms);
                return Err(Error::RetryAfter(wait));
            }
        }
        let rec = self
            .store
            .create_room(NewRoom {
                id: uuid::Uuid::now_v7().to_string(),
                name: name.to_owned(),
                public,
                creator: who.user_ref(),
                ts: now_ms(),
            })
            .await?;
        Ok(to_room(rec, None, None))
    }

    /// A page of the caller's rooms, most recently active first, with unread counts, and the
    /// cursor of the next page (`None` on the last). `limit`: 1..=[`MAX_ROOM_PAGE`], default
    /// [`DEFAULT_ROOM_PAGE`]. `cursor`: the `next_cursor` of the page before. A walk keeps the
    /// order of its first page (see [`RoomPage`] for what it guarantees).
    ///
    /// # Errors
    /// `bad_request` for a limit out of range or a cursor this hub did not make.
    pub async fn rooms_of(
        &self,
        who: &Identity,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<(Vec<Room>, Option<String>)> {
        let limit = limit.unwrap_or(DEFAULT_ROOM_PAGE);
        if limit == 0 || limit > MAX_ROOM_PAGE {
            return Err(Error::BadRequest(format!(
                "limit must be 1 to {MAX_ROOM_PAGE}"
            )));
        }
        let (as_of, after) = match cursor {
            None => (now_ms(), None),
            Some(c) => {
                let c = RoomCursor::decode(c)
                    .ok_or_else(|| Error::BadRequest("invalid cursor".into()))?;
                (c.as_of, Some((c.activity, c.room)))
            }
        };
        let page = RoomPage {
            as_of,
            after,
            // One more than asked: whether it comes says if there is a next page.
            limit: limit + 1,
        };
        let mut rooms = self.store.rooms_of(&who.id, page).await?;
        let next = if rooms.len() > limit as usize {
            rooms.truncate(limit as usize);
            rooms.last().map(|last| {
                RoomCursor {
                    as_of,
                    activity: last.activity,
                    room: last.room.id.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        let rooms = rooms
            .into_iter()
            .map(|m| {
                let unread = m.room.last_seq.saturating_sub(m.read_seq);
                to_room(m.room, Some((unread, m.read_seq)), None)
            })
            .collect();
        Ok((rooms, next))
    }

    /// One room with its members. Private rooms the caller is not in are `not_found`.
    pub async fn room(&self, actor: Option<&Identity>, room: &str) -> Result<Room> {
        let rec = match self.readable_room(actor, room).await {
            Err(Error::Forbidden(_)) => return Err(Error::NotFound("room not found")),
            other => other?,
        };
        let members = self.store.members(room).await?;
        Ok(to_room(rec, None, Some(members)))
    }

    /// Adds `username` to a group room the caller is a member of (idempotent).
    pub async fn add_member(&self, who: &Identity, room: &str, username: &str) -> Result<()> {
        let rec = self.member_room(who, room).await?;
        if rec.kind == KIND_DIRECT {
            return Err(Error::Forbidden("direct rooms have exactly two members"));
        }
        let user = self
            .users
            .find(username, who)
            .await?
            .ok_or_else(|| Error::UserNotFound(username.to_owned()))?;
        self.join_as_member(room, &user).await
    }

    /// Adds `user` to `room` and announces it (`member_joined`) when they were not a member.
    pub(super) async fn join_as_member(&self, room: &str, user: &UserRef) -> Result<()> {
        if self.store.add_member(room, user, now_ms()).await? {
            let frame = ServerFrame::MemberJoined {
                room: room.to_owned(),
                user: user.username.clone(),
            };
            self.publish(room, &frame, Target::Room);
        }
        Ok(())
    }

    /// Removes the caller from a room. In a private room their subscriptions end too. A direct
    /// room is never left, only hidden (see [`Service::hide_direct`]).
    pub async fn leave(&self, who: &Identity, room: &str) -> Result<()> {
        let rec = self
            .store
            .room(room)
            .await?
            .ok_or(Error::NotFound("room not found"))?;
        if rec.kind == KIND_DIRECT {
            return self.hide_direct(who, room).await;
        }
        if !self.store.remove_member(room, &who.id).await? {
            return Err(Error::Forbidden("not a member of this room"));
        }
        self.publish_member_left(room, who, None, (!rec.public).then(|| who.id.clone()));
        Ok(())
    }

    /// Publishes `member_left` for `who`, ending `evict_user`'s subscriptions to the room on
    /// every node, and not delivered to `skip_user`'s connections.
    pub(super) fn publish_member_left(
        &self,
        room: &str,
        who: &Identity,
        skip_user: Option<Arc<str>>,
        evict_user: Option<Arc<str>>,
    ) {
        let frame = ServerFrame::MemberLeft {
            room: room.to_owned(),
            user: who.username.to_string(),
        };
        let target = skip_user.map_or(Target::Room, Target::OthersThan);
        self.publish(room, &frame, target);
        if let Some(user) = evict_user {
            // After the event, on every node: the evicted connections get `member_left` first.
            self.fanout.evict(room, &user);
        }
    }

    /// "Leaving" a direct room: it is hidden from the caller's room list and their
    /// subscriptions to it end (each of their connections gets `member_left` for themselves,
    /// then `unsubbed`; the other side is told nothing), but they stay a member, so the other
    /// side's messages never go where nobody can read them. It is shown again when the caller
    /// opens it ([`Service::direct`]) or when a new message arrives in it (the store's append
    /// does that), with every message in it.
    ///
    /// # Errors
    /// `forbidden` when the caller is not a member.
    async fn hide_direct(&self, who: &Identity, room: &str) -> Result<()> {
        let Some(others) = self.store.hide_member(room, &who.id).await? else {
            return Err(Error::Forbidden("not a member of this room"));
        };
        // A direct room has one other member: only the caller's own connections hear it.
        let other = others.into_iter().next().map(Into::into);
        self.publish_member_left(room, who, other, Some(who.id.clone()));
        Ok(())
    }

    /// The direct room of the caller and `username`, created on first use; shown again to the
    /// caller if they had hidden it.
    pub async fn direct(&self, who: &Identity, username: &str) -> Result<Room> {
        let peer = self
            .users
            .find(username, who)
            .await?
            .ok_or_else(|| Error::UserNotFound(username.to_owned()))?;
        if *peer.id == *who.id {
            return Err(Error::Conflict("a direct room needs two different users"));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let rec = self
            .store
            .direct_room(&who.user_ref(), &peer, &id, now_ms())
            .await?;
        let members = self.store.members(&rec.id).await?;
        Ok(to_room(rec, None, Some(members)))
    }
}

/// Where a walk over `GET /v1/rooms` stands: its snapshot time and the list position of the
/// last room it returned. On the wire: `{as_of}.{activity}.{room id}` in unpadded base64url,
/// opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RoomCursor {
    as_of: Millis,
    activity: Millis,
    room: String,
}

impl RoomCursor {
    fn encode(&self) -> String {
        use base64::Engine as _;
        let text = format!("{}.{}.{}", self.as_of, self.activity, self.room);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// `None` for anything [`RoomCursor::encode`] did not make.
    fn decode(cursor: &str) -> Option<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '.');
        let as_of = parts.next()?.parse().ok()?;
        let activity = parts.next()?.parse().ok()?;
        let room = parts.next()?.to_owned();
        (!room.is_empty() && !room.contains('\0')).then_some(Self {
            as_of,
            activity,
            room,
        })
    }
}

fn to_room(rec: RoomRecord, unread: Option<(u64, Seq)>, members: Option<Vec<String>>) -> Room {
    Room {
        id: rec.id,
        name: rec.name,
        public: rec.public,
        kind: rec.kind,
        created_by: rec.created_by,
        last_seq: rec.last_seq,
        unread: unread.map(|u| u.0),
        read_seq: unread.map(|u| u.1),
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_cursors_round_trip_and_refuse_anything_else() {
        let cursor = RoomCursor {
            as_of: 1_763_780_000_000,
            activity: -5,
            room: "01JD.8X0:ROOM".into(),
        };
        assert_eq!(RoomCursor::decode(&cursor.encode()), Some(cursor.clone()));
        let encoded = cursor.encode();
        assert!(
            encoded
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "safe in a query string: {encoded}"
        );
        for bad in ["", "!!", "bm90LmEuY3Vyc29y", "MS4y", "MS4yLg"] {
            assert_eq!(RoomCursor::decode(bad), None, "{bad:?}");
        }
    }
}
