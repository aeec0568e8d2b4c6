//! The credentials file: the token pair of each server the user is logged in to.
//!
//! `credentials.json` in the config directory (`SWITCHBOARD_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/switchboard`, i.e. `~/.config/switchboard` on Linux):
//!
//! ```json
//! {"servers":{"http://127.0.0.1:8080":{"username":"alice","access_token":"eyJ...",
//!   "refresh_token":"01JD...","expires_at":1763780000}}}
//! ```
//!
//! **Invariants.** The file is never readable by others: it is written to a new file created
//! with mode 0600 (in a directory created 0700) and renamed over the old one, so it is also never
//! seen half-written. Every read-modify-write holds an exclusive `flock` on `credentials.lock`:
//! refresh tokens are single-use and presenting a spent one revokes the whole session, so two
//! CLI processes (a `tail` and a `send`) must never refresh the same pair concurrently. The
//! second one, once it has the lock, finds the pair already rotated and uses it.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};
use switchboard_client::protocol::rest::TokenPair;

use super::error::CliError;

const FILE_NAME: &str = "credentials.json";
const LOCK_NAME: &str = "credentials.lock";

/// The whole file: one entry per server URL.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CredentialsFile {
    #[serde(default)]
    pub servers: BTreeMap<String, Credentials>,
}

/// One server's session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
    /// When `access_token` expires, in seconds since the Unix epoch: its JWT `exp` claim, or
    /// (if the token cannot be read) the time of issue plus `expires_in`.
    pub expires_at: u64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print tokens.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The credentials of a fresh pair (from login or refresh), received now.
    pub fn from_pair(pair: &TokenPair) -> Self {
        let expires_at = token_exp(&pair.access_token)
            .unwrap_or_else(|| unix_now().saturating_add(pair.expires_in));
        Self {
            username: pair.user.username.clone(),
            access_token: pair.access_token.clone(),
            refresh_token: pair.refresh_token.clone(),
            expires_at,
        }
    }
}

/// The `exp` claim of a JWT, read without verifying it (the server does that; the client only
/// wants to know when to refresh). `None` if `token` is not a readable JWT.
pub fn token_exp(token: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Claims {
        exp: u64,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Claims>(&bytes).ok().map(|c| c.exp)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Where the credentials live.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// An exclusive lock on the credentials, held until dropped (closing the file releases it).
pub struct Lock {
    _file: File,
}

impl Store {
    /// `dir` if given (`--config-dir` / `SWITCHBOARD_CONFIG_DIR`), else the user's config
    /// directory + `switchboard`.
    pub fn locate(dir: Option<PathBuf>) -> Result<Self, CliError> {
        let dir = match dir {
            Some(dir) => dir,
            None => dirs::config_dir()
                .ok_or_else(|| {
                    CliError::Usage(
                        "no configuration directory (HOME is not set); set SWITCHBOARD_CONFIG_DIR"
                            .into(),
                    )
                })?
                .join("switchboard"),
        };
        Ok(Self { dir })
    }

    /// The credentials file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Takes the exclusive lock, waiting for another process to release it. Blocking: call it
    /// through [`Store::lock_async`] from async code.
    fn lock(&self) -> Result<Lock, CliError> {
        self.ensure_dir()?;
        let path = self.dir.join(LOCK_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(config_error(&path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|errno| config_error(&path)(errno.into()))?;
        Ok(Lock { _file: file })
    }

    /// [`Store::lock`] on a blocking thread, so that waiting for another process does not stall
    /// the runtime (a `tail` keeps answering pings meanwhile).
    pub async fn lock_async(&self) -> Result<Lock, CliError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.lock())
            .await
            .expect("the lock task does not panic")
    }

    /// Reads the file; a missing file is an empty one.
    pub fn load(&self) -> Result<CredentialsFile, CliError> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| CliError::Config {
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, err),
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(CredentialsFile::default()),
            Err(err) => Err(config_error(&path)(err)),
        }
    }

    /// The credentials for `server`, if any.
    pub fn get(&self, server: &str) -> Result<Option<Credentials>, CliError> {
        Ok(self.load()?.servers.remove(server))
    }

    /// Sets (`Some`) or removes (`None`) the entry of `server`, under the lock the caller holds.
    pub fn put(
        &self,
        _lock: &Lock,
        server: &str,
        credentials: Option<Credentials>,
    ) -> Result<(), CliError> {
        let mut file = self.load()?;
        match credentials {
            Some(credentials) => file.servers.insert(server.to_owned(), credentials),
            None => file.servers.remove(server),
        };
        self.save(&file)
    }

    /// Writes `file` atomically with mode 0600: a new file, then a rename over the old one.
    fn save(&self, file: &CredentialsFile) -> Result<(), CliError> {
        self.ensure_dir()?;
        let path = self.path();
        let tmp = self
            .dir
            .join(format!("{FILE_NAME}.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(file).expect("credentials serialise");
        let write = || -> io::Result<()> {
            // A leftover of a crashed run may have other permissions: never reuse it.
            match fs::remove_file(&tmp) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            out.write_all(&json)?;
            out.write_all(b"\n")?;
            out.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|err| {
            let _ = fs::remove_file(&tmp);
            config_error(&path)(err)
        })
    }

    fn ensure_dir(&self) -> Result<(), CliError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(config_error(&self.dir))
    }
}

fn config_error(path: &Path) -> impl Fn(io::Error) -> CliError + '_ {
    move |source| CliError::Config {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn credentials(user: &str) -> Credentials {
        Credentials {
            username: user.into(),
            access_token: "a".into(),
            refresh_token: "r".into(),
            expires_at: 1,
        }
    }

    #[test]
    fn entries_are_kept_per_server_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::locate(Some(dir.path().join("nested"))).unwrap();
        assert_eq!(store.get("http://a").unwrap(), None);
        let lock = store.lock().unwrap();
        store
            .put(&lock, "http://a", Some(credentials("alice")))
            .unwrap();
        store
            .put(&lock, "http://b", Some(credentials("bob")))
            .unwrap();
        assert_eq!(store.get("http://a").unwrap(), Some(credentials("alice")));
        store.put(&lock, "http://a", None).unwrap();
        assert_eq!(store.get("http://a").unwrap(), None);
        assert_eq!(store.get("http://b").unwrap(), Some(credentials("bob")));
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn the_expiry_is_read_from_the_jwt_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"u","exp":1763780000,"iat":1763779100}"#);
        let token = format!("eyJhbGciOiJFZERTQSJ9.{payload}.c2ln");
        assert_eq!(token_exp(&token), Some(1_763_780_000));
        assert_eq!(token_exp("not a jwt"), None);
        assert_eq!(token_exp("a.!!!.c"), None);
    }
}
