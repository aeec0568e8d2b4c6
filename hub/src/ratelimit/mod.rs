//! The rate limits of a hub node. Each is a GCRA (`governor`) per key on the [`Monotonic`]
//! clock, so a bucket refills continuously: `rate` events per second on average after a burst
//! of `burst` (a burst of 0 counts as 1).
//!
//! | limit | key | default | beyond it |
//! |---|---|---|---|
//! | frames per connection ([`Frames`]) | connection | `--rate-per-sec` 20, `--rate-burst` 40 | `rate_limited` error frame; the frame is dropped |
//! | sends per user ([`PerUser`]) | user id | `--user-rate-per-sec` 50, `--user-rate-burst` 100 | `rate_limited` (HTTP 429); nothing stored |
//! | typing per user and room ([`Typing`]) | (room, user id) | one per [`TYPING_INTERVAL`] (2 s) | dropped silently |
//! | rooms created per user (a [`Refilling`] of `service::rooms`) | user id | `--rooms-per-hour` 30 | 429 `rate_limited` with `Retry-After` |
//! | avatar uploads per user ([`avatar_changes`], a [`Refilling`]) | user id | one per [`AVATAR_CHANGE_PERIOD`] (10 s) after a burst of [`AVATAR_CHANGE_BURST`] (5) | 429 `rate_limited` with `Retry-After` |
//!
//! Every limit is per node. A rate of 0 (sends, frames) refills the whole burst only over
//! [`NEVER`] (governor has no "never"), so the burst is all there is.
//!
//! **Invariant:** nothing on a request's path walks a map. A key whose bucket has refilled is
//! indistinguishable from a key never seen, so it is forgotten: [`spawn_sweeper`] runs every
//! limiter's `retain_recent` every [`SWEEP_EVERY`] from a background task. A map therefore
//! holds the keys active during the last sweep interval plus their refill time and one period
//! (2 to 4 s for the defaults of frames, sends and typing; about an hour for the room quota).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::clock::Monotonic;

mod frames;

pub use frames::Frames;

/// How often the background task forgets the keys whose bucket has refilled.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Minimum interval between two `typing` events of one user in one room.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(2);

/// The time a rate of 0 takes to refill a whole burst: 146 years (a quarter of what governor's
/// nanosecond counters hold, so no sum of them overflows).
pub const NEVER: Duration = Duration::from_nanos(u64::MAX / 4);

/// A keyed limiter of this crate: governor's `DashMap` store on the [`Monotonic`] clock.
pub(crate) type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, Monotonic, NoOpMiddleware<Nanos>>;

/// `rate` events per second after a burst of `burst` (0: 1); a rate of 0 takes [`NEVER`] to
/// refill the burst.
pub(crate) fn quota(rate: u32, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    match NonZeroU32::new(rate) {
        Some(rate) => Quota::per_second(rate).allow_burst(burst),
        None => {
            let period = NEVER / burst.get();
            Quota::with_period(period)
                .expect("NEVER / u32::MAX is over a second")
                .allow_burst(burst)
        }
    }
}

/// Runs `sweep` every [`SWEEP_EVERY`] (the first time one interval from now), until the
/// task is aborted; the node aborts it when it shuts down.
pub fn spawn_sweeper(sweep: impl Fn() + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + SWEEP_EVERY;
        let mut tick = tokio::time::interval_at(start, SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sweep();
        }
    })
}

/// One avatar upload per user refills every `AVATAR_CHANGE_PERIOD`: each is up to two image
/// decodes (4096² at most) on the blocking pool, so one account must not keep the CPU busy.
pub const AVATAR_CHANGE_PERIOD: Duration = Duration::from_secs(10);
/// Avatar uploads a user may make at once before [`AVATAR_CHANGE_PERIOD`] applies.
pub const AVATAR_CHANGE_BURST: u32 = 5;

/// The quota of avatar uploads per user (see [`AVATAR_CHANGE_PERIOD`]).
pub fn avatar_changes() -> Quota {
    Quota::with_period(AVATAR_CHANGE_PERIOD)
        .expect("AVATAR_CHANGE_PERIOD is above 0")
        .allow_burst(NonZeroU32::new(AVATAR_CHANGE_BURST).expect("above 0"))
}

