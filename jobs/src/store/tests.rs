//! The [`JobStore`] contract, stamped for [`SqliteJobs`] and [`PgJobs`] by [`contract_tests!`].
//! Times are passed explicitly, so no test sleeps.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::{NewJob, State};

/// A store on fresh tables, with what keeps them alive.
pub(crate) struct Fixture {
    pub store: Arc<dyn JobStore>,
    /// For the in-transaction enqueue tests.
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pub db: Option<switchboard_testkit::services::TestDatabase>,
}

pub(crate) enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

/// A deadpool pool on `url`.
pub(crate) fn pg_pool(url: &str) -> deadpool_postgres::Pool {
    let cfg = deadpool_postgres::Config {
        url: Some(url.to_owned()),
        ..deadpool_postgres::Config::default()
    };
    cfg.create_pool(
        Some(deadpool_postgres::Runtime::Tokio1),
        tokio_postgres::NoTls,
    )
    .unwrap()
}

impl Fixture {
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(SQLITE_SCHEMA)
            .unwrap();
        Self {
            store: Arc::new(SqliteJobs::open(&path).await.unwrap()),
            backend: Backend::Sqlite(path),
            _dir: Some(dir),
            db: None,
        }
    }

    pub(crate) async fn postgres() -> Self {
        let db = switchboard_testkit::services::TestDatabase::create().await;
        db.connect()
            .await
            .batch_execute(&format!("CREATE SCHEMA q; {}", postgres_schema("q")))
            .await
            .unwrap();
        Self {
            store: Arc::new(PgJobs::new(pg_pool(&db.url), "q")),
            backend: Backend::Postgres(db.url.clone()),
            _dir: None,
            db: Some(db),
        }
    }

    /// Another store on the same tables (another node).
    pub(crate) async fn another(&self) -> Arc<dyn JobStore> {
        match &self.backend {
            Backend::Sqlite(path) => Arc::new(SqliteJobs::open(path).await.unwrap()),
            Backend::Postgres(url) => Arc::new(PgJobs::new(pg_pool(url), "q")),
        }
    }

    /// Enqueues `job` in a transaction that then commits (`commit`) or rolls back.
    async fn enqueue_in_tx(&self, job: &NewJob, commit: bool) {
        match &self.backend {
            Backend::Sqlite(path) => {
                let mut conn = rusqlite::Connection::open(path).unwrap();
                let tx = conn.transaction().unwrap();
                enqueue_sqlite(&tx, job).unwrap();
                if commit {
                    tx.commit().unwrap();
                }
            }
            Backend::Postgres(url) => {
                let mut client = switchboard_testkit::services::connect(url).await;
                let tx = client.transaction().await.unwrap();
                enqueue_pg(&tx, "q", job).await.unwrap();
                if commit {
                    tx.commit().await.unwrap();
                }
            }
        }
    }
}

/// For each listed `async fn name(f: Fixture)`, a module `name` with the tests `sqlite` and
/// `postgres`.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Fixture::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(super::Fixture::postgres().await).await;
            }
        }
    )*};
}

contract_tests!(
    a_claim_leases_one_job_and_finish_records_it,
    only_the_given_kinds_are_claimed,
    an_expired_lease_is_claimed_again_and_the_old_lease_is_void,
    a_lease_that_expires_on_the_last_attempt_goes_dead,
    a_lane_runs_one_job_at_a_time_in_order_with_its_spacing,
    a_retried_job_holds_its_lane_back,
    dead_jobs_are_listed_and_retried,
    done_jobs_are_pruned,
    an_enqueue_commits_and_rolls_back_with_its_transaction,
    concurrent_claims_from_two_nodes_never_share_a_job,
);

const KINDS: &[&str] = &["mail"];
const NOW: i64 = 1_000_000;

fn claim_at(now: i64) -> Claim<'static> {
    Claim {
        kinds: KINDS,
        worker: "w/0",
        now,
        lease_until: now + 1000,
    }
}

fn job(lane: Option<&str>) -> NewJob {
    let mut job = NewJob::new("mail", json!({"to": "a@example.org"}));
    job.run_at = NOW;
    job.created_at = NOW;
    job.lane = lane.map(str::to_owned);
    job
}

async fn finish(
    store: &dyn JobStore,
    job: &Job,
    outcome: Outcome,
    now: i64,
    spacing: Option<i64>,
) -> bool {
    store
        .finish(Finish {
            lease: Lease::of(job),
            outcome,
            now,
            lane_spacing: spacing.map(|s| (job.lane.clone().unwrap(), s)),
        })
        .await
        .unwrap()
}

