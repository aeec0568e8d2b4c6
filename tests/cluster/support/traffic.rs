//! Steady traffic for the fault tests, and what the clients saw of it.
//!
//! - [`publish`]: sends at a fixed pace ([`SEND_INTERVAL`]), every message with its own
//!   `client_msg_id`, through a [`ReconnectingClient`] (which re-sends an unanswered send after a
//!   reconnect). A send refused as `unavailable` or left unanswered is recorded as a failure and
//!   sent again with the same `client_msg_id` until acknowledged, as a careful application
//!   would. Every acknowledgement is recorded with its seq and arrival time.
//! - [`follow_reconnecting`]: a subscriber that resumes by itself ([`ReconnectingClient`]).
//! - [`follow_manually`]: a subscriber on a plain [`Connection`] that resumes by hand: on a lost
//!   connection it connects again (through HAProxy) and subscribes with `since` = the last seq it
//!   saw. It drops nothing, so a duplicate from the server would show in its list.
//!
//! Both subscribers record every seq with its arrival time and stop once they have seen the
//! final seq the test announces, or at the deadline announced with it (then the test reports
//! what is missing). Every loop is bounded in count, every wait in time.

use std::time::Duration;

use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::protocol::{ErrorCode, Seq};
use switchboard_client::reconnect::{Backoff, ClientEvent, ReconnectConfig, ReconnectingClient};
use switchboard_client::{ClientError, Connection};
use tokio::sync::watch;
use tokio::time::Instant;

use super::WAIT;

/// Pause between two sends of one publisher: 50 messages per second each, so an outage is
/// measured to within a few tens of milliseconds.
pub const SEND_INTERVAL: Duration = Duration::from_millis(20);
/// Pause before a failed send is tried again with the same `client_msg_id`.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Bound on the attempts of one message: over 30 s of retries, longer than any fault here.
const MAX_ATTEMPTS: usize = 300;
/// Bound on the messages of one publisher (at [`SEND_INTERVAL`], over three minutes).
const MAX_MESSAGES: usize = 10_000;
/// Bound on the events one subscriber reads.
const MAX_EVENTS: usize = 100_000;
/// Bound on the reconnections of a manual subscriber (a rolling restart costs it up to three).
const MAX_RECONNECTS: usize = 10;
/// Bound on the attempts of one manual resumption, and the pause between them.
const RESUME_ATTEMPTS: usize = 100;
const RESUME_PAUSE: Duration = Duration::from_millis(100);

/// How the tests' [`ReconnectingClient`]s connect: quick, bounded backoff (a restarted hub is
/// back within a second or two), and a send timeout well inside the tests' bounds.
pub fn reconnect_config(url: &str, token: &str) -> ReconnectConfig {
    let mut config = ReconnectConfig::with_token(url, Some(token));
    config.backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        factor: 2.0,
        max_attempts: Some(60),
    };
    config.request_timeout = WAIT;
    config.send_timeout = WAIT;
    config
}

/// One failed attempt of a send.
#[derive(Debug)]
pub struct Failure {
    pub client_msg_id: String,
    /// The server's error code (`unavailable`), or `unacknowledged` when no answer came.
    pub kind: String,
    pub error: String,
}

/// What one publisher saw.
#[derive(Debug)]
pub struct Published {
    pub name: String,
    /// Acknowledged sends in order: `client_msg_id`, the acknowledged seq, when the ack came.
    pub acked: Vec<(String, Seq, Instant)>,
    /// Failed attempts, each followed by a retry with the same `client_msg_id`.
    pub failures: Vec<Failure>,
}

impl Published {
    /// When each acknowledgement came, in order.
    pub fn ack_times(&self) -> Vec<Instant> {
        self.acked.iter().map(|(_, _, at)| *at).collect()
    }
}

