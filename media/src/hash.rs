//! [`Hash`] (a SHA-256 content hash) and [`BlobRef`] (what a put answers).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::MediaError;

/// The SHA-256 of a blob's bytes: its name everywhere (file names, rows, cache keys, URLs).
///
/// **Invariant:** it is always exactly 32 bytes; its text form is always 64 lowercase hex
/// characters, and [`Hash::parse`] refuses anything else (so a hash taken from a URL can never
/// name a path outside the store's directory, nor a key outside the cache's prefix).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Parses 64 hex characters (either case; the text form is lowercase).
    ///
    /// # Errors
    /// [`MediaError::BadHash`] for any other length or character.
    pub fn parse(text: &str) -> Result<Self, MediaError> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MediaError::BadHash);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| MediaError::BadHash)?;
        Ok(Self(out))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl From<[u8; 32]> for Hash {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl FromStr for Hash {
    type Err = MediaError;

    fn from_str(text: &str) -> Result<Self, MediaError> {
        Self::parse(text)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

/// A stored blob: its hash and its size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    /// SHA-256 of the bytes.
    pub hash: Hash,
    /// Length in bytes.
    pub size: u64,
}

/// Hashes bytes as they pass, counting them.
#[derive(Default)]
pub(crate) struct Hashing {
    sha: Sha256,
    size: u64,
}

impl Hashing {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn finish(self) -> BlobRef {
        BlobRef {
            hash: Hash(self.sha.finalize().into()),
            size: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_64_hex_and_prints_lowercase() {
        let hash = Hash::of(b"abc");
        assert_eq!(
            hash.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Hash::parse(&hash.to_hex()).unwrap(), hash);
        assert_eq!(Hash::parse(&hash.to_hex().to_uppercase()).unwrap(), hash);
    }

    #[test]
    fn parse_refuses_anything_else() {
        let good = Hash::of(b"abc").to_hex();
        for bad in [
            String::new(),
            good[..63].to_owned(),
            format!("{good}0"),
            format!("../{}", &good[3..]),
            format!("{}g", &good[..63]),
            format!("{}é", &good[..62]),
            format!(" {}", &good[..63]),
        ] {
            assert!(
                matches!(Hash::parse(&bad), Err(MediaError::BadHash)),
                "{bad:?}"
            );
        }
    }
}
