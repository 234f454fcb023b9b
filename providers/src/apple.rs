//! Sign in with Apple: the client sends the ID token Apple gave it; it must
//! be signed by one of Apple's published keys, issued by Apple, for one of
//! the game's bundle ids, and not expired. The player is the token's `sub`.

use std::time::Duration;

use elements_config::providers::Apple as Settings;
use elements_identity::scheme;

use crate::Fetcher;
use crate::id_token::{IdTokenVerifier, Provider};

/// The Apple verifier for `settings`.
pub fn verifier(settings: &Settings, fetcher: Fetcher, ttl: Duration) -> IdTokenVerifier {
    let provider = Provider {
        scheme: scheme::APPLE,
        name: "Apple",
        label: "Apple ID",
        token: "Apple ID token",
    };
    let issuers = vec![settings.issuer.clone()];
    IdTokenVerifier::new(
        provider,
        &settings.keys_url,
        issuers,
        settings.bundle_ids.clone(),
        fetcher,
        ttl,
    )
}