/// Sends `{name}-0`, `{name}-1`, ... (body and `client_msg_id`) to `room` every
/// [`SEND_INTERVAL`] until `stop` turns true, each until it is acknowledged. `acks` counts the
/// acknowledgements, for the test to await progress.
///
/// # Panics
/// On any refusal other than `unavailable` (a false answer or a client bug), when one message
/// needs more than [`MAX_ATTEMPTS`], or when the client ends.
pub async fn publish(
    mut client: ReconnectingClient,
    name: String,
    room: String,
    acks: watch::Sender<usize>,
    stop: watch::Receiver<bool>,
) -> Published {
    let mut out = Published {
        name: name.clone(),
        acked: Vec::new(),
        failures: Vec::new(),
    };
    let mut tick = tokio::time::interval(SEND_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0..MAX_MESSAGES {
        tick.tick().await;
        if *stop.borrow() {
            return out;
        }
        let id = format!("{name}-{n}");
        for attempt in 1..=MAX_ATTEMPTS {
            match client.send_with_id(&room, &id, &id).await {
                Ok(ack) => {
                    assert_eq!(ack.client_msg_id.as_deref(), Some(id.as_str()));
                    out.acked.push((id.clone(), ack.seq, Instant::now()));
                    acks.send_replace(out.acked.len());
                    break;
                }
                Err(
                    error @ (ClientError::Rejected {
                        code: ErrorCode::Unavailable,
                        ..
                    }
                    | ClientError::Unacknowledged { .. }),
                ) => {
                    assert!(
                        attempt < MAX_ATTEMPTS,
                        "{name}: {id} still fails after {attempt} attempts: {error}"
                    );
                    out.failures.push(Failure {
                        client_msg_id: id.clone(),
                        kind: error
                            .code()
                            .map_or_else(|| "unacknowledged".to_owned(), |code| code.to_string()),
                        error: error.to_string(),
                    });
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(error) => panic!("{name}: send {id} failed with an unexpected error: {error}"),
            }
        }
    }
    panic!("{name} sent {MAX_MESSAGES} messages without being stopped");
}

/// What one subscriber saw.
#[derive(Debug)]
pub struct Received {
    pub name: String,
    /// The room's seqs in arrival order, across reconnections.
    pub seqs: Vec<Seq>,
    /// When each of `seqs` arrived (a catch-up's messages: when its `subbed` came).
    pub arrivals: Vec<Instant>,
    /// Why each lost connection was lost.
    pub disconnects: Vec<String>,
    /// The close code of each lost connection (`None`: no close frame); manual subscribers only.
    pub close_codes: Vec<Option<u16>>,
}

impl Received {
    fn new(name: String) -> Self {
        Self {
            name,
            seqs: Vec::new(),
            arrivals: Vec::new(),
            disconnects: Vec::new(),
            close_codes: Vec::new(),
        }
    }

    fn push(&mut self, seq: Seq) {
        self.seqs.push(seq);
        self.arrivals.push(Instant::now());
    }

    /// Whether to stop reading: the final seq (once announced on `last`) has arrived, or its
    /// deadline has passed (the test then reports what is missing).
    fn done(&self, last: &mut watch::Receiver<Option<Last>>) -> bool {
        let Some(target) = *last.borrow_and_update() else {
            return false;
        };
        self.seqs.last().is_some_and(|&seen| seen >= target.seq) || Instant::now() >= target.by
    }
}

/// The room's last seq once the traffic has stopped, and when a subscriber gives up on it.
#[derive(Debug, Clone, Copy)]
pub struct Last {
    pub seq: Seq,
    pub by: Instant,
}

/// Resolves when `last` changes or, once the last seq is announced, at its deadline.
async fn last_changed(last: &mut watch::Receiver<Option<Last>>) {
    let deadline = last.borrow().map(|target| target.by);
    let changed = async {
        last.changed()
            .await
            .expect("the test announces the last seq before it drops the sender");
    };
    match deadline {
        Some(by) => {
            let _ = tokio::time::timeout_at(by, changed).await;
        }
        None => changed.await,
    }
}

/// Reads `room`'s messages from a [`ReconnectingClient`] (subscribed already) until the seq
/// announced on `last` (or its deadline).
///
/// # Panics
/// If the client ends or the room's subscription is dropped.
pub async fn follow_reconnecting(
    mut client: ReconnectingClient,
    name: String,
    room: String,
    mut last: watch::Receiver<Option<Last>>,
) -> Received {
    let mut out = Received::new(name);
    for _ in 0..MAX_EVENTS {
        if out.done(&mut last) {
            return out;
        }
        let event = tokio::select! {
            event = client.next_event() => Some(event),
            () = last_changed(&mut last) => None,
        };
        match event {
            None => {}
            Some(Ok(ClientEvent::Message(message))) if message.room == room => {
                out.push(message.seq)
            }
            Some(Ok(ClientEvent::Reconnecting {
                attempt: 1, cause, ..
            })) => out.disconnects.push(cause),
            Some(Ok(ClientEvent::Unsubscribed { room, error })) => {
                panic!("{}: unsubscribed from {room}: {error:?}", out.name)
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("{}: the client ended: {error}", out.name),
        }
    }
    panic!(
        "{}: read {MAX_EVENTS} events without the last seq",
        out.name
    );
}

/// Reads `room`'s messages from `conn` (subscribed already) until the seq announced on `last`
/// (or its deadline).
/// A lost connection is replaced by one to `resume_url` that subscribes with `since` = the last
/// seq seen.
///
/// # Panics
/// After more than [`MAX_RECONNECTS`] lost connections, or when a resumption fails
/// [`RESUME_ATTEMPTS`] times in a row.
pub async fn follow_manually(
    mut conn: Connection,
    name: String,
    resume_url: String,
    token: String,
    room: String,
    mut last: watch::Receiver<Option<Last>>,
) -> Received {
    let mut out = Received::new(name);
    for _ in 0..MAX_EVENTS {
        if out.done(&mut last) {
            return out;
        }
        let event = tokio::select! {
            event = conn.next_event() => Some(event),
            () = last_changed(&mut last) => None,
        };
        match event {
            None => {}
            Some(Ok(ServerFrame::Message(message))) if message.room == room => {
                out.push(message.seq)
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                out.close_codes.push(match &error {
                    ClientError::Closed { code, .. } => *code,
                    _ => None,
                });
                out.disconnects.push(error.to_string());
                assert!(
                    out.disconnects.len() <= MAX_RECONNECTS,
                    "{} lost its connection too often: {:?}",
                    out.name,
                    out.disconnects
                );
                let since = out.seqs.last().copied().unwrap_or(0);
                let (resumed, catch_up) = resume(&resume_url, &token, &room, since).await;
                conn = resumed;
                for seq in catch_up {
                    out.push(seq);
                }
            }
        }
    }
    panic!(
        "{}: read {MAX_EVENTS} events without the last seq",
        out.name
    );
}

/// A new connection to `url`, subscribed to `room` with `since`; returns it with the seqs of the
/// catch-up. Retried (bounded) while the cluster is still settling: a node going down behind
/// HAProxy, a `sub` refused as `unavailable`.
async fn resume(url: &str, token: &str, room: &str, since: Seq) -> (Connection, Vec<Seq>) {
    let mut last_error = String::new();
    for _ in 0..RESUME_ATTEMPTS {
        let attempt = async {
            let (mut conn, _welcome) = Connection::connect(url, Some(token)).await?;
            let (catch_up, _last_seq) = conn.subscribe(room, Some(since)).await?;
            Ok::<_, ClientError>((conn, catch_up.iter().map(|m| m.seq).collect()))
        };
        match tokio::time::timeout(WAIT, attempt).await {
            Ok(Ok(resumed)) => return resumed,
            Ok(Err(error)) => last_error = error.to_string(),
            Err(_) => last_error = "timed out".into(),
        }
        tokio::time::sleep(RESUME_PAUSE).await;
    }
    panic!("could not resume {room} at {url} after {RESUME_ATTEMPTS} attempts: {last_error}");
}

/// The longest interval between consecutive `times` that ends by `until`.
pub fn longest_gap(times: &[Instant], until: Instant) -> Duration {
    times
        .windows(2)
        .filter(|pair| pair[1] <= until)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default()
}
