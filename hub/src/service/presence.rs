//! Presence: who is online in a room, announced on the transitions.

use switchboard_protocol::ws::ServerFrame;

use super::{Identity, Service};
use crate::error::Result;
use crate::fanout::Target;

impl Service {
    /// A connection of `who` subscribed to `room`: announce them if they just came online there.
    pub async fn presence_join(&self, who: &Identity, room: &str) {
        if self.presence.join(room, &who.username).await {
            let frame = ServerFrame::Presence {
                room: room.to_owned(),
                user: who.username.to_string(),
                online: true,
            };
            self.publish(room, &frame, Target::Room);
        }
    }

    /// A connection of `who` left `room`: announce them if they are gone from it everywhere.
    pub async fn presence_leave(&self, who: &Identity, room: &str) {
        if self.presence.leave(room, &who.username).await {
            let frame = ServerFrame::Presence {
                room: room.to_owned(),
                user: who.username.to_string(),
                online: false,
            };
            self.publish(room, &frame, Target::Room);
        }
    }

    /// A user's subscriptions to a room ended on this node (see [`crate::fanout::Evicted`]):
    /// they stop counting towards the user's presence there, which is announced if they are
    /// gone from it everywhere.
    pub async fn presence_evicted(&self, ev: &crate::fanout::Evicted) {
        let mut gone = false;
        for _ in 0..ev.connections {
            gone |= self.presence.leave(&ev.room, &ev.username).await;
        }
        if gone {
            let frame = ServerFrame::Presence {
                room: ev.room.to_string(),
                user: ev.username.to_string(),
                online: false,
            };
            self.publish(&ev.room, &frame, Target::Room);
        }
    }

    /// Who is online in a room the caller may read.
    pub async fn presence(&self, actor: Option<&Identity>, room: &str) -> Result<Vec<String>> {
        self.readable_room(actor, room).await?;
        Ok(self.presence.list(room).await)
    }
}
