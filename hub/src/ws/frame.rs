//! RFC 6455 framing on the server side, with buffers that exist only while bytes are in flight.
//!
//! fastwebsockets performs the upgrade; frames are read and written here because its read half
//! keeps an 8 KiB buffer per connection for the connection's whole life and its write half keeps
//! the largest frame it ever wrote. Profiled with massif at 2,000 idle connections, those two and
//! the 4 KiB `BufWriter` in front of it were 12 KiB of the 21 KiB each connection cost.
//!
//! **Invariants:**
//! - An idle connection (nothing half read, nothing unwritten) owns no buffer: [`FrameReader`]
//!   waits for data by reading into a per-thread scratch buffer and keeps only the bytes of a frame
//!   it could not finish; [`FrameWriter`] drops its buffer after each flush.
//! - Every client frame must be masked (section 5.1); reserved bits must be zero (no extension
//!   is negotiated); control frames are final and carry at most 125 bytes (5.5).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Frame opcodes (RFC 6455 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// One frame from the peer, unmasked.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Vec<u8>,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame payload over {0} bytes")]
    TooBig(usize),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("connection lost: {0}")]
    Io(#[from] io::Error),
}

/// Largest payload of a control frame (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Size of the per-thread buffer that idle connections read into.
const SCRATCH_BYTES: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

/// What [`parse`] found at the start of the buffered bytes.
enum Parsed {
    /// A whole frame occupying `len` bytes.
    Frame(Frame, usize),
    /// Not enough bytes yet; at least `need` in total are required.
    Partial { need: usize },
}

/// Parses one masked client frame from `bytes`.
fn parse(bytes: &[u8], max_payload: usize) -> Result<Parsed, FrameError> {
    if bytes.len() < 2 {
        return Ok(Parsed::Partial { need: 2 });
    }
    let (b0, b1) = (bytes[0], bytes[1]);
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(FrameError::Protocol("unknown opcode"))?;
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 == 0 {
        return Err(FrameError::Protocol("unmasked client frame"));
    }
    let extra = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header = 2 + extra + 4;
    if bytes.len() < header {
        return Ok(Parsed::Partial { need: header });
    }
    let len = match extra {
        0 => u64::from(b1 & 0x7F),
        2 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        _ => u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")),
    };
    if opcode.is_control() {
        if !fin {
            return Err(FrameError::Protocol("fragmented control frame"));
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(FrameError::Protocol("control frame over 125 bytes"));
        }
    }
    if len > max_payload as u64 {
        return Err(FrameError::TooBig(max_payload));
    }
    let len = len as usize;
    let total = header + len;
    if bytes.len() < total {
        return Ok(Parsed::Partial { need: total });
    }
    let mask: [u8; 4] = bytes[header - 4..header].try_into().expect("4 bytes");
    let mut payload = bytes[header..total].to_vec();
    unmask(&mut payload, mask);
    Ok(Parsed::Frame(
        Frame {
            fin,
            opcode,
            payload,
        },
        total,
    ))
}

/// XORs `data` with the masking key (RFC 6455 section 5.3), a word at a time.
pub fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let wide = u64::from(word) | (u64::from(word) << 32);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// Reads client frames. See the module invariants.
pub struct FrameReader<R> {
    io: R,
    /// Bytes received and not yet parsed: `buf[start..]`. Empty (and unallocated) when idle.
    buf: Vec<u8>,
    start: usize,
    max_payload: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads from `io`, refusing frames whose payload is over `max_payload` bytes.
    pub fn new(io: R, max_payload: usize) -> Self {
        Self {
            io,
            buf: Vec::new(),
            start: 0,
            max_payload,
        }
    }

    /// The next frame.
    ///
    /// # Cancel safety
    /// Cancel-safe: bytes read are kept in `self` until a whole frame is parsed.
    pub async fn read_frame(&mut self) -> Result<Frame, FrameError> {
        loop {
            match parse(&self.buf[self.start..], self.max_payload)? {
                Parsed::Frame(frame, used) => {
                    self.start += used;
                    if self.start == self.buf.len() {
                        // Nothing pipelined behind it: give the memory back.
                        self.buf = Vec::new();
                        self.start = 0;
                    }
                    return Ok(frame);
                }
                Parsed::Partial { need } => self.fill(need).await?,
            }
        }
    }

    /// Reads more bytes, towards `need` buffered bytes in total.
    async fn fill(&mut self, need: usize) -> Result<(), FrameError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let n = if self.buf.is_empty() {
            self.read_via_scratch().await?
        } else {
            // Mid-frame: read straight into the buffer, sized for the whole frame.
            self.buf.reserve(need.saturating_sub(self.buf.len()));
            self.io.read_buf(&mut self.buf).await?
        };
        if n == 0 {
            return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// Waits for data without holding a buffer: each poll reads into this thread's scratch
    /// buffer and keeps only what arrived.
    async fn read_via_scratch(&mut self) -> io::Result<usize> {
        let Self { io, buf, .. } = self;
        poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|scratch| {
                let mut rb = ReadBuf::new(scratch);
                ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
                buf.extend_from_slice(rb.filled());
                Poll::Ready(Ok(rb.filled().len()))
            })
        })
        .await
    }
}

/// Writes server frames (unmasked), coalescing everything queued until [`flush`](Self::flush).
pub struct FrameWriter<W> {
    io: W,
    /// Encoded frames not yet written. Unallocated between flushes.
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(io: W) -> Self {
        Self {
            io,
            buf: Vec::new(),
        }
    }

    /// Appends one frame to the pending bytes.
    pub fn push(&mut self, opcode: OpCode, payload: &[u8]) {
        encode(&mut self.buf, opcode, payload);
    }

