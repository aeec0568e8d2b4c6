//! Faults under steady traffic: PostgreSQL restarted, Redis restarted, Redis hung (SIGSTOP), and
//! a rolling restart of every hub (SIGTERM, start again, one at a time). The SIGKILL of a hub is
//! `failover.rs`.
//!
//! Each test runs three hubs and an auth node behind HAProxy. Two publishers send through
//! HAProxy (leastconn puts them on two different nodes; the third node hears of every message
//! through Redis only), each message with its own `client_msg_id`, retried with the same id until
//! acknowledged. On every node one subscriber resumes by itself (`ReconnectingClient`, to that
//! node) and one by hand (`sub` with `since`, through HAProxy), all subscribed before the first
//! message. A test that stops or pauses a server runs a private one ([`PrivatePostgres`],
//! [`PrivateRedis`]); the shared servers only ever see a fresh database or key prefix.
//!
//! After the fault, once every publisher is acknowledged again, the traffic stops and every node
//! takes one more send; then the test checks:
//! - every acknowledged message is stored exactly once, at its acknowledged seq (no false ack),
//!   and nothing is stored that was never acknowledged; seqs are dense;
//! - a send that failed was retried with the same `client_msg_id` and is stored once;
//! - every subscriber received exactly the stored seqs, in order: no gap, no duplicate;
//! - what the fault may do: sends fail during a database outage and never during a Redis one;
//!   subscribers keep their connections unless their node restarts, which closes them with 1012.
//!
//! Each test prints the outage as the clients saw it (`fault=... outage_s=...`: the longest time
//! a publisher waited between two acknowledgements; `subscriber_max_gap_s`: the longest time a
//! subscriber waited between two messages); `--nocapture` shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use switchboard_client::protocol::Seq;
use switchboard_client::reconnect::ReconnectingClient;
use switchboard_tests::private::{PrivatePostgres, PrivateRedis};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::support::haproxy::hub_name;
use crate::support::traffic::{
    follow_manually, follow_reconnecting, longest_gap, publish, reconnect_config, Last, Published,
    Received,
};
use crate::support::{
    connect, full_history, seqs, within, within_for, Cluster, ClusterOptions, WAIT,
};

