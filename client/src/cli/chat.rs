//! `chat ROOM`: an interactive chat in the terminal.
//!
//! Deliberately plain: the terminal is put in raw mode (no alternate screen, so the
//! conversation stays in the scrollback after exit); incoming messages are printed above the
//! input line, which is then redrawn; Enter sends; Ctrl-C, Ctrl-D or `/quit` exits and the
//! terminal is restored (also on errors and panics: [`RawMode`] restores it when dropped).
//!
//! Two tasks: this one reads keys and draws, and a network task owns the
//! [`ReconnectingClient`]. Sends are queued without waiting for their `ack`
//! ([`ReconnectingClient::queue_send`]), so typing never freezes during an outage; the client
//! re-sends them after a reconnect, and one's own message shows up when the room delivers it.

use std::io::{self, IsTerminal, Stdout, Write};
use std::time::Duration;

use crossterm::cursor::MoveToColumn;
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::style::Print;
use crossterm::terminal::{self, Clear, ClearType};
use crossterm::{execute, queue};
use futures_util::StreamExt;
use switchboard_client::protocol::ws::{Message, ServerFrame};
use switchboard_client::reconnect::new_client_msg_id;
use switchboard_client::{ClientError, ClientEvent, HistoryQuery, ReconnectingClient};
use tokio::signal::unix::SignalKind;
use tokio::sync::mpsc;

use super::error::CliError;
use super::messages::connect;
use super::output::{author, clock, sanitise};
use super::session::Session;
use super::stop::Stop;
use super::Context;

/// How many recent messages are shown on entry.
const RECENT: u32 = 20;
/// How long the network task waits, on exit, for the acks of messages still in flight.
const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// The width assumed when the terminal does not tell (some pseudo-terminals report 0).
const FALLBACK_WIDTH: u16 = 80;

pub async fn run(ctx: &Context, room: &str) -> Result<(), CliError> {
    if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        return Err(CliError::Usage(
            "chat needs a terminal; in scripts use `tail` and `send`".into(),
        ));
    }
    let mut session = Session::open(ctx)?;
    let room = session.resolve_room(room).await?;
    let me = session.username().to_owned();
    // The recent messages, then everything after the last of them, live: no gap between.
    let id = room.id.as_str();
    let query = HistoryQuery {
        limit: Some(RECENT),
        ..HistoryQuery::default()
    };
    let recent = session
        .call(|api| async move { api.messages(id, query).await })
        .await?;
    let since = recent.last().map_or(0, |message| message.seq);
    let mut client = connect(ctx, Some(session)).await?;
    client.subscribe(&room.id, Some(since)).await?;

    let (lines_tx, lines_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let network = tokio::spawn(network(client, room.id.clone(), lines_rx, events_tx));

    // SIGTERM or SIGHUP (the terminal went away): leave cleanly, restoring the terminal.
    // Installed before raw mode, so no signal can end the process with the terminal raw.
    let mut stop = Stop::install(&[SignalKind::terminate(), SignalKind::hangup()]);
    let raw = RawMode::enter()?;
    let mut screen = Screen::new(format!("{}> ", sanitise(&room.name)));
    let name = sanitise(&room.name);
    screen.show(&format!(
        "* {name} as {me}: Enter sends; Ctrl-C, Ctrl-D or /quit exits"
    ))?;
    for message in &recent {
        screen.show(&chat_line(message))?;
    }
    let mut keys = EventStream::new();
    let outcome = loop {
        let step = tokio::select! {
            () = stop.recv() => Step::Quit,
            key = keys.next() => match key {
                None => Step::Quit,
                Some(Err(err)) => Step::Fail(CliError::Terminal(err)),
                Some(Ok(Event::Key(key))) => match screen.key(key) {
                    Ok(Edit::Quit) => Step::Quit,
                    Ok(Edit::Submit(line)) => match line.trim() {
                        "/quit" | "/exit" => Step::Quit,
                        "" => Step::Go,
                        _ => {
                            // Fails only once the network task has ended; its reason follows.
                            let _ = lines_tx.send(line);
                            Step::Go
                        }
                    },
                    Ok(Edit::Changed) => Step::Go,
                    Err(err) => Step::Fail(err),
                },
                Some(Ok(Event::Resize(width, _))) => screen.resize(width).into(),
                Some(Ok(_)) => Step::Go,
            },
            event = events_rx.recv() => match event {
                Some(Ok(event)) => show_event(&mut screen, event),
                Some(Err(err)) => Step::Fail(err.into()),
                None => Step::Quit,
            },
        };
        match step {
            Step::Go => {}
            Step::Quit => break Ok(()),
            Step::Fail(err) => break Err(err),
        }
    };
    drop(lines_tx);
    let unsent = network.await.unwrap_or(0);
    screen.clear_input()?;
    drop(raw);
    if unsent > 0 {
        super::output::notice(&format!(
            "{unsent} message(s) not acknowledged before exit; they may not have been stored"
        ));
    }
    outcome
}

