//! The store's metrics: batch sizes and commit latency (recorded by the batch writers), errors
//! and timeouts (counted by [`Metered`], a [`Store`] that wraps the node's store).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_kit::metrics::{Counter, Histogram, Registry};
use switchboard_protocol::{ws::Message, Millis, Seq};

use crate::store::{
    ApiKeyRecord, MemberRoom, MessageRecord, NewMessage, NewRoom, Page, PendingAppend, RoomPage,
    RoomRecord, Store, StoreError, StoreResult, UserRef,
};

/// Handles of the store's metrics. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    batch_size: Histogram,
    commit_seconds: Histogram,
    errors: Counter,
    timeouts: Counter,
}

impl StoreMetrics {
    /// The handles, registered on `registry`.
    pub fn new(registry: &Registry) -> Self {
        Self {
            batch_size: registry.histogram(
                "switchboard_store_batch_size",
                "Messages stored by one committed append transaction.",
                &[],
            ),
            commit_seconds: registry.histogram(
                "switchboard_store_commit_seconds",
                "Time of one append transaction, from its start to the answer to COMMIT.",
                &[],
            ),
            errors: registry.counter(
                "switchboard_store_errors_total",
                "Store operations that failed (the database, not the request: timeouts included).",
                &[],
            ),
            timeouts: registry.counter(
                "switchboard_store_timeouts_total",
                "Store operations that failed because the database did not answer in time.",
                &[],
            ),
        }
    }

    /// Records one committed append transaction of `messages` messages that took `took`.
    pub fn committed(&self, messages: usize, took: Duration) {
        self.batch_size.record(messages as f64);
        self.commit_seconds.record(took.as_secs_f64());
    }

    /// Counts `e` if it is the database's failure (a refusal of the request is not).
    fn failed(&self, e: &StoreError) {
        if matches!(
            e,
            StoreError::RoomNotFound(_) | StoreError::NotMember(_) | StoreError::NulCharacter(_)
        ) {
            return;
        }
        self.errors.increment(1);
        if is_timeout(e) {
            self.timeouts.increment(1);
        }
    }

    fn count<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        if let Err(e) = &result {
            self.failed(e);
        }
        result
    }
}

fn is_timeout(e: &StoreError) -> bool {
    match e {
        StoreError::Timeout(_) => true,
        StoreError::Batch(inner) => is_timeout(inner),
        _ => false,
    }
}

/// The node's store with its failures counted; everything else is the inner store's.
pub struct Metered {
    inner: Arc<dyn Store>,
    metrics: StoreMetrics,
}

impl Metered {
    /// `inner`, counting its failures in `metrics`.
    pub fn wrap(inner: Arc<dyn Store>, metrics: StoreMetrics) -> Arc<dyn Store> {
        Arc::new(Self { inner, metrics })
    }
}

#[async_trait]
impl Store for Metered {
    async fn create_room(&self, room: NewRoom) -> StoreResult<RoomRecord> {
        self.metrics.count(self.inner.create_room(room).await)
    }
    async fn room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        self.metrics.count(self.inner.room(id).await)
    }
    async fn direct_room(
        &self,
        a: &UserRef,
        b: &UserRef,
        new_id: &str,
        ts: Millis,
    ) -> StoreResult<RoomRecord> {
        self.metrics
            .count(self.inner.direct_room(a, b, new_id, ts).await)
    }
    async fn membership(&self, room: &str, user_id: &str) -> StoreResult<Option<Seq>> {
        self.metrics
            .count(self.inner.membership(room, user_id).await)
    }
    async fn add_member(&self, room: &str, user: &UserRef, ts: Millis) -> StoreResult<bool> {
        self.metrics
            .count(self.inner.add_member(room, user, ts).await)
    }
    async fn remove_member(&self, room: &str, user_id: &str) -> StoreResult<bool> {
        self.metrics
            .count(self.inner.remove_member(room, user_id).await)
    }
    async fn hide_member(&self, room: &str, user_id: &str) -> StoreResult<Option<Vec<String>>> {
        self.metrics
            .count(self.inner.hide_member(room, user_id).await)
    }
    async fn members(&self, room: &str) -> StoreResult<Vec<String>> {
        self.metrics.count(self.inner.members(room).await)
    }
    async fn rooms_of(&self, user_id: &str, page: RoomPage) -> StoreResult<Vec<MemberRoom>> {
        self.metrics.count(self.inner.rooms_of(user_id, page).await)
    }
    async fn enqueue_append(&self, msg: NewMessage) -> StoreResult<PendingAppend> {
        let pending = self.metrics.count(self.inner.enqueue_append(msg).await)?;
        let metrics = self.metrics.clone();
        Ok(Box::pin(async move { metrics.count(pending.await) }))
    }
    async fn messages(&self, room: &str, page: Page) -> StoreResult<Vec<Message>> {
        self.metrics.count(self.inner.messages(room, page).await)
    }
    async fn message(&self, room: &str, seq: Seq) -> StoreResult<Option<MessageRecord>> {
        self.metrics.count(self.inner.message(room, seq).await)
    }
    async fn edit(&self, room: &str, seq: Seq, body: &str, ts: Millis) -> StoreResult<()> {
        self.metrics
            .count(self.inner.edit(room, seq, body, ts).await)
    }
    async fn delete(&self, room: &str, seq: Seq, ts: Millis) -> StoreResult<()> {
        self.metrics.count(self.inner.delete(room, seq, ts).await)
    }
    async fn set_read(&self, room: &str, user_id: &str, seq: Seq) -> StoreResult<Seq> {
        self.metrics
            .count(self.inner.set_read(room, user_id, seq).await)
    }
    async fn purge_before(&self, cutoff: Millis) -> StoreResult<u64> {
        self.metrics.count(self.inner.purge_before(cutoff).await)
    }
    async fn first_seq(&self, room: &str) -> StoreResult<Option<Seq>> {
        self.metrics.count(self.inner.first_seq(room).await)
    }
    async fn known_user(&self, username: &str) -> StoreResult<Option<UserRef>> {
        self.metrics.count(self.inner.known_user(username).await)
    }
    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<bool> {
        self.metrics.count(self.inner.create_api_key(key).await)
    }
    async fn api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.metrics.count(self.inner.api_keys().await)
    }
    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.metrics.count(self.inner.api_key(id).await)
    }
    async fn revoke_api_key(&self, name_or_id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.metrics
            .count(self.inner.revoke_api_key(name_or_id).await)
    }
    async fn touch_api_key(&self, id: &str, ts: Millis) -> StoreResult<()> {
        self.metrics.count(self.inner.touch_api_key(id, ts).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_not_store_errors_and_timeouts_are_found_inside_batches() {
        let registry = Registry::new();
        let m = StoreMetrics::new(&registry);
        m.failed(&StoreError::NotMember("r".into()));
        m.failed(&StoreError::RoomNotFound("r".into()));
        m.failed(&StoreError::WriterGone);
        m.failed(&StoreError::Batch(Arc::new(StoreError::Timeout(
            Duration::from_secs(1),
        ))));
        let text = registry.render();
        assert!(text.contains("switchboard_store_errors_total 2"), "{text}");
        assert!(
            text.contains("switchboard_store_timeouts_total 1"),
            "{text}"
        );
    }
}
