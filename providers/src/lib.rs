//! Login providers: each checks a proof by its provider's documented
//! mechanism and, when it is genuine, says who the player is there.
//!
//! Every provider is one module implementing
//! [`elements_identity::IdentityVerifier`] for its scheme; [`verifiers`]
//! builds those the operator configured (`[providers.*]`), and the
//! composition root registers them with the identity service. The service
//! then treats them like device or email logins: find or create the
//! account, link, unlink. Adding a provider is adding a module and one line
//! in [`verifiers`].
//!
//! What holds for all of them:
//! - The server decides whether a proof is genuine; a client's claims
//!   (an id, a name) count only when the provider signed them.
//! - A forged, expired, stale or wrong-audience proof is
//!   `Unauthenticated` ("Could not authenticate … profile.", Nakama's
//!   words); a provider that can't be reached or answers nonsense is
//!   `ProviderUnavailable` (502) and nothing changes.
//! - Published keys and certificates are cached ([`keys`]), refetched
//!   when they expire or a token names a key id not yet seen, at most once
//!   every few seconds, so a flood of made-up key ids can't turn the
//!   server into a flood against the provider.

pub mod apple;
pub mod facebook;
pub mod facebook_instant;
pub mod game_center;
pub mod google;
pub mod id_token;
pub mod keys;
pub mod schemes;
pub mod steam;

mod fetch;
mod jwt;

use std::sync::Arc;

use elements_config::providers::Providers;
use elements_identity::{IdentityError, IdentityVerifier};

pub use fetch::Fetcher;
pub use schemes::AuthSchemes;

/// The checker of the auth schemes operators register at run time.
pub fn auth_schemes(settings: &Providers) -> Result<AuthSchemes, IdentityError> {
    Ok(AuthSchemes::new(
        Fetcher::new(settings.timeout())?,
        settings.keys_ttl(),
    ))
}

/// The verifiers of the providers `settings` configures.
pub fn verifiers(settings: &Providers) -> Result<Vec<Arc<dyn IdentityVerifier>>, IdentityError> {
    let fetcher = Fetcher::new(settings.timeout())?;
    let ttl = settings.keys_ttl();
    let mut out: Vec<Arc<dyn IdentityVerifier>> = Vec::new();
    if let Some(s) = &settings.apple {
        out.push(Arc::new(apple::verifier(s, fetcher.clone(), ttl)));
    }
    if let Some(s) = &settings.google {
        out.push(Arc::new(google::verifier(s, fetcher.clone(), ttl)));
    }
    if let Some(s) = &settings.facebook {
        out.push(Arc::new(facebook::Facebook::new(s, fetcher.clone(), ttl)));
    }
    if let Some(s) = &settings.facebook_instant_game {
        out.push(Arc::new(facebook_instant::FacebookInstantGame::new(s)));
    }
    if let Some(s) = &settings.game_center {
        out.push(Arc::new(game_center::GameCenter::new(s, fetcher.clone(), ttl)?));
    }
    if let Some(s) = &settings.steam {
        out.push(Arc::new(steam::Steam::new(s, fetcher.clone())));
    }
    Ok(out)
}

/// Nakama's message for a proof that is not genuine, e.g. "Could not
/// authenticate Apple profile.".
pub(crate) fn not_genuine(provider: &str) -> IdentityError {
    IdentityError::Unauthenticated(format!("Could not authenticate {provider} profile."))
}

/// A required part of a proof is missing or empty (Nakama's wording).
pub(crate) fn required(what: &str) -> IdentityError {
    IdentityError::invalid(format!("{what} is required."))
}

/// Proofs are short; anything longer is refused before any work is done.
pub(crate) const MAX_PROOF: usize = 16 * 1024;

/// The current Unix time in seconds.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
