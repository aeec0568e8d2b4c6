//! A connection's outbound queue: bounded, many senders (the fanout, the connection's reader),
//! one receiver (its writer). Generic over the item: the hub queues [`super::Out`]s.
//!
//! It replaces `tokio::sync::mpsc` because an mpsc channel allocates its first block of 32
//! slots (2.5 KiB of `Out`s) plus a 0.5 KiB cache-padded header when created, for every
//! connection, idle or not (measured with massif).
//!
//! **Invariants:** an empty outbox owns no buffer (the deque is released whenever it drains);
//! it never holds more than `cap` items; once the receiver is dropped every send fails and the
//! queued items are dropped at once (so shared event bytes are not kept alive by a dead socket).
//!
//! **Holding:** a writer that coalesces waits out a window before writing; meanwhile it waits on
//! [`Receiver::hurried`], during which pushes do not wake it (that is the point of the window)
//! but [`Sender::hurry`] does. Any `recv`/`try_recv` ends the hold.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use tokio::sync::Notify;

struct Inner<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    senders: usize,
    closed: bool,
    /// The receiver waits in [`Receiver::hurried`]: pushes leave `waker` alone.
    hold: bool,
    /// [`Sender::hurry`] was called since the last `hurried` returned.
    hurry: bool,
}

struct Shared<T> {
    inner: Mutex<Inner<T>>,
    /// Woken when a full queue gets room, or when the receiver goes away.
    space: Notify,
    cap: usize,
    /// Bytes of catch-up pages queued and not yet written (see [`Sender::add_page_bytes`]).
    pages: std::sync::atomic::AtomicUsize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // The lock is never held across a panic point that leaves `Inner` inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why [`Sender::try_send`] refused an item.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// The queue holds `cap` items.
    Full,
    /// The receiver is gone.
    Closed,
}

/// The receiver is gone.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// A queue holding at most `cap` items (`cap` ≥ 1).
pub fn outbox<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            items: VecDeque::new(),
            waker: None,
            senders: 1,
            closed: false,
            hold: false,
            hurry: false,
        }),
        space: Notify::new(),
        cap: cap.max(1),
        pages: std::sync::atomic::AtomicUsize::new(0),
    });
    (Sender(shared.clone()), Receiver(shared))
}

