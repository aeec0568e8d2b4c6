//! Presence across nodes in Redis: a hash per room (`{prefix}presence:{room}`) whose fields are
//! `{node}|{user}` and whose values are expiry times (ms). Each node refreshes its own fields
//! every [`REFRESH`]; readers ignore expired fields, so a dead node's users disappear within
//! [`ENTRY_TTL`]. A Redis failure degrades presence (best effort), never chat.

use std::sync::Arc;
use std::time::Duration;

use ::redis::AsyncCommands;

use super::{LocalCounts, Presence};
use crate::service::now_ms;

/// How long an entry lives without a refresh.
pub const ENTRY_TTL: Duration = Duration::from_secs(30);
/// How often a node refreshes its entries.
pub const REFRESH: Duration = Duration::from_secs(10);

/// Presence shared by every node through Redis.
pub struct RedisPresence {
    conn: ::redis::aio::ConnectionManager,
    prefix: String,
    node: String,
    counts: LocalCounts,
}

impl RedisPresence {
    /// Presence over `conn`; starts the refresh task (which stops when the value is dropped).
    pub fn start(conn: ::redis::aio::ConnectionManager, prefix: &str, node: &str) -> Arc<Self> {
        let me = Arc::new(Self {
            conn,
            prefix: prefix.to_owned(),
            node: node.to_owned(),
            counts: LocalCounts::default(),
        });
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
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
        let expiry = now_ms() + ENTRY_TTL.as_millis() as i64;
        let result: ::redis::RedisResult<()> = ::redis::pipe()
            .hset(self.key(room), self.field(user), expiry)
            .ignore()
            .pexpire(self.key(room), 2 * ENTRY_TTL.as_millis() as i64)
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
