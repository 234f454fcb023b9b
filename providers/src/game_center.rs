//! Apple Game Center: the client sends what
//! `GKLocalPlayer.fetchItems(forIdentityVerificationSignature:)` gave it:
//! the URL of Apple's signing certificate, a signature, a salt and a
//! timestamp, with the player and bundle ids. The signature is RSA-SHA256,
//! by the certificate's key, over `player_id ‖ bundle_id ‖ timestamp (u64
//! big-endian) ‖ salt`.
//!
//! The certificate is fetched only from Apple's documented host (the
//! configured `key_url_prefix`), never from where a client points, and is
//! cached. A timestamp outside `max_age_secs` of now is refused, and so is
//! a signature this node has already accepted within that window
//! (replays). The replay memory is per node: with several nodes, the
//! timestamp window is the bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use elements_config::providers::GameCenter as Settings;
use elements_identity::{
    Credential, IdentityError, IdentityVerifier, Result, Verification, VerifiedIdentity, scheme,
};
use rustls_pki_types::CertificateDer;

use crate::{Fetcher, MAX_PROOF, not_genuine, now_secs, required};

const PROVIDER: &str = "Game Center";
/// Most signatures remembered for replay checks.
const MAX_SEEN: usize = 100_000;
/// Most certificates cached (Apple serves one or two at a time).
const MAX_CERTIFICATES: usize = 16;

/// A certificate (DER) and when it expires, by URL.
type Cached = (Arc<Vec<u8>>, Instant);

/// The Game Center verifier.
pub struct GameCenter {
    bundle_ids: Vec<String>,
    prefix: url::Url,
    max_age: u64,
    ttl: Duration,
    fetcher: Fetcher,
    certificates: tokio::sync::Mutex<HashMap<String, Cached>>,
    seen: Mutex<HashMap<Vec<u8>, u64>>,
}

impl GameCenter {
    /// A verifier for `settings`; a prefix that is not a URL fails.
    pub fn new(settings: &Settings, fetcher: Fetcher, ttl: Duration) -> Result<GameCenter> {
        let prefix = url::Url::parse(&settings.key_url_prefix).map_err(|e| {
            IdentityError::invalid(format!(
                "[providers.game_center] key_url_prefix {:?}: {e}",
                settings.key_url_prefix
            ))
        })?;
        Ok(GameCenter {
            bundle_ids: settings.bundle_ids.clone(),
            prefix,
            max_age: settings.max_age_secs,
            ttl,
            fetcher,
            certificates: tokio::sync::Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `url` is under the configured prefix: same scheme, host and
    /// port, its path below the prefix's, no credentials, query or fragment.
    fn allowed(&self, url: &url::Url) -> bool {
        url.scheme() == self.prefix.scheme()
            && url.host_str() == self.prefix.host_str()
            && url.port_or_known_default() == self.prefix.port_or_known_default()
            && url.path().starts_with(self.prefix.path())
            && !url.path().contains("/../")
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
    }

    async fn certificate(&self, url: &url::Url) -> Result<Arc<Vec<u8>>> {
        let mut cache = self.certificates.lock().await;
        let now = Instant::now();
        if let Some((der, expires)) = cache.get(url.as_str())
            && now < *expires
        {
            return Ok(der.clone());
        }
        let answer = self
            .fetcher
            .get("Game Center certificate", url.as_str(), &[])
            .await?;
        if !answer.ok() {
            // Apple's host answering 404 for a made-up path under it: the
            // proof names a certificate that doesn't exist.
            if (400..500).contains(&answer.status) {
                return Err(not_genuine(PROVIDER));
            }
            return Err(IdentityError::ProviderUnavailable(format!(
                "Game Center certificate answered {}",
                answer.status
            )));
        }
        let der = Arc::new(answer.body);
        let ttl = answer.max_age.map_or(self.ttl, |a| a.min(self.ttl));
        if cache.len() >= MAX_CERTIFICATES {
            cache.retain(|_, (_, expires)| now < *expires);
            if cache.len() >= MAX_CERTIFICATES {
                cache.clear();
            }
        }
        cache.insert(url.as_str().to_owned(), (der.clone(), now + ttl));
        Ok(der)
    }

    /// Records `signature` as used at `timestamp`; false when it already was.
    fn first_use(&self, signature: &[u8], timestamp: u64, now: u64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() >= MAX_SEEN {
            let window = self.max_age;
            seen.retain(|_, t| now.abs_diff(*t) <= window);
        }
        if seen.len() >= MAX_SEEN {
            // Still full of live entries: refuse rather than forget one.
            return false;
        }
        seen.insert(signature.to_vec(), timestamp).is_none()
    }
}

/// A required string field of the proof.
fn field<'a>(credential: &'a Credential, name: &str, what: &str) -> Result<&'a str> {
    credential
        .fields
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| required(what))
}