/// The network task: sends the lines it is given, forwards the client's events, and on exit
/// (the line channel closed) waits briefly for outstanding acks, closes, and returns the number
/// of sends still unanswered.
async fn network(
    mut client: ReconnectingClient,
    room: String,
    mut lines: mpsc::UnboundedReceiver<String>,
    events: mpsc::UnboundedSender<Result<ClientEvent, ClientError>>,
) -> usize {
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    if let Err(err) = client.queue_send(&room, &line, &new_client_msg_id()).await {
                        let _ = events.send(Err(err));
                        return client.pending_sends();
                    }
                }
                None => break,
            },
            event = client.next_event() => {
                let ended = event.is_err();
                let _ = events.send(event);
                if ended {
                    return client.pending_sends();
                }
            }
        }
    }
    let drain = async { while client.pending_sends() > 0 && client.next_event().await.is_ok() {} };
    let _ = tokio::time::timeout(DRAIN_WAIT, drain).await;
    let unsent = client.pending_sends();
    let _ = tokio::time::timeout(DRAIN_WAIT, client.close()).await;
    unsent
}

/// What the chat does after a key or an event.
enum Step {
    Go,
    Quit,
    Fail(CliError),
}

impl From<Result<(), CliError>> for Step {
    fn from(result: Result<(), CliError>) -> Self {
        match result {
            Ok(()) => Step::Go,
            Err(err) => Step::Fail(err),
        }
    }
}

/// Shows one client event; an unsubscription ends the chat.
fn show_event(screen: &mut Screen, event: ClientEvent) -> Step {
    let line = match event {
        ClientEvent::Message(message) => chat_line(&message),
        ClientEvent::Server(ServerFrame::Edited { body, .. }) => {
            format!("* a message was edited: {}", sanitise(&body))
        }
        ClientEvent::Server(ServerFrame::Deleted { .. }) => "* a message was deleted".into(),
        ClientEvent::Server(ServerFrame::MemberJoined { user, .. }) => {
            format!("* {} joined", sanitise(&user))
        }
        ClientEvent::Server(ServerFrame::MemberLeft { user, .. }) => {
            format!("* {} left", sanitise(&user))
        }
        ClientEvent::Server(ServerFrame::Error { code, message, .. }) => {
            format!("! {} ({code})", sanitise(&message))
        }
        ClientEvent::Reconnecting { attempt: 1, .. } => "* connection lost; reconnecting...".into(),
        ClientEvent::Reconnected { .. } => "* reconnected".into(),
        ClientEvent::SendFailed { error, .. } => {
            let code = error.code().map_or("error", |code| code.as_str());
            format!("! not sent: {} ({code})", sanitise(&error.to_string()))
        }
        ClientEvent::Unsubscribed { room, error } => {
            return Step::Fail(match error {
                Some(error) => error.into(),
                None => CliError::LeftRoom { room },
            })
        }
        // Presence, typing, read marks, acks (the message itself shows up), later attempts.
        _ => return Step::Go,
    };
    screen.show(&line).into()
}

/// `10:13 bob: hello`.
fn chat_line(message: &Message) -> String {
    let body = if message.deleted {
        "(deleted)".to_owned()
    } else {
        sanitise(&message.body)
    };
    format!("{} {}: {body}", clock(message.ts), author(message))
}

/// Raw mode while alive: keys arrive one by one and unechoed, Ctrl-C as a key. Dropping it
/// restores the terminal.
struct RawMode;

impl RawMode {
    fn enter() -> Result<Self, CliError> {
        terminal::enable_raw_mode().map_err(CliError::Terminal)?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
    }
}