/// The sending side; cheap to clone.
pub struct Sender<T>(Arc<Shared<T>>);

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("cap", &self.0.cap).finish()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Self(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut inner = self.0.lock();
            inner.senders -= 1;
            if inner.senders == 0 {
                inner.waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Sender<T> {
    /// Queues `item` unless the queue is full or closed. Never waits.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError> {
        self.try_push(item).map_err(|(e, _)| e)
    }

    /// [`try_send`](Self::try_send), handing a refused item back.
    fn try_push(&self, item: T) -> Result<(), (TrySendError, T)> {
        let waker = {
            let mut inner = self.0.lock();
            if inner.closed {
                return Err((TrySendError::Closed, item));
            }
            if inner.items.len() >= self.0.cap {
                return Err((TrySendError::Full, item));
            }
            inner.items.push_back(item);
            if inner.hold {
                None
            } else {
                inner.waker.take()
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Ends the receiver's hold at once (see the module docs): what is queued should be written
    /// now, not at the end of a coalescing window.
    pub fn hurry(&self) {
        let waker = {
            let mut inner = self.0.lock();
            inner.hurry = true;
            inner.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Waits until `ready()` holds, checking it again each time the receiver makes room (a full
    /// queue drained by one, or [`Receiver::wake_senders`]). For a reader that paces itself on
    /// something the writer consumes, such as the connection's queued bytes.
    ///
    /// # Errors
    /// [`Closed`] once the receiver is gone.
    pub async fn wait_until(&self, mut ready: impl FnMut() -> bool) -> Result<(), Closed> {
        loop {
            let notified = self.0.space.notified();
            tokio::pin!(notified);
            // Register before checking, so room made between the check and the await is seen.
            notified.as_mut().enable();
            if self.0.lock().closed {
                return Err(Closed);
            }
            if ready() {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Counts `n` bytes of catch-up pages about to be queued, until the receiver reports them
    /// written ([`Receiver::pages_written`]). A catch-up paces itself on this count rather
    /// than on the connection's queued bytes, which also hold the room's live events buffered
    /// until the catch-up ends (waiting for those to drain would wait forever).
    pub fn add_page_bytes(&self, n: usize) {
        self.0
            .pages
            .fetch_add(n, std::sync::atomic::Ordering::AcqRel);
    }

    /// Bytes of catch-up pages queued and not yet written.
    pub fn page_bytes(&self) -> usize {
        self.0.pages.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Queues `item`, waiting while the queue is full.
    pub async fn send(&self, mut item: T) -> Result<(), Closed> {
        loop {
            let notified = self.0.space.notified();
            tokio::pin!(notified);
            // Register before checking, so room made between the check and the await is seen.
            notified.as_mut().enable();
            match self.try_push(item) {
                Ok(()) => return Ok(()),
                Err((TrySendError::Closed, _)) => return Err(Closed),
                Err((TrySendError::Full, back)) => item = back,
            }
            notified.await;
        }
    }
}

/// The receiving side. Dropping it closes the queue.
pub struct Receiver<T>(Arc<Shared<T>>);

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut inner = self.0.lock();
            inner.closed = true;
            std::mem::take(&mut inner.items)
        };
        drop(items);
        self.0.space.notify_waiters();
    }
}

impl<T> Receiver<T> {
    /// The next item, or `None` once every sender is gone and the queue is empty.
    ///
    /// # Cancel safety
    /// Cancel-safe: an item is only taken when it is returned.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| {
            let mut inner = self.0.lock();
            inner.hold = false;
            if let Some(item) = self.pop(&mut inner) {
                return Poll::Ready(Some(item));
            }
            if inner.senders == 0 {
                return Poll::Ready(None);
            }
            match &inner.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => inner.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<T> {
        let mut inner = self.0.lock();
        inner.hold = false;
        self.pop(&mut inner)
    }

    /// Holds (pushes do not wake the receiver) until a sender calls [`Sender::hurry`]; returns
    /// at once if one did since the last return. Meant to race a timer: dropping it leaves the
    /// hold on until the next `recv`/`try_recv`.
    pub async fn hurried(&mut self) {
        poll_fn(|cx| {
            let mut inner = self.0.lock();
            if std::mem::take(&mut inner.hurry) {
                return Poll::Ready(());
            }
            inner.hold = true;
            match &inner.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => inner.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Wakes every sender waiting in [`Sender::wait_until`] (and in `send`, which finds the
    /// queue as it was): the receiver consumed something they may be waiting for.
    pub fn wake_senders(&self) {
        self.0.space.notify_waiters();
    }

    /// `n` bytes of catch-up pages were written (see [`Sender::add_page_bytes`]); wakes the
    /// senders.
    pub fn pages_written(&self, n: usize) {
        self.0
            .pages
            .fetch_sub(n, std::sync::atomic::Ordering::AcqRel);
        self.wake_senders();
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.0.lock().items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop(&self, inner: &mut Inner<T>) -> Option<T> {
        let was_full = inner.items.len() >= self.0.cap;
        let item = inner.items.pop_front()?;
        if inner.items.is_empty() {
            // Drained: give the memory back (see the invariants).
            inner.items = VecDeque::new();
        }
        if was_full {
            self.0.space.notify_waiters();
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(n: usize) -> String {
        n.to_string()
    }

    fn text(out: String) -> String {
        out
    }

    #[tokio::test]
    async fn bounded_in_order_and_empty_means_unallocated() {
        let (tx, mut rx) = outbox(3);
        for i in 0..3 {
            tx.try_send(reply(i)).unwrap();
        }
        assert_eq!(tx.try_send(reply(9)), Err(TrySendError::Full));
        assert_eq!(text(rx.recv().await.unwrap()), "0");
        tx.try_send(reply(3)).unwrap();
        for i in 1..=3 {
            assert_eq!(text(rx.try_recv().unwrap()), i.to_string());
        }
        assert!(rx.try_recv().is_none());
        assert_eq!(rx.0.lock().items.capacity(), 0);
    }

    #[tokio::test]
    async fn send_waits_for_room_and_fails_once_the_receiver_is_gone() {
        let (tx, mut rx) = outbox(1);
        tx.try_send(reply(0)).unwrap();
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(reply(1)).await });
        // The waiting send completes only after the receiver makes room.
        assert_eq!(text(rx.recv().await.unwrap()), "0");
        waiting.await.unwrap().unwrap();
        assert_eq!(text(rx.recv().await.unwrap()), "1");

        tx.try_send(reply(2)).unwrap();
        let tx3 = tx.clone();
        let blocked = tokio::spawn(async move { tx3.send(reply(3)).await });
        drop(rx);
        assert_eq!(blocked.await.unwrap(), Err(Closed));
        assert_eq!(tx.try_send(reply(4)), Err(TrySendError::Closed));
    }

    /// While holding, pushes do not wake the receiver; `hurry` does, and `recv` ends the hold.
    #[tokio::test]
    async fn a_hold_ignores_pushes_until_hurried() {
        use std::future::Future;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let (tx, mut rx) = outbox(8);
        {
            let hold = rx.hurried();
            tokio::pin!(hold);
            assert!(hold.as_mut().poll(&mut cx).is_pending());
            tx.try_send(reply(0)).unwrap();
            tx.try_send(reply(1)).unwrap();
            assert_eq!(
                count.0.load(Ordering::SeqCst),
                0,
                "pushes do not wake a hold"
            );
            tx.hurry();
            assert_eq!(count.0.load(Ordering::SeqCst), 1, "hurry does");
            assert!(hold.as_mut().poll(&mut cx).is_ready());
        }
        assert_eq!(text(rx.try_recv().unwrap()), "0");
        assert_eq!(text(rx.try_recv().unwrap()), "1");
        // The hold is over: a waiting recv is woken by the next push.
        {
            let next = rx.recv();
            tokio::pin!(next);
            assert!(next.as_mut().poll(&mut cx).is_pending());
            tx.try_send(reply(2)).unwrap();
            assert_eq!(count.0.load(Ordering::SeqCst), 2);
            assert!(matches!(next.as_mut().poll(&mut cx), Poll::Ready(Some(_))));
        }
        // A hurry with nobody holding is kept for the next hold, which returns at once.
        tx.hurry();
        let hold = rx.hurried();
        tokio::pin!(hold);
        assert!(hold.as_mut().poll(&mut cx).is_ready());
    }

    /// `wait_until` re-checks its condition when the receiver wakes senders, and fails once the
    /// receiver is gone.
    #[tokio::test]
    async fn wait_until_waits_for_the_condition_or_the_end() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (tx, rx) = outbox::<String>(4);
        let level = Arc::new(AtomicUsize::new(10));
        let waiter = {
            let (tx, level) = (tx.clone(), level.clone());
            tokio::spawn(async move { tx.wait_until(|| level.load(Ordering::SeqCst) < 5).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        level.store(1, Ordering::SeqCst);
        rx.wake_senders();
        assert_eq!(waiter.await.unwrap(), Ok(()));

        let blocked = tokio::spawn(async move { tx.wait_until(|| false).await });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(blocked.await.unwrap(), Err(Closed));
    }

    #[tokio::test]
    async fn recv_ends_when_every_sender_is_gone() {
        let (tx, mut rx) = outbox(4);
        let tx2 = tx.clone();
        tx.try_send(reply(0)).unwrap();
        drop(tx);
        let pending =
            tokio::spawn(async move { (rx.recv().await.is_some(), rx.recv().await.is_none()) });
        tokio::task::yield_now().await;
        drop(tx2);
        assert_eq!(pending.await.unwrap(), (true, true));
    }
}
