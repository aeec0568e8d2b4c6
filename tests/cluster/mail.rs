//! The welcome mail with several auth nodes (`switchboard-auth` processes) on one PostgreSQL
//! database, each running job workers, sending to a real SMTP server (testkit's
//! [`SmtpSink`]): the mail rate holds for the whole cluster, not per node, and a node killed
//! (SIGKILL) while it holds a mail loses nothing: another node sends it once its lease runs
//! out, with the same Message-ID. Each node gives its own EHLO name (`--smtp-url .../nodeN`),
//! so the sink tells which node sent each mail. No hubs: registrations go to the auth nodes
//! directly.

use std::collections::HashSet;
use std::time::Duration;

use switchboard_client::Api;
use switchboard_tests::services::{RedisPrefix, TestDatabase, REDIS_URL};
use switchboard_tests::smtp::{Received, SmtpSink};
use tempfile::TempDir;

use crate::support::process::{binary, Process};
use crate::support::{unique_name, within, PASSWORD, START_WAIT};

/// The sender of every node.
const FROM: &str = "Switchboard <noreply@chat.example.com>";
/// Slack for the spacing between two mails' receive times: both are read on this machine's
/// clock, and the lane's next start is computed from the end of the previous send, so a gap
/// is never shorter than the spacing; the slack covers the rounding of stored milliseconds.
const TOLERANCE: Duration = Duration::from_millis(5);

/// Auth nodes on one database (field order is drop order: processes first).
struct MailNodes {
    nodes: Vec<Process>,
    urls: Vec<String>,
    db: TestDatabase,
    prefix: RedisPrefix,
    dir: TempDir,
}

impl MailNodes {
    fn new(db: TestDatabase) -> Self {
        Self {
            nodes: Vec::new(),
            urls: Vec::new(),
            db,
            prefix: RedisPrefix::new(),
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    /// Starts auth node `nodeN` (N = the number started so far) sending to `sink` with
    /// `flags`, and waits until it is ready. Returns its index.
    async fn start(&mut self, sink: &SmtpSink, flags: &[&str]) -> usize {
        let i = self.nodes.len();
        let name = format!("node{i}");
        let data_dir = self.dir.path().join(&name);
        let smtp_url = format!("{}/{name}", sink.url());
        let mut args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().expect("UTF-8 path"),
            "--database-url",
            &self.db.url,
            "--redis-url",
            REDIS_URL,
            "--redis-prefix",
            &self.prefix.0,
            "--smtp-url",
            &smtp_url,
            "--mail-from",
            FROM,
            // Idle workers look for due mails often, so the test's time goes to the spacing.
            "--job-poll-ms",
            "50",
            // Stopped at the end of the test: no drain delay.
            "--drain-delay-ms",
            "0",
            // Every test client is 127.0.0.1.
            "--hash-queue",
            "100000",
            "--register-ip-rate-per-sec",
            "100000",
            "--register-ip-burst",
            "100000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(flags.iter().map(|s| s.to_string()));
        let (mut process, ready) =
            Process::spawn(&name, &binary("switchboard-auth"), &args, self.dir.path());
        let addr = process.await_ready(ready).await;
        process
            .await_healthy(&format!("http://{addr}/readyz"), START_WAIT)
            .await;
        self.nodes.push(process);
        self.urls.push(format!("http://{addr}"));
        i
    }

    /// Registers a new user through node `i`; returns the username.
    async fn register(&self, i: usize, prefix: &str) -> String {
        let username = unique_name(prefix);
        let email = format!("{username}@example.com");
        within(
            "a registration",
            Api::new(&self.urls[i]).register(&username, &email, PASSWORD),
        )
        .await
        .unwrap_or_else(|e| panic!("register {username} at node{i}: {e}"));
        username
    }
}

impl Drop for MailNodes {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!("--- end of the {} log\n{}", node.name, node.log_tail(30));
            }
        }
    }
}

fn recipient(mail: &Received) -> String {
    mail.rcpt_to.join(",")
}

/// Asserts the mails were received `spacing` apart at least (minus [`TOLERANCE`]).
fn assert_spaced(got: &[Received], spacing: Duration) {
    for (i, pair) in got.windows(2).enumerate() {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap + TOLERANCE >= spacing,
            "mails {i} and {} were {gap:?} apart, less than {spacing:?}",
            i + 1
        );
    }
}

