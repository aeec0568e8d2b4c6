//! The table of open HTTP connections that are not (yet) WebSockets, with the state the
//! watchdog and the eviction read.
//!
//! A connection is **waiting** from its accept, or from the end of a response, until the head of
//! its next request is complete; then **busy** until its response body is dropped (written or
//! abandoned). At the cap, waiting connections are evicted first, oldest wait first: they are
//! what a slowloris holds (idle sockets, heads that never finish). Only when none waits is a
//! busy one evicted, the oldest, and only if it has been busy longer than the stale bound (the
//! header-read timeout): a request whose body trickles in holds its slot no longer than that,
//! while the hub's own requests take milliseconds. So a fresh `/healthz` request finds room at
//! the cap, at once or within the stale bound.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// Accepted, no byte yet.
const FRESH: u8 = 0;
/// Bytes of a request head arrived, the head is not complete.
const HEAD: u8 = 1;
/// A request is being served.
const BUSY: u8 = 2;
/// A response was finished, no byte of the next request yet (keep-alive idle).
const IDLE: u8 = 3;

/// Milliseconds on the monotonic clock shared by every connection (the kit's, which paused
/// Tokio time drives).
pub(crate) fn now_ms() -> u64 {
    switchboard_kit::clock::Clock::millis()
}

/// What the accept loop, the IO wrapper and the response body share about one connection.
pub(crate) struct ConnState {
    phase: AtomicU8,
    /// When the current wait or request began ([`now_ms`]).
    since: AtomicU64,
    /// Notified to close the connection at once (eviction, end of the grace period).
    evict: Notify,
}

impl ConnState {
    fn new() -> Self {
        Self {
            phase: AtomicU8::new(FRESH),
            since: AtomicU64::new(now_ms()),
            evict: Notify::new(),
        }
    }

    /// Bytes arrived from the peer (called by the IO wrapper on every read).
    pub(crate) fn on_bytes(&self) {
        let phase = self.phase.load(Ordering::Relaxed);
        if phase == FRESH || phase == IDLE {
            // A lost race with `begin_request` leaves BUSY in place, which is right.
            let _ = self
                .phase
                .compare_exchange(phase, HEAD, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// A request head is complete: busy until the returned guard (held by the response body)
    /// is dropped.
    pub(crate) fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.since.store(now_ms(), Ordering::Release);
        self.phase.store(BUSY, Ordering::Release);
        RequestGuard(self.clone())
    }

    /// How long the connection has been idle between requests, if it is.
    pub(crate) fn idle_for(&self, now: u64) -> Option<u64> {
        (self.phase.load(Ordering::Acquire) == IDLE)
            .then(|| now.saturating_sub(self.since.load(Ordering::Acquire)))
    }

    /// Resolves when the connection must close at once.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Its rank for eviction, lowest first: waiting connections by the start of their wait,
    /// then busy ones that began at `stale_before` or earlier by the start of their request;
    /// `None` for a busy one that is younger (every busy one when `stale_before` is `None`).
    fn eviction_rank(&self, stale_before: Option<u64>) -> Option<(bool, u64)> {
        let since = self.since.load(Ordering::Acquire);
        match self.phase.load(Ordering::Acquire) {
            BUSY if stale_before.is_some_and(|b| since <= b) => Some((true, since)),
            BUSY => None,
            _ => Some((false, since)),
        }
    }
}

/// Marks the connection busy while it lives: moved into the response body.
pub(crate) struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.since.store(now_ms(), Ordering::Release);
        self.0.phase.store(IDLE, Ordering::Release);
    }
}

/// A response body that keeps its connection busy until it is dropped.
pub(crate) struct GuardedBody<B> {
    inner: B,
    _guard: RequestGuard,
}

