//! API keys of the server API (`/v1/server/*`): made, listed and revoked from the command line
//! (`switchboard-hub api-key create|list|revoke`, [`run`]), checked on every server request
//! ([`check`]).
//!
//! **Format.** `sbk_<id>_<secret>`: `id` is 16 hex digits (8 random bytes), not secret, shown by
//! `list`, and finds the key's row; `secret` is 32 random bytes from the OS (256 bits),
//! base64url without padding. The `sbk_` prefix makes a leaked key easy to find with grep and
//! to recognise by secret scanners.
//!
//! **Storage.** Only the SHA-256 of the whole key is stored. A fast hash is right here, unlike
//! for passwords (argon2id in auth): the key is 256 random bits, not something a human chose,
//! so there is no dictionary to try and brute force over 2^256 is out of reach whatever the
//! hash costs; a slow hash would only cost CPU on every request. The stored hash is compared
//! with the presented key's in constant time (`subtle`), after a lookup by the public id.
//!
//! **Revocation.** `revoke` deletes the row. Every server request reads the key's row from the
//! store (no cache), so a revoked key is refused by every node at its next request.
//!
//! **Last use.** Written at most once per [`TOUCH_EVERY`] per key, so a busy key does not turn
//! every request into a write.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use switchboard_protocol::Millis;

use crate::store::{ApiKeyRecord, Store, StoreResult};

/// The prefix of every key.
pub const KEY_PREFIX: &str = "sbk_";
/// Hex digits of a key's id.
const ID_LEN: usize = 16;
/// Random bytes of a key's secret.
const SECRET_BYTES: usize = 32;
/// How often a key's `last_used` is written at most.
pub const TOUCH_EVERY: Millis = 60_000;

/// `api-key ...`: what to do.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ApiKeyCommand {
    /// Makes a key and prints it, once: it is stored only as a hash.
    Create {
        /// The key's name (3-32 of a-z 0-9 _ . -), also the default bot name of its posts.
        name: String,
    },
    /// Lists the keys: name, id, created, last used (never the key).
    List,
    /// Revokes a key, by name or id: every node refuses it from its next request on.
    Revoke {
        /// The key's name or id.
        name_or_id: String,
    },
}

/// Why an `api-key` command failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("invalid key name: {0}")]
    BadName(String),
    #[error("a key named {0:?} exists already")]
    NameTaken(String),
    #[error("no key named or with id {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A key made by [`new_key`]: the key (shown once) and its row.
pub struct NewKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

/// Makes a key named `name` (not stored).
pub fn new_key(name: &str, now: Millis) -> NewKey {
    let mut id = [0u8; ID_LEN / 2];
    let mut secret = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{KEY_PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    NewKey {
        record: ApiKeyRecord {
            hash: hash(&key),
            id,
            name: name.to_owned(),
            created_ts: now,
            last_used_ts: None,
        },
        key,
    }
}

/// A key's or a bot's name: the rules of usernames, 3–32 of `a-z 0-9 _ . -`, so a bot's name
/// prints and links like a user's.
///
/// # Errors
/// The message of the `bad_request` it causes.
pub fn valid_name(name: &str) -> Result<(), String> {
    let ok_len = (3..=32).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: 3 to 32 of a-z, 0-9, '_', '.' and '-'"
        ))
    }
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The id part of a presented key, if it has the shape of one.
fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_at_checked(ID_LEN)?;
    let secret = secret.strip_prefix('_')?;
    let hex = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex && !secret.is_empty()).then_some(id)
}

/// The key's row if `key` is a live key, `None` otherwise (malformed, unknown, revoked or
/// wrong secret: one answer, so a caller learns nothing about which). Records its use.
///
/// # Errors
/// Only when the store fails.
pub async fn check(store: &dyn Store, key: &str, now: Millis) -> StoreResult<Option<ApiKeyRecord>> {
    let Some(id) = key_id(key) else {
        return Ok(None);
    };
    let Some(record) = store.api_key(id).await? else {
        return Ok(None);
    };
    let presented = hash(key);
    if !bool::from(presented.as_slice().ct_eq(record.hash.as_slice())) {
        return Ok(None);
    }
    if record
        .last_used_ts
        .is_none_or(|last| now.saturating_sub(last) >= TOUCH_EVERY)
    {
        store.touch_api_key(&record.id, now).await?;
    }
    Ok(Some(record))
}

