//! Readiness (`GET /readyz`) of a server: named dependency checks, each bounded by a timeout,
//! their outcome cached and single-flighted, and a draining switch.
//!
//! **Invariants:**
//! - However many `/readyz` requests arrive, the checks run at most once per
//!   [`Readiness::cache_for`] interval: one request runs them while the others wait for (and
//!   share) its report, so a flood of health checks cannot become a flood of database or Redis
//!   round trips.
//! - A request waits at most about one [`Readiness::timeout`] (the checks run concurrently,
//!   each bounded by it), plus the time the report being computed has left.
//! - Once [`Readiness::drain`] is called the answer is 503 `draining` at once, without running
//!   any check, for the rest of the process's life.
//! - The body never carries a dependency's own error text (addresses, user names): only a
//!   stable word per failed check. The detail is logged, once per change of state.
//!
//! The body (documented in docs/OPERATIONS.md, "Health and readiness"):
//! `{"status":"ready"|"unready"|"draining","checks":{NAME:{"ok":true}|{"ok":false,"error":"timeout"|"failed"}}}`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::time::Instant;

/// How long a report is reused by default: HAProxy checks every second (`inter 1s`), so a
/// node's dependencies are probed about once a second whatever the number of balancers.
pub const DEFAULT_CACHE_FOR: Duration = Duration::from_secs(1);
/// Default bound on one check: under HAProxy's `timeout check 2s`, so a hung dependency makes
/// the answer a 503, not a timed-out check.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The future of one check: `Ok` when the dependency answered as it should, `Err` with a
/// description for the log otherwise.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A named check: called once per probe.
type Check = Box<dyn Fn() -> CheckFuture + Send + Sync>;

/// The verdict of `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every check passed: 200.
    Ready,
    /// At least one check failed: 503.
    Unready,
    /// The server is shutting down: 503, nothing probed.
    Draining,
}

/// Why a check failed, as the body says it (stable words; the detail is in the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// No answer within the timeout.
    Timeout,
    /// An answer that was an error (refused, an error reply, a wrong body).
    Failed,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// The body of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub status: Status,
    /// Every configured check by name (empty while draining).
    pub checks: BTreeMap<&'static str, CheckResult>,
}

impl IntoResponse for Report {
    fn into_response(self) -> Response {
        let status = match self.status {
            Status::Ready => StatusCode::OK,
            Status::Unready | Status::Draining => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut response = (status, Json(self)).into_response();
        // A health answer is about this instant; nothing between the checker and us may keep it.
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

/// A server's readiness: its checks, the cached report and the draining switch. Share it as an
/// `Arc` between the router ([`Readiness::router`]) and the shutdown path ([`Readiness::drain`]).
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
    cache_for: Duration,
    timeout: Duration,
    draining: AtomicBool,
    /// The last report and when its probe started. The async lock is the single flight: the
    /// holder probes while the others queue, then find its fresh report.
    last: tokio::sync::Mutex<Option<(Instant, Report)>>,
    /// The failures last logged per check, so a state is logged once, not once per probe.
    logged: Mutex<BTreeMap<&'static str, bool>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// No checks yet, [`DEFAULT_CACHE_FOR`] and [`DEFAULT_TIMEOUT`].
    pub fn new() -> Self {
        Self {
            checks: Vec::new(),
            cache_for: DEFAULT_CACHE_FOR,
            timeout: DEFAULT_TIMEOUT,
            draining: AtomicBool::new(false),
            last: tokio::sync::Mutex::new(None),
            logged: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds the check `name` (a key of the body's `checks`). `check` is called once per probe.
    #[must_use]
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Box::new(move || Box::pin(check()) as CheckFuture)));
        self
    }

    /// Changes how long a report is reused.
    #[must_use]
    pub fn cache_for(mut self, cache_for: Duration) -> Self {
        self.cache_for = cache_for;
        self
    }

    /// Changes the bound on each check.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// From now on `/readyz` answers 503 `draining` (see the module invariants).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether [`Readiness::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The current report: the cached one while fresh, else a new probe (shared by everyone
    /// asking meanwhile).
    pub async fn report(&self) -> Report {
        if self.is_draining() {
            return Report {
                status: Status::Draining,
                checks: BTreeMap::new(),
            };
        }
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref() {
            if at.elapsed() < self.cache_for {
                return report.clone();
            }
        }
        let started = Instant::now();
        let report = self.probe().await;
        *last = Some((started, report.clone()));
        report
    }

    /// Runs every check at once, each bounded by the timeout.
    async fn probe(&self) -> Report {
        let mut running = tokio::task::JoinSet::new();
        for (i, (_, check)) in self.checks.iter().enumerate() {
            let fut = tokio::time::timeout(self.timeout, check());
            running.spawn(async move { (i, fut.await) });
        }
        let mut checks = BTreeMap::new();
        while let Some(joined) = running.join_next().await {
            let Ok((i, outcome)) = joined else {
                // A check that panicked: report it failed rather than lose the name.
                continue;
            };
            let name = self.checks[i].0;
            let result = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(detail)) => Some((Failure::Failed, detail)),
                Err(_) => Some((
                    Failure::Timeout,
                    format!("no answer within {:?}", self.timeout),
                )),
            };
            self.log_change(name, result.as_ref().map(|(_, detail)| detail.as_str()));
            checks.insert(
                name,
                CheckResult {
                    ok: result.is_none(),
                    error: result.map(|(failure, _)| failure),
                },
            );
        }
        for (name, _) in &self.checks {
            checks.entry(*name).or_insert(CheckResult {
                ok: false,
                error: Some(Failure::Failed),
            });
        }
        let status = if checks.values().all(|c| c.ok) {
            Status::Ready
        } else {
            Status::Unready
        };
        Report { status, checks }
    }