/// Acknowledgements each publisher collects before the fault, and again after it (or after each
/// step of a rolling restart) before the test moves on.
const WARM_UP_ACKS: usize = 25;
const SETTLE_ACKS: usize = 25;
/// Bound on the traffic recovering after a fault, and on the clients finishing.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
const FINISH_LIMIT: Duration = Duration::from_secs(20);
/// How long PostgreSQL stays down, Redis stays down, and Redis stays frozen.
const PG_DOWN: Duration = Duration::from_secs(2);
const REDIS_DOWN: Duration = Duration::from_secs(1);
const REDIS_PAUSE: Duration = Duration::from_secs(3);
/// `--shutdown-grace-ms` in the rolling restart, and the time allowed beyond it for a drained
/// node to exit (the process's own teardown on a busy machine).
const GRACE: Duration = Duration::from_secs(2);
const EXIT_SLACK: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_traffic_loses_and_duplicates_nothing() {
    let pg = PrivatePostgres::start().await;
    let database_url = pg.create_database("switchboard").await;
    let cluster = Cluster::start_with(ClusterOptions {
        database_url: Some(database_url),
        ..ClusterOptions::default()
    })
    .await;
    let mut traffic = Traffic::start(&cluster).await;
    traffic
        .await_acks(WARM_UP_ACKS, "traffic before the fault")
        .await;

    pg.stop_immediately().await;
    tokio::time::sleep(PG_DOWN).await; // the outage itself
    pg.start_again().await;

    traffic
        .await_acks(SETTLE_ACKS, "traffic after PostgreSQL is back")
        .await;
    let expect = Expect {
        sends_fail: Some(true),
        subscribers_reconnect: false,
        close_code: None,
    };
    traffic.finish(&cluster, "postgres-restart", expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_under_traffic_loses_and_duplicates_nothing() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with(ClusterOptions {
        redis_url: Some(redis.url()),
        ..ClusterOptions::default()
    })
    .await;
    let mut traffic = Traffic::start(&cluster).await;
    traffic
        .await_acks(WARM_UP_ACKS, "traffic before the fault")
        .await;

    redis.kill();
    tokio::time::sleep(REDIS_DOWN).await; // the outage itself
    redis.start_again().await;

    traffic
        .await_acks(SETTLE_ACKS, "traffic after Redis is back")
        .await;
    traffic
        .finish(&cluster, "redis-restart", Expect::REDIS)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_redis_under_traffic_loses_and_duplicates_nothing() {
    let redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with(ClusterOptions {
        redis_url: Some(redis.url()),
        ..ClusterOptions::default()
    })
    .await;
    let mut traffic = Traffic::start(&cluster).await;
    traffic
        .await_acks(WARM_UP_ACKS, "traffic before the fault")
        .await;

    redis.pause();
    tokio::time::sleep(REDIS_PAUSE).await; // the hang itself
    redis.resume();

    traffic
        .await_acks(SETTLE_ACKS, "traffic after Redis resumed")
        .await;
    traffic.finish(&cluster, "redis-pause", Expect::REDIS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_hub_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        shutdown_grace: GRACE,
        ..ClusterOptions::default()
    })
    .await;
    let mut traffic = Traffic::start(&cluster).await;
    traffic
        .await_acks(WARM_UP_ACKS, "traffic before the fault")
        .await;

    for i in 0..cluster.hub_count() {
        let name = hub_name(i);
        let (status, took) = cluster.terminate_hub(i, GRACE + EXIT_SLACK).await;
        assert!(
            status.success(),
            "{name} exits cleanly after SIGTERM: {status}"
        );
        eprintln!(
            "fault=rolling-restart node={name} exit_s={:.2}",
            took.as_secs_f64()
        );
        // Every connection closes on 1012 at once, so the node need not wait out its grace.
        assert!(
            took < GRACE,
            "{name} drained and exited within its grace period, not at its end ({took:?})"
        );
        cluster.restart_hub(i).await;
        // A restart quicker than two failed checks is never marked down; either way the node
        // must be up in HAProxy's eyes before the next one stops.
        cluster
            .await_servers(&format!("HAProxy to see {name} up again"), |servers| {
                servers
                    .iter()
                    .any(|s| s.name == name && s.status == "UP" && s.check_status == "L7OK")
            })
            .await;
        traffic
            .await_acks(SETTLE_ACKS, &format!("traffic after {name} restarted"))
            .await;
    }

    let expect = Expect {
        sends_fail: None,
        subscribers_reconnect: true,
        close_code: Some(switchboard_client::protocol::close::RESTARTING),
    };
    traffic.finish(&cluster, "rolling-restart", expect).await;
}

/// What a fault may do to the clients.
struct Expect {
    /// `Some(true)`: some sends must fail while it lasts; `Some(false)`: none may.
    sends_fail: Option<bool>,
    /// Whether every subscriber loses its connection (else none may).
    subscribers_reconnect: bool,
    /// The close code of every connection a manual subscriber loses.
    close_code: Option<u16>,
}

impl Expect {
    /// Redis down or hung: chat goes on (sends are stored and acknowledged; remote nodes catch
    /// up from the store), and no client is disconnected.
    const REDIS: Expect = Expect {
        sends_fail: Some(false),
        subscribers_reconnect: false,
        close_code: None,
    };
}

/// A publisher task and its count of acknowledgements.
struct Publisher {
    acks: watch::Receiver<usize>,
    task: JoinHandle<Published>,
}

/// The steady traffic of one test (see the module docs).
struct Traffic {
    room: String,
    /// The first publisher's user: REST history and the recovery sends.
    alice: crate::support::TestUser,
    publishers: Vec<Publisher>,
    stop: watch::Sender<bool>,
    subscribers: Vec<JoinHandle<Received>>,
    /// The last stored seq, announced once the traffic has stopped.
    last: watch::Sender<Option<Last>>,
}

impl Traffic {
    /// Subscribes two clients per node, then starts two publishers through HAProxy.
    async fn start(cluster: &Cluster) -> Self {
        let hub1 = cluster.hub_http(0);
        let alice = cluster.user("alice", &hub1).await;
        let carol = cluster.user("carol", &hub1).await;
        let bob = cluster.user("bob", &hub1).await;
        let room = alice.room_with(&[&carol, &bob]).await.id;

        let (last, last_rx) = watch::channel(None);
        let mut subscribers = Vec::new();
        for i in 0..cluster.hub_count() {
            let name = hub_name(i);
            let config = reconnect_config(&cluster.hub_ws(i), bob.token());
            let mut client = within(
                "a subscriber's welcome",
                ReconnectingClient::connect(config),
            )
            .await
            .expect("connect a subscriber");
            within("sub", client.subscribe(&room, Some(0)))
                .await
                .expect("sub");
            subscribers.push(tokio::spawn(follow_reconnecting(
                client,
                format!("{name}/reconnecting"),
                room.clone(),
                last_rx.clone(),
            )));

            let mut conn = connect(&cluster.hub_ws(i), bob.token()).await;
            let (catch_up, _) = within("sub", conn.subscribe(&room, Some(0)))
                .await
                .expect("sub");
            assert!(catch_up.is_empty(), "no message before the traffic");
            subscribers.push(tokio::spawn(follow_manually(
                conn,
                format!("{name}/manual"),
                cluster.lb_ws(),
                bob.token().to_owned(),
                room.clone(),
                last_rx.clone(),
            )));
        }

        // One at a time, each after HAProxy counts the previous one, so that leastconn puts
        // them on different nodes. (REST goes straight to hub1, so these are the only sessions.)
        let (stop, stop_rx) = watch::channel(false);
        let mut publishers = Vec::new();
        for (k, user) in [&alice, &carol].into_iter().enumerate() {
            let config = reconnect_config(&cluster.lb_ws(), user.token());
            let client = within("a publisher's welcome", ReconnectingClient::connect(config))
                .await
                .expect("connect a publisher");
            cluster
                .await_servers("the publisher's session in HAProxy", |servers| {
                    servers.iter().map(|s| s.sessions).sum::<u64>() == k as u64 + 1
                })
                .await;
            let (acks_tx, acks) = watch::channel(0);
            let task = tokio::spawn(publish(
                client,
                user.username.clone(),
                room.clone(),
                acks_tx,
                stop_rx.clone(),
            ));
            publishers.push(Publisher { acks, task });
        }
        let servers = cluster.servers().await;
        assert!(
            servers.iter().all(|s| s.sessions <= 1),
            "leastconn put the publishers on different nodes: {servers:?}"
        );
        let quiet: Vec<&str> = servers
            .iter()
            .filter(|s| s.sessions == 0)
            .map(|s| s.name.as_str())
            .collect();
        eprintln!("the publishers are on two nodes; {quiet:?} has none of its own");

        Self {
            room,
            alice,
            publishers,
            stop,
            subscribers,
            last,
        }
    }

    /// Waits until every publisher has `more` acknowledgements than now (bounded by
    /// [`RECOVERY_LIMIT`]).
    async fn await_acks(&mut self, more: usize, what: &str) {
        for publisher in &mut self.publishers {
            let target = *publisher.acks.borrow() + more;
            let progress = publisher.acks.wait_for(|n| *n >= target);
            if within_for(RECOVERY_LIMIT, what, progress).await.is_err() {
                // The publisher is gone: show why.
                let ended = (&mut publisher.task).await;
                panic!("a publisher stopped while waiting for {what}: {ended:?}");
            }
        }
    }

    /// Stops the traffic, sends once on every node, and checks the store and what every client
    /// saw against each other and against `expect`; prints the outage figures of `fault`.
    async fn finish(self, cluster: &Cluster, fault: &str, expect: Expect) {
        let stopped_at = Instant::now();
        self.stop.send_replace(true);
        let mut published = Vec::new();
        for publisher in self.publishers {
            let done = within_for(FINISH_LIMIT, "a publisher to stop", publisher.task).await;
            published.push(done.expect("the publisher"));
        }

        // The cluster recovered by itself: a new send is acknowledged at once on every node.
        let mut acked: BTreeMap<String, Seq> = BTreeMap::new();
        for i in 0..cluster.hub_count() {
            let name = hub_name(i);
            let mut conn = connect(&cluster.hub_ws(i), self.alice.token()).await;
            let id = format!("recovery-{name}");
            let ack = within(
                "a send after the fault",
                conn.send_message(&self.room, &id, Some(&id)),
            )
            .await
            .unwrap_or_else(|err| panic!("a new send on {name} fails after {fault}: {err}"));
            acked.insert(id, ack.seq);
        }
        for (id, seq, _) in published.iter().flat_map(|p| &p.acked) {
            assert!(
                acked.insert(id.clone(), *seq).is_none(),
                "{id} acknowledged once"
            );
        }

        // The store against the acknowledgements.
        let api = self.alice.api_at(&cluster.hub_http(0));
        let stored = full_history(&api, &self.room).await;
        let stored_seqs = seqs(&stored);
        assert_eq!(
            stored_seqs,
            (1..=stored.len() as Seq).collect::<Vec<_>>(),
            "seqs are dense"
        );
        let mut stored_at: BTreeMap<&str, Vec<Seq>> = BTreeMap::new();
        for message in &stored {
            let id = message
                .client_msg_id
                .as_deref()
                .expect("every send has an id");
            stored_at.entry(id).or_default().push(message.seq);
        }
        let twice: Vec<_> = stored_at.iter().filter(|(_, at)| at.len() > 1).collect();
        assert!(twice.is_empty(), "stored more than once: {twice:?}");
        for (id, seq) in &acked {
            assert_eq!(
                stored_at.get(id.as_str()),
                Some(&vec![*seq]),
                "acknowledged {id} is stored once, at its acknowledged seq {seq}"
            );
        }
        let unacked: Vec<_> = stored_at
            .keys()
            .filter(|id| !acked.contains_key(**id))
            .collect();
        assert!(
            unacked.is_empty(),
            "stored but never acknowledged (every send was retried until acknowledged): \
             {unacked:?}"
        );
        let failures: Vec<_> = published.iter().flat_map(|p| &p.failures).collect();
        let retried: BTreeSet<&str> = failures.iter().map(|f| f.client_msg_id.as_str()).collect();
        match expect.sends_fail {
            Some(true) => assert!(!failures.is_empty(), "sends failed during {fault}"),
            Some(false) => assert!(
                failures.is_empty(),
                "no send fails during {fault}: {failures:?}"
            ),
            None => {}
        }

        // Every subscriber against the store.
        self.last.send_replace(stored_seqs.last().map(|&seq| Last {
            seq,
            by: Instant::now() + FINISH_LIMIT,
        }));
        let mut received = Vec::new();
        for task in self.subscribers {
            let done = within_for(
                FINISH_LIMIT + WAIT,
                "a subscriber to reach the last seq",
                task,
            )
            .await;
            received.push(done.expect("the subscriber"));
        }
        let wrong: Vec<String> = received
            .iter()
            .filter_map(|r| {
                difference(&r.seqs, &stored_seqs)
                    .map(|diff| format!("{}: {diff} (disconnects: {:?})", r.name, r.disconnects))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "after {fault}, subscribers did not receive exactly the stored seqs:\n{}",
            wrong.join("\n")
        );
        for r in &received {
            if expect.subscribers_reconnect {
                assert!(!r.disconnects.is_empty(), "{} reconnected", r.name);
            } else {
                assert_eq!(
                    r.disconnects,
                    Vec::<String>::new(),
                    "{} stayed connected",
                    r.name
                );
            }
            if let Some(code) = expect.close_code {
                assert!(
                    r.close_codes.iter().all(|c| *c == Some(code)),
                    "{} was closed with {code} each time: {:?}",
                    r.name,
                    r.disconnects
                );
            }
        }
        for i in 1..cluster.hub_count() {
            let history = full_history(&self.alice.api_at(&cluster.hub_http(i)), &self.room).await;
            assert!(history == stored, "{} serves the same history", hub_name(i));
        }

        let outages: Vec<(String, f64)> = published
            .iter()
            .map(|p| {
                let gap = longest_gap(&p.ack_times(), stopped_at);
                (p.name.clone(), (gap.as_secs_f64() * 100.0).round() / 100.0)
            })
            .collect();
        let outage = outages.iter().map(|(_, gap)| *gap).fold(0.0, f64::max);
        let subscriber_gap = received
            .iter()
            .map(|r| longest_gap(&r.arrivals, stopped_at))
            .max()
            .unwrap_or_default();
        let mut failure_kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for failure in &failures {
            *failure_kinds.entry(failure.kind.as_str()).or_default() += 1;
        }
        eprintln!(
            "fault={fault} outage_s={outage:.2} subscriber_max_gap_s={:.2} messages={} \
             failed_attempts={} {failure_kinds:?} retried_ids={} subscriber_reconnects={} \
             publisher_outages_s={outages:?} first_failure={:?}",
            subscriber_gap.as_secs_f64(),
            stored.len(),
            failures.len(),
            retried.len(),
            received.iter().map(|r| r.disconnects.len()).sum::<usize>(),
            failures.first().map(|f| &f.error),
        );
    }
}

/// `None` if `got` equals `want`; else a short account of how they differ.
fn difference(got: &[Seq], want: &[Seq]) -> Option<String> {
    if got == want {
        return None;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    let mut seen = BTreeSet::new();
    let duplicates: Vec<Seq> = got.iter().copied().filter(|s| !seen.insert(*s)).collect();
    let missing: Vec<Seq> = want.iter().copied().filter(|s| !seen.contains(s)).collect();
    Some(format!(
        "{} received, {} stored; first difference at index {first} (received {:?}, stored \
         {:?}); duplicates {duplicates:?}; missing {missing:?}",
        got.len(),
        want.len(),
        got.get(first),
        want.get(first)
    ))
}
