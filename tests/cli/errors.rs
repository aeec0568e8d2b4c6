//! Exit codes and error lines: not found (4), forbidden (5), unreachable (6), rate limited (7).

use switchboard_tests::private::free_port;

use crate::support::{Cli, TestServer};

#[tokio::test]
async fn unknown_rooms_and_users_exit_4() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    alice.run(&["create", "base"]).await.ok();

    let out = alice.run(&["history", "no-such-room"]).await.fails_with(4);
    assert_eq!(out.stderr, "switchboard: room not found (not_found)\n");
    let out = alice
        .run(&["send", "no-such-room", "hi", "--json"])
        .await
        .fails_with(4);
    let error = out.error_json();
    assert_eq!(error["error"]["code"], "not_found");
    assert_eq!(error["error"]["exit_code"], 4);
    assert!(error["error"]["message"].is_string());
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);

    let out = alice
        .run(&["invite", "base", "nobody-here"])
        .await
        .fails_with(4);
    assert!(
        out.error_line().ends_with("(user_not_found)"),
        "{}",
        out.stderr
    );
    alice.run(&["dm", "nobody-here"]).await.fails_with(4);
    alice.run(&["tail", "no-such-room"]).await.fails_with(4);
}

#[tokio::test]
async fn rooms_of_others_exit_5() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let mallory = Cli::registered(&server, "mallory").await;
    let private = alice
        .run(&["create", "vault", "--private", "--json"])
        .await
        .ok()
        .json();
    let public = alice.run(&["create", "square", "--json"]).await.ok().json();
    let (private, public) = (
        private["id"].as_str().unwrap(),
        public["id"].as_str().unwrap(),
    );

    for args in [
        vec!["history", private],
        vec!["tail", private],
        vec!["send", private, "let me in"],
        vec!["send", public, "not a member"],
        vec!["invite", private, &mallory.username],
    ] {
        let out = mallory.run(&args).await.fails_with(5);
        assert!(
            out.error_line().ends_with("(forbidden)"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // The message from stdin names its line.
    let out = mallory
        .run_stdin(&["send", public], "not a member either\n")
        .await
        .fails_with(5);
    assert!(
        out.error_line().starts_with("switchboard: line 1: "),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn an_unreachable_server_exits_6() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let cli = Cli::new(&nowhere);
    let out = cli
        .run_stdin(&["login", "alice", "--password-stdin"], "whatever1")
        .await
        .fails_with(6);
    assert!(
        out.error_line()
            .starts_with(&format!("switchboard: cannot reach {nowhere}: ")),
        "{}",
        out.stderr
    );
    assert!(
        out.error_line().ends_with("(unreachable)"),
        "{}",
        out.stderr
    );
    cli.run(&["history", "some-room", "--json"])
        .await
        .fails_with(6);

    // Logged in, then the hub goes away.
    let mut server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    server.shutdown().await;
    alice.run(&["rooms"]).await.fails_with(6);
    alice.run(&["tail", "anything"]).await.fails_with(6);
}

#[tokio::test]
async fn a_rate_limited_send_exits_7() {
    // One send per user, never refilled.
    let server =
        TestServer::start_with(&["--user-rate-per-sec", "0", "--user-rate-burst", "1"]).await;
    let alice = Cli::registered(&server, "alice").await;
    alice.run(&["create", "slow"]).await.ok();
    alice.run(&["send", "slow", "one"]).await.ok();
    let out = alice.run(&["send", "slow", "two"]).await.fails_with(7);
    assert!(
        out.error_line().ends_with("(rate_limited)"),
        "{}",
        out.stderr
    );
}
