//! The WebSocket transport shared by `/v1/ws` and the echo endpoint: whole messages in
//! (fragment reassembly with a size limit, fail-fast UTF-8 checks, control frames), and the
//! mapping of every transport failure to its close code.
//!
//! Frames come from [`super::frame::FrameReader`]; a [`MessageReader`] is only ever polled from
//! one future that is never dropped mid-read while the connection lives (see `conn.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard_protocol::close;
use tokio::io::AsyncRead;
use tokio::time::Instant;

use super::frame::{close_code_allowed, FrameError, FrameReader, OpCode};
use crate::fanout::outbox::Sender;
use crate::fanout::registry::Out;

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
    Protocol(&'static str),
    #[error("a fragmented message stayed unfinished for over {0:?}")]
    FragmentTimeout(Duration),
    #[error("the node holds its most bytes of unfinished fragmented messages")]
    ReassemblyFull,
    #[error("connection lost: {0}")]
    Io(std::io::Error),
}

impl TransportError {
    /// The close code to send, or `None` when the connection is already gone.
    pub fn close_code(&self) -> Option<(u16, &'static str)> {
        match self {
            Self::TooBig(_) => Some((close::TOO_BIG, "message too big")),
            Self::InvalidUtf8 => Some((close::INVALID_UTF8, "invalid UTF-8")),
            Self::Protocol(_) => Some((close::PROTOCOL_ERROR, "protocol error")),
            Self::FragmentTimeout(_) => Some((close::POLICY, "fragmented message unfinished")),
            Self::ReassemblyFull => Some((close::TRY_AGAIN_LATER, "too many unfinished messages")),
            Self::Io(_) => None,
        }
    }
}

impl From<FrameError> for TransportError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooBig(max) => Self::TooBig(max),
            FrameError::Protocol(what) => Self::Protocol(what),
            FrameError::Io(io) => Self::Io(io),
        }
    }
}

/// The node's bounds on unfinished fragmented messages: how long one may stay unfinished (from
/// its first fragment), and how many bytes all of them together may hold. Without them a peer
/// that sends a first fragment and then only pongs holds up to `--max-frame-bytes` for as long
/// as it likes, on every connection it opens.
///
/// **Invariant:** `held` is the sum of the bytes of every [`Held`] alive; a reservation over
/// `max_bytes` is refused, never granted in part.
#[derive(Debug)]
pub struct FragmentLimits {
    timeout: Duration,
    max_bytes: usize,
    held: AtomicUsize,
}

impl FragmentLimits {
    /// Messages unfinished for over `timeout` close their connection with 1008; a fragment that
    /// takes the node's unfinished bytes over `max_bytes` closes its connection with 1013.
    pub fn new(timeout: Duration, max_bytes: usize) -> Self {
        Self {
            timeout,
            max_bytes,
            held: AtomicUsize::new(0),
        }
    }

    /// No bound (for tests and tools).
    pub fn unbounded() -> Self {
        Self::new(Duration::MAX, usize::MAX)
    }

    /// Bytes of unfinished messages held now, over the node.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Adds `n` bytes to `held` unless that goes over the bound.
    fn reserve(self: &Arc<Self>, held: &mut Option<Held>, n: usize) -> Result<(), TransportError> {
        let max = self.max_bytes;
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                h.checked_add(n).filter(|total| *total <= max)
            })
            .map_err(|_| TransportError::ReassemblyFull)?;
        match held {
            Some(h) => h.bytes += n,
            None => {
                *held = Some(Held {
                    limits: self.clone(),
                    bytes: n,
                })
            }
        }
        Ok(())
    }
}

/// Bytes one unfinished message holds against [`FragmentLimits`]; given back when dropped
/// (the message completed, or the connection ended).
#[derive(Debug)]
struct Held {
    limits: Arc<FragmentLimits>,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.limits.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A message being reassembled from fragments.
struct Partial {
    opcode: OpCode,
    buf: Vec<u8>,
    /// `buf[..utf8_checked]` is known to be valid UTF-8 (text only).
    utf8_checked: usize,
    /// When it must be complete (with fragment limits).
    deadline: Option<Instant>,
    /// Its bytes, counted against the node's limit (with fragment limits).
    held: Option<Held>,
}

/// Reads whole messages, enforcing `max_message` on the reassembled size.
pub struct MessageReader<S> {
    frames: FrameReader<S>,
    max_message: usize,
    partial: Option<Partial>,
    /// The node's bounds on unfinished messages; `None`: unbounded (the echo endpoint).
    limits: Option<Arc<FragmentLimits>>,
}

impl<S: AsyncRead + Unpin> MessageReader<S> {
    /// Reads from `io`, positioned right after the upgrade. Pings are answered and close
    /// frames echoed through the owner's outbound queue (`Out::Frame`), so they are written in
    /// order with everything else.
    pub fn new(io: S, max_message: usize) -> Self {
        Self {
            frames: FrameReader::new(io, max_message),
            max_message,
            partial: None,
            limits: None,
        }
    }

