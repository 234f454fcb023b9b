//! A provider whose proof is an ID token: a JWT signed by one of its
//! published keys, naming its issuer and one of the configured audiences
//! (Apple and Google today). The player is the token's `sub`.

use std::time::Duration;

use async_trait::async_trait;
use elements_identity::{Credential, IdentityVerifier, Result, VerifiedIdentity};

use crate::keys::KeySet;
use crate::{Fetcher, jwt, required};

/// What differs between ID-token providers.
pub(crate) struct Provider {
    /// The identity scheme, e.g. `apple`.
    pub scheme: &'static str,
    /// The name in messages, e.g. `Apple`.
    pub name: &'static str,
    /// How conflicts name an id, e.g. `Apple ID`.
    pub label: &'static str,
    /// What the missing token is called, e.g. `Apple ID token`.
    pub token: &'static str,
}

/// An ID-token verifier.
pub struct IdTokenVerifier {
    provider: Provider,
    keys: KeySet,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

impl IdTokenVerifier {
    pub(crate) fn new(
        provider: Provider,
        keys_url: &str,
        issuers: Vec<String>,
        audiences: Vec<String>,
        fetcher: Fetcher,
        ttl: Duration,
    ) -> IdTokenVerifier {
        let keys = KeySet::new(format!("{} keys", provider.name), keys_url, fetcher, ttl);
        IdTokenVerifier {
            provider,
            keys,
            issuers,
            audiences,
        }
    }
}

#[async_trait]
impl IdentityVerifier for IdTokenVerifier {
    fn scheme(&self) -> &str {
        self.provider.scheme
    }
    fn label(&self) -> &str {
        self.provider.label
    }
    fn normalize(&self, id: &str) -> Result<String> {
        Ok(id.to_owned())
    }
    async fn identify(&self, credential: &Credential) -> Result<String> {
        Ok(self.verify(credential).await?.id)
    }
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity> {
        let p = &self.provider;
        let token = credential
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| required(p.token))?;
        let claims = jwt::verify(p.name, token, &self.keys, &self.issuers, &self.audiences).await?;
        // The email counts only when the provider says it verified it.
        jwt::identity(p.scheme, p.name, &claims, false)
    }
}
