//! The bench's message body: a stamp that lets every receiver compute latency and detect loss
//! and duplicates, padded to the requested size.
//!
//! Format: `@B1:{stream}:{counter}:{sent_us}:` followed by `x` up to the size. `stream` names
//! one publisher's sequence into one room (fanout has one; rooms has one per room), `counter`
//! counts from 0 within it, and `sent_us` is wall-clock microseconds since the Unix epoch, so
//! worker processes agree on it without sharing a clock. Every character is JSON-safe, so the
//! stamp appears verbatim inside any JSON frame that carries the body (Switchboard's `body`,
//! Pusher's `data`), and receivers find it with a substring search instead of a JSON parse.

use std::time::{SystemTime, UNIX_EPOCH};

/// Prefix of every stamp. Room ids and Pusher frames never contain it.
pub const MARKER: &str = "@B1:";

/// What a receiver learns from one delivered body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub stream: u32,
    pub counter: u64,
    pub sent_us: u64,
}

/// Wall-clock microseconds since the Unix epoch (shared by every process on the machine).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The body for `stamp`, padded with `x` to `size` bytes (never shorter than the stamp).
pub fn encode(stamp: Stamp, size: usize) -> String {
    let mut body = format!(
        "{MARKER}{}:{}:{}:",
        stamp.stream, stamp.counter, stamp.sent_us
    );
    if body.len() < size {
        body.extend(std::iter::repeat_n('x', size - body.len()));
    }
    body
}

/// Finds and decodes the stamp inside `text` (a whole frame), if there is one.
pub fn find(text: &str) -> Option<Stamp> {
    let start = text.find(MARKER)? + MARKER.len();
    let mut fields = text[start..].splitn(4, ':');
    let stream = fields.next()?.parse().ok()?;
    let counter = fields.next()?.parse().ok()?;
    let sent_us = fields.next()?.parse().ok()?;
    // The fourth piece (padding and the rest of the frame) must exist: a stamp always ends
    // with ':'.
    fields.next()?;
    Some(Stamp {
        stream,
        counter,
        sent_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_inside_a_json_frame() {
        let stamp = Stamp {
            stream: 7,
            counter: 123_456,
            sent_us: 1_763_780_000_123_456,
        };
        let body = encode(stamp, 100);
        assert_eq!(body.len(), 100);
        let frame = serde_json::json!({"type": "message", "room": "01JD8X0ROOM", "body": body});
        let text = frame.to_string();
        assert!(text.contains(&body), "the body needs no JSON escaping");
        assert_eq!(find(&text), Some(stamp));
    }

    #[test]
    fn short_sizes_keep_the_whole_stamp() {
        let stamp = Stamp {
            stream: 1,
            counter: 2,
            sent_us: 3,
        };
        assert_eq!(encode(stamp, 0), "@B1:1:2:3:");
        assert_eq!(find(&encode(stamp, 0)), Some(stamp));
    }

    #[test]
    fn frames_without_a_stamp_are_ignored() {
        assert_eq!(find(r#"{"type":"subbed","room":"R","last_seq":0}"#), None);
        assert_eq!(find("@B1:1:2"), None);
        assert_eq!(find("@B1:a:2:3:"), None);
    }
}
