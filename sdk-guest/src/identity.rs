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
//! never sees the secret itself. It tells three cases apart: no credentials
//! (`Ok(None)`, an anonymous request), a user's (`Ok(Some(caller))`), and
//! credentials that name no user, forged, expired, revoked by a logout or
//! of a banned user (`Err(CallerError::InvalidCredentials)`), so that an
//! Element answers 401 to an expired session instead of treating it as
//! anonymous. Which of those reasons it was is never told, to the Element or
//! the client. [`require_caller`] is the one-line 401 for a route that needs
//! a user:
//!
//! ```no_run
//! use elements_sdk::prelude::*;
//!
//! fn my_notes(_req: Request) -> Result<Response> {
//!     // 401 `UNAUTHORIZED` without credentials and with invalid ones alike.
//!     let me = identity::require_caller()?;
//!     let notes = documents::collection("notes").find(json!({"owner": me.user.id})).all()?;
//!     Ok(Response::json(&notes))
//! }
//! ```
//!
//! A route that serves anonymous requests too, but not bad credentials:
//!
//! ```no_run
//! use elements_sdk::prelude::*;
//!
//! fn greeting(_req: Request) -> Result<Response> {
//!     // `?` turns invalid credentials into the same 401.
//!     let name = match identity::caller()? {
//!         Some(me) => me.user.name,
//!         None => "stranger".to_owned(),
//!     };
//!     Ok(Response::json(&json!({"hello": name})))
//! }
//! ```
//!
//! # Errors
//!
//! Every function returns the SDK [`Error`]: a missing user, profile,
//! application or identity is 404 `NOT_FOUND`; an identity of another user
//! or a taken unique value is 409 `CONFLICT`; an invalid argument is 400
//! `BAD_REQUEST`; an unreachable store is 503 `UNAVAILABLE`; anything else
//! is 500 `INTERNAL`.
//!
//! These functions call the host, so the examples here are compiled but not
//! run.

use serde::de::DeserializeOwned;

use crate::__private::bindings::elements::platform::credentials as wit_credentials;
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
/// checked them: `Ok(None)` when the request carries none, the caller when
/// they name a user, and [`CallerError::InvalidCredentials`] when they name
/// none (forged, expired, revoked, of a banned or deleted user). In an event
/// handler there is never a caller. With `?` in a handler, invalid
/// credentials become 401 `UNAUTHORIZED` (see [`CallerError`]); for a route
/// that needs a user, [`require_caller`] is shorter.
///
/// ```no_run
/// use elements_sdk::identity::{self, CallerError};
/// use elements_sdk::Response;
///
/// let answer = match identity::caller() {
///     Ok(Some(me)) => Response::json(&me.user),
///     Ok(None) => Response::text("anonymous"),
///     // Say no more than this: the reason is not the client's business.
///     Err(CallerError::InvalidCredentials) => Response::text("log in again").with_status(401),
///     Err(other) => elements_sdk::Error::from(other).to_response(),
/// };
/// ```
pub fn caller() -> std::result::Result<Option<Caller>, CallerError> {
    match crate::__private::bindings::elements::platform::credentials::caller() {
        Ok(Some(text)) => parse(&text).map(Some).map_err(CallerError::Host),
        Ok(None) => Ok(None),
        Err(wit_credentials::Error::InvalidCredentials) => Err(CallerError::InvalidCredentials),
        Err(wit_credentials::Error::Unavailable(m)) => Err(CallerError::Host(Error::unavailable(m))),
        Err(wit_credentials::Error::Internal(m)) => Err(CallerError::Host(Error::internal(m))),
    }
}

/// The calling user, or the 401 to answer: for a route that needs a user,
/// one line. A request without credentials and one with invalid credentials
/// get the same status and code (`UNAUTHORIZED`), with a message that says
/// only which of the two it was.
///
/// ```no_run
/// use elements_sdk::prelude::*;
///
/// fn whoami(_req: Request) -> Result<Response> {
///     let me = identity::require_caller()?;
///     Ok(Response::json(&me.user))
/// }
/// ```
pub fn require_caller() -> Result<Caller> {
    caller()?.ok_or_else(|| Error::unauthorized(NO_CREDENTIALS))
}

/// The message of the 401 for a request without credentials.
const NO_CREDENTIALS: &str =
    "this needs a session: send its secret as `Authorization: Bearer <sessionSecret>`";

/// The message of the 401 for invalid credentials: the same for every
/// reason, so that it tells a client probing tokens nothing.
const INVALID_CREDENTIALS: &str = "the session credentials are invalid or expired";

/// Why [`caller`] could not say who is calling.
///
/// Converts into the SDK [`Error`] (so `?` works in handlers):
/// `InvalidCredentials` is 401 `UNAUTHORIZED` "the session credentials are
/// invalid or expired"; `Host` is the host's error as it is.
///
/// ```
/// use elements_sdk::{identity::CallerError, Error};
///
/// let e = Error::from(CallerError::InvalidCredentials);
/// assert_eq!(e.status(), 401);
/// assert_eq!(e.message(), "the session credentials are invalid or expired");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallerError {
    /// The request carried session credentials that name no user: forged,
    /// malformed, expired, revoked by a logout, or of a banned or deleted
    /// user. Which one is deliberately not told.
    InvalidCredentials,
    /// The host could not check them (e.g. 503 `UNAVAILABLE` while the
    /// store is unreachable): not the client's fault.
    Host(Error),
}

impl From<CallerError> for Error {
    fn from(e: CallerError) -> Error {
        match e {
            CallerError::InvalidCredentials => Error::unauthorized(INVALID_CREDENTIALS),
            CallerError::Host(e) => e,
        }
    }
}

impl std::fmt::Display for CallerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallerError::InvalidCredentials => f.write_str(INVALID_CREDENTIALS),
            CallerError::Host(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CallerError {}

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
        wit::Error::Unavailable(m) => Error::unavailable(m),
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
            (wit::Error::NotFound("x".into()), 404, "NOT_FOUND"),
            (wit::Error::Conflict("x".into()), 409, "CONFLICT"),
            (wit::Error::Invalid("x".into()), 400, "BAD_REQUEST"),
            (wit::Error::Forbidden("x".into()), 403, "FORBIDDEN"),
            (wit::Error::Unavailable("x".into()), 503, "UNAVAILABLE"),
            (wit::Error::Internal("x".into()), 500, "INTERNAL"),
        ];
        for (wit, status, code) in cases {
            let e = from_wit(wit);
            assert_eq!((e.status(), e.code()), (status, code));
        }
    }

    #[test]
    fn invalid_credentials_are_a_401_that_says_no_more() {
        let e = Error::from(CallerError::InvalidCredentials);
        assert_eq!((e.status(), e.code()), (401, Error::unauthorized("").code()));
        assert_eq!(e.message(), "the session credentials are invalid or expired");
        assert_eq!(CallerError::InvalidCredentials.to_string(), e.message());
        let host = Error::unavailable("down");
        assert_eq!(Error::from(CallerError::Host(host.clone())), host);
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
