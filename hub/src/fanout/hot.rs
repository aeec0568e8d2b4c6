//! The hot window: the last messages of each room with local subscribers, kept in memory as the
//! serialised `message` frames that were delivered, so `sub` with a recent `since` (a client
//! resuming after a short disconnect) is served without reading the store.
//!
//! **Invariant:** a room's ring holds a contiguous run of seqs, each exactly as this node
//! delivered it. It is fed from `Registry::deliver`, which sees a room's messages in seq order
//! (the fanout's sequencer, on every broker), so "in the ring" means
//! "already delivered to local subscribers". A subscriber registered before it reads the ring
//! therefore gets everything newer live. An event that rewrites history (`edited`, `deleted`:
//! [`super::Kind::Rewrite`]) drops the room's ring, and a break in the seqs restarts it; the store serves what the ring
//! cannot.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use dashmap::DashMap;
use switchboard_protocol::Seq;

/// What a ring can serve for `since`: the frames after it and the seq the client then has.
pub struct HotCatchUp {
    pub frames: Vec<Bytes>,
    pub upto: Seq,
}

/// Rings of recent message frames, per room.
pub struct HotWindow {
    capacity: usize,
    rooms: DashMap<Box<str>, Mutex<VecDeque<(Seq, Bytes)>>>,
}

impl HotWindow {
    /// Rings of at most `capacity` messages per room (0: no hot window).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            rooms: DashMap::new(),
        }
    }

    /// Records a message delivered in `room` (called in seq order).
    pub fn record(&self, room: &str, seq: Seq, frame: &Bytes) {
        if self.capacity == 0 {
            return;
        }
        let ring = self.rooms.entry(room.into()).or_default();
        let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
        match ring.back() {
            Some((last, _)) if seq <= *last => return,
            Some((last, _)) if last.checked_add(1) != Some(seq) => ring.clear(),
            _ => {}
        }
        ring.push_back((seq, frame.clone()));
        while ring.len() > self.capacity {
            ring.pop_front();
        }
    }

    /// Forgets a room's ring (history changed, or no local subscriber is left).
    pub fn forget(&self, room: &str) {
        self.rooms.remove(room);
    }

    /// The frames after `since`, if the ring covers everything after it.
    pub fn after(&self, room: &str, since: Seq) -> Option<HotCatchUp> {
        let ring = self.rooms.get(room)?;
        let ring = ring.lock().unwrap_or_else(|p| p.into_inner());
        let (first, _) = ring.front()?;
        let (newest, _) = ring.back()?;
        // Covered when the ring starts at or before `since + 1`; nothing follows `u64::MAX`.
        if since.checked_add(1).is_some_and(|next| next < *first) {
            return None;
        }
        let frames: Vec<Bytes> = ring
            .iter()
            .filter(|(s, _)| *s > since)
            .map(|(_, b)| b.clone())
            .collect();
        let upto = if frames.is_empty() {
            since.min(*newest)
        } else {
            *newest
        };
        Some(HotCatchUp { frames, upto })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: Seq) -> Bytes {
        Bytes::from(format!("m{seq}"))
    }

    #[test]
    fn serves_only_what_it_covers() {
        let hot = HotWindow::new(3);
        assert!(hot.after("r", 0).is_none(), "empty ring: the store serves");
        for seq in 1..=5 {
            hot.record("r", seq, &frame(seq));
        }
        // Holds 3, 4, 5.
        assert!(hot.after("r", 1).is_none(), "2 is gone");
        let c = hot.after("r", 2).unwrap();
        assert_eq!((c.frames, c.upto), (vec![frame(3), frame(4), frame(5)], 5));
        let c = hot.after("r", 5).unwrap();
        assert_eq!((c.frames.len(), c.upto), (0, 5));
        let c = hot.after("r", 9).unwrap();
        assert_eq!(
            c.upto, 5,
            "a client ahead of the room gets what comes after the newest"
        );
    }

    /// Seqs that stress the arithmetic: small ones, the top of the stored range, and the top of
    /// `u64` (which no client can send, but the ring must not wrap on).
    fn any_seq() -> impl proptest::strategy::Strategy<Value = Seq> {
        use proptest::prelude::*;
        let max = switchboard_protocol::seq::MAX_SEQ;
        prop_oneof![
            0..64u64,
            Just(max),
            Just(max + 1),
            Just(u64::MAX),
            (max - 64)..=max,
            (u64::MAX - 64)..=u64::MAX,
            any::<u64>(),
        ]
    }

    proptest::proptest! {
        /// Whatever the ring holds and whatever `since` asks, `after` serves only seqs above
        /// `since`, serves all of them when it serves at all, and never panics or wraps.
        #[test]
        fn after_serves_exactly_the_seqs_above_since(
            start in any_seq(),
            len in 0..8u64,
            capacity in 1..6usize,
            since in any_seq(),
        ) {
            let hot = HotWindow::new(capacity);
            let recorded: Vec<Seq> = (0..len).map_while(|i| start.checked_add(i)).collect();
            for &seq in &recorded {
                hot.record("r", seq, &frame(seq));
            }
            let held: Vec<Seq> = recorded.iter().rev().take(capacity).rev().copied().collect();
            match hot.after("r", since) {
                None => proptest::prop_assert!(
                    held.is_empty() || since.checked_add(1).is_some_and(|n| n < held[0]),
                    "refused a since the ring covers: {held:?} since {since}"
                ),
                Some(c) => {
                    let want: Vec<Bytes> =
                        held.iter().filter(|&&s| s > since).map(|&s| frame(s)).collect();
                    proptest::prop_assert_eq!(&c.frames, &want);
                    let newest = *held.last().expect("served from a non-empty ring");
                    proptest::prop_assert_eq!(c.upto, if want.is_empty() { since.min(newest) } else { newest });
                }
            }
        }
    }

    #[test]
    fn a_break_in_seqs_restarts_the_ring_and_edits_drop_it() {
        let hot = HotWindow::new(10);
        hot.record("r", 1, &frame(1));
        hot.record("r", 3, &frame(3));
        assert!(
            hot.after("r", 1).is_none(),
            "2 missing: not contiguous from 1"
        );
        assert_eq!(hot.after("r", 2).unwrap().frames, vec![frame(3)]);
        hot.forget("r");
        assert!(hot.after("r", 2).is_none());
    }
}