/// A per-user quota that refills with time and says how long until the next allowance (rooms
/// created per hour, avatar uploads): 429 with `Retry-After` beyond it.
pub struct Refilling {
    limiter: Keyed<Arc<str>>,
}

impl Refilling {
    /// `quota` per user id.
    pub fn new(quota: Quota) -> Self {
        Self {
            limiter: Keyed::dashmap_with_clock(quota, Monotonic::new()),
        }
    }

    /// Takes one from `user`'s allowance, or says how long until there is one. Constant time.
    pub fn take(&self, user: &Arc<str>) -> Result<(), Duration> {
        use governor::clock::Clock;
        self.limiter
            .check_key(user)
            .map_err(|wait| wait.wait_time_from(self.limiter.clock().now()))
    }

    /// Forgets the users whose allowance has refilled (see the module doc).
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Users tracked now (those not forgotten by a sweep).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// Sends per user on this node, over all of the user's connections and REST calls.
pub struct PerUser {
    limiter: Keyed<Arc<str>>,
}

impl PerUser {
    /// `rate` sends per second per user after a burst of `burst` (see [`quota`]).
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            limiter: Keyed::dashmap_with_clock(quota(rate, burst), Monotonic::new()),
        }
    }

    /// Takes one send from `user`'s allowance; false (nothing taken) when there is none.
    /// Constant time: it touches `user`'s entry only.
    pub fn take(&self, user: &Arc<str>) -> bool {
        self.limiter.check_key(user).is_ok()
    }

    /// Users tracked now (those not forgotten by a sweep).
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets the users whose allowance has refilled (see the module doc).
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// `typing` events per user and room: one per [`TYPING_INTERVAL`]; the others are dropped.
pub struct Typing {
    limiter: Keyed<(Arc<str>, Arc<str>)>,
}

impl Default for Typing {
    fn default() -> Self {
        let quota = Quota::with_period(TYPING_INTERVAL).expect("TYPING_INTERVAL is above 0");
        Self {
            limiter: Keyed::dashmap_with_clock(quota, Monotonic::new()),
        }
    }
}

impl Typing {
    /// Whether `user` may tell `room` it is typing now; if so, the next time is one
    /// [`TYPING_INTERVAL`] away. Constant time.
    pub fn allow(&self, room: &str, user: &Arc<str>) -> bool {
        self.limiter.check_key(&(room.into(), user.clone())).is_ok()
    }

    /// (room, user) pairs tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets the pairs whose interval is over (see the module doc).
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Arc<str> {
        name.into()
    }

