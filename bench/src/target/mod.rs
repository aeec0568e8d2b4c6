//! The servers the bench can drive, behind one seam: [`Target`] prepares rooms and opens
//! publishers; [`SubscriberSpec`] is everything a subscriber socket needs, serialisable so that
//! worker processes open subscribers too.
//!
//! - [`switchboard`]: Switchboard protocol v1. Setup over REST with the client library
//!   (one bench user, public rooms), publishers are client-library `Connection`s sending `send`
//!   frames (each message stored and acknowledged), subscribers are lean anonymous sockets.
//! - [`pusher`]: the Pusher channels protocol (sockudo and other Pusher-compatible servers).
//!   Channels need no setup, publishing goes through the signed HTTP API, subscribers are lean
//!   sockets on `/app/{key}`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::net::WsStream;

pub mod pusher;
pub mod switchboard;

/// Which protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Switchboard,
    Pusher,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Switchboard => "switchboard",
            Self::Pusher => "pusher",
        }
    }
}

/// How to reach a target: its WebSocket URLs (several for a cluster, used round-robin) and
/// its HTTP API.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub kind: TargetKind,
    /// `ws://host:port` (a path, if any, is kept; Switchboard's default is `/v1/ws`).
    pub urls: Vec<String>,
    /// HTTP base URL of the API; default: the first URL with `http://`.
    pub api: Option<String>,
    /// Pusher app credentials.
    pub app_id: String,
    pub app_key: String,
    pub app_secret: String,
    /// Switchboard: subscribers say `hello` with the bench user's token instead of anonymously.
    pub auth_subscribers: bool,
}

impl TargetConfig {
    /// The HTTP API base (`http://host:port`, no trailing slash).
    pub fn api_base(&self) -> String {
        if let Some(api) = &self.api {
            return api.trim_end_matches('/').to_owned();
        }
        let first = self.urls.first().map(String::as_str).unwrap_or_default();
        let (scheme, rest) = match first.split_once("://") {
            Some(("wss", rest)) => ("https", rest),
            Some((_, rest)) => ("http", rest),
            None => ("http", first),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        format!("{scheme}://{authority}")
    }
}

/// Opens the target described by `config` (for Switchboard this registers the bench user).
pub async fn connect(config: &TargetConfig) -> Result<Box<dyn Target>> {
    Ok(match config.kind {
        TargetKind::Switchboard => Box::new(switchboard::Switchboard::connect(config).await?),
        TargetKind::Pusher => Box::new(pusher::Pusher::new(config)?),
    })
}

/// A server under test.
#[async_trait]
pub trait Target: Send + Sync {
    fn kind(&self) -> TargetKind;

    /// Makes `count` fresh rooms (channels) that subscribers may read and publishers may post
    /// to; returns their wire names, used as the room index's name from then on.
    async fn prepare_rooms(&mut self, count: usize) -> Result<Vec<String>>;

    /// What subscriber sockets need, in this or another process.
    fn subscriber_spec(&self) -> SubscriberSpec;

    /// A publisher; `index` spreads publishers over the target's URLs.
    async fn publisher(&self, index: usize) -> Result<Box<dyn Publisher>>;

    /// Whether each published message is stored before it is acknowledged.
    fn stores_messages(&self) -> bool;
}

/// The result of one publish started with [`Publisher::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub tag: u64,
    /// `Err` with the server's reason when it refused or failed the publish.
    pub result: std::result::Result<(), String>,
}

/// Publishes messages, several in flight at once.
#[async_trait]
pub trait Publisher: Send {
    /// Starts publishing `body` to `room`; its [`Outcome`] later carries `tag`. Does not wait
    /// for the acknowledgement.
    async fn start(&mut self, room: &str, body: String, tag: u64) -> Result<()>;

    /// The next outcome of a started publish. Never resolves while nothing is in flight.
    ///
    /// # Cancel safety
    /// Cancel safe.
    async fn next_outcome(&mut self) -> Result<Outcome>;
}

/// Everything a subscriber socket needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SubscriberSpec {
    Switchboard {
        /// `/v1/ws` URLs, used round-robin by subscriber index.
        ws_urls: Vec<String>,
        /// `None`: anonymous `hello` (public rooms are readable without an account).
        token: Option<String>,
    },
    Pusher {
        /// `/app/{key}?protocol=7...` URLs, used round-robin by subscriber index.
        ws_urls: Vec<String>,
    },
}

impl SubscriberSpec {
    /// The URL of subscriber number `index`.
    pub fn url(&self, index: usize) -> &str {
        let urls = match self {
            Self::Switchboard { ws_urls, .. } | Self::Pusher { ws_urls } => ws_urls,
        };
        &urls[index % urls.len()]
    }

    /// The WebSocket subprotocol to offer.
    pub fn subprotocol(&self) -> Option<&'static str> {
        match self {
            Self::Switchboard { .. } => Some(switchboard_protocol::SUBPROTOCOL),
            Self::Pusher { .. } => None,
        }
    }

    /// Completes the protocol's handshake on a fresh socket and subscribes to `room`;
    /// returns once the server confirmed the subscription.
    pub async fn subscribe(&self, ws: &mut WsStream, room: &str) -> Result<()> {
        match self {
            Self::Switchboard { token, .. } => {
                switchboard::subscribe_lean(ws, token.as_deref(), room).await
            }
            Self::Pusher { .. } => pusher::subscribe_lean(ws, room).await,
        }
    }

    /// A frame to send back for `text` (a frame without a stamp), if the protocol wants one:
    /// Pusher's application-level `pusher:ping`.
    pub fn reply_to(&self, text: &str) -> Option<String> {
        match self {
            Self::Switchboard { .. } => None,
            Self::Pusher { .. } => pusher::reply_to(text),
        }
    }

    /// Whether `text` (a frame without a stamp) reports an error.
    pub fn is_error(&self, text: &str) -> bool {
        match self {
            Self::Switchboard { .. } => text.contains(r#""type":"error""#),
            Self::Pusher { .. } => text.contains(r#""event":"pusher:error""#),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(urls: &[&str], api: Option<&str>) -> TargetConfig {
        TargetConfig {
            kind: TargetKind::Switchboard,
            urls: urls.iter().map(|u| u.to_string()).collect(),
            api: api.map(str::to_owned),
            app_id: String::new(),
            app_key: String::new(),
            app_secret: String::new(),
            auth_subscribers: false,
        }
    }

    #[test]
    fn api_base_follows_the_first_url() {
        assert_eq!(
            config(&["ws://127.0.0.1:8080/v1/ws", "ws://x:1"], None).api_base(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(config(&["wss://h:443"], None).api_base(), "https://h:443");
        assert_eq!(
            config(&["ws://h:1"], Some("http://api:9/")).api_base(),
            "http://api:9"
        );
    }

    #[test]
    fn specs_round_trip_and_pick_urls_round_robin() {
        let spec = SubscriberSpec::Switchboard {
            ws_urls: vec!["ws://a/v1/ws".into(), "ws://b/v1/ws".into()],
            token: None,
        };
        let back: SubscriberSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        assert_eq!(spec.url(0), "ws://a/v1/ws");
        assert_eq!(spec.url(3), "ws://b/v1/ws");
        assert_eq!(spec.subprotocol(), Some("switchboard.v1"));
        assert!(spec.is_error(r#"{"type":"error","code":"rate_limited","message":"x"}"#));
        assert!(!spec.is_error(r#"{"type":"subbed","room":"r","last_seq":0}"#));
    }
}
