//! The publishing loop shared by every scenario: a fixed rate (or open loop), a bound on
//! messages in flight, a duration, then a bounded wait for the last acknowledgements.
//!
//! Each message goes to one stream (a room, see [`crate::payload`]), round-robin over the
//! publisher's streams, with the stream's next counter and the send time in its body. The
//! acknowledgement latency (send → `ack` or HTTP 200) is recorded too: it is the persist
//! scenario's latency.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{BenchError, Result};
use crate::payload::{self, Stamp};
use crate::stats::{Latency, StreamExpect};
use crate::target::Publisher;

/// What one publisher does.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// Messages per second; 0 publishes as fast as acknowledgements return (open loop,
    /// bounded by `in_flight`).
    pub rate: f64,
    /// Most messages started and not yet acknowledged.
    pub in_flight: usize,
    pub duration: Duration,
    /// Body size in bytes.
    pub size: usize,
    /// `(stream id, room name)` pairs, served round-robin.
    pub streams: Vec<(u32, String)>,
    /// Longest wait for the outcomes still in flight when the duration is over.
    pub drain: Duration,
}

/// What one publisher did.
#[derive(Debug, Clone, Default)]
pub struct PublishOutcome {
    /// Per stream id: counters used and those not acknowledged.
    pub expect: HashMap<u32, StreamExpect>,
    pub acked: u64,
    pub failed: u64,
    /// The first failure's reason.
    pub first_error: Option<String>,
    pub ack_latency: Latency,
    /// How long publishing ran (the duration, plus the wait for the last outcomes).
    pub elapsed: Duration,
}

impl PublishOutcome {
    /// Adds `other` (a publisher of other streams).
    pub fn merge(&mut self, other: PublishOutcome) {
        for (stream, expect) in other.expect {
            let entry = self.expect.entry(stream).or_default();
            entry.sent += expect.sent;
            entry.failed.extend(expect.failed);
        }
        self.acked += other.acked;
        self.failed += other.failed;
        self.first_error = self.first_error.take().or(other.first_error);
        self.ack_latency.merge(&other.ack_latency);
        self.elapsed = self.elapsed.max(other.elapsed);
    }

    /// The per-stream expectations as a dense list indexed by stream id (`count` streams).
    pub fn expect_list(&self, count: usize) -> Vec<StreamExpect> {
        (0..count)
            .map(|i| self.expect.get(&(i as u32)).cloned().unwrap_or_default())
            .collect()
    }
}

/// A message on its way.
struct Pending {
    stream: u32,
    counter: u64,
    started: Instant,
}

