//! How the hub accepts and serves TCP connections: our own accept loop over hyper's HTTP/1
//! connection (with upgrades, for WebSockets) instead of `axum::serve`, so that no client can
//! hold the node's sockets or descriptors for free.
//!
//! - **Timeouts.** hyper's `header_read_timeout` (`--header-read-timeout-ms`) bounds the wait
//!   for a complete request head. Its timer starts when hyper begins reading a head: at the
//!   accept and again whenever a keep-alive connection finishes a response; so it covers a
//!   connection that never sends a byte, a half-sent head, and an idle keep-alive connection.
//!   Our watchdog adds `--keep-alive-timeout-ms`, the shorter bound on the idle spell between a
//!   response and the next request's first byte (hyper has no separate idle timer).
//! - **Cap.** At most `--max-http-connections` connections that are not WebSockets; a new one
//!   evicts the connection that has waited longest for a request head, or else one whose request
//!   has been busy longer than the header-read timeout (a trickling body; see [`conns`]), so a
//!   fresh `/healthz` is served while an attacker holds idle, half-sent or slow connections.
//! - **Descriptors.** One descriptor is kept in reserve. When `accept` fails for lack of
//!   descriptors, the longest-waiting HTTP connection is evicted and the reserve given up, so the
//!   waiting client is accepted into it; without a reserve the loop backs off (5 ms doubling to
//!   1 s) instead of spinning, and logs at most one warning a second.
//! - **Client address.** [`ClientIp`] goes into every request's extensions: the TCP peer, or the
//!   address in the PROXY protocol header of a trusted load balancer (`--proxy-protocol-from`,
//!   see [`proxy_header`]).
//! - **Shutdown.** When `shutdown` resolves the listener closes, idle connections close and busy
//!   ones finish their response (hyper's graceful shutdown) within `--shutdown-grace-ms`; the rest
//!   are then closed.

pub(crate) mod conns;
mod io;
pub(crate) mod proxy_header;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use switchboard_auth::ClientIp;
use switchboard_kit::backoff::Backoff;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use self::conns::{now_ms, Admission, GuardedBody, HttpConns, HttpSlot};
use crate::config::Config;

/// Pauses after accept errors that are not resolved at once: 5 ms doubling to 1 s (jittered).
const ACCEPT_BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(5), Duration::from_secs(1));
/// At most one accept-error warning per this interval (the others are counted into it).
const ERROR_LOG_EVERY: Duration = Duration::from_secs(1);
/// `EMFILE` and `ENFILE`: out of descriptors (the same numbers on Linux and the BSDs).
const FD_EXHAUSTED: [i32; 2] = [24, 23];

/// The accept loop's settings, from [`Config`].
pub(crate) struct Options {
    pub(crate) header_read_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) max_http_connections: usize,
    pub(crate) proxy_protocol_from: Vec<IpNet>,
    pub(crate) grace: Duration,
}

impl Options {
    pub(crate) fn from_config(cfg: &Config) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(cfg.header_read_timeout_ms.max(1)),
            keep_alive_timeout: Duration::from_millis(cfg.keep_alive_timeout_ms.max(1)),
            max_http_connections: cfg.max_http_connections,
            proxy_protocol_from: cfg.proxy_protocol_from.clone(),
            grace: Duration::from_millis(cfg.shutdown_grace_ms),
        }
    }
}

/// What every connection task shares.
struct Ctx {
    router: Router,
    http: http1::Builder,
    opts: Options,
}

