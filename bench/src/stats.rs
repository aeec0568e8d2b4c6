//! Latency histograms and loss/duplicate accounting.
//!
//! Latencies are recorded in microseconds in an HDR histogram (3 significant digits, 1 µs to
//! 60 s; larger values saturate). Histograms cross process boundaries as their recorded
//! `(value, count)` pairs, which is lossless at the histogram's precision.
//!
//! Loss and duplicates are counted per subscriber and per stream (see [`crate::payload`]): a
//! subscriber remembers which counters it saw in a bitset; at the end the publisher says how
//! many counters it used and which of them were not acknowledged, and everything acknowledged
//! but not seen is lost.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency the histogram resolves, in µs (60 s); larger values are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Counters above this are treated as foreign (they would make the bitset absurdly large).
const MAX_COUNTER: u64 = 1 << 32;

/// The quantiles of the latency curve drawn in the chart.
pub const CURVE_QUANTILES: &[f64] = &[
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

/// A latency distribution in microseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static bounds are valid"),
        }
    }

    /// Records one latency (0 counts as 1 µs, beyond 60 s as 60 s).
    pub fn record(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        self.hist
            .add(&other.hist)
            .expect("histograms with the same bounds always add");
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The recorded values as `[value_us, count]` pairs, for a JSON line.
    pub fn to_pairs(&self) -> Vec<[u64; 2]> {
        self.hist
            .iter_recorded()
            .map(|v| [v.value_iterated_to(), v.count_at_value()])
            .collect()
    }

    /// The inverse of [`Latency::to_pairs`].
    pub fn from_pairs(pairs: &[[u64; 2]]) -> Self {
        let mut latency = Self::new();
        for [value, count] in pairs {
            let _ = latency
                .hist
                .record_n(value.clamp(&1, &MAX_LATENCY_US).to_owned(), *count);
        }
        latency
    }

    /// The value at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// p50/p90/p99/p99.9/max and the mean; `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        Some(LatencySummary {
            count: self.hist.len(),
            mean_ms: self.hist.mean() / 1000.0,
            p50_ms: self.quantile_ms(0.5),
            p90_ms: self.quantile_ms(0.9),
            p99_ms: self.quantile_ms(0.99),
            p999_ms: self.quantile_ms(0.999),
            max_ms: self.hist.max() as f64 / 1000.0,
        })
    }

    /// `[quantile, ms]` at each of [`CURVE_QUANTILES`] (empty when nothing was recorded).
    pub fn curve(&self) -> Vec<[f64; 2]> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        CURVE_QUANTILES
            .iter()
            .map(|&q| [q, self.quantile_ms(q)])
            .collect()
    }
}

/// The headline figures of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Which counters of one stream a subscriber has seen.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    words: Vec<u64>,
    distinct: u64,
    duplicates: u64,
}

impl Seen {
    /// Notes `counter`; returns whether it is new. Counters beyond 2^32 are refused (`false`,
    /// and not counted as duplicates).
    pub fn record(&mut self, counter: u64) -> bool {
        if counter >= MAX_COUNTER {
            return false;
        }
        let (word, bit) = ((counter / 64) as usize, counter % 64);
        if word >= self.words.len() {
            // Grow geometrically: counters arrive in order, so this is amortised O(1).
            let len = (word + 1).max(self.words.len() * 2);
            self.words.resize(len, 0);
        }
        let mask = 1u64 << bit;
        if self.words[word] & mask != 0 {
            self.duplicates += 1;
            false
        } else {
            self.words[word] |= mask;
            self.distinct += 1;
            true
        }
    }

    pub fn contains(&self, counter: u64) -> bool {
        let (word, bit) = ((counter / 64) as usize, counter % 64);
        self.words.get(word).is_some_and(|w| w & (1u64 << bit) != 0)
    }

