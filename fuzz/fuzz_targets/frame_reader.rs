//! The hub's RFC 6455 frame reader (`ws::frame::FrameReader`) on arbitrary bytes, delivered in
//! fuzzer-chosen pieces.
//!
//! Input: 2 bytes of payload limit (big-endian), 1 byte `n`, `n % 8` chunk sizes, then the
//! stream. Checks, besides "never panics, never hangs":
//! - the frames read (and the error that ends the stream) are exactly those of a plain,
//!   byte-at-a-time reference parser written from RFC 6455 over the whole stream, however the
//!   stream is split (so a frame's bytes arriving in pieces changes nothing);
//! - no payload is over the limit; control frames are final and at most 125 bytes;
//! - the server-side encoder (`ws::frame::encode`) writes each frame read back in the minimal
//!   length form, and it parses back to the same opcode and payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{block_on, Dribble};
use switchboard_hub::bench::{encode, FrameError, FrameReader, OpCode, MAX_CONTROL_PAYLOAD};

/// How a stream ends (or a frame, in the reference's terms).
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Frame {
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    },
    TooBig,
    Protocol,
    Eof,
}

fn bits(op: OpCode) -> u8 {
    match op {
        OpCode::Continuation => 0x0,
        OpCode::Text => 0x1,
        OpCode::Binary => 0x2,
        OpCode::Close => 0x8,
        OpCode::Ping => 0x9,
        OpCode::Pong => 0xA,
    }
}

/// RFC 6455 section 5.2 read literally, one frame at a time over the whole stream. `masked`:
/// client frames (the mask bit is required); otherwise server frames (the mask bit forbidden).
fn reference(data: &[u8], max: u64, masked: bool) -> Vec<Got> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &data[pos..];
        if rest.len() < 2 {
            out.push(Got::Eof);
            return out;
        }
        let fin = rest[0] & 0x80 != 0;
        let opcode = rest[0] & 0x0F;
        if rest[0] & 0x70 != 0
            || ![0x0, 0x1, 0x2, 0x8, 0x9, 0xA].contains(&opcode)
            || (rest[1] & 0x80 != 0) != masked
        {
            out.push(Got::Protocol);
            return out;
        }
        let (len_bytes, short) = match rest[1] & 0x7F {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        let mask_bytes = if masked { 4 } else { 0 };
        let header = 2 + len_bytes + mask_bytes;
        if rest.len() < header {
            out.push(Got::Eof);
            return out;
        }
        let len = short.unwrap_or_else(|| {
            rest[2..2 + len_bytes]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        });
        if opcode >= 0x8 && (!fin || len > MAX_CONTROL_PAYLOAD as u64) {
            out.push(Got::Protocol);
            return out;
        }
        if len > max {
            out.push(Got::TooBig);
            return out;
        }
        let len = len as usize;
        if rest.len() < header + len {
            out.push(Got::Eof);
            return out;
        }
        let mask = &rest[2 + len_bytes..header];
        let payload = rest[header..header + len]
            .iter()
            .enumerate()
            .map(|(i, b)| if masked { b ^ mask[i % 4] } else { *b })
            .collect();
        out.push(Got::Frame {
            fin,
            opcode,
            payload,
        });
        pos += header + len;
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let n = usize::from(data[2] % 8).min(data.len() - 3);
    let chunks = data[3..3 + n].to_vec();
    let stream = &data[3 + n..];

    let expected = reference(stream, max as u64, true);
    let got = block_on(async {
        let mut reader = FrameReader::new(Dribble::new(stream.to_vec(), chunks), max);
        let mut got = Vec::new();
        loop {
            match reader.read_frame().await {
                Ok(f) => {
                    assert!(f.payload.len() <= max, "payload over the limit");
                    if f.opcode.is_control() {
                        assert!(f.fin && f.payload.len() <= MAX_CONTROL_PAYLOAD);
                    }
                    check_encode(f.opcode, &f.payload);
                    got.push(Got::Frame {
                        fin: f.fin,
                        opcode: bits(f.opcode),
                        payload: f.payload,
                    });
                }
                Err(FrameError::TooBig(m)) => {
                    assert_eq!(m, max);
                    got.push(Got::TooBig);
                    return got;
                }
                Err(FrameError::Protocol(_)) => {
                    got.push(Got::Protocol);
                    return got;
                }
                Err(FrameError::Io(e)) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
                    got.push(Got::Eof);
                    return got;
                }
            }
        }
    });
    assert_eq!(got, expected);
});

/// The server encoder's frame for `payload` is minimal and reads back (unmasked) unchanged.
fn check_encode(opcode: OpCode, payload: &[u8]) {
    let mut out = Vec::new();
    encode(&mut out, opcode, payload);
    let header = match payload.len() {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    assert_eq!(out.len(), header + payload.len(), "minimal length form");
    let back = reference(&out, u64::MAX, false);
    assert_eq!(
        back,
        [
            Got::Frame {
                fin: true,
                opcode: bits(opcode),
                payload: payload.to_vec()
            },
            Got::Eof
        ]
    );
}