    /// Applies the node's bounds on unfinished fragmented messages.
    pub fn with_fragment_limits(mut self, limits: Arc<FragmentLimits>) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The next frame; with a message unfinished, only until its deadline.
    async fn read_frame(&mut self) -> Result<super::frame::Frame, TransportError> {
        let Some(deadline) = self.partial.as_ref().and_then(|p| p.deadline) else {
            return Ok(self.frames.read_frame().await?);
        };
        // Boxed: only a connection in the middle of a message pays for the timer.
        match Box::pin(tokio::time::timeout_at(deadline, self.frames.read_frame())).await {
            Ok(frame) => Ok(frame?),
            Err(_) => Err(TransportError::FragmentTimeout(
                self.limits.as_ref().map_or(Duration::MAX, |l| l.timeout),
            )),
        }
    }

    /// The next complete message or control event.
    ///
    /// # Cancel safety
    /// Not cancel-safe: a message half reassembled survives, but a control frame's answer may
    /// be lost. Poll it from a future that lives as long as the connection.
    pub async fn next(&mut self, out: &Sender<Out>) -> Result<Incoming, TransportError> {
        loop {
            let frame = self.read_frame().await?;
            match frame.opcode {
                OpCode::Close => {
                    let echo = close_echo(frame.payload)?;
                    // If the writer is gone, the connection is over anyway.
                    // Control frames are rare: their sends are boxed to keep this future small.
                    let _ = Box::pin(out.send(echo)).await;
                    return Ok(Incoming::Close);
                }
                OpCode::Pong => return Ok(Incoming::Pong),
                OpCode::Ping => {
                    let pong = Out::Frame {
                        opcode: OpCode::Pong,
                        payload: frame.payload,
                    };
                    if Box::pin(out.send(pong)).await.is_err() {
                        return Err(TransportError::Io(std::io::Error::other("writer gone")));
                    }
                }
                OpCode::Text | OpCode::Binary => {
                    if self.partial.is_some() {
                        return Err(TransportError::Protocol(
                            "new message inside a fragmented one",
                        ));
                    }
                    let mut p = Partial {
                        opcode: frame.opcode,
                        buf: frame.payload,
                        utf8_checked: 0,
                        deadline: None,
                        held: None,
                    };
                    check_utf8(&mut p, frame.fin)?;
                    if frame.fin {
                        return Ok(p.into_incoming());
                    }
                    if let Some(limits) = &self.limits {
                        p.deadline = Instant::now().checked_add(limits.timeout);
                        limits.reserve(&mut p.held, p.buf.len())?;
                    }
                    self.partial = Some(p);
                }
                OpCode::Continuation => {
                    let Some(p) = self.partial.as_mut() else {
                        return Err(TransportError::Protocol("continuation without a message"));
                    };
                    if p.buf.len() + frame.payload.len() > self.max_message {
                        return Err(TransportError::TooBig(self.max_message));
                    }
                    if let Some(limits) = &self.limits {
                        if !frame.fin {
                            limits.reserve(&mut p.held, frame.payload.len())?;
                        }
                    }
                    p.buf.extend_from_slice(&frame.payload);
                    check_utf8(p, frame.fin)?;
                    if frame.fin {
                        let p = self.partial.take().expect("partial present");
                        return Ok(p.into_incoming());
                    }
                }
            }
        }
    }
}

impl Partial {
    fn into_incoming(self) -> Incoming {
        if self.opcode == OpCode::Text {
            Incoming::Text(self.buf)
        } else {
            Incoming::Binary(self.buf)
        }
    }
}

/// The answer to a peer's close frame (RFC 6455 section 5.5.1): the same code and reason, once
/// the payload is checked (a code, if any, that a peer may send; a UTF-8 reason).
fn close_echo(payload: Vec<u8>) -> Result<Out, TransportError> {
    match payload.len() {
        0 => {}
        1 => return Err(TransportError::Protocol("close payload of one byte")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !close_code_allowed(code) {
                return Err(TransportError::Protocol("close code not allowed"));
            }
            if std::str::from_utf8(&payload[2..]).is_err() {
                return Err(TransportError::InvalidUtf8);
            }
        }
    }
    Ok(Out::Frame {
        opcode: OpCode::Close,
        payload,
    })
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
            deadline: None,
            held: None,
        }
    }

    #[test]
    fn reservations_over_the_bound_are_refused_and_dropped_ones_given_back() {
        let limits = Arc::new(FragmentLimits::new(Duration::from_secs(1), 10));
        let (mut a, mut b) = (None, None);
        limits.reserve(&mut a, 6).unwrap();
        assert!(matches!(
            limits.reserve(&mut b, 5),
            Err(TransportError::ReassemblyFull)
        ));
        limits.reserve(&mut b, 4).unwrap();
        assert_eq!(limits.held(), 10);
        drop(a);
        assert_eq!(limits.held(), 4);
        drop(b);
        assert_eq!(limits.held(), 0);
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
