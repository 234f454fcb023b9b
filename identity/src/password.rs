//! Password hashing: argon2id with parameters at least OWASP's minimum
//! recommendation (Password Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1).
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`):
//! they carry their parameters, so raising [`PARAMS`] later keeps old hashes
//! verifiable. Salts are 16 random bytes from the OS CSPRNG. Verification
//! compares the derived hash in constant time (the `password-hash` crate's
//! `Output` equality). Hashing costs tens of milliseconds of CPU on purpose:
//! callers on an async runtime run it on a [`PasswordPool`], bounded in
//! threads and in waiting jobs.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{IdentityError, Result};
use crate::secret::random_bytes;

/// Memory cost in KiB (19 MiB: OWASP's minimum for argon2id).
pub const MEMORY_KIB: u32 = 19_456;
/// Passes over memory (OWASP: 2 with 19 MiB).
pub const ITERATIONS: u32 = 2;
/// Lanes (OWASP: 1).
pub const PARALLELISM: u32 = 1;

fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| IdentityError::internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with argon2id and a fresh random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random_bytes(16)?)
        .map_err(|e| IdentityError::internal(format!("argon2 salt: {e}")))?;
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| IdentityError::internal(format!("argon2 hashing: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`. A malformed stored hash
/// is an internal error, not a mismatch, so it is noticed.
pub fn verify_password(password: &str, phc: &str) -> Result<bool> {
    let parsed =
        PasswordHash::new(phc).map_err(|e| IdentityError::internal(format!("stored password hash: {e}")))?;
    match hasher()?.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(IdentityError::internal(format!("argon2 verification: {e}"))),
    }
}

/// A job of the password pool.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The threads that hash and verify passwords, apart from tokio's blocking
/// pool: argon2 is tens of milliseconds of CPU and 19 MiB per call, so a
/// login flood on the shared blocking pool would make every store call (the
/// SQLite backend runs there) wait behind it. A few dedicated threads (about
/// one per core) take jobs from a bounded queue; a full queue refuses at once
/// ([`IdentityError::Busy`]) rather than letting waiters pile up.
pub struct PasswordPool {
    jobs: std::sync::mpsc::SyncSender<Job>,
    workers: usize,
    queue: usize,
}

impl std::fmt::Debug for PasswordPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPool")
            .field("workers", &self.workers)
            .field("queue", &self.queue)
            .finish()
    }
}

/// What a refusal of a full pool tells the client to wait, in seconds: the
/// queue drains in well under that.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

impl PasswordPool {
    /// Starts `workers` threads (at least one) with room for `queue` waiting
    /// jobs. The threads end when the pool is dropped.
    pub fn new(workers: usize, queue: usize) -> Result<PasswordPool> {
        let workers = workers.max(1);
        let (jobs, receiver) = std::sync::mpsc::sync_channel::<Job>(queue);
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for n in 0..workers {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking a job, not while running it.
                        let job = match receiver.lock() {
                            Ok(r) => r.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| IdentityError::internal(format!("starting password threads: {e}")))?;
        }
        Ok(PasswordPool { jobs, workers, queue })
    }

    /// One thread per available core, 64 waiting jobs.
    pub fn with_defaults() -> Result<PasswordPool> {
        PasswordPool::new(default_workers(), DEFAULT_QUEUE)
    }

    /// Runs `f` on a pool thread; [`IdentityError::Busy`] at once when the
    /// queue is full.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The asker may have gone (request cancelled): nothing to tell.
            let _ = reply.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                return Err(IdentityError::Busy {
                    retry_after_secs: BUSY_RETRY_AFTER_SECS,
                });
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(IdentityError::internal("the password threads are gone"));
            }
        }
        answer
            .await
            .map_err(|_| IdentityError::internal("a password thread dropped its job"))?
    }

    /// [`hash_password`] on the pool.
    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move || hash_password(&password)).await
    }

    /// [`verify_password`] on the pool; with no stored hash, verifies
    /// against a dummy one (and answers false) so an account without a
    /// password costs as long as a wrong password.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool> {
        self.run(move || match phc {
            Some(phc) => verify_password(&password, &phc),
            None => verify_password(&password, dummy_hash()).map(|_| false),
        })
        .await
    }
}

/// Default number of password threads: the available cores.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Default number of password jobs that may wait for a thread.
pub const DEFAULT_QUEUE: usize = 64;

/// A hash of a random password, verified against when the account does not
/// exist, so an unknown login costs as long as a wrong password.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = crate::secret::random_token(16).unwrap_or_else(|_| "dummy-password".into());
        hash_password(&random).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_owasp_parameters() -> Result<()> {
        let hash = hash_password("correct horse")?;
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse", &hash)?);
        assert!(!verify_password("correct horsf", &hash)?);
        assert_ne!(hash, hash_password("correct horse")?, "salted");
        assert!(verify_password("x", "not a phc string").is_err());
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_pool_refuses_instead_of_queueing() -> Result<()> {
        // One thread, one waiting job. The thread is held by a job that
        // waits for our word, a hash waits in the queue: the next is refused
        // at once, and the waiting one still finishes once the thread frees.
        let pool = std::sync::Arc::new(PasswordPool::new(1, 1)?);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || started.recv())
            .await
            .map_err(|e| IdentityError::internal(e.to_string()))?
            .map_err(|e| IdentityError::internal(e.to_string()))?;
        // The thread is busy, so this job stays in the queue's one place.
        let (queued_tx, queued) = tokio::sync::oneshot::channel();
        let filler: Job = Box::new(move || {
            let _ = queued_tx.send(hash_password("correct horse"));
        });
        assert!(pool.jobs.try_send(filler).is_ok(), "the queue had room");
        assert_eq!(
            pool.verify("x".into(), None).await,
            Err(IdentityError::Busy { retry_after_secs: 1 })
        );
        let _ = release.send(());
        let join = |e: tokio::task::JoinError| IdentityError::internal(e.to_string());
        holder.await.map_err(join)??;
        let hash = queued
            .await
            .map_err(|e| IdentityError::internal(e.to_string()))??;
        assert!(verify_password("correct horse", &hash)?);
        assert!(!pool.verify("x".into(), None).await?, "no hash never matches");
        Ok(())
    }
}