/// Runs `command` on `store`; returns what to print.
///
/// # Errors
/// [`ApiKeyError::BadName`], [`ApiKeyError::NameTaken`] (create), [`ApiKeyError::NotFound`]
/// (revoke), and store failures.
pub async fn run(
    command: &ApiKeyCommand,
    store: &dyn Store,
    now: Millis,
) -> Result<String, ApiKeyError> {
    match command {
        ApiKeyCommand::Create { name } => {
            valid_name(name).map_err(ApiKeyError::BadName)?;
            let made = new_key(name, now);
            if !store.create_api_key(made.record.clone()).await? {
                return Err(ApiKeyError::NameTaken(name.clone()));
            }
            Ok(format!(
                "created API key {name} (id {})\n{}\nStore it now: it is not shown again.",
                made.record.id, made.key
            ))
        }
        ApiKeyCommand::List => {
            let keys = store.api_keys().await?;
            let mut out = String::from("NAME\tID\tCREATED\tLAST USED");
            for k in keys {
                let last = k.last_used_ts.map_or_else(|| "never".to_owned(), rfc3339);
                out.push_str(&format!(
                    "\n{}\t{}\t{}\t{last}",
                    k.name,
                    k.id,
                    rfc3339(k.created_ts)
                ));
            }
            Ok(out)
        }
        ApiKeyCommand::Revoke { name_or_id } => match store.revoke_api_key(name_or_id).await? {
            Some(k) => Ok(format!("revoked API key {} (id {})", k.name, k.id)),
            None => Err(ApiKeyError::NotFound(name_or_id.clone())),
        },
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn rfc3339(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Opens the hub's store as the node does (SQLite `hub.db` in `data_dir`, or PostgreSQL at
/// `database_url`), migrated, for a command beside a running node.
///
/// # Errors
/// When the store cannot be opened or migrated.
pub async fn open_store(
    data_dir: &Path,
    database_url: Option<&str>,
) -> anyhow::Result<Arc<dyn Store>> {
    use anyhow::Context as _;
    // Nothing is appended: commits have no receiver.
    let commits = tokio::sync::mpsc::channel(1).0;
    Ok(match database_url {
        Some(url) => Arc::new(
            crate::store::postgres::PgStore::connect(
                url,
                crate::store::postgres::PgConfig {
                    pool_size: 2,
                    writers: 1,
                    ..Default::default()
                },
                commits,
            )
            .await
            .context("connecting to PostgreSQL")?,
        ),
        None => {
            switchboard_auth::datadir::secure_dir(data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let path = data_dir.join("hub.db");
            switchboard_auth::datadir::secure_file(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            Arc::new(
                crate::store::sqlite::SqliteStore::open(&path, crate::service::now_ms(), commits)
                    .await
                    .context("opening the hub store")?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_has_its_shape_and_its_id_finds_it() {
        let made = new_key("backend", 0);
        assert!(made.key.starts_with("sbk_"), "{}", made.key);
        assert_eq!(made.key.len(), 4 + 16 + 1 + 43);
        assert_eq!(key_id(&made.key), Some(made.record.id.as_str()));
        assert_eq!(made.record.hash, hash(&made.key));
        for bad in [
            "",
            "sbk_",
            "sbk_0123456789abcdef",
            "sbk_0123456789abcdef_",
            "xbk_0123456789abcdef_x",
            "sbk_0123456789ABCDEF_x",
            "sbk_é123456789abcdef_x",
        ] {
            assert_eq!(key_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates_print_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_767_225_600_000 + 3_661_000),
            "2026-01-01T01:01:01Z"
        );
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
