//! `tail`: live messages, resumed across a hub restart without gap or duplicate.

use serde_json::Value;

use crate::support::{interrupt, next_json_line, within, Cli, TestServer};

/// Reads JSON lines until a `message` with `seq`; returns the messages' seqs and bodies.
async fn read_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seq: u64,
) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    loop {
        let line: Value = next_json_line(lines, &format!("message #{seq} from tail")).await;
        if line["type"] != "message" {
            continue;
        }
        let got = line["seq"].as_u64().expect("a seq");
        seen.push((got, line["body"].as_str().expect("a body").to_owned()));
        if got >= seq {
            return seen;
        }
    }
}

#[tokio::test]
async fn tail_follows_live_and_resumes_across_a_hub_restart_without_gap_or_duplicate() {
    let mut server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let bob = Cli::registered(&server, "bob").await;
    alice.run(&["create", "ops"]).await.ok();
    alice.run(&["invite", "ops", &bob.username]).await.ok();
    alice.run_stdin(&["send", "ops"], "m1\nm2\n").await.ok();

    // --since 0: the stored messages first, then live ones; starting is not racy.
    let (mut tail, mut lines) = bob.spawn(&["tail", "ops", "--since", "0", "--json"]);
    let mut seen = read_until(&mut lines, 2).await;
    alice.run(&["send", "ops", "m3"]).await.ok();
    seen.extend(read_until(&mut lines, 3).await);

    // The hub goes away and comes back on the same port; messages posted right after the
    // restart (while tail is still reconnecting) reach it through its `since` catch-up, later
    // ones live.
    server.restart().await;
    alice.run_stdin(&["send", "ops"], "m4\nm5\n").await.ok();
    seen.extend(read_until(&mut lines, 5).await);
    alice.run(&["send", "ops", "m6"]).await.ok();
    seen.extend(read_until(&mut lines, 6).await);

    let expected: Vec<(u64, String)> = (1..=6).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(seen, expected, "every message once, in order");

    // Ctrl-C ends it with 0, and nothing more was printed.
    interrupt(&tail);
    let status = within("tail to exit after SIGINT", tail.wait())
        .await
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    let rest = within("the end of tail's stdout", lines.next_line())
        .await
        .expect("read");
    assert_eq!(rest, None, "no duplicate after the last message");
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    tail.stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .await
        .expect("stderr");
    assert!(
        stderr.contains("reconnecting"),
        "tells about the outage: {stderr}"
    );
    assert!(stderr.contains("reconnected"), "{stderr}");
}

#[tokio::test]
async fn tail_prints_one_line_per_message_for_people() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    alice.run(&["create", "news"]).await.ok();
    alice
        .run(&["send", "news", "first\nline two \u{1b}[2J"])
        .await
        .ok();
    let (mut tail, mut lines) = alice.spawn(&["tail", "news", "--since", "0"]);
    let line = within("a line from tail", lines.next_line())
        .await
        .expect("read")
        .expect("a line");
    assert!(line.starts_with("#1 "), "{line}");
    assert!(
        line.ends_with(&format!(" {}: first↵line two \u{FFFD}[2J", alice.username)),
        "one line, no escape sequence reaches the terminal: {line:?}"
    );
    interrupt(&tail);
    let status = within("tail to exit", tail.wait()).await.expect("wait");
    assert_eq!(status.code(), Some(0));
}
