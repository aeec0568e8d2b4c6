//! Message reassembly (`ws::transport::MessageReader`) over arbitrary frame sequences:
//! fragments, control frames between them, text split inside a UTF-8 sequence, bad close
//! payloads, reserved bits and opcodes, over-long and over-limit frames.
//!
//! Checks, besides "never panics, never hangs":
//! - what the reader returns (messages, pongs, closes, and the error that ends the connection)
//!   and the control frames it queues (pong answers, close echoes) are exactly those of a plain
//!   model of RFC 6455 sections 5.4-5.5 and 8.1 over the same frames;
//! - a message is never over the limit and a text message is valid UTF-8.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{block_on, encode_masked, header0, Dribble};
use switchboard_hub::bench::outbox;
use switchboard_hub::bench::Out;
use switchboard_hub::bench::{close_code_allowed, OpCode, MAX_CONTROL_PAYLOAD};
use switchboard_hub::bench::{Incoming, MessageReader, TransportError};

#[derive(Debug, Arbitrary)]
struct Input {
    /// The message limit, scaled down so that fragments reach it.
    max_message: u16,
    /// How the bytes arrive (see `Dribble`).
    chunks: Vec<u8>,
    steps: Vec<Step>,
}

/// One or more frames to send.
#[derive(Debug, Arbitrary)]
enum Step {
    /// A frame with any header bits.
    Raw {
        fin: bool,
        rsv: u8,
        opcode: u8,
        payload: Vec<u8>,
        wide: u8,
    },
    /// A whole text or binary message (or its first fragment).
    Data {
        fin: bool,
        binary: bool,
        text: String,
    },
    /// A continuation frame.
    Cont {
        fin: bool,
        payload: Vec<u8>,
    },
    /// A message cut into fragments at the given offsets (possibly inside a UTF-8 sequence),
    /// optionally with a ping after each fragment.
    Split {
        binary: bool,
        text: String,
        cuts: Vec<u16>,
        pings: bool,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame with a code and a reason (either may be invalid).
    Close {
        code: u16,
        reason: Vec<u8>,
    },
    /// A close frame with a raw payload (e.g. one byte).
    CloseRaw(Vec<u8>),
}

/// One frame as sent.
struct Sent {
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: Vec<u8>,
    wide: u8,
}

fn frames(steps: &[Step]) -> Vec<Sent> {
    let plain = |fin, opcode, payload: &[u8]| Sent {
        fin,
        rsv: 0,
        opcode,
        payload: payload.to_vec(),
        wide: 0,
    };
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Raw {
                fin,
                rsv,
                opcode,
                payload,
                wide,
            } => out.push(Sent {
                fin: *fin,
                // Mostly valid frames: reserved bits only now and then.
                rsv: if rsv % 16 == 0 { (rsv >> 4) & 0x7 } else { 0 },
                opcode: opcode & 0x0F,
                payload: payload.clone(),
                wide: wide % 3,
            }),
            Step::Data { fin, binary, text } => {
                out.push(plain(*fin, if *binary { 2 } else { 1 }, text.as_bytes()))
            }
            Step::Cont { fin, payload } => out.push(plain(*fin, 0, payload)),
            Step::Split {
                binary,
                text,
                cuts,
                pings,
            } => {
                let bytes = text.as_bytes();
                let mut cuts: Vec<usize> = cuts
                    .iter()
                    .map(|&c| usize::from(c) % (bytes.len() + 1))
                    .collect();
                cuts.sort_unstable();
                cuts.dedup();
                let mut start = 0;
                let mut pieces = Vec::new();
                for c in cuts.into_iter().chain([bytes.len()]) {
                    if c >= start {
                        pieces.push(&bytes[start..c]);
                        start = c;
                    }
                }
                let last = pieces.len() - 1;
                for (i, piece) in pieces.into_iter().enumerate() {
                    let opcode = match (i, *binary) {
                        (0, false) => 1,
                        (0, true) => 2,
                        _ => 0,
                    };
                    out.push(plain(i == last, opcode, piece));
                    if *pings && i != last {
                        out.push(plain(true, 9, &[i as u8]));
                    }
                }
            }
            Step::Ping(p) => out.push(plain(true, 9, p)),
            Step::Pong(p) => out.push(plain(true, 10, p)),
            Step::Close { code, reason } => {
                let mut p = code.to_be_bytes().to_vec();
                p.extend_from_slice(reason);
                out.push(plain(true, 8, &p));
            }
            Step::CloseRaw(p) => out.push(plain(true, 8, p)),
        }
    }
    out
}

/// What the reader hands back, and what it queued for the peer.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Pong,
    Close,
    /// A frame queued for the peer (pong answer or close echo).
    Queued(u8, Vec<u8>),
    TooBig,
    InvalidUtf8,
    Protocol,
    Eof,
}

