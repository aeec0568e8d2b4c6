//! The WebSocket transport shared by `/v1/ws` and the echo endpoint: whole messages in
//! (fragment reassembly with a size limit, fail-fast UTF-8 checks, control frames), and the
//! mapping of every transport failure to its close code.
//!
//! fastwebsockets parses frames; its `read_frame` is **not** cancel-safe (a frame header can be
//! half consumed), so a [`MessageReader`] is only ever polled from one future that is never
//! dropped mid-read while the connection lives (see `conn.rs`).

use fastwebsockets::{Frame, OpCode, WebSocketError, WebSocketRead};
use switchboard_protocol::close;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::registry::Out;

/// A complete message or a control event from the peer.
#[derive(Debug)]
pub enum Incoming {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    /// A pong (answer to our ping): the peer is alive.
    Pong,
    /// The peer sent a close frame; the echo is already queued.
    Close,
}

/// Why the transport gave up; [`TransportError::close_code`] says what to tell the peer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("message over {0} bytes")]
    TooBig(usize),
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    #[error("protocol violation: {0}")]
    Protocol(WebSocketError),
    #[error("connection lost: {0}")]
    Io(WebSocketError),
}

impl TransportError {
    /// The close code to send, or `None` when the connection is already gone.
    pub fn close_code(&self) -> Option<(u16, &'static str)> {
        match self {
            Self::TooBig(_) => Some((close::TOO_BIG, "message too big")),
            Self::InvalidUtf8 => Some((close::INVALID_UTF8, "invalid UTF-8")),
            Self::Protocol(_) => Some((close::PROTOCOL_ERROR, "protocol error")),
            Self::Io(_) => None,
        }
    }
}

impl From<WebSocketError> for TransportError {
    fn from(e: WebSocketError) -> Self {
        match e {
            WebSocketError::InvalidUTF8 => Self::InvalidUtf8,
            WebSocketError::FrameTooLarge => Self::TooBig(0),
            // `MaskGuard` reports an unmasked client frame as `InvalidData`.
            WebSocketError::IoError(ref io) if io.kind() == std::io::ErrorKind::InvalidData => {
                Self::Protocol(e)
            }
            WebSocketError::IoError(_)
            | WebSocketError::UnexpectedEOF
            | WebSocketError::ConnectionClosed
            | WebSocketError::SendError(_) => Self::Io(e),
            other => Self::Protocol(other),
        }
    }
}

/// Largest payload of a control frame (RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// A message being reassembled from fragments.
struct Partial {
    opcode: OpCode,
    buf: Vec<u8>,
    /// `buf[..utf8_checked]` is known to be valid UTF-8 (text only).
    utf8_checked: usize,
}

/// Reads whole messages, enforcing `max_message` on the reassembled size.
pub struct MessageReader<S> {
    ws: WebSocketRead<S>,
    max_message: usize,
    partial: Option<Partial>,
}

impl<S: AsyncRead + Unpin> MessageReader<S> {
    /// Wraps the read half. Pings are answered and close frames echoed through the owner's
    /// outbound queue (`Out::Frame`), so they are written in order with everything else.
    pub fn new(mut ws: WebSocketRead<S>, max_message: usize) -> Self {
        ws.set_auto_pong(true);
        ws.set_auto_close(true);
        // fastwebsockets rejects a frame when `len >= max`; we allow exactly `max_message`.
        ws.set_max_message_size(max_message.saturating_add(1));
        Self {
            ws,
            max_message,
            partial: None,
        }
    }

    /// The next complete message or control event.
    ///
    /// # Cancel safety
    /// Not cancel-safe: dropping the future may lose part of a frame. Poll it from a future that
    /// lives as long as the connection.
    pub async fn next(&mut self, out: &mpsc::Sender<Out>) -> Result<Incoming, TransportError> {
        loop {
            let mut send = |f: Frame<'_>| {
                // A close payload over 125 bytes is itself a protocol violation (RFC 6455 5.5):
                // answer 1002 instead of echoing it.
                let item = if f.opcode == OpCode::Close && f.payload.len() > MAX_CONTROL_PAYLOAD {
                    Out::Close {
                        code: close::PROTOCOL_ERROR,
                        reason: "protocol error",
                    }
                } else {
                    Out::Frame {
                        opcode: f.opcode,
                        payload: f.payload.to_vec(),
                    }
                };
                let out = out.clone();
                async move {
                    out.send(item)
                        .await
                        .map_err(|_| std::io::Error::other("writer gone"))
                }
            };
            let frame = self.ws.read_frame(&mut send).await?;
            match frame.opcode {
                OpCode::Close => return Ok(Incoming::Close),
                OpCode::Pong => return Ok(Incoming::Pong),
                OpCode::Ping => continue,
                OpCode::Text | OpCode::Binary => {
                    if self.partial.is_some() {
                        return Err(TransportError::Protocol(WebSocketError::InvalidFragment));
                    }
                    let payload: Vec<u8> = frame.payload.to_vec();
                    if frame.fin {
                        // fastwebsockets has validated UTF-8 of unfragmented text frames.
                        return Ok(if frame.opcode == OpCode::Text {
                            Incoming::Text(payload)
                        } else {
                            Incoming::Binary(payload)
                        });
                    }
                    let mut p = Partial {
                        opcode: frame.opcode,
                        buf: payload,
                        utf8_checked: 0,
                    };
                    check_utf8(&mut p, false)?;
                    self.partial = Some(p);
                }
                OpCode::Continuation => {
                    let Some(p) = self.partial.as_mut() else {
                        return Err(TransportError::Protocol(
                            WebSocketError::InvalidContinuationFrame,
                        ));
                    };
                    if p.buf.len() + frame.payload.len() > self.max_message {
                        return Err(TransportError::TooBig(self.max_message));
                    }
                    p.buf.extend_from_slice(&frame.payload);
                    check_utf8(p, frame.fin)?;
                    if frame.fin {
                        let p = self.partial.take().expect("partial present");
                        return Ok(if p.opcode == OpCode::Text {
                            Incoming::Text(p.buf)
                        } else {
                            Incoming::Binary(p.buf)
                        });
                    }
                }
            }
        }
    }
}

/// Validates the unchecked tail of a text message, failing fast on an invalid sequence; an
/// incomplete sequence at the end is only an error when the message is complete.
fn check_utf8(p: &mut Partial, fin: bool) -> Result<(), TransportError> {
    if p.opcode != OpCode::Text {
        return Ok(());
    }
    match std::str::from_utf8(&p.buf[p.utf8_checked..]) {
        Ok(_) => {
            p.utf8_checked = p.buf.len();
            Ok(())
        }
        Err(e) if e.error_len().is_some() || fin => Err(TransportError::InvalidUtf8),
        Err(e) => {
            p.utf8_checked += e.valid_up_to();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(bytes: &[u8]) -> Partial {
        Partial {
            opcode: OpCode::Text,
            buf: bytes.to_vec(),
            utf8_checked: 0,
        }
    }

    #[test]
    fn utf8_split_across_fragments_is_accepted() {
        let euro = "€".as_bytes(); // 3 bytes
        let mut p = partial(&euro[..1]);
        assert!(check_utf8(&mut p, false).is_ok());
        p.buf.extend_from_slice(&euro[1..]);
        assert!(check_utf8(&mut p, true).is_ok());
    }

    #[test]
    fn invalid_utf8_fails_fast_and_truncated_fails_at_end() {
        assert!(check_utf8(&mut partial(b"ok\xff"), false).is_err());
        assert!(check_utf8(&mut partial(&"€".as_bytes()[..2]), true).is_err());
    }
}