impl<B> GuardedBody<B> {
    pub(crate) fn new(inner: B, guard: RequestGuard) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body + Unpin> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The open HTTP connections, capped at `--max-http-connections`.
pub(crate) struct HttpConns {
    cap: usize,
    /// How long a request may be busy before it may be evicted, in ms.
    stale_ms: u64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
}

/// Outcome of [`HttpConns::admit`].
pub(crate) enum Admission {
    /// Admitted; `evicted` says whether a waiting connection was closed to make room.
    Admitted { slot: HttpSlot, evicted: bool },
    /// At the cap and every connection is busy with a request.
    Full,
}

impl HttpConns {
    pub(crate) fn new(cap: usize, stale: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            stale_ms: stale.as_millis() as u64,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Admits a new connection; at the cap, evicts one first (see the module doc).
    pub(crate) fn admit(self: &Arc<Self>) -> Admission {
        let mut open = self.open.lock().expect("the table lock is never poisoned");
        let mut evicted = false;
        if open.len() >= self.cap {
            if !self.evict_oldest_locked(&mut open) {
                return Admission::Full;
            }
            evicted = true;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new());
        open.insert(id, state.clone());
        Admission::Admitted {
            slot: HttpSlot {
                table: self.clone(),
                id,
                state,
            },
            evicted,
        }
    }

    /// Closes the connection first in line for eviction (see the module doc); false if none
    /// may be evicted.
    pub(crate) fn evict_oldest(&self) -> bool {
        let mut open = self.open.lock().expect("the table lock is never poisoned");
        self.evict_oldest_locked(&mut open)
    }

    fn evict_oldest_locked(&self, open: &mut HashMap<u64, Arc<ConnState>>) -> bool {
        let stale_before = now_ms().checked_sub(self.stale_ms);
        let victim = open
            .iter()
            .filter_map(|(id, s)| s.eviction_rank(stale_before).map(|rank| (rank, *id)))
            .min();
        match victim.and_then(|(_, id)| open.remove(&id)) {
            Some(state) => {
                state.evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// Closes every open connection at once (the end of the shutdown grace period).
    pub(crate) fn close_all(&self) {
        let open = std::mem::take(&mut *self.open.lock().expect("never poisoned"));
        for state in open.values() {
            state.evict.notify_one();
        }
    }

    /// HTTP connections now open.
    pub(crate) fn len(&self) -> usize {
        self.open.lock().expect("never poisoned").len()
    }
}

/// One connection's entry in [`HttpConns`], removed when dropped (the connection ended or was
/// upgraded to a WebSocket).
pub(crate) struct HttpSlot {
    table: Arc<HttpConns>,
    id: u64,
    pub(crate) state: Arc<ConnState>,
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        self.table
            .open
            .lock()
            .expect("never poisoned")
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(table: &Arc<HttpConns>) -> (HttpSlot, bool) {
        match table.admit() {
            Admission::Admitted { slot, evicted } => (slot, evicted),
            Admission::Full => panic!("expected admission"),
        }
    }

    #[test]
    fn at_the_cap_the_longest_waiting_connection_is_evicted() {
        let table = HttpConns::new(2, std::time::Duration::from_secs(3600));
        let (first, _) = admitted(&table);
        let (second, _) = admitted(&table);
        // The first one is serving a request: it is not evictable.
        let guard = first.state.begin_request();
        let (third, evicted) = admitted(&table);
        assert!(evicted);
        assert_eq!(table.len(), 2);
        assert!(!table.open.lock().unwrap().contains_key(&second.id));
        // Now both are busy... once the third is too, nothing can be evicted.
        let _busy = third.state.begin_request();
        assert!(matches!(table.admit(), Admission::Full));
        drop(guard);
        assert!(first.state.idle_for(now_ms()).is_some());
        assert!(matches!(
            table.admit(),
            Admission::Admitted { evicted: true, .. }
        ));
    }

    #[test]
    fn a_request_busy_past_the_stale_bound_is_evicted_when_none_waits() {
        let table = HttpConns::new(2, std::time::Duration::ZERO);
        let (old, _) = admitted(&table);
        let (young, _) = admitted(&table);
        let _a = old.state.begin_request();
        let _b = young.state.begin_request();
        // Both began in the future: neither is stale yet.
        old.state.since.store(now_ms() + 10_000, Ordering::Release);
        young
            .state
            .since
            .store(now_ms() + 10_000, Ordering::Release);
        assert!(matches!(table.admit(), Admission::Full));
        // The first request began long ago (its body trickles in).
        old.state.since.store(0, Ordering::Release);
        young
            .state
            .since
            .store(now_ms() + 10_000, Ordering::Release);
        assert!(matches!(
            table.admit(),
            Admission::Admitted { evicted: true, .. }
        ));
        let open = table.open.lock().unwrap();
        assert!(!open.contains_key(&old.id) && open.contains_key(&young.id));
    }

    #[test]
    fn bytes_move_a_waiting_connection_to_head_but_never_a_busy_one() {
        let table = HttpConns::new(4, std::time::Duration::from_secs(3600));
        let (slot, _) = admitted(&table);
        slot.state.on_bytes();
        assert_eq!(slot.state.phase.load(Ordering::Relaxed), HEAD);
        let guard = slot.state.begin_request();
        slot.state.on_bytes();
        assert_eq!(slot.state.phase.load(Ordering::Relaxed), BUSY);
        drop(guard);
        assert_eq!(slot.state.phase.load(Ordering::Relaxed), IDLE);
        slot.state.on_bytes();
        assert_eq!(slot.state.idle_for(now_ms()), None);
    }
}
