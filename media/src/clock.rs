//! The stores' wall clock (`created_ts`, milliseconds since the Unix epoch), replaceable so
//! tests set it instead of waiting for it.

use std::sync::Arc;

/// Milliseconds since the Unix epoch, now. Shared by a store and its clones.
pub type WallClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's wall clock.
pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}