/// Runs `plan` on `publisher`.
///
/// # Errors
/// A transport failure of the publisher (a refused publish is an outcome, not an error).
pub async fn drive(publisher: &mut dyn Publisher, plan: &PublishPlan) -> Result<PublishOutcome> {
    if plan.streams.is_empty() {
        return Err(BenchError::Config("a publisher without rooms".into()));
    }
    let mut out = PublishOutcome::default();
    let mut counters: HashMap<u32, u64> = HashMap::new();
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let in_flight = plan.in_flight.max(1);
    let start = Instant::now();
    let end = start + plan.duration;
    let mut started: u64 = 0;

    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Start what is due: everything up to rate × elapsed (all, open loop).
        let due = if plan.rate > 0.0 {
            (plan.rate * (now - start).as_secs_f64()) as u64 + 1
        } else {
            u64::MAX
        };
        while pending.len() < in_flight && started < due {
            let (stream, room) = &plan.streams[started as usize % plan.streams.len()];
            let counter = counters.entry(*stream).or_insert(0);
            let stamp = Stamp {
                stream: *stream,
                counter: *counter,
                sent_us: payload::now_us(),
            };
            *counter += 1;
            pending.insert(
                started,
                Pending {
                    stream: *stream,
                    counter: stamp.counter,
                    started: Instant::now(),
                },
            );
            publisher
                .start(room, payload::encode(stamp, plan.size), started)
                .await?;
            started += 1;
        }
        // Sleep until the next message is due (or the end), unless an outcome comes first.
        let wake = if plan.rate > 0.0 && pending.len() < in_flight {
            (start + Duration::from_secs_f64(started as f64 / plan.rate)).min(end)
        } else {
            end
        };
        tokio::select! {
            outcome = publisher.next_outcome(), if !pending.is_empty() => {
                settle(&mut out, &mut pending, outcome?);
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }

    // The last outcomes, bounded; whatever does not come back counts as failed.
    let drain_end = Instant::now() + plan.drain;
    while !pending.is_empty() {
        match tokio::time::timeout_at(drain_end, publisher.next_outcome()).await {
            Ok(outcome) => settle(&mut out, &mut pending, outcome?),
            Err(_) => break,
        }
    }
    for (_, lost) in pending.drain() {
        out.failed += 1;
        out.first_error
            .get_or_insert_with(|| "no acknowledgement in time".into());
        out.expect
            .entry(lost.stream)
            .or_default()
            .failed
            .push(lost.counter);
    }
    for (stream, sent) in counters {
        out.expect.entry(stream).or_default().sent = sent;
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

/// Books one outcome.
fn settle(
    out: &mut PublishOutcome,
    pending: &mut HashMap<u64, Pending>,
    outcome: crate::target::Outcome,
) {
    let Some(message) = pending.remove(&outcome.tag) else {
        return; // not ours (or answered twice): nothing to book
    };
    match outcome.result {
        Ok(()) => {
            out.acked += 1;
            out.ack_latency
                .record(message.started.elapsed().as_micros() as u64);
        }
        Err(reason) => {
            out.failed += 1;
            out.first_error.get_or_insert(reason);
            out.expect
                .entry(message.stream)
                .or_default()
                .failed
                .push(message.counter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Outcome;
    use async_trait::async_trait;
    use std::collections::VecDeque;

    /// Acknowledges everything at once, except every fifth message, which it refuses.
    #[derive(Default)]
    struct Fake {
        queue: VecDeque<Outcome>,
        bodies: Vec<(String, String)>,
    }

    #[async_trait]
    impl Publisher for Fake {
        async fn start(&mut self, room: &str, body: String, tag: u64) -> Result<()> {
            self.bodies.push((room.to_owned(), body));
            let result = if tag % 5 == 4 {
                Err("rate_limited".into())
            } else {
                Ok(())
            };
            self.queue.push_back(Outcome { tag, result });
            Ok(())
        }

        async fn next_outcome(&mut self) -> Result<Outcome> {
            match self.queue.pop_front() {
                Some(outcome) => Ok(outcome),
                None => std::future::pending().await,
            }
        }
    }

    #[tokio::test]
    async fn paced_publishing_books_every_message_once() {
        let mut fake = Fake::default();
        let plan = PublishPlan {
            rate: 200.0,
            in_flight: 4,
            duration: Duration::from_millis(250),
            size: 64,
            streams: vec![(0, "a".into()), (1, "b".into())],
            drain: Duration::from_secs(1),
        };
        let out = drive(&mut fake, &plan).await.unwrap();
        let total = out.acked + out.failed;
        assert_eq!(total as usize, fake.bodies.len());
        // 200/s for 0.25 s: about 50 messages (the first is due at once).
        assert!((40..=60).contains(&total), "published {total}");
        assert_eq!(out.failed, total / 5);
        assert_eq!(out.first_error.as_deref(), Some("rate_limited"));
        let list = out.expect_list(2);
        assert_eq!(list[0].sent + list[1].sent, total);
        assert_eq!(list[0].acknowledged() + list[1].acknowledged(), out.acked);
        // Round-robin: stream 0 gets the even messages, each body carries its stamp.
        let stamp = payload::find(&fake.bodies[2].1).unwrap();
        assert_eq!((stamp.stream, stamp.counter), (0, 1));
        assert_eq!(fake.bodies[2].0, "a");
        assert!(fake.bodies.iter().all(|(_, b)| b.len() == 64));
        assert_eq!(out.ack_latency.count(), out.acked);
    }

    #[tokio::test]
    async fn unanswered_messages_count_as_failed_after_the_drain() {
        struct Silent;
        #[async_trait]
        impl Publisher for Silent {
            async fn start(&mut self, _: &str, _: String, _: u64) -> Result<()> {
                Ok(())
            }
            async fn next_outcome(&mut self) -> Result<Outcome> {
                std::future::pending().await
            }
        }
        let plan = PublishPlan {
            rate: 0.0,
            in_flight: 3,
            duration: Duration::from_millis(10),
            size: 10,
            streams: vec![(0, "a".into())],
            drain: Duration::from_millis(50),
        };
        let out = drive(&mut Silent, &plan).await.unwrap();
        assert_eq!(out.acked, 0);
        assert_eq!(out.failed, 3);
        let expect = &out.expect_list(1)[0];
        assert_eq!(expect.sent, 3);
        let mut failed = expect.failed.clone();
        failed.sort_unstable();
        assert_eq!(failed, vec![0, 1, 2]);
    }
}