/// Registers `count` users round-robin through the nodes, waits for their mails, and checks
/// order and spacing; returns the mails.
async fn register_and_check(
    nodes: &MailNodes,
    sink: &SmtpSink,
    count: usize,
    spacing: Duration,
) -> Vec<Received> {
    let mut expected = Vec::new();
    for n in 0..count {
        let username = nodes.register(n % nodes.urls.len(), "mail").await;
        expected.push(format!("{username}@example.com"));
    }
    let wait = spacing * (count as u32 + 2) * 2 + Duration::from_secs(10);
    let got = sink.wait_for(count, wait).await;
    assert_eq!(got.len(), count, "no mail twice");
    let order: Vec<String> = got.iter().map(recipient).collect();
    assert_eq!(order, expected, "mails leave in registration order");
    assert_spaced(&got, spacing);
    got
}

#[tokio::test]
async fn three_nodes_together_send_at_most_the_mail_rate_in_order() {
    let sink = SmtpSink::start().await;
    let mut nodes = MailNodes::new(TestDatabase::create().await);
    for _ in 0..3 {
        nodes.start(&sink, &["--mail-rate-per-sec", "5"]).await;
    }
    let got = register_and_check(&nodes, &sink, 12, Duration::from_millis(200)).await;
    // --mail-rate-per-sec took effect: at the default (1/s) no gap would be under a second.
    let span = got[11].at.duration_since(got[0].at);
    assert!(span < Duration::from_secs(11), "12 mails took {span:?}");
    // The rate is the cluster's: more than one node sent (that all 12 come from one node of
    // three, each polling every 50 ms, is vanishingly unlikely).
    let senders: HashSet<_> = got.iter().map(|mail| mail.helo.clone()).collect();
    assert!(senders.len() >= 2, "senders: {senders:?}");
}

#[tokio::test]
async fn three_nodes_keep_the_default_rate_of_one_mail_per_second() {
    let sink = SmtpSink::start().await;
    let mut nodes = MailNodes::new(TestDatabase::create().await);
    for _ in 0..3 {
        nodes.start(&sink, &[]).await;
    }
    register_and_check(&nodes, &sink, 4, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_node_killed_while_sending_a_mail_leaves_it_to_another_node() {
    let sink = SmtpSink::start().await;
    let mut nodes = MailNodes::new(TestDatabase::create().await);
    // A short lease, so the mail of a dead node runs again soon.
    let flags = ["--job-lease-ms", "1000", "--job-workers", "1"];
    let first = nodes.start(&sink, &flags).await;
    // The relay hangs: node0's worker claims the mail, connects, and waits for a greeting.
    sink.hang(true);
    let username = nodes.register(first, "kill").await;
    within("node0 to connect to the relay", async {
        while sink.connections() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // A second node starts while node0 holds the mail (renewing its lease); it cannot take it.
    let second = nodes.start(&sink, &flags).await;
    sink.hang(false);
    nodes.nodes[first].kill();
    eprintln!("killed node0 with SIGKILL while it held the mail");
    let got = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(recipient(&got[0]), format!("{username}@example.com"));
    assert_eq!(
        got[0].helo.as_deref(),
        Some(format!("node{second}").as_str())
    );
    let message_id = got[0].header("Message-ID").expect("a Message-ID");
    assert!(message_id.ends_with("@chat.example.com>"), "{message_id}");
    // Once, or at worst twice with the same Message-ID: register one more user and wait for
    // that mail, so that any second delivery of the first would have come before it.
    let next = nodes.register(second, "after").await;
    let got = sink.wait_for(2, Duration::from_secs(20)).await;
    let (of_first, rest): (Vec<_>, Vec<_>) = got
        .iter()
        .partition(|mail| recipient(mail) == format!("{username}@example.com"));
    assert!((1..=2).contains(&of_first.len()), "{of_first:?}");
    assert!(of_first
        .iter()
        .all(|mail| mail.header("Message-ID").as_deref() == Some(message_id.as_str())));
    assert_eq!(recipient(rest[0]), format!("{next}@example.com"));
}
