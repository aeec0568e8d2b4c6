//! Rate limits: the cost of one check on the request path with N keys tracked (N = 1,000 and
//! 100,000): `PerUser::take` (every send) and `Frames::take` (every client frame). It must not
//! grow with N: no request walks a limiter's map; the sweep does, from a background task (the
//! hand-written limiter this replaced pruned its whole per-user map on every send past 10,000
//! users).
//!
//! Run with `cargo bench -p switchboard-hub --bench ratelimit` (add `-- --quick` for a short run).
//!
//! Limits are high enough that every check is allowed: the figure is the lookup and the GCRA
//! update of an existing key, the common case.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use switchboard_hub::bench::{Frames, PerUser};

/// Keys tracked before the timed checks.
const TRACKED: [usize; 2] = [1_000, 100_000];
/// A rate and burst no check reaches.
const UNREACHED: u32 = 1_000_000_000;

fn per_user_take(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit/per_user_take");
    for n in TRACKED {
        let limits = PerUser::new(UNREACHED, UNREACHED);
        let users: Vec<Arc<str>> = (0..n).map(|i| format!("user-{i}").into()).collect();
        assert!(users.iter().all(|u| limits.take(u)));
        let mut next = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                next = (next + 1) % n;
                black_box(limits.take(&users[next]))
            });
        });
        assert_eq!(limits.tracked(), n, "no check forgets or adds a key");
    }
    group.finish();
}

fn frames_take(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit/frames_take");
    for n in TRACKED {
        let frames = Frames::new(UNREACHED, UNREACHED);
        let conns = n as u64;
        assert!((0..conns).all(|conn| frames.take(conn)));
        let mut next = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &conns, |b, &conns| {
            b.iter(|| {
                next = (next + 1) % conns;
                black_box(frames.take(next))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, per_user_take, frames_take);
criterion_main!(benches);