    /// Appends a close frame with `code` and `reason` (truncated to fit a control frame).
    pub fn push_close(&mut self, code: u16, reason: &[u8]) {
        let reason = &reason[..reason.len().min(MAX_CONTROL_PAYLOAD - 2)];
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason);
        self.push(OpCode::Close, &payload[..2 + reason.len()]);
    }

    /// Writes the pending bytes out and releases the buffer.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            self.io.write_all(&buf).await?;
        }
        self.io.flush().await
    }
}

/// Appends an unmasked frame with FIN set to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let len = payload.len();
    out.reserve(len + 10);
    out.push(0x80 | opcode.bits());
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Whether a close code received from a peer is allowed (RFC 6455 section 7.4; the codes
/// registered since, 1012 and 1013, included).
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 65535 {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        let mask = [1, 2, 3, 4];
        let data: Vec<u8> = (0..=40).collect();
        let mut fast = data.clone();
        unmask(&mut fast, mask);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(fast, slow);
    }

    #[test]
    fn parses_every_length_encoding() {
        for len in [0, 125, 126, 65535, 65536] {
            let payload = vec![b'x'; len];
            let bytes = client_frame(true, 0x2, &payload);
            match parse(&bytes, 1 << 20).unwrap() {
                Parsed::Frame(f, used) => {
                    assert_eq!(used, bytes.len());
                    assert_eq!(f.payload, payload);
                    assert!(f.fin);
                    assert_eq!(f.opcode, OpCode::Binary);
                }
                Parsed::Partial { .. } => panic!("whole frame not parsed"),
            }
            // Every strict prefix asks for more.
            assert!(matches!(
                parse(&bytes[..bytes.len() - 1], 1 << 20).unwrap(),
                Parsed::Partial { .. }
            ));
        }
    }

    #[test]
    fn refuses_what_the_rfc_forbids() {
        let unmasked = [0x81, 0x02, b'h', b'i'];
        assert!(matches!(
            parse(&unmasked, 100),
            Err(FrameError::Protocol(_))
        ));
        let rsv = client_frame(true, 0x41, b"hi");
        assert!(matches!(parse(&rsv, 100), Err(FrameError::Protocol(_))));
        let opcode = client_frame(true, 0x3, b"hi");
        assert!(matches!(parse(&opcode, 100), Err(FrameError::Protocol(_))));
        let fragmented_ping = client_frame(false, 0x9, b"hi");
        assert!(matches!(
            parse(&fragmented_ping, 100),
            Err(FrameError::Protocol(_))
        ));
        let long_ping = client_frame(true, 0x9, &[0; 126]);
        assert!(matches!(
            parse(&long_ping, 1000),
            Err(FrameError::Protocol(_))
        ));
        let big = client_frame(true, 0x1, &[b'a'; 101]);
        assert!(matches!(parse(&big, 100), Err(FrameError::TooBig(100))));
        // Exactly the limit is fine.
        let edge = client_frame(true, 0x1, &[b'a'; 100]);
        assert!(matches!(parse(&edge, 100), Ok(Parsed::Frame(..))));
    }

    #[tokio::test]
    async fn reads_frames_split_and_pipelined_and_then_holds_no_buffer() {
        let mut bytes = client_frame(true, 0x1, b"first");
        bytes.extend(client_frame(false, 0x1, &[b'y'; 300]));
        bytes.extend(client_frame(true, 0x0, b"end"));
        let (mut tx, rx) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // Dribble the bytes in small pieces.
            for chunk in bytes.chunks(7) {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(rx, 1 << 16);
        let a = reader.read_frame().await.unwrap();
        assert_eq!(
            (a.fin, a.opcode, &a.payload[..]),
            (true, OpCode::Text, &b"first"[..])
        );
        let b = reader.read_frame().await.unwrap();
        assert_eq!((b.fin, b.payload.len()), (false, 300));
        let c = reader.read_frame().await.unwrap();
        assert_eq!(
            (c.opcode, &c.payload[..]),
            (OpCode::Continuation, &b"end"[..])
        );
        writer.await.unwrap();
        assert_eq!(reader.buf.capacity(), 0, "idle reader holds no buffer");
        assert!(matches!(reader.read_frame().await, Err(FrameError::Io(_))));
    }

    #[tokio::test]
    async fn writer_encodes_coalesces_and_releases_its_buffer() {
        let (tx, mut rx) = tokio::io::duplex(1 << 20);
        let mut w = FrameWriter::new(tx);
        w.push(OpCode::Text, b"hi");
        w.push(OpCode::Binary, &vec![7; 300]);
        w.push(OpCode::Binary, &vec![7; 70_000]);
        w.push_close(1000, b"bye");
        w.flush().await.unwrap();
        assert_eq!(w.buf.capacity(), 0);
        drop(w);
        let mut got = Vec::new();
        rx.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..4], &[0x81, 2, b'h', b'i']);
        assert_eq!(&got[4..8], &[0x82, 126, 0x01, 0x2c]);
        let at = 8 + 300;
        assert_eq!(&got[at..at + 2], &[0x82, 127]);
        assert_eq!(&got[at + 2..at + 10], &70_000u64.to_be_bytes());
        let close = &got[at + 10 + 70_000..];
        assert_eq!(close, &[0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
    }

    #[test]
    fn close_codes() {
        for ok in [1000, 1001, 1003, 1007, 1011, 1012, 1013, 3000, 4999] {
            assert!(close_code_allowed(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2999, 5000] {
            assert!(!close_code_allowed(bad), "{bad}");
        }
    }
}
