//! [`BenchError`], the one error type of the library.

use switchboard_client::ClientError;
use tokio_tungstenite::tungstenite;

/// Everything a scenario can fail with. The binary adds context with `anyhow`.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A Switchboard REST call or client-library WebSocket operation failed.
    #[error("switchboard client: {0}")]
    Client(#[from] ClientError),
    /// A lean WebSocket (subscriber sockets, Pusher) failed. Boxed: the error is large.
    #[error("WebSocket: {0}")]
    Ws(Box<tungstenite::Error>),
    /// An HTTP request of the Pusher API failed in transport.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The server answered something the bench did not expect (a refusal, a wrong frame).
    #[error("unexpected answer from the server: {0}")]
    Server(String),
    /// A bounded wait ran out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A worker process misbehaved (exited early, wrote something that is not a result).
    #[error("worker: {0}")]
    Worker(String),
    /// Options that cannot work together, or a scenario the target does not support.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading `/proc` failed or its text did not parse.
    #[error("/proc: {0}")]
    Proc(String),
}

impl From<tungstenite::Error> for BenchError {
    fn from(err: tungstenite::Error) -> Self {
        Self::Ws(Box::new(err))
    }
}

/// The library's result type.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
