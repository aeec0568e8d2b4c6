//! `send` (an argument, or lines on stdin) and `history`.

use std::collections::HashSet;

use switchboard_client::HistoryQuery;

use crate::support::{Cli, TestServer};

#[tokio::test]
async fn send_an_argument_and_stdin_lines_then_read_the_history() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let room = alice.run(&["create", "log", "--json"]).await.ok().json();
    let id = room["id"].as_str().unwrap();

    let out = alice.run(&["send", "log", "hello world"]).await.ok();
    assert_eq!(out.stdout.trim(), "sent #1 to log");

    // One message per line, blank lines skipped, each acked (JSON lines) before exit.
    let out = alice
        .run_stdin(&["send", "log", "--json"], "one\n\ntwo\r\nthree\n")
        .await
        .ok();
    let acks = out.json_lines();
    let seqs: Vec<u64> = acks
        .iter()
        .map(|ack| ack["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
    let keys: HashSet<&str> = acks
        .iter()
        .map(|ack| ack["client_msg_id"].as_str().expect("a client_msg_id"))
        .collect();
    assert_eq!(keys.len(), 3, "each line has its own client_msg_id");
    let out = alice.run_stdin(&["send", "log"], "four\nfive\n").await.ok();
    assert_eq!(out.stdout.trim(), "sent 2 messages to log (#5-#6)");

    // History, as JSON and as text.
    let page = alice.run(&["history", "log", "--json"]).await.ok().json();
    assert_eq!(page["room"], id);
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["hello world", "one", "two", "three", "four", "five"]
    );
    let stored = server
        .api()
        .messages(id, HistoryQuery::default())
        .await
        .expect("history over REST");
    assert_eq!(page["messages"], serde_json::to_value(&stored).unwrap());

    let text = alice
        .run(&["history", id, "--limit", "2", "--before", "4"])
        .await
        .ok()
        .stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("#2 "), "{text}");
    assert!(
        lines[0].ends_with(&format!(" {}: one", alice.username)),
        "{text}"
    );
    assert!(
        lines[1].starts_with("#3 ") && lines[1].ends_with(": two"),
        "{text}"
    );

    alice
        .run(&["history", "log", "--limit", "0"])
        .await
        .fails_with(2);
}

#[tokio::test]
async fn many_stdin_lines_are_paced_under_the_rate_limit_in_order() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    alice.run(&["create", "flood"]).await.ok();
    // More than the per-connection burst (40 frames): some sends are refused with
    // rate_limited and must be re-sent, in order, without loss or duplicate.
    let count = 70;
    let input: String = (1..=count).map(|i| format!("line {i}\n")).collect();
    let out = alice
        .run_stdin(&["send", "flood", "--json"], &input)
        .await
        .ok();
    let seqs: Vec<u64> = out
        .json_lines()
        .iter()
        .map(|ack| ack["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=count).collect::<Vec<u64>>());
    let page = alice
        .run(&["history", "flood", "--limit", "100", "--json"])
        .await
        .ok()
        .json();
    let bodies: Vec<String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (1..=count).map(|i| format!("line {i}")).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn a_public_room_can_be_read_without_logging_in() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let public = alice.run(&["create", "town", "--json"]).await.ok().json();
    let private = alice
        .run(&["create", "attic", "--private", "--json"])
        .await
        .ok()
        .json();
    alice.run(&["send", "town", "news"]).await.ok();

    let anonymous = Cli::new(&server.http_url());
    let page = anonymous
        .run(&["history", public["id"].as_str().unwrap(), "--json"])
        .await
        .ok()
        .json();
    assert_eq!(page["messages"][0]["body"], "news");
    let out = anonymous
        .run(&["history", private["id"].as_str().unwrap()])
        .await
        .fails_with(5);
    assert!(out.error_line().ends_with("(forbidden)"), "{}", out.stderr);
    // Sending needs an account.
    anonymous
        .run(&["send", public["id"].as_str().unwrap(), "hi"])
        .await
        .fails_with(3);
}
