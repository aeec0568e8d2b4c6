//! Presence across nodes in Redis: a hash per room (`{prefix}presence:{room}`) whose fields are
//! `{node}|{user}` and whose values are expiry times (ms). Each node refreshes its own fields
//! three times per TTL; readers ignore expired fields, so a dead node's users disappear within
//! [`ENTRY_TTL`]. The hash itself expires 2 × TTL after the last refresh by any node: a refresh
//! may set or extend the key's expiry but never shortens one another node set. Writes of one
//! node are serialised so a refresh cannot bring back an entry a `leave` just removed. A Redis
//! failure degrades presence (best effort), never chat.

use std::sync::Arc;
use std::time::Duration;

use ::redis::AsyncCommands;

use super::{LocalCounts, Presence};
use crate::service::now_ms;

/// How long an entry lives without a refresh.
pub const ENTRY_TTL: Duration = Duration::from_secs(30);
/// How often a node refreshes its entries: a third of the TTL, so two refreshes may fail.
pub const REFRESH_FRACTION: u32 = 3;

/// Presence shared by every node through Redis.
pub struct RedisPresence {
    conn: ::redis::aio::ConnectionManager,
    prefix: String,
    node: String,
    ttl: Duration,
    counts: LocalCounts,
    /// Held across each write of this node's fields (put or delete), so a refresh that read
    /// the counts before a `leave` cannot write after that leave's delete.
    writes: tokio::sync::Mutex<()>,
}

impl RedisPresence {
    /// Presence over `conn` whose entries live `ttl` ([`ENTRY_TTL`] in production); starts the
    /// refresh task (which stops when the value is dropped).
    pub fn start(
        conn: ::redis::aio::ConnectionManager,
        prefix: &str,
        node: &str,
        ttl: Duration,
    ) -> Arc<Self> {
        let me = Arc::new(Self {
            conn,
            prefix: prefix.to_owned(),
            node: node.to_owned(),
            ttl,
            counts: LocalCounts::default(),
            writes: tokio::sync::Mutex::new(()),
        });
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / REFRESH_FRACTION);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { return };
                for (room, user) in me.counts.all() {
                    let _w = me.writes.lock().await;
                    // Re-checked under the lock: the user may have left since `all()`.
                    if me.counts.contains(&room, &user) {
                        me.put(&room, &user).await;
                    }
                }
            }
        });
        me
    }

    fn key(&self, room: &str) -> String {
        format!("{}presence:{room}", self.prefix)
    }

    fn field(&self, user: &str) -> String {
        format!("{}|{user}", self.node)
    }

    async fn put(&self, room: &str, user: &str) {
        let mut conn = self.conn.clone();
        let expiry = now_ms() + self.ttl.as_millis() as i64;
        let result: ::redis::RedisResult<()> = ::redis::pipe()
            .hset(self.key(room), self.field(user), expiry)
            .ignore()
            // Set an expiry if the key has none, else only extend it (Redis ≥ 7.0): a node with
            // a shorter TTL must not cut short the entries of the others.
            .cmd("PEXPIRE")
            .arg(self.key(room))
            .arg(2 * self.ttl.as_millis() as i64)
            .arg("NX")
            .ignore()
            .cmd("PEXPIRE")
            .arg(self.key(room))
            .arg(2 * self.ttl.as_millis() as i64)
            .arg("GT")
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "presence refresh failed");
        }
    }

    /// Live (user, node) pairs of a room; expired fields are deleted on the way.
    async fn live(&self, room: &str) -> Vec<(String, String)> {
        let mut conn = self.conn.clone();
        let all: std::collections::HashMap<String, i64> =
            conn.hgetall(self.key(room)).await.unwrap_or_default();
        let now = now_ms();
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for (field, expiry) in all {
            if expiry <= now {
                expired.push(field);
            } else if let Some((node, user)) = field.split_once('|') {
                live.push((user.to_owned(), node.to_owned()));
            }
        }
        if !expired.is_empty() {
            let _: ::redis::RedisResult<()> = conn.hdel(self.key(room), expired).await;
        }
        live
    }
}

#[async_trait::async_trait]
impl Presence for RedisPresence {
    async fn join(&self, room: &str, user: &str) -> bool {
        if !self.counts.inc(room, user) {
            return false;
        }
        let elsewhere = self.live(room).await.iter().any(|(u, _)| u == user);
        let _w = self.writes.lock().await;
        if self.counts.contains(room, user) {
            self.put(room, user).await;
        }
        !elsewhere
    }

    async fn leave(&self, room: &str, user: &str) -> bool {
        if !self.counts.dec(room, user) {
            return false;
        }
        let mut conn = self.conn.clone();
        {
            let _w = self.writes.lock().await;
            // A join may have come back while we waited for the lock.
            if !self.counts.contains(room, user) {
                let _: ::redis::RedisResult<()> = conn.hdel(self.key(room), self.field(user)).await;
            }
        }
        !self.live(room).await.iter().any(|(u, _)| u == user)
    }

    async fn list(&self, room: &str) -> Vec<String> {
        let mut users: Vec<String> = self.live(room).await.into_iter().map(|(u, _)| u).collect();
        users.sort();
        users.dedup();
        users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use switchboard_testkit::services::{RedisPrefix, REDIS_URL};

    async fn presence(prefix: &str, node: &str, ttl: Duration) -> Arc<RedisPresence> {
        let client = ::redis::Client::open(REDIS_URL).unwrap();
        let conn = ::redis::aio::ConnectionManager::new(client)
            .await
            .expect("redis reachable");
        RedisPresence::start(conn, prefix, node, ttl)
    }

    #[tokio::test]
    async fn presence_is_shared_and_a_dead_nodes_users_expire() {
        let prefix = RedisPrefix::new();
        let a = presence(&prefix.0, "a", Duration::from_millis(300)).await;
        let b = presence(&prefix.0, "b", Duration::from_secs(30)).await;
        assert!(a.join("r", "alice").await, "alice arrives");
        assert!(
            !b.join("r", "alice").await,
            "already present through node a"
        );
        assert!(b.join("r", "bob").await);
        assert_eq!(b.list("r").await, ["alice", "bob"]);
        assert!(!b.leave("r", "alice").await, "still present on node a");
        // Node a dies: nobody refreshes its entries, which expire.
        drop(a);
        let mut gone = false;
        for _ in 0..100 {
            if b.list("r").await == ["bob"] {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "alice expired with her node");
        let mut conn = b.conn.clone();
        let pttl: i64 = conn.pttl(b.key("r")).await.unwrap();
        assert!(
            pttl > 10_000,
            "node a's short TTL must not cut the key's expiry set by node b (pttl {pttl} ms)"
        );
        assert!(b.leave("r", "bob").await);
    }
}