    #[tokio::test(start_paused = true)]
    async fn sends_refuse_past_the_burst_and_refill_at_the_rate() {
        let limits = PerUser::new(2, 3);
        let (alice, bob) = (user("alice"), user("bob"));
        assert!((0..3).all(|_| limits.take(&alice)));
        assert!(!limits.take(&alice), "alice spent her burst");
        assert!(limits.take(&bob), "bob has his own allowance");

        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(!limits.take(&alice), "one send refills in 500 ms");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(limits.take(&alice));
        assert!(!limits.take(&alice));

        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            (0..3).all(|_| limits.take(&alice)),
            "refilled up to the burst"
        );
        assert!(!limits.take(&alice), "and no further");
    }

    /// The room quota refuses past its burst with the wait until the next room, refills at its
    /// rate, and its keys are forgotten by the sweep once refilled (paused time).
    #[tokio::test(start_paused = true)]
    async fn the_room_quota_refuses_past_its_burst_and_refills() {
        let quota = Refilling::new(Quota::per_hour(NonZeroU32::new(2).unwrap()));
        let alice = user("alice");
        assert!(quota.take(&alice).is_ok() && quota.take(&alice).is_ok());
        match quota.take(&alice) {
            Err(wait) => assert_eq!(wait, Duration::from_secs(1800)),
            other => panic!("expected a wait of 30 min, got {other:?}"),
        }
        tokio::time::advance(Duration::from_secs(1800)).await;
        assert!(quota.take(&alice).is_ok(), "one room refilled");
        assert!(quota.take(&alice).is_err());

        quota.sweep();
        assert_eq!(quota.tracked(), 1);
        tokio::time::advance(Duration::from_secs(2 * 3600)).await;
        quota.sweep();
        assert_eq!(quota.tracked(), 0, "a refilled quota is forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn avatar_uploads_refuse_past_the_burst_and_say_when_to_retry() {
        let limits = Refilling::new(avatar_changes());
        let (alice, bob) = (user("alice"), user("bob"));
        for _ in 0..AVATAR_CHANGE_BURST {
            limits.take(&alice).expect("within the burst");
        }
        let wait = limits.take(&alice).expect_err("past the burst");
        assert!(
            wait > Duration::ZERO && wait <= AVATAR_CHANGE_PERIOD,
            "{wait:?}"
        );
        limits.take(&bob).expect("bob has his own allowance");
        tokio::time::advance(wait).await;
        limits.take(&alice).expect("one refilled");
        assert!(limits.take(&alice).is_err(), "only one");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_of_zero_never_refills() {
        let limits = PerUser::new(0, 1);
        let alice = user("alice");
        assert!(limits.take(&alice));
        tokio::time::advance(Duration::from_secs(365 * 24 * 3600)).await;
        assert!(!limits.take(&alice), "a year later, still spent");
    }

    #[tokio::test(start_paused = true)]
    async fn typing_passes_once_per_interval_per_user_and_room() {
        let typing = Typing::default();
        let (alice, bob) = (user("alice"), user("bob"));
        assert!(typing.allow("r1", &alice));
        assert!(!typing.allow("r1", &alice), "within the interval");
        assert!(typing.allow("r2", &alice), "another room");
        assert!(typing.allow("r1", &bob), "another user");

        tokio::time::advance(TYPING_INTERVAL - Duration::from_millis(1)).await;
        assert!(!typing.allow("r1", &alice));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(typing.allow("r1", &alice), "the interval is over");
    }

    /// The maps are bounded by the sweep: an idle key is forgotten once its bucket has
    /// refilled, an active one is kept (and still limited).
    #[tokio::test(start_paused = true)]
    async fn a_sweep_forgets_refilled_keys_only() {
        let limits = PerUser::new(1, 2);
        for n in 0..1_000 {
            assert!(limits.take(&user(&format!("idle-{n}"))));
        }
        assert_eq!(limits.tracked(), 1_000);
        limits.sweep();
        assert_eq!(limits.tracked(), 1_000, "nobody has refilled yet");

        tokio::time::advance(Duration::from_secs(2)).await;
        let busy = user("busy");
        assert!(limits.take(&busy) && limits.take(&busy));
        limits.sweep();
        assert_eq!(limits.tracked(), 1, "only the busy user is left");
        assert!(!limits.take(&busy), "and its state was kept");

        let typing = Typing::default();
        assert!(typing.allow("r", &busy));
        typing.sweep();
        assert_eq!(typing.tracked(), 1);
        // governor forgets a key one period after it has refilled.
        tokio::time::advance(2 * TYPING_INTERVAL).await;
        typing.sweep();
        assert_eq!(typing.tracked(), 0);
    }

    /// The sweeper task runs the sweep every interval, not before.
    #[tokio::test(start_paused = true)]
    async fn the_sweeper_runs_every_interval() {
        let limits = Arc::new(PerUser::new(1, 1));
        assert!(limits.take(&user("alice")));
        let task = spawn_sweeper({
            let limits = limits.clone();
            move || limits.sweep()
        });
        tokio::time::sleep(SWEEP_EVERY - Duration::from_millis(1)).await;
        assert_eq!(limits.tracked(), 1, "no sweep before the interval");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(limits.tracked(), 0, "swept after it");
        task.abort();
    }

    /// A send with 100,000 users tracked leaves every one of them in place: nothing is walked
    /// or pruned on the request path (the hand-written limiter pruned its whole map on every
    /// send past 10,000 users). `cargo bench -p switchboard-hub --bench ratelimit` times it.
    #[tokio::test(start_paused = true)]
    async fn a_send_does_not_prune_the_map() {
        let limits = PerUser::new(1, 1);
        for n in 0..100_000 {
            assert!(limits.take(&user(&format!("u{n}"))));
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(limits.take(&user("one more")));
        assert_eq!(
            limits.tracked(),
            100_001,
            "every refilled key is still there"
        );
    }
}
