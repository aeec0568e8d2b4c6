//! The publishing side of cluster-wide revocations: [`Announcer`] records each revocation in
//! Redis and announces it (format in [`crate::redis_feed`]).
//!
//! **Delivery:** a revocation is persisted in the auth store before it is announced, so Redis
//! is never the only record. Announcing never fails the request that caused it: when Redis does
//! not answer, the revocation goes to a retry queue that keeps trying (with backoff) until it
//! succeeds or every token of the session has expired. And `Auth::open` re-announces the
//! still-relevant revocations from the store, covering a node that died between its database
//! commit and its announcement.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

use crate::redis_feed::{AbortOnDrop, Names, BACKOFF, REDIS_TIMEOUT};

/// Most revocations waiting for Redis to come back. Revocations are rare; past this many, new
/// failures are logged and dropped (they are still in the store and in this node's memory, and
/// the next start re-announces them).
const RETRY_QUEUE: usize = 4096;

/// A revocation to announce: session id and `until` (Unix seconds).
type Pending = (String, u64);

/// Records and announces revocations in Redis. Dropping it stops its retry task.
pub(crate) struct Announcer {
    conn: ConnectionManager,
    names: Names,
    retry: mpsc::Sender<Pending>,
    _retry_task: AbortOnDrop,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("channel", &self.names.channel)
            .finish_non_exhaustive()
    }
}

impl Announcer {
    /// Connects to the Redis at `url` (failing if it is unreachable now) and starts the retry
    /// task.
    pub(crate) async fn connect(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let names = Names::new(prefix);
        let (retry, rx) = mpsc::channel(RETRY_QUEUE);
        let task = tokio::spawn(retry_loop(conn.clone(), names.clone(), rx));
        Ok(Self {
            conn,
            names,
            retry,
            _retry_task: AbortOnDrop(task.abort_handle()),
        })
    }

    /// Records `sid` as revoked until `until` and announces it. Never fails: if Redis does not
    /// answer within a few seconds, the revocation is queued for retry in the background.
    ///
    /// # Cancel safety
    /// If cancelled, the revocation may or may not have been announced.
    pub(crate) async fn announce(&self, sid: &str, until: u64) {
        self.announce_all(&[(sid.to_owned(), until)]).await;
    }

    /// [`announce`](Self::announce) for many revocations in one round trip.
    pub(crate) async fn announce_all(&self, revocations: &[Pending]) {
        if revocations.is_empty() {
            return;
        }
        let mut conn = self.conn.clone();
        if let Err(error) = send(&mut conn, &self.names, revocations).await {
            tracing::warn!(%error, count = revocations.len(),
                "cannot announce revocations in Redis now; retrying in the background");
            for pending in revocations {
                if self.retry.try_send(pending.clone()).is_err() {
                    tracing::error!(session = %pending.0,
                        "revocation retry queue full: this revocation will not be announced");
                }
            }
        }
    }
}

/// `SET key until EX ttl` then `PUBLISH channel sid` for each revocation, all in one
/// `MULTI`/`EXEC`, so a key is always set before its announcement is delivered.
async fn send(
    conn: &mut ConnectionManager,
    names: &Names,
    revocations: &[Pending],
) -> Result<(), String> {
    let now = crate::unix_now();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (sid, until) in revocations {
        // A revocation whose tokens are all dead is still announced (sockets opened with those
        // tokens may be up), with the shortest TTL Redis accepts.
        let ttl = until.saturating_sub(now).max(1);
        pipe.cmd("SET")
            .arg(names.key(sid))
            .arg(until)
            .arg("EX")
            .arg(ttl)
            .ignore()
            .cmd("PUBLISH")
            .arg(&names.channel)
            .arg(sid)
            .ignore();
    }
    match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(conn)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {REDIS_TIMEOUT:?}")),
    }
}

/// Announces queued revocations, one at a time, retrying each with backoff until it succeeds
/// or its `until` has passed.
async fn retry_loop(mut conn: ConnectionManager, names: Names, mut rx: mpsc::Receiver<Pending>) {
    let mut retries = BACKOFF.retries();
    while let Some(pending) = rx.recv().await {
        loop {
            if pending.1 < crate::unix_now() {
                tracing::warn!(session = %pending.0,
                    "revocation expired before Redis came back; not announced");
                break;
            }
            match send(&mut conn, &names, std::slice::from_ref(&pending)).await {
                Ok(()) => {
                    tracing::info!(session = %pending.0, "revocation announced after retrying");
                    retries.reset();
                    break;
                }
                Err(_) => retries.wait().await,
            }
        }
    }
}
