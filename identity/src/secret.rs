//! Secrets: random generation (OS CSPRNG), hashing for storage, constant-time
//! comparison, and a wrapper that never prints its contents.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{IdentityError, Result};

/// A secret string (password, signing key, server key) whose `Debug` and
/// `Display` never show it, so it can sit in configuration structs that get
/// logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself: call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)
        .map_err(|e| IdentityError::internal(format!("no randomness available: {e}")))?;
    Ok(bytes)
}

/// A random token of `n` bytes of entropy, URL-safe base64 without padding
/// (so it travels in headers and paths unescaped).
pub fn random_token(n: usize) -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(n)?))
}

/// SHA-256 of `secret`, lower-case hex: how high-entropy secrets (session
/// secrets) are stored. A fast hash is enough for 256-bit random secrets: no
/// dictionary to try, and a leaked hash cannot be replayed as the secret.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Compares two secrets (or their hashes) in time independent of where they
/// differ. Lengths are not secret (hashes and keys have fixed lengths).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() -> Result<()> {
        let a = random_token(32)?;
        let b = random_token(32)?;
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        Ok(())
    }

    #[test]
    fn hashing_and_comparison() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(ct_eq("same", "same"));
        assert!(!ct_eq("same", "sama"));
        assert!(!ct_eq("same", "same+"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter22");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter22");
    }
}