#[async_trait]
impl IdentityVerifier for GameCenter {
    fn scheme(&self) -> &str {
        scheme::GAME_CENTER
    }
    fn label(&self) -> &str {
        "Game Center ID"
    }
    fn normalize(&self, id: &str) -> Result<String> {
        Ok(id.to_owned())
    }
    async fn identify(&self, credential: &Credential) -> Result<String> {
        Ok(self.verify(credential).await?.id)
    }
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity> {
        let player_id = credential.id.as_str();
        if player_id.is_empty() {
            return Err(required("Game Center ID"));
        }
        let bundle_id = field(credential, "bundle_id", "Bundle ID")?;
        let timestamp = field(credential, "timestamp_seconds", "Timestamp")?;
        let salt = field(credential, "salt", "Salt")?;
        let signature = field(credential, "signature", "Signature")?;
        let key_url = field(credential, "public_key_url", "Public key URL")?;
        let total = player_id.len() + bundle_id.len() + salt.len() + signature.len() + key_url.len();
        if total > MAX_PROOF {
            return Err(not_genuine(PROVIDER));
        }
        if !self.bundle_ids.iter().any(|b| b == bundle_id) {
            return Err(not_genuine(PROVIDER));
        }
        let timestamp: u64 = timestamp
            .parse()
            .map_err(|_| IdentityError::invalid("Timestamp is invalid."))?;
        let now = now_secs();
        if now.abs_diff(timestamp) > self.max_age {
            return Err(not_genuine(PROVIDER));
        }
        let salt = STANDARD.decode(salt).map_err(|_| not_genuine(PROVIDER))?;
        let signature = STANDARD.decode(signature).map_err(|_| not_genuine(PROVIDER))?;
        let url = url::Url::parse(key_url).map_err(|_| not_genuine(PROVIDER))?;
        if !self.allowed(&url) {
            return Err(not_genuine(PROVIDER));
        }
        let der = self.certificate(&url).await?;
        let certificate = CertificateDer::from(der.as_slice());
        let certificate = webpki::EndEntityCert::try_from(&certificate).map_err(|e| {
            tracing::warn!("Game Center certificate at {url} is not a certificate: {e}");
            not_genuine(PROVIDER)
        })?;
        let mut message = Vec::with_capacity(player_id.len() + bundle_id.len() + 8 + salt.len());
        message.extend_from_slice(player_id.as_bytes());
        message.extend_from_slice(bundle_id.as_bytes());
        message.extend_from_slice(&timestamp.to_be_bytes());
        message.extend_from_slice(&salt);
        certificate
            .verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, &message, &signature)
            .map_err(|_| not_genuine(PROVIDER))?;
        if !self.first_use(&signature, timestamp, now) {
            return Err(not_genuine(PROVIDER));
        }
        Ok(VerifiedIdentity {
            scheme: scheme::GAME_CENTER.into(),
            id: player_id.to_owned(),
            status: Verification::Verified,
            ..VerifiedIdentity::default()
        })
    }
}
