//! Sign in with Apple: the client sends the ID token Apple gave it; it must
//! be signed by one of Apple's published keys, issued by Apple, for one of
//! the game's bundle ids, and not expired. The player is the token's `sub`.

use std::time::Duration;

use async_trait::async_trait;
use elements_config::providers::Apple as Settings;
use elements_identity::{Credential, IdentityVerifier, Result, VerifiedIdentity, scheme};

use crate::jwt::{self};
use crate::keys::KeySet;
use crate::{Fetcher, required};

/// The Apple verifier.
pub struct Apple {
    keys: KeySet,
    issuer: Vec<String>,
    audiences: Vec<String>,
}

impl Apple {
    /// A verifier for `settings`.
    pub fn new(settings: &Settings, fetcher: Fetcher, ttl: Duration) -> Apple {
        Apple {
            keys: KeySet::new("Apple keys", &settings.keys_url, fetcher, ttl),
            issuer: vec![settings.issuer.clone()],
            audiences: settings.bundle_ids.clone(),
        }
    }
}

#[async_trait]
impl IdentityVerifier for Apple {
    fn scheme(&self) -> &str {
        scheme::APPLE
    }
    fn label(&self) -> &str {
        "Apple ID"
    }
    fn normalize(&self, id: &str) -> Result<String> {
        Ok(id.to_owned())
    }
    async fn identify(&self, credential: &Credential) -> Result<String> {
        Ok(self.verify(credential).await?.id)
    }
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity> {
        let token = credential
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| required("Apple ID token"))?;
        let claims = jwt::verify("Apple", token, &self.keys, &self.issuer, &self.audiences).await?;
        // Apple vouches for the address only when it says so.
        jwt::identity(scheme::APPLE, "Apple", &claims, false)
    }
}
