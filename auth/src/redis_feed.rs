//! Cluster-wide revocations through Redis: the names, and [`follow`], the subscriber side that
//! hub nodes (and every [`crate::Auth`] opened with a Redis URL) run. The publishing side is
//! `announce.rs`.
//!
//! # Wire format
//! - Key `{prefix}revoked:{sid}`, value `<until>` (decimal Unix seconds after which no access
//!   token of the session can pass verification), expiring at `until` (TTL = the remaining life
//!   of the session's last access token plus the verification leeway). Redis thus holds every
//!   revocation that still matters, and nothing else.
//! - Channel `{prefix}revocations`, payload `<sid>`, published right after the key is set (both
//!   in one `MULTI`), so a subscriber that reads the key on a message always finds it.
//!
//! **Invariant:** a follower subscribes *before* it scans the keys, on every (re)connect. A
//! revocation is therefore either announced while the follower listens, or its key is already
//! there when the scan runs (or both: [`Revocations::revoke`] is idempotent), so none is missed
//! across reconnects, whatever Redis was doing meanwhile.

use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use switchboard_kit::backoff::{Backoff, Retries};
use tokio::task::{AbortHandle, JoinHandle};

use crate::config::redact_url;
use crate::Revocations;

/// How long connecting, subscribing, and each command may take before the connection is
/// considered lost.
pub(crate) const REDIS_TIMEOUT: Duration = Duration::from_secs(3);

/// Interval between keepalive PINGs on the subscription connection. Without them, a Redis that
/// vanished without closing the TCP connection (host down, partition) would leave the follower
/// waiting forever on a dead socket.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// Keys fetched per SCAN step.
const SCAN_COUNT: usize = 500;

/// How long a revocation is kept in memory when its key cannot be read (gone already, or Redis
/// failing): longer than any sane access-token lifetime. Entries only cost memory; a session id
/// is never reused.
const FALLBACK_REVOCATION_SECS: u64 = 24 * 60 * 60;

/// Pauses between reconnects to Redis (and between announcement retries): 100 ms doubling to
/// 5 s, jittered so that nodes that lost Redis together do not reconnect in lockstep.
pub(crate) const BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(100), Duration::from_secs(5));

/// The Redis names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// `{prefix}revoked:`; a key is this plus the session id.
    key_prefix: String,
    /// `{prefix}revocations`.
    pub(crate) channel: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            key_prefix: format!("{prefix}revoked:"),
            channel: revocation_channel(prefix),
        }
    }

    pub(crate) fn key(&self, sid: &str) -> String {
        format!("{}{sid}", self.key_prefix)
    }

    /// A SCAN pattern matching every revocation key (the prefix with glob characters escaped).
    fn pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.key_prefix.len() + 1);
        for c in self.key_prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }
}

/// The key recording the revocation of session `sid`: `{prefix}revoked:{sid}`.
pub fn revocation_key(prefix: &str, sid: &str) -> String {
    Names::new(prefix).key(sid)
}

/// The channel on which revoked session ids are announced: `{prefix}revocations`.
pub fn revocation_channel(prefix: &str) -> String {
    format!("{prefix}revocations")
}

/// Follows the revocations announced under `prefix` on the Redis at `redis_url`, putting every
/// one into `revocations` with [`Revocations::revoke`] (which broadcasts it to the
/// [`Revocations::subscribe`] receivers, so the hub closes the session's sockets).
///
/// Runs until the returned task is aborted. On every (re)connect it subscribes to
/// `{prefix}revocations` and then loads every `{prefix}revoked:*` key (SCAN), so revocations
/// made while it was disconnected are applied too. When Redis goes away it reconnects with
/// jittered exponential backoff (100 ms doubling to 5 s). An unparsable URL is logged as an
/// error and ends the task at once (check the URL at start, e.g. with `redis::Client::open`).
///
/// # Panics
/// Outside a Tokio runtime.
pub fn follow(redis_url: &str, prefix: &str, revocations: Revocations) -> JoinHandle<()> {
    let url = redis_url.to_owned();
    let names = Names::new(prefix);
    tokio::spawn(async move {
        let client = match redis::Client::open(url.as_str()) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, url = %redact_url(&url),
                    "invalid Redis URL: revocations of other nodes will not reach this one");
                return;
            }
        };
        let mut retries = BACKOFF.retries();
        loop {
            let lost = follow_once(&client, &names, &revocations, &mut retries).await;
            let delay = retries.next_delay();
            tracing::warn!(error = %lost, retry_in_ms = delay.as_millis() as u64,
                "revocation feed disconnected from Redis");
            tokio::time::sleep(delay).await;
        }
    })
}

/// Why a follower connection ended.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {REDIS_TIMEOUT:?}: {0}")]
    Timeout(&'static str),
    #[error("redis closed the subscription connection")]
    Closed,
}

