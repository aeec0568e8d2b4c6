//! [`Connection`]: one WebSocket connection to `/v1/ws` speaking protocol v1.
//!
//! Requests and events share one socket. [`Connection::request`] sends a frame with an `id` and
//! reads until the reply with that `id`; everything else it reads on the way (events, stray
//! replies) is queued, and [`Connection::next_event`] hands the queue out first, in arrival order.
//! Nothing is ever dropped, so a caller sees the same sequence of events whether or not it made
//! requests in between.
//!
//! This module holds the connection itself and its raw frame I/O; `requests` adds one typed
//! helper per request frame (`subscribe`, `send_message`, `history`, ...).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_protocol::rest::User;
use switchboard_protocol::ws::{ClientFrame, FrameId, ServerFrame};
use switchboard_protocol::SUBPROTOCOL;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ClientError;

mod requests;

/// How long [`Connection::request`] (and the helpers built on it) waits for a reply before it
/// gives up with [`ClientError::Timeout`]. Change it with [`Connection::set_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's answer to `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The session id: the token's `sid`, or `anon-<uuid>` for an anonymous connection.
    pub session: String,
    /// The authenticated user; `None` when anonymous.
    pub user: Option<User>,
    /// Interval of the server's WebSocket pings.
    pub heartbeat_ms: u64,
}

/// One WebSocket connection. Not reconnecting: once it reports [`ClientError::Closed`] it is
/// done, and the caller opens a new one (resuming rooms with `since`).
///
/// WebSocket pings are answered while reading, so a connection stays alive only while someone
/// reads from it ([`Connection::next_event`], [`Connection::request`], ...).
pub struct Connection {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while waiting for a reply that were not that reply, oldest first.
    events: VecDeque<ServerFrame>,
    /// Last id assigned by [`Connection::request`]; ids are 1, 2, 3, ... per connection.
    last_id: u64,
    timeout: Duration,
    /// The subprotocol the server selected, if any.
    subprotocol: Option<String>,
    /// When the socket last gave us anything (data, ping, pong, close), for dead-link detection.
    last_heard: Instant,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("subprotocol", &self.subprotocol)
            .field("queued_events", &self.events.len())
            .field("last_id", &self.last_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `ws_url` (e.g. `ws://127.0.0.1:8080/v1/ws`) offering `switchboard.v1`, sends
    /// `hello` with `token` (`None`: anonymous, public rooms read-only) and waits for `welcome`.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `unauthorized` for a refused token (the server then closes
    /// with 1008); [`ClientError::Api`] when the upgrade itself is refused (e.g. 403 for a
    /// foreign `Origin`); transport errors otherwise.
    pub async fn connect(
        ws_url: &str,
        token: Option<&str>,
    ) -> Result<(Connection, Welcome), ClientError> {
        let mut conn = Self::connect_raw(ws_url, &[]).await?;
        let welcome = conn.hello(token).await?;
        Ok((conn, welcome))
    }

    /// Opens the WebSocket without sending `hello`, offering `switchboard.v1` (unless `headers`
    /// name their own `Sec-WebSocket-Protocol`) and adding `headers` (e.g. `Origin`,
    /// `Authorization`) to the upgrade request. For tests and tools that drive the handshake
    /// themselves; follow with [`Connection::hello`] for the normal flow.
    pub async fn connect_raw(
        ws_url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Connection, ClientError> {
        let mut request = ws_url.into_client_request()?;
        let offers_own = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(SEC_WEBSOCKET_PROTOCOL.as_str()));
        if !offers_own {
            request.headers_mut().insert(
                SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(SUBPROTOCOL),
            );
        }
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(http_format)?;
            let value = HeaderValue::from_str(value).map_err(http_format)?;
            request.headers_mut().append(name, value);
        }
        Self::connect_request(request).await
    }

    /// Opens a WebSocket with exactly `request` (no subprotocol added): for endpoints other than
    /// `/v1/ws`, such as the echo endpoint, or to test a client that offers no subprotocol.
    pub async fn connect_request(
        request: impl IntoClientRequest + Unpin,
    ) -> Result<Connection, ClientError> {
        // Nagle off: frames are small and latency matters more than packet count.
        let (socket, response) =
            tokio_tungstenite::connect_async_with_config(request, None, true).await?;
        let subprotocol = response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(Connection {
            socket,
            events: VecDeque::new(),
            last_id: 0,
            last_heard: Instant::now(),
            timeout: DEFAULT_TIMEOUT,
            subprotocol,
        })
    }

