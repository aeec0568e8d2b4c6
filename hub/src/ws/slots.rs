//! WebSocket slots beyond the node-wide `--max-connections`: anonymous connections and
//! connections per client IP, so that one address, or token-less sockets that answer pings,
//! cannot hold every slot of the node.
//!
//! A connection is anonymous from its upgrade until `hello` authenticates it, unless the upgrade
//! carried a valid `Authorization` header. A [`Slot`] is taken at the upgrade (check and count
//! in one step, so concurrent upgrades cannot overshoot a cap) and released when dropped.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use switchboard_protocol::ErrorCode;

/// Which cap refused an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this node is at its limit of anonymous connections; send a token")]
    Anonymous,
    #[error("too many connections from this address")]
    PerIp,
}

impl Refusal {
    /// The wire code: 503 `unavailable` for the node-wide anonymous cap (another node may have
    /// room), 429 `rate_limited` for the per-IP cap (the client itself is over its share).
    pub fn code(self) -> ErrorCode {
        match self {
            Self::Anonymous => ErrorCode::Unavailable,
            Self::PerIp => ErrorCode::RateLimited,
        }
    }
}

/// The node's counts of anonymous connections and connections per client IP.
pub struct Slots {
    anonymous_cap: usize,
    per_ip_cap: usize,
    anonymous: AtomicUsize,
    /// Client IP → its open WebSockets; an address leaves the map at 0. No reference into it is
    /// held across an `.await`.
    per_ip: DashMap<IpAddr, usize>,
}

impl Slots {
    pub fn new(anonymous_cap: usize, per_ip_cap: usize) -> Self {
        Self {
            anonymous_cap,
            per_ip_cap,
            anonymous: AtomicUsize::new(0),
            per_ip: DashMap::new(),
        }
    }

    /// Takes a slot for a connection from `ip`, anonymous unless `authenticated`.
    ///
    /// # Errors
    /// The cap that is full; nothing is counted then.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, authenticated: bool) -> Result<Slot, Refusal> {
        {
            let mut n = self.per_ip.entry(ip).or_insert(0);
            if *n >= self.per_ip_cap {
                return Err(Refusal::PerIp);
            }
            *n += 1;
        }
        let mut slot = Slot {
            slots: self.clone(),
            ip,
            anonymous: false,
        };
        if !authenticated {
            let taken = self
                .anonymous
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.anonymous_cap).then_some(n + 1)
                });
            if taken.is_err() {
                return Err(Refusal::Anonymous); // `slot` drops: the per-IP count is undone.
            }
            slot.anonymous = true;
        }
        Ok(slot)
    }

    /// Anonymous connections now open.
    #[cfg(test)]
    fn anonymous(&self) -> usize {
        self.anonymous.load(Ordering::Acquire)
    }
}

/// One connection's place in [`Slots`]; dropping it gives the place back.
pub struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
    anonymous: bool,
}

impl Slot {
    /// The connection authenticated (`hello` with a valid token): it no longer counts as
    /// anonymous.
    pub fn authenticated(&mut self) {
        if std::mem::take(&mut self.anonymous) {
            self.slots.anonymous.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.authenticated();
        self.slots.per_ip.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn anonymous_slots_are_capped_and_given_back() {
        let slots = Arc::new(Slots::new(1, 10));
        let mut first = slots.acquire(A, false).unwrap();
        assert_eq!(slots.acquire(B, false).err(), Some(Refusal::Anonymous));
        let _signed_in = slots.acquire(B, true).unwrap();
        first.authenticated();
        assert_eq!(slots.anonymous(), 0);
        let _second = slots.acquire(B, false).unwrap();
        drop(first);
        assert_eq!(slots.anonymous(), 1);
    }

    #[test]
    fn per_ip_slots_are_capped_and_given_back() {
        let slots = Arc::new(Slots::new(10, 2));
        let a1 = slots.acquire(A, true).unwrap();
        let _a2 = slots.acquire(A, false).unwrap();
        assert_eq!(slots.acquire(A, true).err(), Some(Refusal::PerIp));
        let _b = slots.acquire(B, true).unwrap();
        drop(a1);
        let _a3 = slots.acquire(A, true).unwrap();
        assert_eq!(slots.anonymous(), 1);
    }

    #[test]
    fn a_refused_anonymous_slot_does_not_count_against_its_ip() {
        let slots = Arc::new(Slots::new(0, 1));
        assert_eq!(slots.acquire(A, false).err(), Some(Refusal::Anonymous));
        assert!(slots.acquire(A, true).is_ok());
        assert!(slots.per_ip.get(&B).is_none());
    }
}
