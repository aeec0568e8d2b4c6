//! [`ClientError`], the one error type of this crate.

use switchboard_protocol::error::ErrorBody;
use switchboard_protocol::ErrorCode;
use tokio_tungstenite::tungstenite;

/// Everything a REST call or a WebSocket operation can fail with.
///
/// The server's own refusals keep their stable [`ErrorCode`]: [`ClientError::Api`] for an HTTP
/// answer (or a refused WebSocket upgrade) and [`ClientError::Rejected`] for an `error` frame.
/// [`ClientError::code`] reads the code of either.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered an HTTP request with a non-2xx status and a JSON error body.
    #[error("HTTP {status} {code}: {message}")]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    /// The server answered a WebSocket request with an `error` frame; the connection stays open.
    #[error("{code}: {message}")]
    Rejected { code: ErrorCode, message: String },
    /// Transport failure of an HTTP request (connect, I/O, undecodable 2xx body).
    #[error("HTTP transport: {0}")]
    Http(#[from] reqwest::Error),
    /// WebSocket transport failure. Boxed: the tungstenite error is large and this type is
    /// returned on every call.
    #[error("WebSocket: {0}")]
    Ws(Box<tungstenite::Error>),
    /// The WebSocket connection is closed. `code` is the close code the server sent, `None` when
    /// the connection ended without a close frame.
    #[error("connection closed (code {code:?}): {reason}")]
    Closed { code: Option<u16>, reason: String },
    /// The server sent something this client cannot understand (a frame that is not protocol
    /// JSON, a non-JSON error body, an unexpected reply type).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// No reply within the connection's request timeout.
    #[error("timed out waiting for the server")]
    Timeout,
    /// A [`ReconnectingClient`](crate::ReconnectingClient) send got no answer within its send
    /// timeout, across reconnects. The message may or may not be stored: send it again with the
    /// same `client_msg_id` to find out without creating a duplicate.
    #[error("no ack for client_msg_id {client_msg_id:?} in time; it may or may not be stored")]
    Unacknowledged { client_msg_id: String },
    /// A [`ReconnectingClient`](crate::ReconnectingClient) gave up after `attempts` failed
    /// reconnection attempts in a row; `last` is the last attempt's error.
    #[error("gave up reconnecting after {attempts} attempts: {last}")]
    GaveUp {
        attempts: u32,
        #[source]
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// The server's error code, for [`ClientError::Api`] and [`ClientError::Rejected`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } | Self::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status, for [`ClientError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The close code, for [`ClientError::Closed`] with a close frame.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::Closed { code, .. } => *code,
            _ => None,
        }
    }

    /// Builds the error for a non-2xx HTTP answer from its status and body: [`ClientError::Api`]
    /// when the body is the documented `{"error":{"code","message"}}`, otherwise
    /// [`ClientError::Protocol`] quoting the body.
    pub fn from_http_body(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => Self::Api {
                status,
                code: error.code,
                message: error.message,
            },
            Err(_) => Self::Protocol(format!(
                "HTTP {status} without a JSON error body: {:?}",
                String::from_utf8_lossy(body)
            )),
        }
    }

    /// Reads a non-2xx [`reqwest::Response`] into an error (see [`ClientError::from_http_body`]).
    pub async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(body) => Self::from_http_body(status, &body),
            Err(err) => Self::Http(err),
        }
    }
}

impl From<tungstenite::Error> for ClientError {
    /// Maps "the connection is gone" to [`ClientError::Closed`] (there was no close frame, or it
    /// was already reported) and a refused upgrade with a JSON error body to
    /// [`ClientError::Api`]; everything else stays a [`ClientError::Ws`].
    fn from(err: tungstenite::Error) -> Self {
        use tungstenite::error::ProtocolError;
        match err {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Self::Closed {
                    code: None,
                    reason: err.to_string(),
                }
            }
            tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                Self::Closed {
                    code: None,
                    reason: "connection reset without a close frame".into(),
                }
            }
            tungstenite::Error::Http(ref response) => match response.body() {
                Some(body) if serde_json::from_slice::<ErrorBody>(body).is_ok() => {
                    Self::from_http_body(response.status().as_u16(), body)
                }
                _ => Self::Ws(Box::new(err)),
            },
            other => Self::Ws(Box::new(other)),
        }
    }
}
