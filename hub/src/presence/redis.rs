//! Presence across nodes in Redis: a hash per room (`{prefix}presence:{room}`) whose fields are
//! `{node}|{user}` and whose values are expiry times (ms). Each node refreshes its own fields
//! three times per TTL; readers ignore expired fields, so a dead node's users disappear within
//! [`ENTRY_TTL`]. A Redis failure degrades presence (best effort), never chat.

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
        });
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / REFRESH_FRACTION);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { return };
                for (room, user) in me.counts.all() {
                    me.put(&room, &user).await;
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
            .pexpire(self.key(room), 2 * self.ttl.as_millis() as i64)
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
        self.put(room, user).await;
        !elsewhere
    }

    async fn leave(&self, room: &str, user: &str) -> bool {
        if !self.counts.dec(room, user) {
            return false;
        }
        let mut conn = self.conn.clone();
        let _: ::redis::RedisResult<()> = conn.hdel(self.key(room), self.field(user)).await;
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

    async fn presence(prefix: &str, node: &str, ttl: Duration) -> Arc<RedisPresence> {
        let client = ::redis::Client::open("redis://127.0.0.1:6379").unwrap();
        let conn = ::redis::aio::ConnectionManager::new(client)
            .await
            .expect("redis reachable");
        RedisPresence::start(conn, prefix, node, ttl)
    }

    #[tokio::test]
    async fn presence_is_shared_and_a_dead_nodes_users_expire() {
        let prefix = format!("sbtest:presence:{}:", uuid::Uuid::new_v4().simple());
        let a = presence(&prefix, "a", Duration::from_millis(300)).await;
        let b = presence(&prefix, "b", Duration::from_secs(30)).await;
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
        assert!(b.leave("r", "bob").await);
        let mut conn = b.conn.clone();
        let _: () = conn.del(b.key("r")).await.unwrap();
    }
}
