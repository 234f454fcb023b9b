//! Password hashing: argon2id with parameters at least OWASP's minimum
//! recommendation (Password Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1).
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`):
//! they carry their parameters, so raising [`PARAMS`] later keeps old hashes
//! verifiable. Salts are 16 random bytes from the OS CSPRNG. Verification
//! compares the derived hash in constant time (the `password-hash` crate's
//! `Output` equality). Hashing costs tens of milliseconds of CPU on purpose:
//! callers on an async runtime run it on a blocking thread
//! ([`hash_password_blocking`], [`verify_password_blocking`]).

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

/// [`hash_password`] on tokio's blocking pool.
pub async fn hash_password_blocking(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| IdentityError::internal(format!("password hashing task: {e}")))?
}

/// [`verify_password`] on tokio's blocking pool.
pub async fn verify_password_blocking(password: String, phc: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(|e| IdentityError::internal(format!("password verification task: {e}")))?
}

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
}
