//! argon2id password hashing, off the async threads and bounded.
//!
//! Why `spawn_blocking` behind a semaphore: one argon2id hash with the default parameters
//! (19 MiB, 2 passes) takes tens of milliseconds of CPU and 19 MiB of memory. Run on a Tokio
//! worker it would stall every other task on that thread (sockets included) for that long, so it
//! runs on the blocking pool. The blocking pool is large (512 threads), so without a bound a burst
//! of logins would start hundreds of hashes at once: hundreds of MiB and every core busy. The
//! semaphore caps concurrent hashes at `hash_concurrency`; excess requests wait their turn.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::error::AuthError;

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a random password with the same parameters as real ones. Login verifies
    /// against it when the username is unknown, so that an unknown user costs the same time as a
    /// wrong password and timing does not reveal which usernames exist.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Sets up hashing with at most `concurrency` (at least 1) hashes at a time; computes the
    /// dummy hash.
    pub(crate) async fn new(concurrency: usize) -> Result<Self, AuthError> {
        let mut this = Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::from(""),
        };
        let random = uuid::Uuid::new_v4().to_string();
        this.dummy_hash = Arc::from(this.hash(random).await?);
        Ok(this)
    }

    /// The argon2id PHC string of `password`, with a fresh random salt.
    pub(crate) async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(AuthError::PasswordHash)
        })
        .await
    }

    /// Whether `password` matches `stored` (a PHC string). With `stored == None` (unknown user)
    /// it verifies against the dummy hash, taking the same time, and returns `false`.
    pub(crate) async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, AuthError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matched = self
            .run(move || {
                let parsed = PasswordHash::new(&phc).map_err(AuthError::PasswordHash)?;
                match Argon2::default().verify_password(password.as_bytes(), &parsed) {
                    Ok(()) => Ok(true),
                    Err(argon2::password_hash::Error::Password) => Ok(false),
                    Err(e) => Err(AuthError::PasswordHash(e)),
                }
            })
            .await?;
        Ok(known && matched)
    }

    /// Runs `f` on the blocking pool once a permit is free. The permit moves into the blocking
    /// task, so a cancelled caller does not free its slot while the hash still runs.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_and_unknown_user_never_matches() {
        let passwords = Passwords::new(1).await.unwrap();
        let phc = passwords.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(passwords
            .verify("correct horse".into(), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!passwords.verify("wrong".into(), Some(phc)).await.unwrap());
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
    }
}