async fn a_claim_leases_one_job_and_finish_records_it(f: Fixture) {
    let store = &*f.store;
    let new = job(None);
    store.enqueue(new.clone()).await.unwrap();
    assert_eq!(
        store.claim(claim_at(NOW - 1)).await.unwrap(),
        None,
        "not due yet"
    );
    let claimed = store.claim(claim_at(NOW)).await.unwrap().unwrap();
    assert_eq!(claimed.id, new.id);
    assert_eq!(claimed.payload, new.payload);
    assert_eq!(claimed.state, State::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_until, Some(NOW + 1000));
    assert_eq!(claimed.leased_by.as_deref(), Some("w/0"));
    assert_eq!(store.claim(claim_at(NOW)).await.unwrap(), None, "leased");
    assert!(store
        .extend(&Lease::of(&claimed), NOW + 5000)
        .await
        .unwrap());
    assert_eq!(
        store.claim(claim_at(NOW + 2000)).await.unwrap(),
        None,
        "extended"
    );
    assert!(finish(store, &claimed, Outcome::Done, NOW + 10, None).await);
    let done = store.get(&new.id).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.finished_at, done.leased_by),
        (State::Done, Some(NOW + 10), None)
    );
    assert!(
        !finish(store, &claimed, Outcome::Done, NOW + 10, None).await,
        "finished once"
    );
    assert_eq!(store.claim(claim_at(NOW + 10_000)).await.unwrap(), None);
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.get(State::Done), counts.get(State::Ready)), (1, 0));
}

async fn only_the_given_kinds_are_claimed(f: Fixture) {
    let store = &*f.store;
    let mut other = job(None);
    other.kind = "webhook".into();
    store.enqueue(other).await.unwrap();
    assert_eq!(store.claim(claim_at(NOW)).await.unwrap(), None);
    let none = Claim {
        kinds: &[],
        ..claim_at(NOW)
    };
    assert_eq!(store.claim(none).await.unwrap(), None);
    assert_eq!(store.counts().await.unwrap().get(State::Ready), 1);
}

async fn an_expired_lease_is_claimed_again_and_the_old_lease_is_void(f: Fixture) {
    let store = &*f.store;
    store.enqueue(job(None)).await.unwrap();
    let first = store.claim(claim_at(NOW)).await.unwrap().unwrap();
    assert_eq!(store.claim(claim_at(NOW + 999)).await.unwrap(), None);
    let again = store
        .claim(Claim {
            worker: "w/1",
            ..claim_at(NOW + 1000)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (first.id.as_str(), 2));
    assert!(!store.extend(&Lease::of(&first), NOW + 9999).await.unwrap());
    assert!(!finish(store, &first, Outcome::Done, NOW + 1001, None).await);
    assert!(finish(store, &again, Outcome::Done, NOW + 1001, None).await);
}

async fn a_lease_that_expires_on_the_last_attempt_goes_dead(f: Fixture) {
    let store = &*f.store;
    let new = job(None).max_attempts(1);
    store.enqueue(new.clone()).await.unwrap();
    store.claim(claim_at(NOW)).await.unwrap().unwrap();
    assert_eq!(store.claim(claim_at(NOW + 1000)).await.unwrap(), None);
    let dead = store.get(&new.id).await.unwrap().unwrap();
    assert_eq!(dead.state, State::Dead);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("lease expired on the last attempt")
    );
}

async fn a_lane_runs_one_job_at_a_time_in_order_with_its_spacing(f: Fixture) {
    let store = &*f.store;
    let lane: Vec<NewJob> = (0..3).map(|_| job(Some("mail"))).collect();
    for j in &lane {
        store.enqueue(j.clone()).await.unwrap();
    }
    let free = job(None);
    store.enqueue(free.clone()).await.unwrap();
    let first = store.claim(claim_at(NOW)).await.unwrap().unwrap();
    assert_eq!(first.id, lane[0].id);
    let second = store.claim(claim_at(NOW)).await.unwrap().unwrap();
    assert_eq!(second.id, free.id, "the lane waits, other jobs do not");
    assert_eq!(store.claim(claim_at(NOW)).await.unwrap(), None);
    assert!(finish(store, &first, Outcome::Done, NOW + 10, Some(200)).await);
    assert_eq!(
        store.claim(claim_at(NOW + 209)).await.unwrap(),
        None,
        "spacing"
    );
    let next = store.claim(claim_at(NOW + 210)).await.unwrap().unwrap();
    assert_eq!(next.id, lane[1].id);
    // A failure also spaces the lane.
    let error = "relay down".to_owned();
    assert!(finish(store, &next, Outcome::Dead { error }, NOW + 300, Some(200)).await);
    assert_eq!(store.claim(claim_at(NOW + 499)).await.unwrap(), None);
    assert_eq!(
        store.claim(claim_at(NOW + 500)).await.unwrap().unwrap().id,
        lane[2].id
    );
}

