//! The range of seqs a client may send, checked once where every frame and REST parameter is
//! decoded.
//!
//! Seqs are stored as signed 64-bit integers (SQLite `INTEGER`, PostgreSQL `BIGINT`), so no
//! message ever has a seq above [`MAX_SEQ`]. A seq a client sends (`sub` `since`, `history`
//! `before`, `read` `seq`, REST `before`/`after`, the `{seq}` of a message path, a read mark) is
//! decoded with [`deserialize`] or [`deserialize_opt`], which refuse anything larger: the frame
//! or request is `bad_request`, so nothing past the boundary ever sees a seq that would not fit
//! the store (no wrap-around, no 500).

use serde::{Deserialize, Deserializer};

use crate::Seq;

/// The largest seq a room can reach and a client may name: 2^63 − 1.
pub const MAX_SEQ: Seq = (1 << 63) - 1;

/// Why a seq was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("seq {0} is out of range: at most {MAX_SEQ}")]
pub struct SeqOutOfRange(pub u64);

/// `seq` if it is in range (at most [`MAX_SEQ`]).
///
/// # Errors
/// [`SeqOutOfRange`] for anything larger.
pub fn check(seq: u64) -> Result<Seq, SeqOutOfRange> {
    if seq <= MAX_SEQ {
        Ok(seq)
    } else {
        Err(SeqOutOfRange(seq))
    }
}

/// Serde `deserialize_with` for a seq field: a non-negative integer of at most [`MAX_SEQ`].
///
/// # Errors
/// A custom error ("seq ... is out of range") for a larger number, besides the usual type errors.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Seq, D::Error> {
    check(u64::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// [`deserialize`] for an optional seq field (use with `#[serde(default)]`).
///
/// # Errors
/// As [`deserialize`].
pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Seq>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(check)
        .transpose()
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(deserialize_with = "deserialize")]
        seq: Seq,
        #[serde(default, deserialize_with = "deserialize_opt")]
        since: Option<Seq>,
    }

    fn probe(json: &str) -> Result<Probe, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_up_to_max_seq_and_refuses_beyond() {
        let p = probe(r#"{"seq":9223372036854775807,"since":0}"#).unwrap();
        assert_eq!((p.seq, p.since), (MAX_SEQ, Some(0)));
        assert_eq!(probe(r#"{"seq":1}"#).unwrap().since, None);
        for bad in [
            r#"{"seq":9223372036854775808}"#,
            r#"{"seq":18446744073709551615}"#,
            r#"{"seq":1,"since":9223372036854775808}"#,
        ] {
            let err = probe(bad).unwrap_err();
            assert!(err.contains("out of range"), "{bad}: {err}");
        }
        assert!(probe(r#"{"seq":-1}"#).is_err());
        assert!(probe(r#"{"seq":18446744073709551616}"#).is_err());
    }
}
