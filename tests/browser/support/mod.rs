//! The harness of the browser tests: the hub ([`hub`]), chromedriver and browser sessions
//! ([`driver`]) and what a person does on the page ([`page`]).
//!
//! Every wait polls a condition with a deadline ([`WAIT`], or longer where a restart or the
//! room-list poll is involved); nothing sleeps to synchronise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

pub mod account;
pub mod driver;
pub mod hub;
pub mod page;

/// Upper bound on one awaited event in a browser. Generous: two Chromiums and a hub share two
/// cores; a passing test never waits this long.
pub const WAIT: Duration = Duration::from_secs(20);

/// Password of every test user.
pub const PASSWORD: &str = "correct horse battery";

/// A unique username starting with `prefix`: `[a-z0-9_.-]`, 3–32 characters, unique in this
/// process and across runs sharing a scaled database.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let run = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!("{prefix}{}{run}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One browser test at a time: each runs two Chromiums, and the machine has two cores. Tests
/// take their turn before starting anything.
pub async fn turn() -> SemaphorePermit<'static> {
    static TURNS: Semaphore = Semaphore::const_new(1);
    TURNS.acquire().await.expect("never closed")
}
