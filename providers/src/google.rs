//! Google Sign-In: the client sends the ID token Google gave it; it must be
//! signed by one of Google's published keys, issued by Google (either
//! spelling), for one of the game's client ids, and not expired. The player
//! is the token's `sub`; the name and picture fill a new account, as Nakama
//! does.

use std::time::Duration;

use elements_config::providers::Google as Settings;
use elements_identity::scheme;

use crate::Fetcher;
use crate::id_token::{IdTokenVerifier, Provider};

/// The Google verifier for `settings`.
pub fn verifier(settings: &Settings, fetcher: Fetcher, ttl: Duration) -> IdTokenVerifier {
    let provider = Provider {
        scheme: scheme::GOOGLE,
        name: "Google",
        label: "Google ID",
        token: "Google access token",
    };
    IdTokenVerifier::new(
        provider,
        &settings.keys_url,
        settings.issuers.clone(),
        settings.client_ids.clone(),
        fetcher,
        ttl,
    )
}