impl Ctx {
    /// Whether `peer` (canonical, see [`proxy_header::canonical`]) is a trusted load balancer.
    fn trusts(&self, peer: IpAddr) -> bool {
        self.opts
            .proxy_protocol_from
            .iter()
            .any(|n| n.contains(&peer))
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down as the module doc
/// says and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout);
    let table = HttpConns::new(opts.max_http_connections, opts.header_read_timeout);
    let grace = opts.grace;
    let ctx = Arc::new(Ctx { router, http, opts });
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut reserve = FdReserve::open();
    let mut retries = ACCEPT_BACKOFF.retries();
    let mut errors = ErrorLog::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let pause = match accepted {
            Ok((stream, peer)) => {
                retries.reset();
                reserve.refill();
                match table.admit() {
                    Admission::Admitted { slot, evicted } => {
                        if evicted {
                            tracing::debug!("HTTP connection cap: closed the longest-waiting one");
                        }
                        tasks.spawn(serve_conn(stream, peer, slot, ctx.clone(), stop.clone()));
                    }
                    Admission::Full => {
                        tracing::debug!(%peer, "HTTP connection cap, all busy: closed the new one");
                    }
                }
                continue;
            }
            Err(e) if e.raw_os_error().is_some_and(|n| FD_EXHAUSTED.contains(&n)) => {
                // Free a descriptor for the reserve, and let the waiting client have this one.
                let evicted = table.evict_oldest();
                errors.note(&e, evicted);
                if reserve.release() {
                    continue;
                }
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                // The client gave up while queued: nothing is wrong with the listener.
                false
            }
            Err(e) => {
                errors.note(&e, false);
                true
            }
        };
        if pause {
            tokio::select! {
                () = &mut shutdown => break,
                () = retries.wait() => {}
            }
        }
    }
    drop(listener);
    stop.cancel();
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!(
            open = table.len(),
            "HTTP connections still open after the grace period; closing them"
        );
        table.close_all();
        tasks.wait().await;
    }
}

/// Serves one accepted connection until it ends, is upgraded, evicted, or idle too long.
async fn serve_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    slot: HttpSlot,
    ctx: Arc<Ctx>,
    stop: CancellationToken,
) {
    let state = slot.state.clone();
    let peer_ip = proxy_header::canonical(peer.ip());
    let (ip, prefix) = if ctx.trusts(peer_ip) {
        let header = tokio::time::timeout(
            ctx.opts.header_read_timeout,
            proxy_header::read(&mut stream),
        );
        tokio::select! {
            read = header => match read {
                Ok(Ok((client, rest))) => (client.unwrap_or(peer_ip), rest),
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "PROXY header refused"),
                Err(_) => return tracing::debug!(%peer, "no PROXY header in time"),
            },
            () = state.evicted() => return,
            () = stop.cancelled() => return,
        }
    } else {
        (peer_ip, Bytes::new())
    };
    let io = TokioIo::new(io::Tracked::new(stream, prefix, state.clone()));
    let (router, busy) = (ctx.router.clone(), state.clone());
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ClientIp(ip));
        let guard = busy.begin_request();
        let call = router.clone().oneshot(req);
        async move {
            let response = call.await?;
            Ok::<_, Infallible>(response.map(|body| GuardedBody::new(body, guard)))
        }
    });
    let conn = ctx.http.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let keep_alive = ctx.opts.keep_alive_timeout.as_millis() as u64;
    let mut graceful = false;
    loop {
        // The watchdog: wake when the current idle spell would reach the bound (or a full
        // bound from now if the connection is not idle), and close if it has.
        let idle = state.idle_for(now_ms());
        if idle.is_some_and(|i| i >= keep_alive) {
            return tracing::trace!(%ip, "keep-alive connection idle too long");
        }
        let wake = Duration::from_millis(keep_alive - idle.unwrap_or(0));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%ip, error = %e, "HTTP connection ended");
                }
                return;
            }
            () = state.evicted() => return tracing::debug!(%ip, "HTTP connection evicted"),
            () = stop.cancelled(), if !graceful => {
                conn.as_mut().graceful_shutdown();
                graceful = true;
            }
            () = tokio::time::sleep(wake) => {}
        }
    }
}

/// One spare descriptor, given up when `accept` runs out of them.
struct FdReserve(Option<std::fs::File>);

impl FdReserve {
    fn open() -> Self {
        let mut reserve = Self(None);
        reserve.refill();
        reserve
    }

    /// Takes the spare back if a descriptor is free.
    fn refill(&mut self) {
        if self.0.is_none() {
            self.0 = std::fs::File::open("/dev/null").ok();
        }
    }

    /// Closes the spare; false if there was none.
    fn release(&mut self) -> bool {
        self.0.take().is_some()
    }
}

/// Accept errors, logged at most once per [`ERROR_LOG_EVERY`].
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn note(&mut self, e: &std::io::Error, evicted: bool) {
        if self.last.is_some_and(|t| t.elapsed() < ERROR_LOG_EVERY) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            error = %e,
            also = self.suppressed,
            evicted,
            "accept error (further ones within a second are counted in the next warning)"
        );
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}
