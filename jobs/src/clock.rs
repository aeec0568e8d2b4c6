//! The queue's clock: wall-clock milliseconds since the Unix epoch (stored in `run_at`,
//! `lease_until`, `job_lanes.next_at`, compared across nodes), advanced by Tokio's monotonic
//! clock from one wall-clock reading per process, so `tokio::time::pause()` drives it in tests.

use std::sync::LazyLock;

use tokio::time::Instant;

/// The wall clock and Tokio's clock at the first reading.
static ANCHOR: LazyLock<(i64, Instant)> = LazyLock::new(|| {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    (wall, Instant::now())
});

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let (wall, at) = *ANCHOR;
    let since = Instant::now().saturating_duration_since(at).as_millis();
    wall.saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
}

/// `d` in milliseconds, saturating.
pub(crate) fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn paused_time_drives_the_clock() {
        let before = super::now_ms();
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(super::now_ms() - before, 1500);
    }
}
