//! argon2id password hashing, off the async threads, bounded in time, memory and queue.
//!
//! Why `spawn_blocking` behind a semaphore: one argon2id hash with the default parameters
//! (19 MiB, 2 passes) takes tens of milliseconds of CPU and 19 MiB of memory. Run on a Tokio
//! worker it would stall every other task on that thread (sockets included) for that long, so it
//! runs on the blocking pool. The blocking pool is large (512 threads), so without a bound a burst
//! of logins would start hundreds of hashes at once: hundreds of MiB and every core busy. The
//! semaphore caps concurrent hashes at `hash_concurrency`.
//!
//! Why one reusable memory block per slot: argon2's own `hash_password`/`verify_password`
//! allocate and free 19 MiB per call. On the blocking pool those calls land on many threads, and
//! glibc keeps the freed blocks in per-thread arenas instead of returning them: 100 concurrent
//! bad logins took a fresh hub from 31 MiB to 927 MiB, never given back. Here each slot owns one
//! `Vec<Block>` that every hash in that slot reuses ([`Argon2::hash_password_into_with_memory`]),
//! so at most `hash_concurrency` × 19 MiB is ever allocated for hashing, once.
//!
//! Why a bounded queue: a request that finds every slot busy waits for one, but at most
//! `hash_queue` requests wait; the next ones fail at once with [`AuthError::Busy`] (503
//! `unavailable` with `Retry-After`) instead of queueing for seconds behind a burst.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::errors::InvalidValue;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::error::AuthError;

/// The parameters of new hashes: argon2id v19, 19 MiB, 2 passes, 1 lane, 32-byte output (the
/// argon2 crate's defaults, OWASP's minimum).
const PARAMS: Params = Params::DEFAULT;
/// Most memory a stored hash may ask for, in 1 KiB blocks (64 MiB). Stored hashes are ours, made
/// with [`PARAMS`]; this bounds what a slot's memory can grow to if the parameters are raised.
const MAX_BLOCKS: usize = 64 * 1024;
/// Largest salt decoded from a stored hash, in bytes (the PHC format's maximum).
const MAX_SALT_BYTES: usize = 64;

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Passwords {
    slots: Arc<Slots>,
    /// A hash of a random password with the same parameters as real ones. Login verifies
    /// against it when the username is unknown, so that an unknown user costs the same time as a
    /// wrong password and timing does not reveal which usernames exist.
    dummy_hash: Arc<str>,
}

/// The hashing slots and their queue.
struct Slots {
    /// One permit per slot.
    permits: Arc<Semaphore>,
    /// The slots' memory. Invariant: a task takes one out only while it holds a permit and puts
    /// it back before releasing the permit, so there are never more than `hash_concurrency`
    /// memories; one is allocated on the first use of a slot and kept for good.
    memory: Mutex<Vec<Vec<Block>>>,
    /// Requests waiting for a permit now.
    waiting: AtomicUsize,
    /// Most requests that may wait for a permit.
    queue: usize,
}

impl Passwords {
    /// Sets up hashing with at most `concurrency` (at least 1) hashes at a time and at most
    /// `queue` requests waiting for one; computes the dummy hash.
    pub(crate) async fn new(concurrency: usize, queue: usize) -> Result<Self, AuthError> {
        let mut this = Self {
            slots: Arc::new(Slots {
                permits: Arc::new(Semaphore::new(concurrency.max(1))),
                memory: Mutex::new(Vec::new()),
                waiting: AtomicUsize::new(0),
                queue,
            }),
            dummy_hash: Arc::from(""),
        };
        let random = uuid::Uuid::new_v4().to_string();
        this.dummy_hash = Arc::from(this.hash(random).await?);
        Ok(this)
    }

    /// The argon2id PHC string of `password`, with a fresh random salt.
    ///
    /// # Errors
    /// [`AuthError::Busy`] when every slot is busy and the queue is full.
    pub(crate) async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run(move |memory| hash_with(memory, password.as_bytes()))
            .await
    }

    /// Whether `password` matches `stored` (a PHC string). With `stored == None` (unknown user)
    /// it verifies against the dummy hash, taking the same time, and returns `false`.
    ///
    /// # Errors
    /// [`AuthError::Busy`] when every slot is busy and the queue is full;
    /// [`AuthError::PasswordHash`] if `stored` is not a PHC string we can verify.
    pub(crate) async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, AuthError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matched = self
            .run(move |memory| verify_with(memory, password.as_bytes(), &phc))
            .await?;
        Ok(known && matched)
    }

    /// Runs `f` with a slot's memory on the blocking pool once a permit is free, or fails with
    /// [`AuthError::Busy`] at once if `queue` requests already wait. The permit moves into the
    /// blocking task, so a cancelled caller does not free its slot while the hash still runs.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let slots = &self.slots;
        let permit = match Arc::clone(&slots.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => {
                let _waiting = QueueSpot::take(slots).ok_or(AuthError::Busy)?;
                Arc::clone(&slots.permits)
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
            Err(TryAcquireError::Closed) => unreachable!("the semaphore is never closed"),
        };
        let slots = Arc::clone(slots);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut memory = slots
                .memory
                .lock()
                .expect("no panic while held")
                .pop()
                .unwrap_or_default();
            let result = f(&mut memory);
            slots
                .memory
                .lock()
                .expect("no panic while held")
                .push(memory);
            result
        })
        .await?
    }
}

