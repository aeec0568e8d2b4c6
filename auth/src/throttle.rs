//! Login and registration throttling: `governor` keyed limiters per client address and per
//! account, answered with [`AuthError::RateLimited`] (429 `rate_limited` with `Retry-After`).
//!
//! - **Login attempts per client address** are counted before any work, failed or not.
//! - **Failed logins per account** are counted after the password check (a correct password
//!   is never counted). A failure beyond the account's allowance is answered 429, and the
//!   account stays locked until the limiter allows one more failure: until then its logins are
//!   refused before hashing. A GCRA cannot be read without spending, so the lock is kept in a
//!   map of its own.
//! - **Registrations per client address** are counted before any work.
//! - **Password-reset requests and confirmations per client address** are counted before any
//!   work, under the login limit per address (`--login-ip-rate-per-sec`, `--login-ip-burst`) but
//!   in a bucket of their own. (The limit per e-mail address, 3 an hour, is counted in the store,
//!   so it holds for the whole cluster: see `reset`.)
//!
//! Client addresses are keyed as the IPv4 address, or the IPv6 /64 (one host usually has a
//! whole /64). Keys of idle entries are swept once a map has doubled since its last sweep, so
//! memory follows the number of recently active keys.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::AuthConfig;
use crate::error::AuthError;

/// A map is swept when it holds this many keys at least (and twice as many as after the last
/// sweep).
const MIN_SWEEP_LEN: usize = 1024;
/// Bits of an IPv6 address that make its key: a /64, usually one host or one site.
const IPV6_KEY_BITS: u8 = 64;

/// Every login and registration limiter of one auth service.
pub(crate) struct Throttle {
    login_ip: Limiter<IpAddr>,
    register_ip: Limiter<IpAddr>,
    reset_ip: Limiter<IpAddr>,
    login_account: Limiter<String>,
    /// Accounts refused until the instant (see the module doc).
    locked: DashMap<String, Instant>,
    locked_sweep: AtomicUsize,
}

impl Throttle {
    /// The limiters of `cfg`.
    ///
    /// # Errors
    /// [`AuthError::Config`] if a limit is out of range.
    pub(crate) fn new(cfg: &AuthConfig) -> Result<Self, AuthError> {
        Ok(Self {
            login_ip: Limiter::new(cfg.login_ip_limit.quota("login limit per address")?),
            register_ip: Limiter::new(
                cfg.register_ip_limit
                    .quota("registration limit per address")?,
            ),
            reset_ip: Limiter::new(cfg.login_ip_limit.quota("login limit per address")?),
            login_account: Limiter::new(
                cfg.login_account_limit
                    .quota("failed-login limit per account")?,
            ),
            locked: DashMap::new(),
            locked_sweep: AtomicUsize::new(MIN_SWEEP_LEN),
        })
    }

    /// Counts a login attempt from `ip`; refused beyond the per-address limit.
    pub(crate) fn login_attempt(&self, ip: IpAddr) -> Result<(), AuthError> {
        self.login_ip.check(&address_key(ip))
    }

    /// Counts a registration from `ip`; refused beyond the per-address limit.
    pub(crate) fn register_attempt(&self, ip: IpAddr) -> Result<(), AuthError> {
        self.register_ip.check(&address_key(ip))
    }

    /// Counts a password-reset request or confirmation from `ip`; refused beyond the
    /// per-address limit.
    pub(crate) fn reset_attempt(&self, ip: IpAddr) -> Result<(), AuthError> {
        self.reset_ip.check(&address_key(ip))
    }

