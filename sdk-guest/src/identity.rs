//! Users, identities, profiles and sessions: the same accounts the server's
//! `/api/rest` and Nakama-compatible APIs manage, so a player an Element
//! creates is the same user everywhere.
//!
//! ```no_run
//! use elements_sdk::prelude::*;
//!
//! /// Logs a player in by an id some trusted service vouched for.
//! fn login(player_id: &str) -> Result<identity::SessionCreation> {
//!     let (user, _created) = identity::find_or_create_user("game.player.id", player_id, None)?;
//!     let (profile, _created) = identity::find_or_create_profile(&user.id, "my-game")?;
//!     identity::create_session(&user.id, Some(&profile.id), 3600)
//! }
//! ```
//!
//! # Entities
//!
//! [`User`], [`Profile`], [`Application`], [`Session`] and [`Identity`] are
//! the types the server itself answers `/api/rest` with (the
//! `elements-wire` crate, re-exported here), so an Element can return them
//! to its clients as they are and they serialize to exactly what
//! `/api/rest` shows. Fields a newer server adds are ignored until you
//! update the SDK.
//!
//! # Identities
//!
//! An identity is a `(scheme, id)` pair that names one user: an email address
//! (scheme [`EMAIL`]), a device id, a player id on another platform. Each has
//! a [`Verification`] status. [`find_or_create_user`] is atomic: any number
//! of concurrent first logins of one identity make exactly one user.
//!
//! # Who is calling
//!
//! [`caller`] resolves the request's session credentials (`Authorization:
//! Bearer` or `Elements-SessionSecret`), checked by the server; the Element
//! never sees the secret itself.
//!
//! # Errors
//!
//! Every function returns the SDK [`Error`]: a missing user, profile,
//! application or identity is 404 `not_found`; an identity of another user
//! or a taken unique value is 409 `conflict`; an invalid argument is 400
//! `bad_request`; an unreachable store is 503 `unavailable`; anything else
//! is 500 `internal`.
//!
//! These functions call the host, so the examples here are compiled but not
//! run.

use serde::de::DeserializeOwned;

use crate::__private::bindings::elements::platform::identity as wit;
use crate::error::{Error, Result};

pub use elements_wire::{
    Application, Caller, Identity, Level, Profile, ProfileUpdate, Session, SessionCreation, User,
    Verification,
};

/// The scheme of email identities; their id is the lower-case address.
pub const EMAIL: &str = "email";

/// The user linked to identity (`scheme`, `id`), created together with the
/// identity (verified) when there is none; returns the user and whether this
/// call created it. Atomic: concurrent calls for one identity make exactly
/// one user. `username` names a new user (one is generated when `None`); a
/// name that is taken is a 409 and an invalid one a 400.
///
/// ```no_run
/// use elements_sdk::identity;
///
/// let (user, created) = identity::find_or_create_user("steam.id", "7656119", Some("ada"))?;
/// if created {
///     elements_sdk::info!("welcome, {}", user.name);
/// }
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn find_or_create_user(scheme: &str, id: &str, username: Option<&str>) -> Result<(User, bool)> {
    let (user, created) = wit::find_or_create_user(scheme, id, username).map_err(from_wit)?;
    Ok((parse(&user)?, created))
}

/// A user by id.
///
/// ```no_run
/// let user = elements_sdk::identity::user("0b6e…")?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn user(id: &str) -> Result<User> {
    parse(&wit::user(id).map_err(from_wit)?)
}

/// An application by name or id, or `None` when there is none.
///
/// ```no_run
/// use elements_sdk::{identity, Error};
///
/// let app = identity::application("chess")?.ok_or_else(|| Error::not_found("no application chess"))?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn application(name_or_id: &str) -> Result<Option<Application>> {
    wit::application(name_or_id)
        .map_err(from_wit)?
        .as_deref()
        .map(parse)
        .transpose()
}

/// The user's profile in `application` (name or id), created when missing;
/// returns it and whether this call created it. Atomic, like
/// [`find_or_create_user`].
///
/// ```no_run
/// let (profile, created) = elements_sdk::identity::find_or_create_profile("u1", "chess")?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn find_or_create_profile(user_id: &str, application: &str) -> Result<(Profile, bool)> {
    let (profile, created) = wit::find_or_create_profile(user_id, application).map_err(from_wit)?;
    Ok((parse(&profile)?, created))
}

/// Changes a profile; returns it after the change.
///
/// ```no_run
/// use elements_sdk::{identity::{self, ProfileUpdate}, json};
///
/// let profile = identity::update_profile(
///     "p1",
///     &ProfileUpdate { metadata: Some(json!({"rank": "gold"})), ..Default::default() },
/// )?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn update_profile(profile_id: &str, update: &ProfileUpdate) -> Result<Profile> {
    let update = serde_json::to_string(update)
        .map_err(|e| Error::internal(format!("cannot serialize the profile update: {e}")))?;
    parse(&wit::update_profile(profile_id, &update).map_err(from_wit)?)
}