/// A place in the queue of requests waiting for a slot; leaving it (drop) frees the place.
struct QueueSpot<'a>(&'a AtomicUsize);

impl<'a> QueueSpot<'a> {
    /// A place, or `None` if `slots.queue` requests wait already.
    fn take(slots: &'a Slots) -> Option<Self> {
        let before = slots.waiting.fetch_add(1, Ordering::AcqRel);
        let spot = Self(&slots.waiting);
        (before < slots.queue).then_some(spot)
    }
}

impl Drop for QueueSpot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The PHC string of `password` with [`PARAMS`] and a fresh salt, computed in `memory`. The
/// same string `Argon2::default().hash_password` gives for that salt (tested).
fn hash_with(memory: &mut Vec<Block>, password: &[u8]) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, PARAMS);
    let mut salt_buf = [0u8; MAX_SALT_BYTES];
    let salt_bytes = salt
        .decode_b64(&mut salt_buf)
        .map_err(AuthError::PasswordHash)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(&argon2, memory, password, salt_bytes, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&PARAMS).map_err(AuthError::PasswordHash)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(AuthError::PasswordHash)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to `phc` (algorithm, version, parameters and salt taken from it),
/// computed in `memory`; the comparison is constant-time ([`Output`]'s `PartialEq`).
fn verify_with(memory: &mut Vec<Block>, password: &[u8], phc: &str) -> Result<bool, AuthError> {
    let parsed = PasswordHash::new(phc).map_err(AuthError::PasswordHash)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(AuthError::PasswordHash)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| AuthError::PasswordHash(e.into()))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(AuthError::PasswordHash)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(AuthError::PasswordHash(
            argon2::password_hash::Error::PhcStringField,
        ));
    };
    let mut salt_buf = [0u8; MAX_SALT_BYTES];
    let salt_bytes = salt
        .decode_b64(&mut salt_buf)
        .map_err(AuthError::PasswordHash)?;
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    compute(&argon2, memory, password, salt_bytes, &mut out)?;
    let computed = Output::new(&out).map_err(AuthError::PasswordHash)?;
    Ok(computed == expected)
}

/// Hashes into `out` using `memory`, grown (once, up to [`MAX_BLOCKS`]) if these parameters need
/// more than it has.
fn compute(
    argon2: &Argon2<'_>,
    memory: &mut Vec<Block>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), AuthError> {
    let needed = argon2.params().block_count();
    if needed > MAX_BLOCKS {
        return Err(AuthError::PasswordHash(
            argon2::password_hash::Error::ParamValueInvalid(InvalidValue::TooLong),
        ));
    }
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    argon2
        .hash_password_into_with_memory(password, salt, out, &mut memory[..needed])
        .map_err(|e| AuthError::PasswordHash(e.into()))
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    #[tokio::test]
    async fn hash_verifies_and_unknown_user_never_matches() {
        let passwords = Passwords::new(1, 0).await.unwrap();
        let phc = passwords.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(passwords
            .verify("correct horse".into(), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!passwords.verify("wrong".into(), Some(phc)).await.unwrap());
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
    }

    /// Hashes stored before slots existed (argon2's own `hash_password`) still verify, and ours
    /// verify with argon2's own `verify_password`.
    #[test]
    fn compatible_with_argon2s_own_hashing() {
        let mut memory = Vec::new();
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = Argon2::default()
            .hash_password(b"pass word", &salt)
            .unwrap()
            .to_string();
        assert!(verify_with(&mut memory, b"pass word", &theirs).unwrap());
        assert!(!verify_with(&mut memory, b"pass wore", &theirs).unwrap());

        let ours = hash_with(&mut memory, b"pass word").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        Argon2::default()
            .verify_password(b"pass word", &parsed)
            .unwrap();
        assert_eq!(memory.len(), PARAMS.block_count(), "allocated once, kept");
    }

    #[test]
    fn malformed_stored_hashes_are_errors() {
        let mut memory = Vec::new();
        for bad in ["", "plain", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ"] {
            assert!(verify_with(&mut memory, b"x", bad).is_err(), "{bad:?}");
        }
    }

    /// With one slot and a queue of one, a third concurrent request is refused at once.
    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let passwords = Passwords::new(1, 1).await.unwrap();
        let permit = Arc::clone(&passwords.slots.permits)
            .acquire_owned()
            .await
            .unwrap();
        let waiter = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.hash("queued one".into()).await }
        });
        while passwords.slots.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = passwords.hash("one too many".into()).await;
        assert!(matches!(refused, Err(AuthError::Busy)), "{refused:?}");
        assert_eq!(passwords.slots.waiting.load(Ordering::Acquire), 1);
        drop(permit);
        assert!(waiter.await.unwrap().is_ok());
        assert_eq!(passwords.slots.waiting.load(Ordering::Acquire), 0);
    }
}
