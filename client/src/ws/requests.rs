//! Typed helpers on [`Connection`]: one method per request frame, returning the reply's data
//! and turning an `error` reply into [`ClientError::Rejected`].

use switchboard_protocol::rest::PostMessageResponse;
use switchboard_protocol::ws::{ClientFrame, Message, ServerFrame};
use switchboard_protocol::Seq;

use super::{unexpected, Connection};
use crate::ClientError;

impl Connection {
    /// Subscribes to `room`. With `since`, returns the stored messages after it (ascending,
    /// tombstones included) that the server delivered before `subbed`; always returns the
    /// room's `last_seq`. Live events follow through [`Connection::next_event`].
    ///
    /// A `since` further back than the server replays is refused with `catchup_too_large`
    /// ([`ClientError::Rejected`]); [`crate::reconnect::ReconnectingClient`] then subscribes
    /// without `since` and pages the gap with [`Connection::history`]. A room this connection
    /// already follows is answered without any catch-up.
    pub async fn subscribe(
        &mut self,
        room: &str,
        since: Option<Seq>,
    ) -> Result<(Vec<Message>, Seq), ClientError> {
        let mut frame = ClientFrame::Sub {
            id: None,
            room: room.into(),
            since,
        };
        let id = self.assign_id(&mut frame);
        self.send(&frame).await?;
        let mut catch_up = Vec::new();
        let reply = self
            .reply_to(&id, |frame| match frame {
                ServerFrame::Message(message) if since.is_some() && message.room == room => {
                    catch_up.push(message);
                    None
                }
                other => Some(other),
            })
            .await?;
        match reply {
            ServerFrame::Subbed { last_seq, .. } => Ok((catch_up, last_seq)),
            other => Err(unexpected(other)),
        }
    }

    /// Stops the room's events.
    pub async fn unsubscribe(&mut self, room: &str) -> Result<(), ClientError> {
        let frame = ClientFrame::Unsub {
            id: None,
            room: room.into(),
        };
        match self.request(frame).await? {
            ServerFrame::Unsubbed { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Posts a message and waits for its `ack` (sent once it is stored). A repeated
    /// `client_msg_id` gets the first message's ack.
    pub async fn send_message(
        &mut self,
        room: &str,
        body: &str,
        client_msg_id: Option<&str>,
    ) -> Result<PostMessageResponse, ClientError> {
        let frame = ClientFrame::Send {
            id: None,
            room: room.into(),
            body: body.into(),
            client_msg_id: client_msg_id.map(Into::into),
            attachments: Vec::new(),
        };
        match self.request(frame).await? {
            ServerFrame::Ack {
                room,
                seq,
                ts,
                client_msg_id,
                ..
            } => Ok(PostMessageResponse {
                room,
                seq,
                ts,
                client_msg_id,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// A page of history (ascending): messages before `before`, or the newest ones.
    pub async fn history(
        &mut self,
        room: &str,
        before: Option<Seq>,
        limit: Option<u32>,
    ) -> Result<Vec<Message>, ClientError> {
        let frame = ClientFrame::History {
            id: None,
            room: room.into(),
            before,
            limit,
        };
        match self.request(frame).await? {
            ServerFrame::History { messages, .. } => Ok(messages),
            other => Err(unexpected(other)),
        }
    }

    /// Moves the read mark in `room` to `seq`; returns the mark the server confirmed.
    pub async fn mark_read(&mut self, room: &str, seq: Seq) -> Result<Seq, ClientError> {
        let frame = ClientFrame::Read {
            id: None,
            room: room.into(),
            seq,
        };
        match self.request(frame).await? {
            ServerFrame::ReadOk { seq, .. } => Ok(seq),
            other => Err(unexpected(other)),
        }
    }

    /// Tells the room's other subscribers this user is typing. There is no reply (an `error`, if
    /// any, arrives as an event).
    pub async fn typing(&mut self, room: &str) -> Result<(), ClientError> {
        self.send(&ClientFrame::Typing {
            id: None,
            room: room.into(),
        })
        .await
    }

    /// Application-level round trip: `ping` → `pong`.
    pub async fn ping(&mut self) -> Result<(), ClientError> {
        match self.request(ClientFrame::Ping { id: None }).await? {
            ServerFrame::Pong { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