async fn a_retried_job_holds_its_lane_back(f: Fixture) {
    let store = &*f.store;
    let (a, b) = (job(Some("mail")), job(Some("mail")));
    store.enqueue(a.clone()).await.unwrap();
    store.enqueue(b.clone()).await.unwrap();
    let claimed = store.claim(claim_at(NOW)).await.unwrap().unwrap();
    let retry = Outcome::Retry {
        run_at: NOW + 5000,
        error: "451".into(),
    };
    assert!(finish(store, &claimed, retry, NOW + 1, None).await);
    let ready = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (ready.state, ready.run_at, ready.last_error.as_deref()),
        (State::Ready, NOW + 5000, Some("451"))
    );
    assert_eq!(
        store.claim(claim_at(NOW + 4999)).await.unwrap(),
        None,
        "b waits for a"
    );
    let again = store.claim(claim_at(NOW + 5000)).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (a.id.as_str(), 2));
}

async fn dead_jobs_are_listed_and_retried(f: Fixture) {
    let store = &*f.store;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let j = job(None);
        ids.push(j.id.clone());
        store.enqueue(j).await.unwrap();
    }
    for _ in 0..2 {
        let claimed = store.claim(claim_at(NOW)).await.unwrap().unwrap();
        let error = "x".repeat(5000);
        assert!(finish(store, &claimed, Outcome::Dead { error }, NOW + 1, None).await);
    }
    let dead = store.list(State::Dead, None, 1).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, ids[0]);
    assert_eq!(
        dead[0].last_error.as_ref().unwrap().len(),
        crate::job::MAX_ERROR_BYTES
    );
    let rest = store
        .list(State::Dead, Some(&dead[0].id), 10)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|j| &j.id).collect::<Vec<_>>(), [&ids[1]]);
    assert_eq!(
        store.list(State::Ready, None, 10).await.unwrap()[0].id,
        ids[2]
    );

    assert_eq!(store.retry("nope", NOW).await.unwrap(), Retried::NotFound);
    assert_eq!(
        store.retry(&ids[2], NOW).await.unwrap(),
        Retried::NotDead(State::Ready)
    );
    let Retried::Retried(job) = store.retry(&ids[0], NOW + 50).await.unwrap() else {
        panic!("not retried");
    };
    assert_eq!(
        (job.state, job.attempts, job.run_at, job.finished_at),
        (State::Ready, 0, NOW + 50, None)
    );
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.get(State::Ready), counts.get(State::Dead)), (2, 1));
}

async fn done_jobs_are_pruned(f: Fixture) {
    let store = &*f.store;
    for _ in 0..3 {
        store.enqueue(job(None)).await.unwrap();
    }
    for at in [NOW + 1, NOW + 2] {
        let claimed = store.claim(claim_at(NOW)).await.unwrap().unwrap();
        assert!(finish(store, &claimed, Outcome::Done, at, None).await);
    }
    assert_eq!(store.prune(NOW + 2, 100).await.unwrap(), 1);
    assert_eq!(store.prune(NOW + 100, 100).await.unwrap(), 1);
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.get(State::Done), counts.get(State::Ready)), (0, 1));
}

async fn an_enqueue_commits_and_rolls_back_with_its_transaction(f: Fixture) {
    let (kept, dropped) = (job(None), job(None));
    f.enqueue_in_tx(&dropped, false).await;
    f.enqueue_in_tx(&kept, true).await;
    assert_eq!(f.store.get(&dropped.id).await.unwrap(), None);
    let stored = f.store.get(&kept.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.kind.as_str(), &stored.payload),
        (State::Ready, "mail", &kept.payload)
    );
}

async fn concurrent_claims_from_two_nodes_never_share_a_job(f: Fixture) {
    const JOBS: usize = 40;
    for _ in 0..JOBS {
        f.store.enqueue(job(None)).await.unwrap();
    }
    let stores = [Arc::clone(&f.store), f.another().await];
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = Arc::clone(&stores[n % 2]);
        tasks.push(tokio::spawn(async move {
            let worker = format!("w/{n}");
            let mut got = Vec::new();
            while let Some(job) = store
                .claim(Claim {
                    worker: &worker,
                    ..claim_at(NOW)
                })
                .await
                .unwrap()
            {
                got.push(job.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), JOBS);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), JOBS);
}
