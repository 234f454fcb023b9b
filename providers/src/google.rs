//! Google Sign-In: the client sends the ID token Google gave it; it must be
//! signed by one of Google's published keys, issued by Google, for one of
//! the game's client ids, and not expired. The player is the token's `sub`;
//! the name and picture fill a new account, as Nakama does.

use std::time::Duration;

use async_trait::async_trait;
use elements_config::providers::Google as Settings;
use elements_identity::{Credential, IdentityVerifier, Result, VerifiedIdentity, scheme};

use crate::jwt::{self};
use crate::keys::KeySet;
use crate::{Fetcher, required};

/// The Google verifier.
pub struct Google {
    keys: KeySet,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

impl Google {
    /// A verifier for `settings`.
    pub fn new(settings: &Settings, fetcher: Fetcher, ttl: Duration) -> Google {
        Google {
            keys: KeySet::new("Google keys", &settings.keys_url, fetcher, ttl),
            issuers: settings.issuers.clone(),
            audiences: settings.client_ids.clone(),
        }
    }
}

#[async_trait]
impl IdentityVerifier for Google {
    fn scheme(&self) -> &str {
        scheme::GOOGLE
    }
    fn label(&self) -> &str {
        "Google ID"
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
            .ok_or_else(|| required("Google access token"))?;
        let claims = jwt::verify("Google", token, &self.keys, &self.issuers, &self.audiences).await?;
        jwt::identity(scheme::GOOGLE, "Google", &claims, false)
    }
}