    /// How many distinct counters below `n` were seen.
    pub fn count_below(&self, n: u64) -> u64 {
        let full = (n / 64) as usize;
        let mut count: u64 = self
            .words
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let rest = n % 64;
        if rest > 0 {
            if let Some(w) = self.words.get(full) {
                count += u64::from((w & ((1u64 << rest) - 1)).count_ones());
            }
        }
        count
    }

    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

/// What the publisher of one stream did: it used counters `0..sent`, and `failed` lists those
/// that were never acknowledged (refused, or no answer in time), which no subscriber owes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamExpect {
    pub sent: u64,
    pub failed: Vec<u64>,
}

impl StreamExpect {
    /// Acknowledged messages: what each subscriber of the stream must receive.
    pub fn acknowledged(&self) -> u64 {
        self.sent - self.failed.len() as u64
    }
}

/// Delivery accounting of one or many subscribers; adds up across subscribers and workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Acknowledged messages of the subscribers' streams: what they were owed in all.
    pub expected: u64,
    /// Stamped messages received, duplicates included.
    pub deliveries: u64,
    /// Received again with a (stream, counter) already seen.
    pub duplicates: u64,
    /// Acknowledged but never received.
    pub lost: u64,
    /// Received from a stream the subscriber does not follow (misrouted).
    pub unexpected: u64,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.expected += other.expected;
        self.deliveries += other.deliveries;
        self.duplicates += other.duplicates;
        self.lost += other.lost;
        self.unexpected += other.unexpected;
    }
}

/// One subscriber's record of its stream.
#[derive(Debug, Clone, Default)]
pub struct SubscriberSeen {
    pub stream: u32,
    pub seen: Seen,
    pub deliveries: u64,
    pub unexpected: u64,
}

impl SubscriberSeen {
    pub fn new(stream: u32) -> Self {
        Self {
            stream,
            ..Self::default()
        }
    }

    /// Notes one delivery of (`stream`, `counter`).
    pub fn record(&mut self, stream: u32, counter: u64) {
        self.deliveries += 1;
        if stream == self.stream {
            self.seen.record(counter);
        } else {
            self.unexpected += 1;
        }
    }

    /// Whether every acknowledged message of the stream has arrived.
    pub fn complete(&self, expect: &StreamExpect) -> bool {
        self.missing(expect) == 0
    }

    /// Acknowledged messages not (yet) received.
    pub fn missing(&self, expect: &StreamExpect) -> u64 {
        let failed_seen = expect
            .failed
            .iter()
            .filter(|&&c| self.seen.contains(c))
            .count() as u64;
        let got = self.seen.count_below(expect.sent) - failed_seen;
        expect.acknowledged().saturating_sub(got)
    }

