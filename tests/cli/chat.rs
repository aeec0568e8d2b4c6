//! `chat` in a pseudo-terminal: typed lines are sent, incoming messages appear, `/quit` exits 0.
//!
//! rexpect drives the program on a pty; its calls block (each bounded by its own timeout), so
//! they run on the blocking pool while the hub keeps serving on the runtime.

use rexpect::process::WaitStatus;
use rexpect::session::{spawn_with_options, Options, PtySession};
use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::Connection;

use crate::support::{binary, within, Cli, TestServer, WAIT};

/// Runs a blocking step on the pty session off the runtime's thread.
async fn on_pty<T: Send + 'static>(
    mut pty: PtySession,
    step: impl FnOnce(&mut PtySession) -> T + Send + 'static,
) -> (PtySession, T) {
    tokio::task::spawn_blocking(move || {
        let out = step(&mut pty);
        (pty, out)
    })
    .await
    .expect("the pty step does not panic")
}

/// `switchboard chat ROOM` as `cli`, on a pseudo-terminal, ANSI escapes stripped from what is
/// read back.
fn chat_on_pty(server: &TestServer, cli: &Cli, room: &str) -> PtySession {
    let mut command = std::process::Command::new(binary());
    command
        .args(["chat", room])
        .env("SWITCHBOARD_URL", server.http_url())
        .env("SWITCHBOARD_CONFIG_DIR", cli.config_dir())
        .env("TERM", "xterm");
    let options = Options::new()
        .timeout_ms(Some(WAIT.as_millis() as u64))
        .strip_ansi_escape_codes(true);
    spawn_with_options(command, options).expect("chat starts on a pty")
}

/// The chat ended through its own exit path, with 0 (the terminal restored).
fn assert_left_cleanly(status: Result<WaitStatus, rexpect::error::Error>) {
    match status.expect("the chat exits") {
        WaitStatus::Exited(_, code) => assert_eq!(code, 0),
        other => panic!("chat did not exit normally: {other:?}"),
    }
}

#[tokio::test]
async fn chat_sends_typed_lines_shows_incoming_messages_and_quits() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let bob = Cli::registered(&server, "bob").await;
    let room = alice
        .run(&["create", "parlour", "--json"])
        .await
        .ok()
        .json();
    let room = room["id"].as_str().unwrap().to_owned();
    alice.run(&["invite", &room, &bob.username]).await.ok();
    alice
        .run(&["send", "parlour", "before the chat"])
        .await
        .ok();

    // Bob watches the room over a WebSocket of his own.
    let bob_token = bob.access_token();
    let (mut watcher, _) = Connection::connect(&server.ws_url(), Some(&bob_token))
        .await
        .expect("bob connects");
    watcher
        .subscribe(&room, None)
        .await
        .expect("bob subscribes");

    let pty = chat_on_pty(&server, &alice, "parlour");

    // The header, then the recent history, then the input line.
    let (pty, header) = on_pty(pty, |pty| {
        pty.exp_string("/quit exits")?;
        pty.exp_string("before the chat")?;
        pty.exp_string("parlour> ")
    })
    .await;
    header.expect("the chat screen");

    // A typed line is sent: Bob receives it from Alice.
    let (pty, typed) = on_pty(pty, |pty| {
        pty.send("hello from the terminal\r")?;
        pty.flush()
    })
    .await;
    typed.expect("type a line");
    let message = within("alice's typed message to reach bob", async {
        loop {
            match watcher.next_event().await.expect("an event") {
                ServerFrame::Message(message) => return message,
                _ => continue,
            }
        }
    })
    .await;
    assert_eq!(message.body, "hello from the terminal");
    assert_eq!(message.from, alice.username);

    // Bob's message appears on Alice's screen.
    bob.run(&["send", &room, "hi alice, from bob"]).await.ok();
    let expected = format!("{}: hi alice, from bob", bob.username);
    let (pty, shown) = on_pty(pty, move |pty| pty.exp_string(&expected)).await;
    shown.expect("bob's message on the screen");

    // /quit leaves with 0, the terminal restored.
    let (_pty, status) = on_pty(pty, |pty| {
        pty.send("/quit\r")?;
        pty.flush()?;
        pty.exp_eof()?;
        pty.process().wait()
    })
    .await;
    assert_left_cleanly(status);
}

#[tokio::test]
async fn chat_quits_on_ctrl_d_and_refuses_to_run_without_a_terminal() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    alice.run(&["create", "den"]).await.ok();

    let out = alice.run(&["chat", "den"]).await.fails_with(2);
    assert!(out.error_line().contains("terminal"), "{}", out.stderr);

    let pty = chat_on_pty(&server, &alice, "den");
    let (_pty, status) = on_pty(pty, |pty| {
        pty.exp_string("den> ")?;
        pty.send_control('d')?;
        pty.exp_eof()?;
        pty.process().wait()
    })
    .await;
    assert_left_cleanly(status);
}

/// SIGTERM (or SIGHUP, the terminal going away) ends `chat` cleanly: exit 0 through the same
/// path as `/quit`, which restores the terminal; the handlers are in place before raw mode.
#[tokio::test]
async fn chat_leaves_cleanly_on_sigterm() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    alice.run(&["create", "porch"]).await.ok();

    let pty = chat_on_pty(&server, &alice, "porch");
    let (_pty, status) = on_pty(pty, |pty| {
        pty.exp_string("porch> ")?;
        pty.process_mut()
            .signal(rexpect::process::Signal::SIGTERM)?;
        pty.exp_eof()?;
        pty.process().wait()
    })
    .await;
    assert_left_cleanly(status);
}
