//! The pool: retries with backoff, dead jobs, timeouts, leases, lanes across nodes, shutdown.
//! SQLite tests run on paused time; the PostgreSQL ones run several pools (nodes) on one
//! database in real time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use switchboard_kit::metrics::Registry;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::store::tests::Fixture;
use crate::{NewJob, State};

/// What a [`Scripted`] handler does on each attempt.
#[derive(Debug, Clone)]
enum Step {
    Ok,
    Transient,
    Permanent,
    Hang,
    Sleep(Duration),
}

/// A handler of kind `mail` that plays `script` (then `Ok`), and reports each start and end.
struct Scripted {
    kind: &'static str,
    script: Mutex<std::collections::VecDeque<Step>>,
    events: mpsc::UnboundedSender<(String, &'static str, Instant)>,
}

impl Scripted {
    fn new(
        kind: &'static str,
        script: &[Step],
    ) -> (
        Arc<Self>,
        mpsc::UnboundedReceiver<(String, &'static str, Instant)>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handler = Arc::new(Self {
            kind,
            script: Mutex::new(script.iter().cloned().collect()),
            events: tx,
        });
        (handler, rx)
    }
}

#[async_trait]
impl Handler for Scripted {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let step = self.script.lock().unwrap().pop_front().unwrap_or(Step::Ok);
        let _ = self.events.send((job.id.clone(), "start", Instant::now()));
        let result = match step {
            Step::Ok => Ok(()),
            Step::Transient => Err(JobFailure::Transient("451 try later".into())),
            Step::Permanent => Err(JobFailure::Permanent("550 no such user".into())),
            Step::Hang => std::future::pending().await,
            Step::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        };
        let _ = self.events.send((job.id.clone(), "end", Instant::now()));
        result
    }
}

fn config() -> PoolConfig {
    PoolConfig {
        workers: 1,
        poll: Duration::from_millis(50),
        backoff: Backoff::doubling(Duration::from_secs(1), Duration::from_secs(60)),
        ..PoolConfig::default()
    }
}

fn start(f: &Fixture, handlers: Vec<Arc<dyn Handler>>, cfg: PoolConfig) -> Pool {
    Pool::start(
        Arc::clone(&f.store),
        handlers,
        cfg,
        JobMetrics::new(&Registry::disabled()),
    )
}