/// `fut` with [`REDIS_TIMEOUT`]; `what` names it in the error.
async fn timed<T>(
    what: &'static str,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Lost> {
    Ok(tokio::time::timeout(REDIS_TIMEOUT, fut)
        .await
        .map_err(|_| Lost::Timeout(what))??)
}

/// One connection's worth of following: subscribe, scan, then apply messages until the
/// connection is lost. Resets `retries` once connected.
async fn follow_once(
    client: &redis::Client,
    names: &Names,
    revocations: &Revocations,
    retries: &mut Retries,
) -> Lost {
    let result: Result<(), Lost> = async {
        let pubsub = timed("connect", client.get_async_pubsub()).await?;
        let (mut sink, mut messages) = pubsub.split();
        timed("subscribe", sink.subscribe(&names.channel)).await?;
        let mut conn = timed("connect", client.get_multiplexed_async_connection()).await?;
        let loaded = load_all(&mut conn, names, revocations).await?;
        retries.reset();
        tracing::info!(channel = %names.channel, loaded, "following revocations");
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let msg = msg.ok_or(Lost::Closed)?;
                    let Ok(sid) = msg.get_payload::<String>() else {
                        tracing::warn!("ignoring a non-text revocation announcement");
                        continue;
                    };
                    let until = until_of(&mut conn, names, &sid).await;
                    if revocations.revoke(&sid, until) {
                        tracing::info!(session = %sid, "revocation received");
                    }
                }
                _ = keepalive.tick() => {
                    timed("ping", sink.ping::<redis::Value>()).await?;
                }
            }
        }
    }
    .await;
    result.err().unwrap_or(Lost::Closed)
}

/// Applies every revocation key under the prefix; returns how many there were.
async fn load_all(
    conn: &mut MultiplexedConnection,
    names: &Names,
    revocations: &Revocations,
) -> Result<usize, Lost> {
    let pattern = names.pattern();
    let now = crate::unix_now();
    let mut cursor: u64 = 0;
    let mut loaded = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = timed(
            "scan",
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(conn),
        )
        .await?;
        if !keys.is_empty() {
            let values: Vec<Option<String>> =
                timed("mget", redis::cmd("MGET").arg(&keys).query_async(conn)).await?;
            for (key, value) in keys.iter().zip(values) {
                let Some(sid) = key.strip_prefix(&names.key_prefix) else {
                    continue;
                };
                revocations.revoke(sid, parse_until(value.as_deref(), now));
                loaded += 1;
            }
        }
        if next == 0 {
            return Ok(loaded);
        }
        cursor = next;
    }
}

/// The `until` recorded for `sid`, or the fallback when it cannot be read.
async fn until_of(conn: &mut MultiplexedConnection, names: &Names, sid: &str) -> u64 {
    let value: Result<Option<String>, Lost> = timed(
        "get",
        redis::cmd("GET").arg(names.key(sid)).query_async(conn),
    )
    .await;
    let value = value.unwrap_or_else(|error| {
        tracing::warn!(%error, session = %sid, "cannot read a revocation's expiry");
        None
    });
    parse_until(value.as_deref(), crate::unix_now())
}

/// A stored `<until>`; the fallback (now + [`FALLBACK_REVOCATION_SECS`]) when absent or bad.
fn parse_until(value: Option<&str>, now: u64) -> u64 {
    value
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(now + FALLBACK_REVOCATION_SECS)
}

/// Aborts a background task when dropped, so it lives exactly as long as its owner.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scan_pattern() {
        let names = Names::new("sb:");
        assert_eq!(names.key("s1"), "sb:revoked:s1");
        assert_eq!(names.channel, "sb:revocations");
        assert_eq!(names.pattern(), "sb:revoked:*");
        assert_eq!(
            Names::new("a*[b]?\\:").pattern(),
            "a\\*\\[b\\]\\?\\\\:revoked:*"
        );
    }

    #[test]
    fn until_parses_or_falls_back() {
        assert_eq!(parse_until(Some("1700000000"), 5), 1_700_000_000);
        assert_eq!(parse_until(Some("junk"), 5), 5 + FALLBACK_REVOCATION_SECS);
        assert_eq!(parse_until(None, 5), 5 + FALLBACK_REVOCATION_SECS);
    }

    /// The keepalive relies on PING being allowed on a subscribed connection (RESP2).
    #[tokio::test]
    async fn a_subscribed_connection_answers_the_keepalive_ping() {
        let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
        let pubsub = timed("connect", client.get_async_pubsub())
            .await
            .expect("Redis at 127.0.0.1:6379 is needed for this test");
        let (mut sink, _messages) = pubsub.split();
        let channel = format!("sbtest:auth:{}:revocations", uuid::Uuid::new_v4().simple());
        timed("subscribe", sink.subscribe(&channel)).await.unwrap();
        timed("ping", sink.ping::<redis::Value>()).await.unwrap();
    }
}