/// Creates a session for the user (and profile, whose application it takes),
/// valid for `expiry_seconds` (1 second to 90 days). Its secret works as
/// `Authorization: Bearer` on `/api/rest` and for [`caller`].
///
/// ```no_run
/// let created = elements_sdk::identity::create_session("u1", Some("p1"), 24 * 3600)?;
/// let bearer = created.session_secret;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn create_session(
    user_id: &str,
    profile_id: Option<&str>,
    expiry_seconds: u64,
) -> Result<SessionCreation> {
    parse(&wit::create_session(user_id, profile_id, expiry_seconds).map_err(from_wit)?)
}

/// Who is calling, from the request's session credentials as the server
/// checked them; `None` without valid credentials. (In an event handler
/// there is never a caller.)
///
/// ```no_run
/// use elements_sdk::{identity, Error};
///
/// let me = identity::caller()?.ok_or_else(|| Error::unauthorized("log in first"))?;
/// elements_sdk::info!("request from {}", me.user.name);
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn caller() -> Result<Option<Caller>> {
    wit::caller().map_err(from_wit)?.as_deref().map(parse).transpose()
}

/// The identity (`scheme`, `id`), or `None` when no user has it.
///
/// ```no_run
/// use elements_sdk::identity;
///
/// let owner = identity::get_identity(identity::EMAIL, "ada@example.com")?.map(|i| i.user_id);
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn get_identity(scheme: &str, id: &str) -> Result<Option<Identity>> {
    wit::get_identity(scheme, id)
        .map_err(from_wit)?
        .as_deref()
        .map(parse)
        .transpose()
}

/// Sets an identity's verification status; returns the identity. An unknown
/// identity is a 404.
///
/// ```no_run
/// use elements_sdk::identity::{self, Verification};
///
/// let verified = identity::set_verification(identity::EMAIL, "ada@example.com", Verification::Verified)?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn set_verification(scheme: &str, id: &str, verification: Verification) -> Result<Identity> {
    let status = match verification {
        Verification::Unverified => wit::Verification::Unverified,
        Verification::Pending => wit::Verification::Pending,
        Verification::Verified => wit::Verification::Verified,
    };
    parse(&wit::set_verification(scheme, id, status).map_err(from_wit)?)
}

/// Links an email address (scheme [`EMAIL`], unverified) to the user,
/// replacing the user's previous address. Linking an address the user
/// already has does nothing; one another user has is a 409.
///
/// ```no_run
/// elements_sdk::identity::link_email("u1", "ada@example.com")?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn link_email(user_id: &str, email: &str) -> Result<()> {
    wit::link_email(user_id, email).map_err(from_wit)
}

/// Asks for the email address `email` (linked to any user) to be verified:
/// the bundled Email Verification Element emails its owner a single-use
/// link, under its own bounds, shortly after this returns (so the status
/// becomes `PENDING` then; an address already `VERIFIED` is left alone).
/// Returns the identity as it is now. Needs the grant
/// `identity.request-verification:email` (403 without it); 404 when no
/// user has the address. This is Namazu's
/// `EmailVerificationService.requestVerification` from Element code.
///
/// ```no_run
/// let identity = elements_sdk::identity::request_email_verification("ada@example.com")?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn request_email_verification(email: &str) -> Result<Identity> {
    parse(
        &crate::__private::bindings::elements::platform::verification::request_email(email)
            .map_err(from_wit)?,
    )
}

/// Maps the host's error to the SDK's.
fn from_wit(error: wit::Error) -> Error {
    match error {
        wit::Error::NotFound(m) => Error::not_found(m),
        wit::Error::Conflict(m) => Error::conflict(m),
        wit::Error::Invalid(m) => Error::bad_request(m),
        wit::Error::Forbidden(m) => Error::forbidden(m),
        wit::Error::Unavailable(m) => Error::new(503, "unavailable", m),
        wit::Error::Internal(m) => Error::internal(m),
    }
}

/// Parses an entity the host returned; one that does not fit is a bug (500).
fn parse<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("the host returned an unexpected identity entity: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_map_to_statuses() {
        let cases = [
            (wit::Error::NotFound("x".into()), 404, "not_found"),
            (wit::Error::Conflict("x".into()), 409, "conflict"),
            (wit::Error::Invalid("x".into()), 400, "bad_request"),
            (wit::Error::Forbidden("x".into()), 403, "forbidden"),
            (wit::Error::Unavailable("x".into()), 503, "unavailable"),
            (wit::Error::Internal("x".into()), 500, "internal"),
        ];
        for (wit, status, code) in cases {
            let e = from_wit(wit);
            assert_eq!((e.status(), e.code()), (status, code));
        }
    }

    #[test]
    fn entities_round_trip() {
        let profile = json!({
            "id": "p1", "userId": "u1", "applicationId": "a1", "displayName": "Ada",
            "metadata": {"k": 1}, "created": 5, "updated": 6
        });
        let parsed: Profile = parse(&profile.to_string()).unwrap();
        assert_eq!(parsed.display_name.as_deref(), Some("Ada"));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), profile);
        let caller: Caller =
            parse(r#"{"user":{"id":"u","name":"n","level":"USER","created":1,"updated":1}}"#).unwrap();
        assert!(caller.profile.is_none());
        assert_eq!(parse::<User>("{}").unwrap_err().status(), 500);
    }
}
