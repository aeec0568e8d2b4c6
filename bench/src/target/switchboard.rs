//! Switchboard protocol v1 as a [`Target`].
//!
//! Setup uses the client library's [`Api`]: one bench user (argon2 makes registration slow on
//! purpose, and one user may hold any number of connections), which creates every room as a
//! public room, so it is a member of all of them (it may post) and anonymous subscribers may
//! read them. Publishers are client-library [`Connection`]s that pipeline `send` frames with
//! numeric ids and match `ack`/`error` replies by id. The hub must be started with raised
//! rate limits (see `bench/README.md`), or sends beyond 20/s per connection and 50/s per user
//! come back `rate_limited`.

use async_trait::async_trait;
use futures_util::{stream, StreamExt, TryStreamExt};
use switchboard_client::protocol::ws::{ClientFrame, FrameId, ServerFrame};
use switchboard_client::{Api, Connection};

use super::{Outcome, Publisher, SubscriberSpec, Target, TargetConfig, TargetKind};
use crate::error::{BenchError, Result};
use crate::net::{self, WsStream};

/// Rooms created at once during setup.
const CREATE_CONCURRENCY: usize = 16;

/// How long a subscriber waits for `welcome` and for `subbed`.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A Switchboard hub (or several, round-robin).
pub struct Switchboard {
    ws_urls: Vec<String>,
    /// Authenticated as the bench user.
    api: Api,
    token: String,
    auth_subscribers: bool,
}

/// `ws://host:port` → `ws://host:port/v1/ws`; a URL with a path is kept as it is.
pub fn ws_url(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    if after_scheme.trim_end_matches('/').contains('/') {
        url.to_owned()
    } else {
        format!("{}/v1/ws", url.trim_end_matches('/'))
    }
}

impl Switchboard {
    /// Registers and logs in a fresh bench user on the hub's API.
    pub async fn connect(config: &TargetConfig) -> Result<Self> {
        let api = Api::new(&config.api_base());
        let name = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let password = uuid::Uuid::new_v4().to_string();
        api.register(&name, &format!("{name}@example.com"), &password)
            .await?;
        let tokens = api.login(&name, &password).await?;
        Ok(Self {
            ws_urls: config.urls.iter().map(|u| ws_url(u)).collect(),
            api: api.with_token(&tokens.access_token),
            token: tokens.access_token,
            auth_subscribers: config.auth_subscribers,
        })
    }
}

#[async_trait]
impl Target for Switchboard {
    fn kind(&self) -> TargetKind {
        TargetKind::Switchboard
    }

    async fn prepare_rooms(&mut self, count: usize) -> Result<Vec<String>> {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let api = &self.api;
        stream::iter(0..count)
            .map(|i| async move {
                let room = api.create_room(&format!("bench-{tag}-{i}"), true).await?;
                Ok::<_, BenchError>(room.id)
            })
            .buffered(CREATE_CONCURRENCY)
            .try_collect()
            .await
    }

    fn subscriber_spec(&self) -> SubscriberSpec {
        SubscriberSpec::Switchboard {
            ws_urls: self.ws_urls.clone(),
            token: self.auth_subscribers.then(|| self.token.clone()),
        }
    }

    async fn publisher(&self, index: usize) -> Result<Box<dyn Publisher>> {
        let url = &self.ws_urls[index % self.ws_urls.len()];
        let (conn, _welcome) = Connection::connect(url, Some(&self.token)).await?;
        Ok(Box::new(SwitchboardPublisher { conn }))
    }

    fn stores_messages(&self) -> bool {
        true
    }
}

/// Sends `send` frames with the tag as numeric `id`; `ack` and `error` answer by id.
struct SwitchboardPublisher {
    conn: Connection,
}

#[async_trait]
impl Publisher for SwitchboardPublisher {
    async fn start(&mut self, room: &str, body: String, tag: u64) -> Result<()> {
        let frame = ClientFrame::Send {
            id: Some(FrameId::Num(tag)),
            room: room.to_owned(),
            body,
            client_msg_id: None,
            attachments: Vec::new(),
        };
        Ok(self.conn.send(&frame).await?)
    }

    async fn next_outcome(&mut self) -> Result<Outcome> {
        loop {
            match self.conn.next_event().await? {
                ServerFrame::Ack {
                    id: Some(FrameId::Num(tag)),
                    ..
                } => {
                    return Ok(Outcome {
                        tag,
                        result: Ok(()),
                    })
                }
                ServerFrame::Error {
                    id: Some(FrameId::Num(tag)),
                    code,
                    message,
                } => {
                    return Ok(Outcome {
                        tag,
                        result: Err(format!("{code}: {message}")),
                    })
                }
                ServerFrame::Error { code, message, .. } => {
                    return Err(BenchError::Server(format!(
                        "error without a usable id: {code}: {message}"
                    )))
                }
                // Publishers subscribe to nothing; anything else is not ours to count.
                _ => {}
            }
        }
    }
}

/// `hello` (anonymous without `token`), `welcome`, `sub`, `subbed` on a lean socket.
pub async fn subscribe_lean(ws: &mut WsStream, token: Option<&str>, room: &str) -> Result<()> {
    let hello = ClientFrame::Hello {
        id: None,
        token: token.map(str::to_owned),
    };
    net::send_text(ws, hello.to_json()).await?;
    net::wait_for(
        ws,
        HANDSHAKE_TIMEOUT,
        "welcome",
        |text| match serde_json::from_str::<ServerFrame>(text) {
            Ok(ServerFrame::Welcome { .. }) => Some(Ok(())),
            Ok(ServerFrame::Error { code, message, .. }) => {
                Some(Err(BenchError::Server(format!("hello: {code}: {message}"))))
            }
            _ => None,
        },
    )
    .await?;
    let sub = ClientFrame::Sub {
        id: Some(FrameId::Num(1)),
        room: room.to_owned(),
        since: None,
    };
    net::send_text(ws, sub.to_json()).await?;
    net::wait_for(ws, HANDSHAKE_TIMEOUT, "subbed", |text| {
        // Only replies to our sub matter; events of the room may not come before `subbed`,
        // and a stamped message arriving here would be lost to the count, so refuse it.
        if crate::payload::find(text).is_some() {
            return Some(Err(BenchError::Server(
                "a message arrived before subbed".into(),
            )));
        }
        match serde_json::from_str::<ServerFrame>(text) {
            Ok(ServerFrame::Subbed { .. }) => Some(Ok(())),
            Ok(ServerFrame::Error { code, message, .. }) => {
                Some(Err(BenchError::Server(format!("sub: {code}: {message}"))))
            }
            _ => None,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_urls_get_the_protocol_path() {
        assert_eq!(ws_url("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080/v1/ws");
        assert_eq!(ws_url("ws://127.0.0.1:8080/"), "ws://127.0.0.1:8080/v1/ws");
        assert_eq!(ws_url("ws://h:1/v1/ws"), "ws://h:1/v1/ws");
        assert_eq!(ws_url("ws://h:1/other"), "ws://h:1/other");
    }
}
