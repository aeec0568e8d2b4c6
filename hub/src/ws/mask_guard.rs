//! Enforces RFC 6455 section 5.1: a server must close the connection on an unmasked client
//! frame. fastwebsockets unmasks what it reads but does not tell whether a frame was masked, so
//! this reader sits under it, follows frame boundaries in the byte stream, and fails the read
//! (with [`UNMASKED`] in an `InvalidData` error) at the first unmasked frame header.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// The message of the error returned for an unmasked frame.
pub const UNMASKED: &str = "unmasked client frame";

/// Where the guard is in the frame stream.
enum State {
    /// Collecting a frame header: `have` bytes of it are in `buf`.
    Header { buf: [u8; 14], have: usize },
    /// Skipping `remaining` payload bytes.
    Payload { remaining: u64 },
}

/// An `AsyncRead` that passes bytes through unchanged while checking every frame's mask bit.
pub struct MaskGuard<R> {
    inner: R,
    state: State,
}

impl<R> MaskGuard<R> {
    /// Guards `inner`, which must be positioned at a frame boundary (right after the upgrade).
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            state: State::Header {
                buf: [0; 14],
                have: 0,
            },
        }
    }

    /// Follows `bytes` through the frame stream; errors at an unmasked header.
    fn scan(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Payload { remaining } => {
                    let n = (*remaining).min(bytes.len() as u64);
                    *remaining -= n;
                    bytes = &bytes[n as usize..];
                    if *remaining == 0 {
                        self.state = State::Header {
                            buf: [0; 14],
                            have: 0,
                        };
                    }
                }
                State::Header { buf, have } => {
                    buf[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    if *have < 2 {
                        continue;
                    }
                    if buf[1] & 0x80 == 0 {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, UNMASKED));
                    }
                    let extra = match buf[1] & 0x7f {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                    if *have < 2 + extra + 4 {
                        continue;
                    }
                    let len = match extra {
                        0 => u64::from(buf[1] & 0x7f),
                        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
                        _ => u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
                    };
                    self.state = if len == 0 {
                        State::Header {
                            buf: [0; 14],
                            have: 0,
                        }
                    } else {
                        State::Payload { remaining: len }
                    };
                }
            }
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for MaskGuard<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        Poll::Ready(this.scan(&buf.filled()[before..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(masked: bool, len: usize) -> Vec<u8> {
        let mut f = vec![0x81];
        let m = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => f.push(m | len as u8),
            126..=65535 => {
                f.push(m | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(m | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(0x80u8, len)); // payload bytes with the high bit set
        f
    }

    #[test]
    fn masked_frames_pass_in_any_chunking() {
        let stream: Vec<u8> = [
            frame(true, 5),
            frame(true, 0),
            frame(true, 300),
            frame(true, 70_000),
        ]
        .concat();
        for chunk in [1, 3, 7, 1000, stream.len()] {
            let mut g = MaskGuard::new(());
            for piece in stream.chunks(chunk) {
                g.scan(piece).expect("masked frames pass");
            }
            assert!(
                matches!(g.state, State::Header { have: 0, .. }),
                "ends on a boundary"
            );
        }
    }

    #[test]
    fn an_unmasked_frame_after_masked_ones_is_refused() {
        let stream: Vec<u8> = [frame(true, 200), frame(false, 5)].concat();
        let err = MaskGuard::new(()).scan(&stream).expect_err("unmasked");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
