//! `tail ROOM [--since SEQ]`: follow a room live.
//!
//! A [`ReconnectingClient`](switchboard_client::ReconnectingClient) does the hard part: after a
//! lost connection or a hub restart it reconnects with backoff and subscribes again with
//! `since` = the last seq it handed out, and it drops anything at or below that seq, so every
//! message is printed once, in order, with no gap. Edits and deletions that happen while
//! connected are printed too (they are not replayed after a reconnect; see the client's docs).

use std::time::Duration;

use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::ClientEvent;
use tokio::signal::unix::SignalKind;

use super::error::CliError;
use super::messages::{connect, show_notice};
use super::output::{message_lines, sanitise, Output};
use super::session::Session;
use super::stop::Stop;
use super::Context;

/// Bound on the polite close after Ctrl-C: the user wants the prompt back.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

pub async fn run(ctx: &Context, room: &str, since: Option<u64>) -> Result<(), CliError> {
    let (session, room) = match Session::try_open(ctx)? {
        Some(mut session) => {
            let room = session.resolve_room(room).await?.id;
            (Some(session), room)
        }
        None => (None, room.to_owned()),
    };
    // Installed before anything is printed: a Ctrl-C right after the first line must end the
    // tail cleanly (exit 0), not kill it with the default disposition.
    let mut stop = Stop::install(&[SignalKind::interrupt(), SignalKind::terminate()]);
    let mut client = connect(ctx, session).await?;
    client.subscribe(&room, since).await?;
    loop {
        let event = tokio::select! {
            () = stop.recv() => break,
            event = client.next_event() => event?,
        };
        match event {
            ClientEvent::Message(message) => {
                if ctx.out.json {
                    ctx.out.json(&ServerFrame::Message(message))?;
                } else {
                    ctx.out.text(&message_lines(&message))?;
                }
            }
            ClientEvent::Server(frame) => print_change(ctx.out, &frame)?,
            ClientEvent::Unsubscribed { room, error } => {
                return Err(match error {
                    Some(error) => error.into(),
                    None => CliError::LeftRoom { room },
                })
            }
            other => show_notice(other),
        }
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, client.close()).await;
    Ok(())
}

/// An `edited` or `deleted` event: as its frame with `--json`, else as a line. Other events
/// (presence, typing, read marks, membership) are not part of the stream.
fn print_change(out: Output, frame: &ServerFrame) -> Result<(), CliError> {
    let line = match frame {
        ServerFrame::Edited { seq, body, .. } => format!("#{seq} edited: {}", sanitise(body)),
        ServerFrame::Deleted { seq, .. } => format!("#{seq} deleted"),
        _ => return Ok(()),
    };
    if out.json {
        out.json(frame)
    } else {
        out.text(&line)
    }
}
