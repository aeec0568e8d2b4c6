//! [`WebhookSink`]: a real HTTP receiver for webhook tests, on a free port of 127.0.0.1, that
//! records every request it reads and answers as scripted: 200 by default, the next statuses
//! of [`WebhookSink::answer_next`], or always one status ([`WebhookSink::answer_always`]), or
//! never ([`WebhookSink::hang`]).
//!
//! It reads what a webhook sender sends: a request line, headers and a `Content-Length` body
//! (at most [`MAX_BODY_BYTES`]), one request per connection (it answers with
//! `Connection: close`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Largest body read; a larger request is answered 413 and not recorded.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One request read.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, ...
    pub method: String,
    /// The request target (`/hook?x=1`).
    pub path: String,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The status it was answered with (`None`: left hanging).
    pub status: Option<u16>,
    /// When its body was read.
    pub at: Instant,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Script {
    next: VecDeque<u16>,
    always: Option<u16>,
    hang: bool,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    script: Mutex<Script>,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The receiver. Dropping it stops it.
pub struct WebhookSink {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookSink {
    /// Starts a receiver on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn start() -> WebhookSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook sink");
        let addr = listener.local_addr().expect("an address");
        let state = Arc::new(State::default());
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, serving.clone()));
            }
        });
        WebhookSink { addr, state, task }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request read so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state.requests).clone()
    }

    /// Waits until `done(requests)` holds and returns the requests.
    ///
    /// # Panics
    /// If that takes longer than `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.state.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "the webhook sink did not see {what} in {timeout:?}; it has {} requests: {:#?}",
                    requests.len(),
                    requests
                        .iter()
                        .map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()))
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    /// The next requests are answered with `statuses`, in order (then as before).
    pub fn answer_next(&self, statuses: &[u16]) {
        lock(&self.state.script).next.extend(statuses);
    }

    /// Every request is answered with `status` (`None`: 200 again).
    pub fn answer_always(&self, status: Option<u16>) {
        lock(&self.state.script).always = status;
    }

    /// Requests are read and recorded but never answered (the connection stays open) while on.
    pub fn hang(&self, on: bool) {
        lock(&self.state.script).hang = on;
    }
}

async fn serve(stream: TcpStream, state: Arc<State>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await.unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if length > MAX_BODY_BYTES {
        let _ = respond(&mut reader, 413).await;
        return;
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).await.is_err() {
        return;
    }
    let status = {
        let mut script = lock(&state.script);
        if script.hang {
            None
        } else {
            Some(script.next.pop_front().or(script.always).unwrap_or(200))
        }
    };
    lock(&state.requests).push(Request {
        method,
        path,
        headers,
        body,
        status,
        at: Instant::now(),
    });
    state.changed.notify_waiters();
    match status {
        Some(status) => {
            let _ = respond(&mut reader, status).await;
        }
        None => {
            // Hold the connection open until the sender gives up.
            let mut sink = [0u8; 1024];
            while reader.read(&mut sink).await.unwrap_or(0) > 0 {}
        }
    }
}

async fn respond(reader: &mut BufReader<TcpStream>, status: u16) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Length: 2\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok"
    );
    reader.get_mut().write_all(response.as_bytes()).await?;
    reader.get_mut().shutdown().await
}
