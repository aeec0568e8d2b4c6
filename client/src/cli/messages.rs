//! `history` and `send`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_client::protocol::rest::PostMessageResponse;
use switchboard_client::protocol::ErrorCode;
use switchboard_client::reconnect::{new_client_msg_id, Backoff, ClientEvent};
use switchboard_client::{Api, ClientError, HistoryQuery, ReconnectConfig, ReconnectingClient};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::CliError;
use super::output::{message_lines, notice, sanitise};
use super::session::{token_source, RoomRef, Session};
use super::Context;

/// First pause before re-sending a message refused with `rate_limited`; it doubles up to
/// [`RATE_LIMITED_MAX_PAUSE`]. A refused frame is dropped by the server, so re-sending it (with
/// the same `client_msg_id`) is safe and keeps the order of the lines.
const RATE_LIMITED_PAUSE: Duration = Duration::from_millis(50);
const RATE_LIMITED_MAX_PAUSE: Duration = Duration::from_secs(2);
/// How long one line may keep being refused with `rate_limited` before `send` gives up.
const RATE_LIMITED_PATIENCE: Duration = Duration::from_secs(60);

/// `history ROOM [--limit N] [--before SEQ]`: one page, oldest first. Works without logging in
/// for public rooms (ROOM must then be an id).
pub async fn history(
    ctx: &Context,
    room: &str,
    limit: Option<u32>,
    before: Option<u64>,
) -> Result<(), CliError> {
    let query = HistoryQuery {
        before,
        after: None,
        limit,
    };
    let (room, messages) = match Session::try_open(ctx)? {
        Some(mut session) => {
            let room = session.resolve_room(room).await?;
            let id = room.id.as_str();
            let messages = session
                .call(|api| async move { api.messages(id, query).await })
                .await?;
            (room.id, messages)
        }
        None => {
            let messages = Api::new(&ctx.server).messages(room, query).await?;
            (room.to_owned(), messages)
        }
    };
    if ctx.out.json {
        return ctx.out.json(&json!({ "room": room, "messages": messages }));
    }
    for message in &messages {
        ctx.out.text(&message_lines(message))?;
    }
    Ok(())
}

/// `send ROOM TEXT`: one message over REST, with a `client_msg_id` so that the retry after a
/// refreshed token cannot store it twice.
pub async fn send_one(ctx: &Context, room: &str, text: &str) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let room = session.resolve_room(room).await?;
    let id = room.id.as_str();
    let key = new_client_msg_id();
    let key = key.as_str();
    let ack = session
        .call(|api| async move { api.post_message(id, text, Some(key)).await })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&ack);
    }
    ctx.out
        .text(&format!("sent #{} to {}", ack.seq, sanitise(&room.name)))
}

/// `send ROOM` with lines on stdin: each non-blank line is one message, sent in order over one
/// WebSocket (a [`ReconnectingClient`], so a dropped connection is resumed and unacknowledged
/// lines re-sent with their `client_msg_id`), each acknowledged before the next is sent.
/// Lines are sent as they arrive, so `tail -f log | switchboard send ops` works.
pub async fn send_lines(ctx: &Context, room: &str) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let room = session.resolve_room(room).await?;
    let mut client = connect(ctx, Some(session)).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut number = 0;
    let mut sent: Vec<PostMessageResponse> = Vec::new();
    loop {
        // Keep reading the socket while waiting for input: it answers the server's pings and
        // notices a lost connection early.
        let line = tokio::select! {
            line = lines.next_line() => line.map_err(CliError::Stdin)?,
            event = client.next_event() => {
                show_notice(event?);
                continue;
            }
        };
        let Some(line) = line else { break };
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let ack = send_paced(&mut client, &room.id, &line)
            .await
            .map_err(|err| CliError::Line {
                line: number,
                source: Box::new(err.into()),
            })?;
        if ctx.out.json {
            ctx.out.json(&ack)?;
        }
        sent.push(ack);
    }
    let _ = client.close().await;
    if !ctx.out.json {
        ctx.out.text(&summary(&room, &sent))?;
    }
    Ok(())
}

/// `sent 3 messages to general (#4-#6)`.
fn summary(room: &RoomRef, sent: &[PostMessageResponse]) -> String {
    let name = sanitise(&room.name);
    match sent {
        [] => format!("sent nothing to {name}"),
        [one] => format!("sent #{} to {name}", one.seq),
        [first, .., last] => format!(
            "sent {} messages to {name} (#{}-#{})",
            sent.len(),
            first.seq,
            last.seq
        ),
    }
}

/// A [`ReconnectingClient`] for the context's server: with the session's tokens (refreshed as
/// needed before each connection attempt), or anonymous.
pub async fn connect(
    ctx: &Context,
    session: Option<Session>,
) -> Result<ReconnectingClient, CliError> {
    let tokens = token_source(session.map(|session| Arc::new(Mutex::new(session))));
    let mut config = ReconnectConfig::new(ctx.ws_url(), tokens);
    // A person is waiting: come back within a few seconds of the hub.
    config.backoff = Backoff {
        max: Duration::from_secs(5),
        ..Backoff::default()
    };
    Ok(ReconnectingClient::connect(config).await?)
}

/// Sends one message, waiting out `rate_limited` refusals.
async fn send_paced(
    client: &mut ReconnectingClient,
    room: &str,
    body: &str,
) -> Result<PostMessageResponse, ClientError> {
    let key = new_client_msg_id();
    let give_up = Instant::now() + RATE_LIMITED_PATIENCE;
    let mut pause = RATE_LIMITED_PAUSE;
    loop {
        match client.send_with_id(room, body, &key).await {
            Err(ClientError::Rejected {
                code: ErrorCode::RateLimited,
                ..
            }) if Instant::now() + pause < give_up => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RATE_LIMITED_MAX_PAUSE);
            }
            other => return other,
        }
    }
}

/// Tells the user about the connection's ups and downs (on stderr).
pub fn show_notice(event: ClientEvent) {
    match event {
        ClientEvent::Reconnecting {
            attempt: 1, cause, ..
        } => notice(&format!("connection lost ({cause}); reconnecting")),
        ClientEvent::Reconnected { .. } => notice("reconnected"),
        _ => {}
    }
}
