//! Identity verifiers: one per scheme, turning what a client presents into a
//! `(scheme, id)` the service can find or create a user by.
//!
//! Adding a login method (Apple, Google, Facebook, Steam, Game Center, OIDC)
//! means implementing [`IdentityVerifier`] for its scheme (check the
//! provider's token, return the provider's user id, `Verified`) and
//! registering it with [`crate::IdentityService::register_verifier`]; the
//! model, find-or-create, linking and sessions stay as they are.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::{IdentityError, Result};
use crate::model::{Verification, scheme};
use crate::validate;

/// What a client presents to authenticate or link.
#[derive(Debug, Clone, Default)]
pub struct Credential {
    /// The identifier (device id, custom id, email...).
    pub id: String,
    /// A password, for schemes that prove knowledge of one (email).
    pub password: Option<String>,
    /// A provider token, for schemes a third party vouches for (social logins).
    pub token: Option<String>,
    /// The other parts of a proof, by name, for schemes whose proof is more
    /// than one token (Game Center's `salt`, `signature`...).
    pub fields: BTreeMap<String, String>,
}

impl Credential {
    /// A credential that is only an id.
    pub fn id(id: impl Into<String>) -> Credential {
        Credential {
            id: id.into(),
            ..Credential::default()
        }
    }
}

/// A credential a verifier accepted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VerifiedIdentity {
    /// The scheme.
    pub scheme: String,
    /// The canonical id within the scheme.
    pub id: String,
    /// How well the id is proven.
    pub status: Verification,
    /// A password the account must have (existing accounts) or gets (new
    /// accounts and links).
    pub password: Option<String>,
    /// The account's email, if the scheme knows it (set on new accounts).
    pub email: Option<String>,
    /// The name the provider shows for the player (set on new accounts).
    pub display_name: Option<String>,
    /// The player's picture at the provider (set on new accounts).
    pub avatar_url: Option<String>,
}

/// Checks credentials of one scheme.
#[async_trait]
pub trait IdentityVerifier: Send + Sync + 'static {
    /// The scheme this verifier handles, e.g. `device`.
    fn scheme(&self) -> &str;

    /// How messages name an id of this scheme, e.g. `Device ID` (as in
    /// "Device ID is already in use.").
    fn label(&self) -> &str;

    /// Validates and canonicalizes a bare id (for unlinking and lookups).
    fn normalize(&self, id: &str) -> Result<String>;

    /// Verifies a credential presented to authenticate or link.
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity>;

    /// The id a credential presented to unlink names. By default the bare
    /// id, normalized; a provider's proof is verified instead (as Nakama
    /// does), so a token alone can't name someone else's id.
    async fn identify(&self, credential: &Credential) -> Result<String> {
        self.normalize(&credential.id)
    }
}

/// Device ids: unproven, 10–128 bytes.
#[derive(Debug, Default)]
pub struct DeviceVerifier;

#[async_trait]
impl IdentityVerifier for DeviceVerifier {
    fn scheme(&self) -> &str {
        scheme::DEVICE
    }
    fn label(&self) -> &str {
        "Device ID"
    }
    fn normalize(&self, id: &str) -> Result<String> {
        validate::device_id(id)
    }
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity> {
        Ok(VerifiedIdentity {
            scheme: scheme::DEVICE.into(),
            id: self.normalize(&credential.id)?,
            status: Verification::Unverified,
            ..VerifiedIdentity::default()
        })
    }
}

/// Custom ids from an external identity service: 6–128 bytes. The game's
/// server vouches for them, so they are as (un)proven as that service.
#[derive(Debug, Default)]
pub struct CustomVerifier;

#[async_trait]
impl IdentityVerifier for CustomVerifier {
    fn scheme(&self) -> &str {
        scheme::CUSTOM
    }
    fn label(&self) -> &str {
        "Custom ID"
    }
    fn normalize(&self, id: &str) -> Result<String> {
        validate::custom_id(id)
    }
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity> {
        Ok(VerifiedIdentity {
            scheme: scheme::CUSTOM.into(),
            id: self.normalize(&credential.id)?,
            status: Verification::Unverified,
            ..VerifiedIdentity::default()
        })
    }
}

/// Email and password. The address is lower-cased; it stays `Unverified`
/// until something (the Email Verification Element) proves it.
#[derive(Debug, Default)]
pub struct EmailVerifier;

#[async_trait]
impl IdentityVerifier for EmailVerifier {
    fn scheme(&self) -> &str {
        scheme::EMAIL
    }
    fn label(&self) -> &str {
        "Email"
    }
    fn normalize(&self, id: &str) -> Result<String> {
        validate::email(id)
    }
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity> {
        let email = self.normalize(&credential.id)?;
        let password = credential.password.clone().unwrap_or_default();
        validate::password(&password)?;
        Ok(VerifiedIdentity {
            scheme: scheme::EMAIL.into(),
            id: email.clone(),
            status: Verification::Unverified,
            password: Some(password),
            email: Some(email),
            ..VerifiedIdentity::default()
        })
    }
}

/// The error for an unknown scheme.
pub(crate) fn unknown_scheme(scheme: &str) -> IdentityError {
    IdentityError::invalid(format!("unknown identity scheme {scheme:?}"))
}