    /// The subprotocol the server selected on the upgrade, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// When the connection last received anything from the server, pings included (the
    /// connection's start before that). Pings are read, and this moves, only while someone
    /// reads.
    pub fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// Sets how long a request waits for its reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `hello` and waits for `welcome`. Must be the first frame of a connection opened
    /// with [`Connection::connect_raw`].
    pub async fn hello(&mut self, token: Option<&str>) -> Result<Welcome, ClientError> {
        let frame = ClientFrame::Hello {
            id: None,
            token: token.map(Into::into),
        };
        match self.request(frame).await? {
            ServerFrame::Welcome {
                session,
                user,
                heartbeat_ms,
                ..
            } => Ok(Welcome {
                session,
                user,
                heartbeat_ms,
            }),
            other => Err(unexpected(other)),
        }
    }

    // --- raw frames -----------------------------------------------------------------------

    /// Sends one client frame as a JSON text message. Does not wait for anything.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        let text = frame.to_json();
        tracing::trace!(frame = %text, "send");
        self.send_raw(WsMessage::text(text)).await
    }

    /// Sends any WebSocket message, including a hand-built `Message::Frame` (which may break
    /// the protocol on purpose, e.g. a text frame that is not UTF-8).
    pub async fn send_raw(&mut self, message: WsMessage) -> Result<(), ClientError> {
        Ok(self.socket.send(message).await?)
    }

    /// Reads the next data message (text or binary) from the socket, answering pings and
    /// skipping pongs. Ignores the event queue; see [`Connection::next_event`].
    ///
    /// # Errors
    /// [`ClientError::Closed`] with the server's code and reason on a close frame, or without a
    /// code when the connection ended without one.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is either returned or still unread.
    pub async fn next_message(&mut self) -> Result<WsMessage, ClientError> {
        loop {
            let message = self.socket.next().await;
            self.last_heard = Instant::now();
            let message = match message {
                Some(message) => message?,
                None => {
                    return Err(ClientError::Closed {
                        code: None,
                        reason: "connection ended".into(),
                    })
                }
            };
            match message {
                // tungstenite queued the pong while reading; flush it out now rather than on
                // our next write, which may be far away.
                WsMessage::Ping(_) => self.socket.flush().await?,
                WsMessage::Pong(_) | WsMessage::Frame(_) => {}
                WsMessage::Close(frame) => {
                    // Best effort: send tungstenite's queued close reply to finish the handshake.
                    let _ = self.socket.flush().await;
                    return Err(match frame {
                        Some(frame) => ClientError::Closed {
                            code: Some(frame.code.into()),
                            reason: frame.reason.to_string(),
                        },
                        None => ClientError::Closed {
                            code: None,
                            reason: "close frame without a code".into(),
                        },
                    });
                }
                data => return Ok(data),
            }
        }
    }

    /// Reads the next protocol frame from the socket, ignoring the event queue. Most callers
    /// want [`Connection::next_event`].
    ///
    /// # Errors
    /// As [`Connection::next_message`], plus [`ClientError::Protocol`] for a message that is not
    /// a JSON server frame.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn next_frame(&mut self) -> Result<ServerFrame, ClientError> {
        match self.next_message().await? {
            WsMessage::Text(text) => {
                tracing::trace!(frame = %text, "receive");
                serde_json::from_str(&text).map_err(|err| {
                    ClientError::Protocol(format!("undecodable server frame ({err}): {text}"))
                })
            }
            WsMessage::Binary(bytes) => Err(ClientError::Protocol(format!(
                "unexpected binary message of {} bytes",
                bytes.len()
            ))),
            other => Err(ClientError::Protocol(format!(
                "unexpected message {other:?}"
            ))),
        }
    }

    /// The next event: first whatever a request queued while it waited, then the socket.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn next_event(&mut self) -> Result<ServerFrame, ClientError> {
        match self.events.pop_front() {
            Some(frame) => Ok(frame),
            None => self.next_frame().await,
        }
    }

    /// Sends `frame` (with a fresh numeric `id` if it has none) and returns the reply with that
    /// `id`, which may be an `error` frame. An `error` frame without `id` also counts as the
    /// reply: the server sends those when it could not read the request's id. Every other frame
    /// read meanwhile is queued for [`Connection::next_event`].
    ///
    /// Only for frames that get a reply: a successful `typing` gets none, so use
    /// [`Connection::typing`] (or [`Connection::send`]) for it.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when no reply comes within the timeout; the connection stays
    /// usable and a late reply is queued like an event.
    pub async fn request(&mut self, mut frame: ClientFrame) -> Result<ServerFrame, ClientError> {
        let id = self.assign_id(&mut frame);
        self.send(&frame).await?;
        self.reply_to(&id, Some).await
    }

    /// Closes with 1000 and waits (up to the timeout) for the server to finish the handshake.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        self.socket.close(Some(frame)).await?;
        let timeout = self.timeout;
        let drain = async {
            loop {
                match self.socket.next().await {
                    None
                    | Some(Err(
                        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                    )) => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Err(err.into()),
                }
            }
        };
        tokio::time::timeout(timeout, drain)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    // --- plumbing -------------------------------------------------------------------------

    /// Gives `frame` the next numeric id unless it has one; returns its id.
    pub(super) fn assign_id(&mut self, frame: &mut ClientFrame) -> FrameId {
        let slot = match frame {
            ClientFrame::Hello { id, .. }
            | ClientFrame::Sub { id, .. }
            | ClientFrame::Unsub { id, .. }
            | ClientFrame::Send { id, .. }
            | ClientFrame::Typing { id, .. }
            | ClientFrame::History { id, .. }
            | ClientFrame::Read { id, .. }
            | ClientFrame::Ping { id } => id,
        };
        slot.get_or_insert_with(|| {
            self.last_id += 1;
            FrameId::Num(self.last_id)
        })
        .clone()
    }

    /// Reads until the reply to `id`. Each other frame is offered to `other`, and the frames it
    /// gives back are queued for [`Connection::next_event`].
    pub(super) async fn reply_to(
        &mut self,
        id: &FrameId,
        mut other: impl FnMut(ServerFrame) -> Option<ServerFrame>,
    ) -> Result<ServerFrame, ClientError> {
        let timeout = self.timeout;
        let wait = async {
            loop {
                let frame = self.next_frame().await?;
                if is_reply_to(&frame, id) {
                    return Ok(frame);
                }
                if let Some(frame) = other(frame) {
                    self.events.push_back(frame);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout)?
    }
}

/// Whether `frame` answers the request with `id` (see [`Connection::request`] for id-less
/// errors).
fn is_reply_to(frame: &ServerFrame, id: &FrameId) -> bool {
    let reply_id = match frame {
        ServerFrame::Welcome { id, .. }
        | ServerFrame::Subbed { id, .. }
        | ServerFrame::Unsubbed { id, .. }
        | ServerFrame::Ack { id, .. }
        | ServerFrame::History { id, .. }
        | ServerFrame::ReadOk { id, .. }
        | ServerFrame::Pong { id }
        | ServerFrame::Error { id, .. } => id.as_ref(),
        ServerFrame::Message(_)
        | ServerFrame::Edited { .. }
        | ServerFrame::Deleted { .. }
        | ServerFrame::MemberJoined { .. }
        | ServerFrame::MemberLeft { .. }
        | ServerFrame::Presence { .. }
        | ServerFrame::Typing { .. }
        | ServerFrame::Read { .. }
        | ServerFrame::Emoticons { .. } => return false,
    };
    match reply_id {
        Some(reply_id) => reply_id == id,
        None => matches!(frame, ServerFrame::Error { .. }),
    }
}

/// The error for a reply of the wrong type: the server's refusal, or a protocol violation.
pub(super) fn unexpected(frame: ServerFrame) -> ClientError {
    match frame {
        ServerFrame::Error { code, message, .. } => ClientError::Rejected { code, message },
        other => ClientError::Protocol(format!("unexpected reply {other:?}")),
    }
}

/// A caller-supplied header that is not valid HTTP.
fn http_format(err: impl Into<tungstenite::http::Error>) -> ClientError {
    tungstenite::Error::HttpFormat(err.into()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::ErrorCode;

    #[test]
    fn replies_match_by_id_and_idless_errors_match_any_request() {
        let id = FrameId::Num(7);
        let pong = |id| ServerFrame::Pong { id };
        assert!(is_reply_to(&pong(Some(FrameId::Num(7))), &id));
        assert!(!is_reply_to(&pong(Some(FrameId::Num(8))), &id));
        assert!(!is_reply_to(&pong(None), &id));
        let idless_error = ServerFrame::error(None, ErrorCode::BadRequest, "bad");
        assert!(is_reply_to(&idless_error, &id));
        let event = ServerFrame::Typing {
            room: "r".into(),
            user: "u".into(),
        };
        assert!(!is_reply_to(&event, &id));
    }

    #[test]
    fn error_replies_become_rejected() {
        let err = unexpected(ServerFrame::error(None, ErrorCode::Forbidden, "no"));
        assert_eq!(err.code(), Some(ErrorCode::Forbidden));
        assert!(matches!(err, ClientError::Rejected { .. }));
        let err = unexpected(ServerFrame::Pong { id: None });
        assert!(matches!(err, ClientError::Protocol(_)));
    }
}
