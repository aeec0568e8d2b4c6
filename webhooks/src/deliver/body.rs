//! Reading a receiver's answer within bounds, and quoting it in an error.

use tokio::time::Instant;

/// Bytes of a receiver's body quoted in a failure's message (the job's `last_error`).
pub(crate) const QUOTED_BODY_BYTES: usize = 200;

/// What was read of a response's body.
#[derive(Debug, Default)]
pub(crate) struct Capped {
    /// At most the cap's bytes, from the start of the body.
    pub(crate) bytes: Vec<u8>,
    /// The body went on past the cap (the rest was not read: the connection is dropped).
    pub(crate) truncated: bool,
    /// The deadline passed before the body ended.
    pub(crate) timed_out: bool,
}

/// Reads `response`'s body until it ends, `cap` bytes were read, or `deadline` passes,
/// whichever comes first; a read error ends it like its end (the status already decided).
/// Memory: at most `cap` bytes plus one chunk, which is dropped at once past the cap.
/// Dropping the response afterwards closes a connection whose body was not read to its end.
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
    deadline: Instant,
) -> Capped {
    let mut out = Capped::default();
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => {
                out.timed_out = true;
                return out;
            }
            Ok(Ok(Some(chunk))) => {
                let room = cap - out.bytes.len();
                if chunk.len() > room {
                    out.bytes.extend_from_slice(&chunk[..room]);
                    out.truncated = true;
                    return out;
                }
                out.bytes.extend_from_slice(&chunk);
                if out.bytes.len() == cap {
                    // Whether more follows is unknown; don't wait to find out.
                    out.truncated = true;
                    return out;
                }
            }
            Ok(Ok(None) | Err(_)) => return out,
        }
    }
}

/// A bounded, printable quote of `body` for an error message: its first
/// [`QUOTED_BODY_BYTES`] bytes as (lossy) UTF-8, control characters as spaces, `secret`
/// (should a receiver echo it) replaced by `[redacted]`, and `...` when cut.
pub(crate) fn quote(body: &[u8], secret: &str) -> String {
    let cut = body.len() > QUOTED_BODY_BYTES;
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTED_BODY_BYTES)]);
    let mut text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if !secret.is_empty() {
        text = text.replace(secret, "[redacted]");
    }
    let text = text.trim();
    if cut {
        format!("{text}...")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded_printable_and_never_hold_the_secret() {
        assert_eq!(quote(b"", "s3cret"), "");
        assert_eq!(quote(b"  oops\r\n\x1b[31m", "s3cret"), "oops   [31m");
        assert_eq!(
            quote(b"bad signature for whsec_abc", "whsec_abc"),
            "bad signature for [redacted]"
        );
        let long = vec![b'x'; 10_000];
        let q = quote(&long, "s");
        assert_eq!(q.len(), QUOTED_BODY_BYTES + 3);
        assert!(q.ends_with("..."));
        assert_eq!(quote(&[0xff, 0xfe, b'a'], "s"), "\u{fffd}\u{fffd}a");
    }
}