/// What a key did to the input line.
#[derive(Debug, PartialEq, Eq)]
enum Edit {
    Changed,
    Submit(String),
    Quit,
}

/// The screen: lines printed above, the input line at the bottom.
struct Screen {
    out: Stdout,
    prompt: String,
    input: String,
    width: u16,
}

impl Screen {
    fn new(prompt: String) -> Self {
        let width = terminal::size().map_or(FALLBACK_WIDTH, |(width, _)| width);
        Screen {
            out: io::stdout(),
            prompt,
            input: String::new(),
            width: if width == 0 { FALLBACK_WIDTH } else { width },
        }
    }

    /// Prints `line` above the input line (long lines wrap), then redraws the input line.
    fn show(&mut self, line: &str) -> Result<(), CliError> {
        queue!(
            self.out,
            MoveToColumn(0),
            Clear(ClearType::CurrentLine),
            Print(line),
            Print("\r\n")
        )
        .map_err(CliError::Terminal)?;
        self.draw_input()
    }

    /// Applies a key to the input line and redraws it.
    fn key(&mut self, key: KeyEvent) -> Result<Edit, CliError> {
        let edit = edit(&mut self.input, key);
        self.draw_input()?;
        Ok(edit)
    }

    fn resize(&mut self, width: u16) -> Result<(), CliError> {
        self.width = if width == 0 { FALLBACK_WIDTH } else { width };
        self.draw_input()
    }

    /// The prompt and the end of the input that fits on one row (the line scrolls sideways
    /// rather than wrapping, so clearing one row always clears all of it).
    fn draw_input(&mut self) -> Result<(), CliError> {
        let prompt_width = self.prompt.chars().count();
        let room = usize::from(self.width)
            .saturating_sub(prompt_width + 1)
            .max(1);
        let skip = self.input.chars().count().saturating_sub(room);
        let visible: String = self.input.chars().skip(skip).collect();
        queue!(
            self.out,
            MoveToColumn(0),
            Clear(ClearType::CurrentLine),
            Print(&self.prompt),
            Print(visible)
        )
        .and_then(|()| self.out.flush())
        .map_err(CliError::Terminal)
    }

    /// Removes the input line, for a clean exit.
    fn clear_input(&mut self) -> Result<(), CliError> {
        execute!(self.out, MoveToColumn(0), Clear(ClearType::CurrentLine))
            .map_err(CliError::Terminal)
    }
}

/// The line editor: printable characters append, Backspace deletes, Ctrl-U clears, Enter
/// submits, Ctrl-C and Ctrl-D quit.
fn edit(input: &mut String, key: KeyEvent) -> Edit {
    if key.kind == KeyEventKind::Release {
        return Edit::Changed;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c' | 'd') if ctrl => Edit::Quit,
        KeyCode::Char('u') if ctrl => {
            input.clear();
            Edit::Changed
        }
        KeyCode::Char(c) if !ctrl && !c.is_control() => {
            input.push(c);
            Edit::Changed
        }
        KeyCode::Backspace => {
            input.pop();
            Edit::Changed
        }
        // Ctrl-J is a line feed: what some terminals (and pipes into a pty) send for Enter.
        KeyCode::Enter => Edit::Submit(std::mem::take(input)),
        KeyCode::Char('j') if ctrl => Edit::Submit(std::mem::take(input)),
        _ => Edit::Changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn the_line_editor() {
        let mut input = String::new();
        for c in "hey!".chars() {
            assert_eq!(
                edit(&mut input, key(KeyCode::Char(c), KeyModifiers::NONE)),
                Edit::Changed
            );
        }
        edit(&mut input, key(KeyCode::Char('X'), KeyModifiers::SHIFT));
        edit(&mut input, key(KeyCode::Backspace, KeyModifiers::NONE));
        assert_eq!(
            edit(&mut input, key(KeyCode::Enter, KeyModifiers::NONE)),
            Edit::Submit("hey!".into())
        );
        assert!(input.is_empty());
        edit(&mut input, key(KeyCode::Char('a'), KeyModifiers::NONE));
        edit(&mut input, key(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert!(input.is_empty());
        for quit in ['c', 'd'] {
            assert_eq!(
                edit(&mut input, key(KeyCode::Char(quit), KeyModifiers::CONTROL)),
                Edit::Quit
            );
        }
    }
}
