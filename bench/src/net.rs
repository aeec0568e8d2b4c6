//! Lean WebSocket client sockets for the many subscriber connections.
//!
//! The client library's `Connection` uses tungstenite's defaults (a 128 KiB read buffer,
//! allocated eagerly, and a 128 KiB write buffer target), which is fine for a few connections
//! and far too much for 19,000 in one process. These sockets read into a small buffer
//! (`read_buffer` bytes, default [`DEFAULT_READ_BUFFER`]) and write every frame straight out.
//! They can also bind to a chosen local address, so connections spread over several
//! `127.0.0.x` sources when one source's ~28,000 ephemeral ports are not enough.

use std::net::{IpAddr, SocketAddr};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::error::{BenchError, Result};

/// A subscriber socket.
pub type WsStream = WebSocketStream<TcpStream>;

/// Read buffer of a lean socket, in bytes. tungstenite grows it for a larger frame and keeps
/// this much otherwise.
pub const DEFAULT_READ_BUFFER: usize = 4096;

/// How a lean socket is opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SocketOptions {
    /// Local address to bind before connecting (`None`: the kernel chooses).
    pub bind: Option<IpAddr>,
    /// tungstenite's read buffer, in bytes.
    pub read_buffer: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            bind: None,
            read_buffer: DEFAULT_READ_BUFFER,
        }
    }
}

/// Opens a WebSocket to `url` (`ws://host:port/path?query`), offering `subprotocol` if given.
///
/// # Errors
/// Transport and handshake failures, including a refused upgrade (e.g. 503 at a node's
/// connection limit).
pub async fn open(url: &str, subprotocol: Option<&str>, opts: &SocketOptions) -> Result<WsStream> {
    let mut request = url.into_client_request()?;
    if let Some(protocol) = subprotocol {
        let value = HeaderValue::from_str(protocol)
            .map_err(|err| BenchError::Config(format!("bad subprotocol {protocol:?}: {err}")))?;
        request.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    let addr = resolve(url).await?;
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = opts.bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    // Frames are small and latency matters more than packet count.
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(opts.read_buffer.max(256))
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

/// The socket address of `url`'s host and port (default 80).
async fn resolve(url: &str) -> Result<SocketAddr> {
    let uri: tokio_tungstenite::tungstenite::http::Uri = url
        .parse()
        .map_err(|err| BenchError::Config(format!("bad URL {url:?}: {err}")))?;
    let host = uri
        .host()
        .ok_or_else(|| BenchError::Config(format!("URL without a host: {url:?}")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let mut addrs = tokio::net::lookup_host((host.as_str(), port)).await?;
    addrs
        .next()
        .ok_or_else(|| BenchError::Config(format!("{host} does not resolve")))
}

/// Sends one text frame.
pub async fn send_text(ws: &mut WsStream, text: String) -> Result<()> {
    Ok(ws.send(Message::text(text)).await?)
}

/// What a socket read gives.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame (shared bytes, no copy).
    Text(Utf8Bytes),
    /// The connection ended, with the server's close code if it sent one.
    Closed(Option<u16>),
}

/// The next text frame, answering pings on the way.
///
/// # Cancel safety
/// Cancel safe: a frame is either returned or still unread (a pong may be left queued, and
/// goes out with the next write).
pub async fn next_text(ws: &mut WsStream) -> Result<Incoming> {
    loop {
        match ws.next().await {
            None => return Ok(Incoming::Closed(None)),
            Some(Err(err)) => return Err(err.into()),
            Some(Ok(Message::Text(text))) => return Ok(Incoming::Text(text)),
            // tungstenite queued the pong while reading; send it now, not on our next write.
            Some(Ok(Message::Ping(_))) => ws.flush().await?,
            Some(Ok(Message::Close(frame))) => {
                return Ok(Incoming::Closed(frame.map(|f| u16::from(f.code))));
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Waits (bounded) for the first text frame for which `accept` returns `Some`, skipping the
/// others.
///
/// # Errors
/// [`BenchError::Timeout`] after `limit`; [`BenchError::Server`] when the connection closes.
pub async fn wait_for<T>(
    ws: &mut WsStream,
    limit: std::time::Duration,
    what: &str,
    mut accept: impl FnMut(&str) -> Option<Result<T>>,
) -> Result<T> {
    let wait = async {
        loop {
            match next_text(ws).await? {
                Incoming::Text(text) => {
                    if let Some(result) = accept(&text) {
                        return result;
                    }
                }
                Incoming::Closed(code) => {
                    return Err(BenchError::Server(format!(
                        "connection closed (code {code:?}) while waiting for {what}"
                    )))
                }
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .map_err(|_| BenchError::Timeout(what.to_owned()))?
}
