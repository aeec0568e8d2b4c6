//! [`WebhookHandler`]: the delivery of one event to one endpoint, as a job of the queue (kind
//! [`JOB_KIND`]), and [`DeliveryConfig`], its bounds.
//!
//! One attempt is one signed `POST` of the event's JSON to the endpoint's URL. Its outcome:
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx | delivered |
//! | 410 | the endpoint is disabled ([`Disabler`]); the job is dead |
//! | 408, 429, 5xx, timeout, connection or DNS error | transient: retried with backoff |
//! | 3xx | dead: redirects are not followed |
//! | any other 4xx | dead |
//! | a forbidden address (literal or resolved) | dead, without a connection |
//!
//! **Bounds.** An attempt (connect, headers, body) takes at most [`DeliveryConfig::timeout`]
//! and reads at most [`DeliveryConfig::max_response_bytes`] of the answer; a receiver that hangs
//! or streams forever costs no more. No proxy is used and no redirect followed.
//!
//! **Cancel safety.** Dropping a run (the pool's own timeout, shutdown) drops its request; the
//! job runs again later with the same delivery id, which receivers use to drop repeats.

mod body;
mod resolve;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use reqwest::StatusCode;
use serde::Deserialize;
use switchboard_jobs::{Handler, Job, JobFailure};
use tokio::time::Instant;

use crate::metrics::WebhookMetrics;
use crate::sign::{self, DELIVERY_ID_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER};
use crate::{validate_url, AddrPolicy, Disabler, Endpoint, Event, Registry, JOB_KIND};
use resolve::{GuardedResolver, Refusal, ResolveError};

/// Default bound on one attempt, connect to last byte read (`--webhook-timeout-ms`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on connecting (DNS, TCP, TLS), within the attempt's.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on the answer's body read: receivers answer with a status; their body only
/// ends up quoted in an error message.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The `User-Agent` of deliveries.
pub const USER_AGENT_VALUE: &str = concat!("Switchboard-Webhooks/", env!("CARGO_PKG_VERSION"));
/// What the handler tells the [`Disabler`] when a receiver answers 410.
pub const GONE_REASON: &str = "410 Gone from receiver";

/// The bounds and address policy of deliveries.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Bound on a whole attempt: connecting, sending, the answer's headers and reading its
    /// body. Past it the attempt is a transient failure. Keep it below the queue's job timeout
    /// (`--job-timeout-ms`).
    pub timeout: Duration,
    /// Bound on connecting (DNS, TCP, TLS handshake), within [`Self::timeout`].
    pub connect_timeout: Duration,
    /// Most bytes of an answer's body read; the rest is not read (the connection is closed).
    pub max_response_bytes: usize,
    /// Which addresses may be reached (SSRF).
    pub policy: AddrPolicy,
}

impl Default for DeliveryConfig {
    /// 10 s per attempt, 5 s to connect, 64 KiB of answer, link-local refused.
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            policy: AddrPolicy::default(),
        }
    }
}

/// A delivery job's payload, as [`Registry::jobs_for`] writes it.
#[derive(Debug, Deserialize)]
struct Payload {
    endpoint: String,
    event: Event,
}

/// How an attempt ended.
#[derive(Debug)]
enum Outcome {
    Delivered,
    Retry(String),
    Dead(String),
    /// 410: the endpoint was disabled (`Ok`), or disabling failed (`Err`, retried).
    Gone(Result<(), String>),
}

/// Runs delivery jobs (kind [`JOB_KIND`]): see the module documentation. One HTTP client (and
/// its connection pool) per handler; register one handler per node's pool.
pub struct WebhookHandler {
    registry: Registry,
    disabler: Arc<dyn Disabler>,
    cfg: DeliveryConfig,
    client: reqwest::Client,
    metrics: WebhookMetrics,
}