    /// The final accounting against `expect` (`None`: the stream published nothing).
    pub fn tally(&self, expect: Option<&StreamExpect>) -> Tally {
        let empty = StreamExpect::default();
        let expect = expect.unwrap_or(&empty);
        Tally {
            expected: expect.acknowledged(),
            deliveries: self.deliveries,
            duplicates: self.seen.duplicates(),
            lost: self.missing(expect),
            unexpected: self.unexpected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut latency = Latency::new();
        for us in 1..=10_000 {
            latency.record(us);
        }
        let s = latency.summary().unwrap();
        assert_eq!(s.count, 10_000);
        // Three significant digits: within 0.1% of the exact order statistic.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(s.p50_ms, 5.0), "p50 {}", s.p50_ms);
        assert!(close(s.p90_ms, 9.0), "p90 {}", s.p90_ms);
        assert!(close(s.p99_ms, 9.9), "p99 {}", s.p99_ms);
        assert!(close(s.p999_ms, 9.99), "p99.9 {}", s.p999_ms);
        assert!(close(s.max_ms, 10.0), "max {}", s.max_ms);
        assert!(close(s.mean_ms, 5.0005), "mean {}", s.mean_ms);
        let curve = latency.curve();
        assert_eq!(curve.len(), CURVE_QUANTILES.len());
        assert!(curve.windows(2).all(|w| w[0][1] <= w[1][1]), "monotone");
    }

    #[test]
    fn extremes_saturate_and_empty_has_no_summary() {
        let mut latency = Latency::new();
        assert!(latency.summary().is_none());
        assert!(latency.curve().is_empty());
        latency.record(0);
        latency.record(u64::MAX);
        let s = latency.summary().unwrap();
        assert_eq!(s.count, 2);
        assert!(s.max_ms >= 60_000.0 && s.max_ms < 60_100.0);
    }

    #[test]
    fn pairs_round_trip_and_merge_adds() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        for us in [5, 50, 500, 5_000, 50_000] {
            a.record(us);
            b.record(us * 2);
        }
        let back = Latency::from_pairs(&a.to_pairs());
        assert_eq!(back.summary(), a.summary());
        let json = serde_json::to_string(&a.to_pairs()).unwrap();
        let parsed: Vec<[u64; 2]> = serde_json::from_str(&json).unwrap();
        assert_eq!(Latency::from_pairs(&parsed).summary(), a.summary());
        a.merge(&b);
        assert_eq!(a.count(), 10);
        assert!((a.summary().unwrap().max_ms - 100.0).abs() < 0.1);
    }

    #[test]
    fn seen_counts_distinct_and_duplicates() {
        let mut seen = Seen::default();
        assert!(seen.record(0));
        assert!(seen.record(63));
        assert!(seen.record(64));
        assert!(seen.record(1000));
        assert!(!seen.record(64));
        assert!(!seen.record(MAX_COUNTER));
        assert_eq!(seen.distinct(), 4);
        assert_eq!(seen.duplicates(), 1);
        assert_eq!(seen.count_below(0), 0);
        assert_eq!(seen.count_below(1), 1);
        assert_eq!(seen.count_below(64), 2);
        assert_eq!(seen.count_below(65), 3);
        assert_eq!(seen.count_below(1001), 4);
        assert_eq!(seen.count_below(1_000_000), 4);
        assert!(seen.contains(1000) && !seen.contains(999) && !seen.contains(1 << 40));
    }

    #[test]
    fn loss_duplicates_and_misroutes_are_counted_against_the_acknowledged_set() {
        // The publisher used counters 0..10; 3 and 7 were never acknowledged.
        let expect = StreamExpect {
            sent: 10,
            failed: vec![3, 7],
        };
        assert_eq!(expect.acknowledged(), 8);

        let mut sub = SubscriberSeen::new(2);
        for c in [0, 1, 2, 4, 5, 6, 8, 9] {
            sub.record(2, c);
        }
        assert!(sub.complete(&expect));
        assert_eq!(
            sub.tally(Some(&expect)),
            Tally {
                expected: 8,
                deliveries: 8,
                duplicates: 0,
                lost: 0,
                unexpected: 0
            }
        );

        // Another subscriber: lost 5 and 9, saw 1 twice, saw a message of stream 4, and saw
        // the unacknowledged 7 (stored although its ack was lost), which is not a loss.
        let mut sub = SubscriberSeen::new(2);
        for c in [0, 1, 1, 2, 4, 6, 7, 8] {
            sub.record(2, c);
        }
        sub.record(4, 0);
        assert!(!sub.complete(&expect));
        let tally = sub.tally(Some(&expect));
        assert_eq!(
            tally,
            Tally {
                expected: 8,
                deliveries: 9,
                duplicates: 1,
                lost: 2,
                unexpected: 1
            }
        );

        let mut total = Tally::default();
        total.add(&tally);
        total.add(&tally);
        assert_eq!(total.lost, 4);
        assert_eq!(total.deliveries, 18);
        assert_eq!(total.expected, 16);
        // A stream that published nothing owes nothing.
        assert_eq!(SubscriberSeen::new(0).tally(None), Tally::default());
    }
}