    /// Refused while `account` is locked by earlier failures.
    pub(crate) fn account_open(&self, account: &str) -> Result<(), AuthError> {
        let now = Instant::now();
        match self.locked.get(account).map(|until| *until) {
            Some(until) if until > now => Err(AuthError::RateLimited {
                retry_after: until - now,
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed login of `account`. Beyond the limit the account is locked until one
    /// more failure is allowed, and this failure is answered with the refusal.
    pub(crate) fn login_failed(&self, account: &str) -> Result<(), AuthError> {
        let refused = self.login_account.check(&account.to_owned());
        if let Err(AuthError::RateLimited { retry_after }) = &refused {
            let now = Instant::now();
            self.locked.insert(account.to_owned(), now + *retry_after);
            if self.locked.len() >= self.locked_sweep.load(Ordering::Relaxed) {
                self.locked.retain(|_, until| *until > now);
                self.locked.shrink_to_fit();
                let next = (self.locked.len() * 2).max(MIN_SWEEP_LEN);
                self.locked_sweep.store(next, Ordering::Relaxed);
            }
        }
        refused
    }
}

/// One keyed limiter and its sweep threshold.
struct Limiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    /// Sweep when the limiter holds this many keys.
    sweep_at: AtomicUsize,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(quota: Quota) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            sweep_at: AtomicUsize::new(MIN_SWEEP_LEN),
        }
    }

    /// Spends one event of `key`, or says how long until one is allowed.
    fn check(&self, key: &K) -> Result<(), AuthError> {
        let result = self.limiter.check_key(key).map_err(|not_until| {
            let now = self.limiter.clock().now();
            AuthError::RateLimited {
                retry_after: not_until.wait_time_from(now),
            }
        });
        if self.limiter.len() >= self.sweep_at.load(Ordering::Relaxed) {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
            let next = (self.limiter.len() * 2).max(MIN_SWEEP_LEN);
            self.sweep_at.store(next, Ordering::Relaxed);
        }
        result
    }
}

/// The key of a client address: IPv4 (also IPv4-mapped IPv6) as is, IPv6 cut to its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - u32::from(IPV6_KEY_BITS));
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::RateLimit;

    /// The wait of a refusal; `None` if allowed.
    fn retry_after(result: Result<(), AuthError>) -> Option<Duration> {
        match result {
            Err(AuthError::RateLimited { retry_after }) => Some(retry_after),
            Ok(()) => None,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn throttle() -> Throttle {
        let mut cfg = AuthConfig::new("unused");
        cfg.login_account_limit = RateLimit {
            per_sec: 0.1,
            burst: 3,
        };
        cfg.login_ip_limit = RateLimit {
            per_sec: 0.1,
            burst: 2,
        };
        Throttle::new(&cfg).unwrap()
    }

    #[test]
    fn failures_beyond_the_burst_lock_the_account_only() {
        let t = throttle();
        for _ in 0..3 {
            t.account_open("alice").unwrap();
            t.login_failed("alice").unwrap();
        }
        let wait = retry_after(t.login_failed("alice")).expect("the fourth failure is refused");
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        assert!(retry_after(t.account_open("alice")).is_some(), "locked");
        t.account_open("bob").unwrap();
        t.login_failed("bob").unwrap();
    }

    #[test]
    fn addresses_are_limited_per_ipv4_and_per_ipv6_64() {
        let t = throttle();
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        t.login_attempt(v6("2001:db8::1")).unwrap();
        t.login_attempt(v6("2001:db8::ffff:2")).unwrap();
        assert!(
            retry_after(t.login_attempt(v6("2001:db8::3"))).is_some(),
            "same /64"
        );
        t.login_attempt(v6("2001:db8:0:1::1")).unwrap();
        t.login_attempt(v6("10.0.0.1")).unwrap();
        t.login_attempt(v6("::ffff:10.0.0.1")).unwrap();
        assert!(
            retry_after(t.login_attempt(v6("10.0.0.1"))).is_some(),
            "an IPv4-mapped address is the IPv4 address"
        );
        t.login_attempt(v6("10.0.0.2")).unwrap();
        // Registration has its own allowance.
        t.register_attempt(v6("10.0.0.1")).unwrap();
    }

    #[test]
    fn out_of_range_limits_are_refused() {
        for (per_sec, burst) in [
            (0.0, 1),
            (-1.0, 1),
            (f64::NAN, 1),
            (f64::INFINITY, 1),
            (1.0, 0),
        ] {
            let mut cfg = AuthConfig::new("unused");
            cfg.register_ip_limit = RateLimit { per_sec, burst };
            assert!(
                matches!(Throttle::new(&cfg), Err(AuthError::Config(_))),
                "{per_sec} {burst}"
            );
        }
    }
}
