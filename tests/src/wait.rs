//! Bounded waits and test users' names, shared by the e2e and CLI suites. Each suite sets its
//! own bound, `WAIT`, and defines its `within(what, fut)` as [`within_for`]`(WAIT, what, fut)`.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Password of every test user.
pub const PASSWORD: &str = "correct horse battery";

/// Awaits `fut` for at most `limit`; panics naming `what` when it takes longer.
pub async fn within_for<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// A unique username starting with `prefix` (3–32 of `[a-z0-9_.-]`), unique in this process.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