/// RFC 6455 reassembly, written plainly: the whole message so far is re-validated each time.
fn model(frames: &[Sent], max: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let mut partial: Option<(u8, Vec<u8>)> = None;
    for f in frames {
        // Frame-level checks (section 5.2, 5.5), in the order a reader meets them.
        if f.rsv != 0 || ![0, 1, 2, 8, 9, 10].contains(&f.opcode) {
            out.push(Event::Protocol);
            return out;
        }
        let control = f.opcode >= 8;
        if control && (!f.fin || f.payload.len() > MAX_CONTROL_PAYLOAD) {
            out.push(Event::Protocol);
            return out;
        }
        if f.payload.len() > max {
            out.push(Event::TooBig);
            return out;
        }
        match f.opcode {
            8 => {
                let p = &f.payload;
                if p.len() == 1 {
                    out.push(Event::Protocol);
                    return out;
                }
                if p.len() >= 2 {
                    if !close_code_allowed(u16::from_be_bytes([p[0], p[1]])) {
                        out.push(Event::Protocol);
                        return out;
                    }
                    if std::str::from_utf8(&p[2..]).is_err() {
                        out.push(Event::InvalidUtf8);
                        return out;
                    }
                }
                out.push(Event::Queued(8, p.clone()));
                out.push(Event::Close);
            }
            9 => out.push(Event::Queued(10, f.payload.clone())),
            10 => out.push(Event::Pong),
            _ => {
                let (opcode, mut buf) = match (f.opcode, partial.take()) {
                    (0, None) => {
                        out.push(Event::Protocol);
                        return out;
                    }
                    (0, Some(p)) => p,
                    (_, Some(_)) => {
                        out.push(Event::Protocol);
                        return out;
                    }
                    (op, None) => (op, Vec::new()),
                };
                if buf.len() + f.payload.len() > max {
                    out.push(Event::TooBig);
                    return out;
                }
                buf.extend_from_slice(&f.payload);
                if opcode == 1 {
                    if let Err(e) = std::str::from_utf8(&buf) {
                        if e.error_len().is_some() || f.fin {
                            out.push(Event::InvalidUtf8);
                            return out;
                        }
                    }
                }
                if f.fin {
                    out.push(if opcode == 1 {
                        Event::Text(buf)
                    } else {
                        Event::Binary(buf)
                    });
                } else {
                    partial = Some((opcode, buf));
                }
            }
        }
    }
    out.push(Event::Eof);
    out
}

fn opcode_bits(op: OpCode) -> u8 {
    match op {
        OpCode::Continuation => 0x0,
        OpCode::Text => 0x1,
        OpCode::Binary => 0x2,
        OpCode::Close => 0x8,
        OpCode::Ping => 0x9,
        OpCode::Pong => 0xA,
    }
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max_message % 512);
    let sent = frames(&input.steps);
    let mut stream = Vec::new();
    for (i, f) in sent.iter().enumerate() {
        let mask = (i as u32).wrapping_mul(0x9E37_79B9).to_be_bytes();
        encode_masked(
            &mut stream,
            header0(f.fin, f.rsv, f.opcode),
            &f.payload,
            mask,
            f.wide,
        );
    }
    let expected = model(&sent, max);

    let got = block_on(async {
        let (tx, mut rx) = outbox(sent.len() + 1);
        let mut reader = MessageReader::new(Dribble::new(stream, input.chunks), max);
        let mut got = Vec::new();
        loop {
            let next = reader.next(&tx).await;
            while let Some(item) = rx.try_recv() {
                match item {
                    Out::Frame { opcode, payload } => {
                        got.push(Event::Queued(opcode_bits(opcode), payload))
                    }
                    other => panic!("reader queued {other:?}"),
                }
            }
            match next {
                Ok(Incoming::Text(t)) => {
                    assert!(t.len() <= max, "text message over the limit");
                    assert!(std::str::from_utf8(&t).is_ok(), "text is UTF-8");
                    got.push(Event::Text(t));
                }
                Ok(Incoming::Binary(b)) => {
                    assert!(b.len() <= max, "binary message over the limit");
                    got.push(Event::Binary(b));
                }
                Ok(Incoming::Pong) => got.push(Event::Pong),
                Ok(Incoming::Close) => got.push(Event::Close),
                Err(e) => {
                    got.push(match e {
                        TransportError::TooBig(m) => {
                            assert_eq!(m, max);
                            Event::TooBig
                        }
                        TransportError::InvalidUtf8 => Event::InvalidUtf8,
                        TransportError::Protocol(_) => Event::Protocol,
                        TransportError::FragmentTimeout(_) | TransportError::ReassemblyFull => {
                            panic!("no fragment limits are set on this reader: {e:?}")
                        }
                        TransportError::Io(e) => {
                            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
                            Event::Eof
                        }
                    });
                    return got;
                }
            }
        }
    });
    assert_eq!(got, expected);
});