    /// Logs a check's failure when it starts failing and its recovery, not every probe.
    fn log_change(&self, name: &'static str, failure: Option<&str>) {
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let was_failing = logged.insert(name, failure.is_some()).unwrap_or(false);
        match (was_failing, failure) {
            (false, Some(detail)) => {
                tracing::warn!(check = name, error = detail, "readiness check failing")
            }
            (true, None) => tracing::info!(check = name, "readiness check passing again"),
            _ => {}
        }
    }

    /// `GET /readyz`, answering [`Readiness::report`].
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().route(
            "/readyz",
            get(move || {
                let readiness = self.clone();
                async move { readiness.report().await }
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A check that counts its probes and passes or fails as `ok` says.
    fn counted(probes: &Arc<AtomicUsize>, ok: Arc<AtomicBool>) -> impl Fn() -> CheckFuture {
        let probes = probes.clone();
        move || {
            let (probes, ok) = (probes.clone(), ok.clone());
            Box::pin(async move {
                probes.fetch_add(1, Ordering::SeqCst);
                // An answer that takes a while, so concurrent requests overlap it.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if ok.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("refused".into())
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_requests_probes_once_per_interval() {
        let probes = Arc::new(AtomicUsize::new(0));
        let ok = Arc::new(AtomicBool::new(true));
        let readiness = Arc::new(
            Readiness::new()
                .check("store", counted(&probes, ok.clone()))
                .cache_for(Duration::from_secs(1)),
        );
        let mut asking = tokio::task::JoinSet::new();
        for _ in 0..500 {
            let readiness = readiness.clone();
            asking.spawn(async move { readiness.report().await });
        }
        while let Some(report) = asking.join_next().await {
            assert_eq!(report.expect("no panic").status, Status::Ready);
        }
        assert_eq!(probes.load(Ordering::SeqCst), 1, "500 requests, one probe");

        // Within the interval the cached report answers; after it, one new probe, which sees
        // the failure.
        tokio::time::advance(Duration::from_millis(500)).await;
        ok.store(false, Ordering::SeqCst);
        assert_eq!(readiness.report().await.status, Status::Ready);
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        let report = readiness.report().await;
        assert_eq!(report.status, Status::Unready);
        assert_eq!(
            report.checks["store"],
            CheckResult {
                ok: false,
                error: Some(Failure::Failed)
            }
        );
        assert_eq!(probes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_is_a_timeout_and_the_others_still_report() {
        let readiness = Readiness::new()
            .check("broker", || async {
                std::future::pending::<()>().await;
                Ok(())
            })
            .check("store", || async { Ok(()) })
            .timeout(Duration::from_millis(200));
        let started = Instant::now();
        let report = readiness.report().await;
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(report.status, Status::Unready);
        assert_eq!(report.checks["broker"].error, Some(Failure::Timeout));
        assert!(report.checks["store"].ok);
        let body = serde_json::to_value(&report).expect("serialises");
        assert_eq!(
            body,
            serde_json::json!({
                "status": "unready",
                "checks": {
                    "broker": {"ok": false, "error": "timeout"},
                    "store": {"ok": true},
                }
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn draining_answers_at_once_without_probing() {
        let probes = Arc::new(AtomicUsize::new(0));
        let readiness =
            Readiness::new().check("store", counted(&probes, Arc::new(AtomicBool::new(true))));
        assert_eq!(readiness.report().await.status, Status::Ready);
        readiness.drain();
        tokio::time::advance(Duration::from_secs(5)).await;
        let report = readiness.report().await;
        assert_eq!(report.status, Status::Draining);
        assert!(report.checks.is_empty());
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        let response = report.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