/// Waits (polling the store, on whichever clock runs) until the job is in `state`.
async fn wait_state(store: &dyn JobStore, id: &str, state: State) -> Job {
    for _ in 0..10_000 {
        let job = store.get(id).await.unwrap().unwrap();
        if job.state == state {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never reached {state:?}");
}

async fn enqueue(f: &Fixture, job: NewJob) -> String {
    let id = job.id.clone();
    f.store.enqueue(job).await.unwrap();
    id
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_after_a_growing_backoff() {
    let f = Fixture::sqlite().await;
    let (handler, mut events) = Scripted::new("mail", &[Step::Transient, Step::Transient]);
    let pool = start(&f, vec![handler], config());
    let id = enqueue(&f, NewJob::new("mail", json!({}))).await;
    let done = wait_state(&*f.store, &id, State::Done).await;
    assert_eq!(done.attempts, 3);
    assert_eq!(done.last_error.as_deref(), Some("451 try later"));
    let mut starts = Vec::new();
    while let Ok((_, what, at)) = events.try_recv() {
        if what == "start" {
            starts.push(at);
        }
    }
    assert_eq!(starts.len(), 3);
    // Retry n waits a draw from [d/2, d], d = 1 s * 2^(n-1).
    let (first, second) = (starts[1] - starts[0], starts[2] - starts[1]);
    assert!(
        first >= Duration::from_millis(500) && first <= Duration::from_millis(1100),
        "{first:?}"
    );
    assert!(
        second >= Duration::from_millis(1000) && second <= Duration::from_millis(2100),
        "{second:?}"
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_dead_after_one_attempt() {
    let f = Fixture::sqlite().await;
    let (handler, _events) = Scripted::new("mail", &[Step::Permanent]);
    let pool = start(&f, vec![handler], config());
    let id = enqueue(&f, NewJob::new("mail", json!({}))).await;
    let dead = wait_state(&*f.store, &id, State::Dead).await;
    assert_eq!(
        (dead.attempts, dead.last_error.as_deref()),
        (1, Some("550 no such user"))
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_out_of_attempts_is_dead() {
    let f = Fixture::sqlite().await;
    let (handler, _events) = Scripted::new("mail", &[Step::Transient, Step::Transient]);
    let pool = start(&f, vec![handler], config());
    let id = enqueue(&f, NewJob::new("mail", json!({})).max_attempts(2)).await;
    let dead = wait_state(&*f.store, &id, State::Dead).await;
    assert_eq!(dead.attempts, 2);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("451 try later (out of attempts: 2)")
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_handler_times_out_and_the_worker_goes_on() {
    let f = Fixture::sqlite().await;
    let (handler, _events) = Scripted::new("mail", &[Step::Hang]);
    let cfg = PoolConfig {
        timeout: Duration::from_secs(5),
        ..config()
    };
    let pool = start(&f, vec![handler], cfg);
    let hung = enqueue(&f, NewJob::new("mail", json!({})).max_attempts(1)).await;
    let next = enqueue(&f, NewJob::new("mail", json!({}))).await;
    let dead = wait_state(&*f.store, &hung, State::Dead).await;
    assert_eq!(
        dead.last_error.as_deref(),
        Some("timed out after 5000 ms (out of attempts: 1)")
    );
    wait_state(&*f.store, &next, State::Done).await;
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn kinds_without_a_handler_stay_ready() {
    let f = Fixture::sqlite().await;
    let other = enqueue(&f, NewJob::new("webhook", json!({}))).await;
    // No handler at all: no worker claims anything.
    let idle = start(&f, Vec::new(), config());
    tokio::time::sleep(Duration::from_secs(5)).await;
    idle.shutdown().await;
    let (handler, _events) = Scripted::new("mail", &[]);
    let pool = start(&f, vec![handler], config());
    let mail = enqueue(&f, NewJob::new("mail", json!({}))).await;
    wait_state(&*f.store, &mail, State::Done).await;
    let job = f.store.get(&other).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (State::Ready, 0));
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_long_job_keeps_its_lease_and_runs_once_across_two_nodes() {
    let f = Fixture::sqlite().await;
    let (handler, mut events) = Scripted::new("mail", &[Step::Sleep(Duration::from_secs(10))]);
    let cfg = PoolConfig {
        lease: Duration::from_millis(900),
        ..config()
    };
    let a = start(
        &f,
        vec![Arc::clone(&handler) as Arc<dyn Handler>],
        cfg.clone(),
    );
    let b = Pool::start(
        f.another().await,
        vec![handler],
        cfg,
        JobMetrics::new(&Registry::disabled()),
    );
    let id = enqueue(&f, NewJob::new("mail", json!({}))).await;
    let done = wait_state(&*f.store, &id, State::Done).await;
    assert_eq!(done.attempts, 1, "the lease was extended, never taken over");
    let mut runs = 0;
    while let Ok((_, what, _)) = events.try_recv() {
        runs += usize::from(what == "start");
    }
    assert_eq!(runs, 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_job_of_a_dead_worker_runs_when_its_lease_expires() {
    let f = Fixture::sqlite().await;
    let id = enqueue(&f, NewJob::new("mail", json!({}))).await;
    // A worker claims it and dies.
    let now = crate::clock::now_ms();
    let claim = crate::store::Claim {
        kinds: &["mail"],
        worker: "dead/0",
        now,
        lease_until: now + 30_000,
    };
    f.store.claim(claim).await.unwrap().unwrap();
    let (handler, mut events) = Scripted::new("mail", &[]);
    let started = Instant::now();
    let pool = start(&f, vec![handler], config());
    let done = wait_state(&*f.store, &id, State::Done).await;
    assert_eq!(done.attempts, 2);
    let (_, _, at) = events.recv().await.unwrap();
    assert!(
        at - started >= Duration::from_secs(30),
        "{:?}",
        at - started
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_running_job_finish_and_claims_nothing_more() {
    let f = Fixture::sqlite().await;
    let (handler, mut events) = Scripted::new("mail", &[Step::Sleep(Duration::from_secs(2))]);
    let pool = start(&f, vec![handler], config());
    let running = enqueue(&f, NewJob::new("mail", json!({}))).await;
    events.recv().await.unwrap(); // started
    let later = enqueue(&f, NewJob::new("mail", json!({}))).await;
    pool.shutdown().await;
    assert_eq!(
        f.store.get(&running).await.unwrap().unwrap().state,
        State::Done
    );
    assert_eq!(
        f.store.get(&later).await.unwrap().unwrap().state,
        State::Ready
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_drops_a_job_that_outlasts_the_drain() {
    let f = Fixture::sqlite().await;
    let (handler, mut events) = Scripted::new("mail", &[Step::Hang]);
    let cfg = PoolConfig {
        drain: Duration::from_secs(1),
        ..config()
    };
    let pool = start(&f, vec![handler], cfg);
    let id = enqueue(&f, NewJob::new("mail", json!({}))).await;
    events.recv().await.unwrap();
    let before = Instant::now();
    pool.shutdown().await;
    assert!(before.elapsed() <= Duration::from_millis(1100));
    let job = f.store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, State::Running, "left to its lease");
}

/// Three nodes (pools of two workers) on one PostgreSQL database share a lane spaced 200 ms:
/// its jobs start in enqueue order, one at a time, each at least 200 ms after the previous one
/// finished.
#[tokio::test]
async fn a_lane_spacing_holds_across_three_nodes() {
    const SPACING: Duration = Duration::from_millis(200);
    let f = Fixture::postgres().await;
    let (handler, mut events) = Scripted::new("mail", &[]);
    let mut cfg = PoolConfig {
        workers: 2,
        poll: Duration::from_millis(20),
        ..config()
    };
    cfg.lanes.insert("mail".into(), SPACING);
    let mut pools = Vec::new();
    for _ in 0..3 {
        let store = f.another().await;
        pools.push(Pool::start(
            store,
            vec![Arc::clone(&handler) as Arc<dyn Handler>],
            cfg.clone(),
            JobMetrics::new(&Registry::disabled()),
        ));
    }
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(enqueue(&f, NewJob::new("mail", json!({})).in_lane("mail")).await);
    }
    let mut log = Vec::new();
    while log.len() < 2 * ids.len() {
        log.push(events.recv().await.unwrap());
    }
    let starts: Vec<_> = log
        .iter()
        .filter(|e| e.1 == "start")
        .map(|e| e.0.clone())
        .collect();
    assert_eq!(starts, ids, "queue order");
    for pair in log.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_ne!(a.1, b.1, "one at a time: {log:?}");
        if a.1 == "end" {
            // The clock stored is whole milliseconds: allow one.
            assert!(
                b.2 - a.2 >= SPACING - Duration::from_millis(1),
                "{:?}",
                b.2 - a.2
            );
        }
    }
    for pool in pools {
        pool.shutdown().await;
    }
}

/// Three nodes on one PostgreSQL database run 60 jobs, each exactly once.
#[tokio::test]
async fn three_nodes_run_each_job_once() {
    let f = Fixture::postgres().await;
    let (handler, mut events) = Scripted::new("mail", &[]);
    let cfg = PoolConfig {
        workers: 2,
        poll: Duration::from_millis(20),
        ..config()
    };
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(Pool::start(
            f.another().await,
            vec![Arc::clone(&handler) as Arc<dyn Handler>],
            cfg.clone(),
            JobMetrics::new(&Registry::disabled()),
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for _ in 0..60 {
        ids.insert(enqueue(&f, NewJob::new("mail", json!({}))).await);
    }
    let mut ran = std::collections::HashSet::new();
    while ran.len() < ids.len() {
        let (id, what, _) = events.recv().await.unwrap();
        if what == "start" {
            assert!(ran.insert(id), "ran twice");
        }
    }
    assert_eq!(ran, ids);
    for pool in pools {
        pool.shutdown().await;
    }
    let counts = f.store.counts().await.unwrap();
    assert_eq!(counts.get(State::Done), 60);
    assert!(events.try_recv().ok().is_none_or(|e| e.1 == "end"));
}

/// Attempts, dead jobs and run time are counted as they happen; the depth by state is sampled.
#[tokio::test(start_paused = true)]
async fn attempts_dead_jobs_and_depth_show_in_metrics() {
    let f = Fixture::sqlite().await;
    let registry = Registry::new();
    let (handler, _events) = Scripted::new("mail", &[Step::Transient, Step::Permanent]);
    let pool = Pool::start(
        Arc::clone(&f.store),
        vec![handler],
        config(),
        JobMetrics::new(&registry),
    );
    let dead = enqueue(&f, NewJob::new("mail", json!({}))).await;
    wait_state(&*f.store, &dead, State::Dead).await;
    let done = enqueue(&f, NewJob::new("mail", json!({}))).await;
    wait_state(&*f.store, &done, State::Done).await;
    enqueue(&f, NewJob::new("webhook", json!({}))).await;
    tokio::time::sleep(SAMPLE_EVERY).await;
    let text = registry.render();
    for line in [
        "switchboard_job_attempts_total{queue=\"auth\",result=\"transient\"} 1",
        "switchboard_job_attempts_total{queue=\"auth\",result=\"permanent\"} 1",
        "switchboard_job_attempts_total{queue=\"auth\",result=\"ok\"} 1",
        "switchboard_jobs_dead_total{queue=\"auth\"} 1",
        "switchboard_jobs{queue=\"auth\",state=\"dead\"} 1",
        "switchboard_jobs{queue=\"auth\",state=\"done\"} 1",
        "switchboard_jobs{queue=\"auth\",state=\"ready\"} 1",
        "switchboard_jobs{queue=\"auth\",state=\"running\"} 0",
        "switchboard_job_duration_seconds_count{queue=\"auth\"} 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    pool.shutdown().await;
}

/// A node that loses its database keeps its workers: claims fail and back off, and the queue
/// runs again once the database is back.
#[tokio::test]
async fn workers_survive_a_database_outage() {
    let f = Fixture::postgres().await;
    let proxy = switchboard_testkit::Proxy::start(switchboard_testkit::services::PG_ADDR).await;
    let url = f.db.as_ref().unwrap().url_via(proxy.addr);
    let store: Arc<dyn JobStore> =
        Arc::new(crate::PgJobs::new(crate::store::tests::pg_pool(&url), "q"));
    let (handler, mut events) = Scripted::new("mail", &[]);
    let cfg = PoolConfig {
        poll: Duration::from_millis(20),
        ..config()
    };
    let pool = Pool::start(
        store,
        vec![handler],
        cfg,
        JobMetrics::new(&Registry::disabled()),
    );
    let first = enqueue(&f, NewJob::new("mail", json!({}))).await;
    wait_state(&*f.store, &first, State::Done).await;
    proxy.cut().await;
    let second = enqueue(&f, NewJob::new("mail", json!({}))).await;
    // Several polls fail meanwhile (their timing does not matter to the outcome).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        f.store.get(&second).await.unwrap().unwrap().state,
        State::Ready
    );
    proxy.restore();
    wait_state(&*f.store, &second, State::Done).await;
    let ran: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| e.1 == "start")
        .map(|e| e.0)
        .collect();
    assert_eq!(ran, [first, second]);
    pool.shutdown().await;
}