impl std::fmt::Debug for WebhookHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookHandler")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl WebhookHandler {
    /// A handler delivering to the endpoints of `registry` (as it is at each run), telling
    /// `disabler` about 410s. Its metrics record nothing until [`Self::with_metrics`].
    ///
    /// # Panics
    /// If the HTTP client cannot be built (its TLS roots fail to load), as
    /// `reqwest::Client::new` does.
    pub fn new(registry: Registry, disabler: Arc<dyn Disabler>, cfg: DeliveryConfig) -> Self {
        Self::with_refusal(registry, disabler, cfg, resolve::policy_refusal)
    }

    /// [`Self::new`] with the resolver refusing what `refuse` refuses (tests: loopback).
    fn with_refusal(
        registry: Registry,
        disabler: Arc<dyn Disabler>,
        cfg: DeliveryConfig,
        refuse: Refusal,
    ) -> Self {
        let resolver = GuardedResolver {
            policy: cfg.policy,
            refuse,
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.connect_timeout)
            .dns_resolver(Arc::new(resolver))
            .build()
            .expect("the webhook HTTP client builds (rustls with the bundled roots)");
        Self {
            registry,
            disabler,
            cfg,
            client,
            metrics: WebhookMetrics::disabled(),
        }
    }

    /// The same handler recording `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: WebhookMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// One attempt to deliver `event` to `endpoint` (an enabled one).
    async fn attempt(&self, endpoint: &Endpoint, delivery: &str, event: &Event) -> Outcome {
        // Literal addresses never reach the resolver, and the policy may be stricter now
        // than when the endpoint was stored.
        let url = match validate_url(&endpoint.url, &self.cfg.policy) {
            Ok(url) => url,
            Err(e) => return Outcome::Dead(format!("endpoint URL refused: {e}")),
        };
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(e) => return Outcome::Dead(format!("the event does not serialize: {e}")),
        };
        let signature = sign::signature(endpoint.secret.as_bytes(), unix_now(), &body);
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(EVENT_ID_HEADER, &event.id)
            .header(DELIVERY_ID_HEADER, delivery)
            .header(SIGNATURE_HEADER, signature)
            .body(body);

        let started = Instant::now();
        let deadline = started + self.cfg.timeout;
        let outcome = match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_) => Outcome::Retry(format!(
                "no answer within {} ms",
                self.cfg.timeout.as_millis()
            )),
            Ok(Err(e)) => request_failure(e),
            Ok(Ok(mut response)) => {
                let status = response.status();
                let read =
                    body::read_capped(&mut response, self.cfg.max_response_bytes, deadline).await;
                drop(response);
                if read.truncated || read.timed_out {
                    tracing::debug!(endpoint = endpoint.id, %status, truncated = read.truncated, timed_out = read.timed_out, "webhook answer body not read to its end");
                }
                let quoted = body::quote(&read.bytes, &endpoint.secret);
                self.judge(endpoint, status, &quoted).await
            }
        };
        self.metrics.seconds.record(started.elapsed().as_secs_f64());
        outcome
    }

    /// The outcome of an answer with `status` and a body quoted as `quoted`.
    async fn judge(&self, endpoint: &Endpoint, status: StatusCode, quoted: &str) -> Outcome {
        let what = if quoted.is_empty() {
            format!("receiver answered {status}")
        } else {
            format!("receiver answered {status}: {quoted}")
        };
        match status.as_u16() {
            200..=299 => Outcome::Delivered,
            410 => Outcome::Gone(
                self.disabler
                    .disable(&endpoint.id, GONE_REASON)
                    .await
                    .map_err(|e| format!("{what}; disabling the endpoint failed: {e}")),
            ),
            408 | 429 | 500..=599 => Outcome::Retry(what),
            300..=399 => Outcome::Dead(format!("{what} (redirects are not followed)")),
            _ => Outcome::Dead(what),
        }
    }

    fn count(&self, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Delivered => &self.metrics.ok,
            Outcome::Retry(_) | Outcome::Gone(Err(_)) => &self.metrics.retry,
            Outcome::Dead(_) => &self.metrics.dead,
            Outcome::Gone(Ok(())) => &self.metrics.gone,
        };
        counter.increment(1);
    }
}

/// The outcome of a request that got no answer.
fn request_failure(e: reqwest::Error) -> Outcome {
    // Without the URL, which may hold a receiver's token.
    let e = e.without_url();
    let chain = error_chain(&e);
    if e.is_timeout() {
        return Outcome::Retry(format!("timed out: {chain}"));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(resolve) = err.downcast_ref::<ResolveError>() {
            return match resolve {
                ResolveError::ForbiddenOnly { .. } => Outcome::Dead(resolve.to_string()),
                ResolveError::Lookup { .. } | ResolveError::NoAddress { .. } => {
                    Outcome::Retry(resolve.to_string())
                }
            };
        }
        source = err.source();
    }
    if e.is_builder() {
        return Outcome::Dead(format!("the request could not be built: {chain}"));
    }
    if e.is_connect() {
        return Outcome::Retry(format!("could not connect: {chain}"));
    }
    Outcome::Retry(chain)
}

/// `e` and its causes, joined by `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}

/// Unix seconds now (the signature's `t`: the wall clock, which receivers compare with theirs).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[async_trait::async_trait]
impl Handler for WebhookHandler {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let Payload { endpoint, event } = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Permanent(format!("bad webhook payload: {e}")))?;
        let Some(target) = self.registry.get(&endpoint) else {
            tracing::info!(
                job = job.id,
                endpoint,
                event = event.id,
                "webhook endpoint removed; nothing to deliver to"
            );
            return Ok(());
        };
        if !target.enabled {
            self.metrics.dead.increment(1);
            return Err(JobFailure::Permanent("endpoint disabled".into()));
        }
        let outcome = self.attempt(&target, &job.id, &event).await;
        self.count(&outcome);
        let endpoint = target.id.as_str();
        match outcome {
            Outcome::Delivered => Ok(()),
            Outcome::Retry(why) => {
                tracing::info!(job = job.id, endpoint, attempt = job.attempts, %why, "webhook delivery failed; retried later");
                Err(JobFailure::Transient(why))
            }
            Outcome::Dead(why) => {
                tracing::warn!(job = job.id, endpoint, %why, "webhook delivery failed for good");
                Err(JobFailure::Permanent(why))
            }
            Outcome::Gone(Ok(())) => {
                tracing::warn!(
                    job = job.id,
                    endpoint,
                    "webhook receiver answered 410 Gone; endpoint disabled"
                );
                Err(JobFailure::Permanent(
                    "receiver answered 410 Gone: endpoint disabled".into(),
                ))
            }
            Outcome::Gone(Err(why)) => {
                tracing::warn!(job = job.id, endpoint, %why, "webhook receiver answered 410 Gone; disabling failed, retried");
                Err(JobFailure::Transient(why))
            }
        }
    }
}
