//! Helpers shared by the fuzz targets: an in-memory reader that hands its bytes out in
//! fuzzer-chosen pieces (with spurious `Pending`s), a runtime to drive the hub's async readers,
//! and a masked client-frame encoder.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// An `AsyncRead` over `data` that returns at most one chunk per poll. Chunk sizes cycle through
/// `chunks` (0 means "return `Pending` once, waking at once"), so a frame's bytes arrive split at
/// fuzzer-chosen places, the way a slow peer's do.
pub struct Dribble {
    data: Vec<u8>,
    pos: usize,
    chunks: Vec<u8>,
    turn: usize,
}

impl Dribble {
    /// `chunks` empty (or all zero) means "everything at once".
    pub fn new(data: Vec<u8>, mut chunks: Vec<u8>) -> Self {
        if chunks.iter().all(|&c| c == 0) {
            chunks.clear();
        }
        Self {
            data,
            pos: 0,
            chunks,
            turn: 0,
        }
    }
}

impl AsyncRead for Dribble {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let chunk = if this.chunks.is_empty() {
            usize::MAX
        } else {
            let c = this.chunks[this.turn % this.chunks.len()];
            this.turn += 1;
            if c == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            usize::from(c)
        };
        let n = chunk.min(buf.remaining()).min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Runs `fut` to completion on a current-thread runtime kept for the whole fuzzing process.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
    }
    RT.with(|rt| rt.block_on(fut))
}

/// The RFC 6455 header byte 0: FIN, RSV1-3 and the opcode (low 4 bits of `opcode`).
pub fn header0(fin: bool, rsv: u8, opcode: u8) -> u8 {
    (u8::from(fin) << 7) | ((rsv & 0x7) << 4) | (opcode & 0x0F)
}

/// Appends a masked client frame. `wide` forces a longer length encoding than needed (1: the
/// 16-bit form, 2: the 64-bit form), which RFC 6455 forbids but readers commonly accept.
pub fn encode_masked(out: &mut Vec<u8>, b0: u8, payload: &[u8], mask: [u8; 4], wide: u8) {
    out.push(b0);
    let len = payload.len();
    if len < 126 && wide == 0 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) && wide <= 1 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}
