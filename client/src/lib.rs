//! Rust client for Switchboard: the HTTP API ([`Api`]) and a WebSocket connection speaking
//! protocol v1 ([`Connection`]). Used by the end-to-end tests, the load generator and this
//! package's `switchboard` command-line client (`src/bin/switchboard.rs`, modules in
//! `src/cli/`). It speaks only the wire types of [`switchboard_protocol`]; it has no JSON
//! shapes of its own.
//!
//! # Layout
//! - [`rest`]: [`Api`], one method per HTTP endpoint, with an optional bearer token.
//! - [`ws`]: [`Connection`], one WebSocket: raw frames, request/reply by `id` with events queued
//!   in order, and typed helpers (`subscribe`, `send_message`, `history`, ...).
//! - [`reconnect`]: [`ReconnectingClient`], a [`Connection`] that reconnects by itself and
//!   resumes: rooms with `since`, unacknowledged sends with their `client_msg_id`. Messages reach
//!   the caller exactly once and in order per room.
//! - [`error`]: [`ClientError`], keeping the server's stable error and close codes.
//!
//! A closed [`Connection`] stays closed; a [`ReconnectingClient`] does not.
//!
//! # Example
//! ```no_run
//! use switchboard_client::{Api, Connection};
//!
//! # async fn demo() -> Result<(), switchboard_client::ClientError> {
//! let api = Api::new("http://127.0.0.1:8080");
//! let tokens = api.login("alice", "correct horse").await?;
//! let alice = api.with_token(&tokens.access_token);
//! let room = alice.create_room("general", true).await?;
//!
//! let (mut conn, _welcome) =
//!     Connection::connect("ws://127.0.0.1:8080/v1/ws", Some(&tokens.access_token)).await?;
//! conn.subscribe(&room.id, None).await?;
//! let ack = conn.send_message(&room.id, "hello", Some("msg-1")).await?;
//! println!("stored as seq {}", ack.seq);
//! let event = conn.next_event().await?; // our own message, as every subscriber sees it
//! # let _ = event;
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod reconnect;
pub mod rest;
pub mod ws;

pub use error::ClientError;
pub use reconnect::{ClientEvent, ReconnectConfig, ReconnectingClient};
pub use rest::{Api, HistoryQuery};
pub use switchboard_protocol as protocol;
pub use tokio_tungstenite::tungstenite;
pub use ws::{Connection, Welcome};
