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
//! Users, profiles, applications and sessions arrive in the shapes
//! `/api/rest` answers with (camelCase JSON), so an Element can return them
//! to its clients as they are: [`User`], [`Profile`], [`Application`],
//! [`Session`]. The commonly used fields are typed; every other field is kept
//! in the struct's `extra` map and serialized back unchanged.
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
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::__private::bindings::elements::platform::identity as wit;
use crate::error::{Error, Result};

/// The scheme of email identities; their id is the lower-case address.
pub const EMAIL: &str = "email";

/// A user account, as `/api/rest` shows it.
///
/// ```
/// let user: elements_sdk::identity::User = serde_json::from_value(serde_json::json!({
///     "id": "u1", "name": "ada", "level": "USER", "banned": false, "created": 1
/// })).unwrap();
/// assert_eq!((user.name.as_str(), user.level.as_str()), ("ada", "USER"));
/// assert_eq!(user.extra["created"], 1); // other fields are kept
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Email address, if linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `UNPRIVILEGED`, `USER` or `SUPERUSER`.
    pub level: String,
    /// Every other field (`metadata`, `banned`, `created`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user's profile in one application.
///
/// ```
/// let p: elements_sdk::identity::Profile = serde_json::from_value(serde_json::json!({
///     "id": "p1", "userId": "u1", "applicationId": "a1", "metadata": {"level": 3}
/// })).unwrap();
/// assert_eq!(p.metadata["level"], 3);
/// assert_eq!(p.display_name, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Application.
    pub application_id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Free-form JSON object.
    #[serde(default = "empty_object")]
    pub metadata: Value,
    /// Every other field (`created`, `updated`, `lastLogin`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An application (a game, usually).
///
/// ```
/// let a: elements_sdk::identity::Application =
///     serde_json::from_value(serde_json::json!({"id": "a1", "name": "chess"})).unwrap();
/// assert_eq!(a.name, "chess");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Every other field (`description`, `created`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A session: whose it is, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Its user.
    pub user: User,
    /// Its profile, if opened for one.
    pub profile: Option<Profile>,
    /// Its application, if opened for one.
    pub application: Option<Application>,
    /// Expiry, milliseconds since the Unix epoch.
    pub expiry: i64,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A new session and its secret: what [`create_session`] returns, in the
/// shape of `POST /api/rest/session`'s answer.
///
/// ```
/// use elements_sdk::identity::SessionCreation;
///
/// let json = serde_json::json!({
///     "sessionSecret": "s3cr3t",
///     "session": {"user": {"id": "u1", "name": "ada", "level": "USER"},
///                 "profile": null, "application": null, "expiry": 1}
/// });
/// let created: SessionCreation = serde_json::from_value(json.clone()).unwrap();
/// assert_eq!(created.session_secret, "s3cr3t");
/// assert_eq!(serde_json::to_value(&created).unwrap(), json); // round-trips
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreation {
    /// The credential: clients send it as `Authorization: Bearer`.
    pub session_secret: String,
    /// The session.
    pub session: Session,
}

/// Who is calling: the user, profile and application of the request's
/// session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Caller {
    /// The user.
    pub user: User,
    /// The session's profile, if any.
    #[serde(default)]
    pub profile: Option<Profile>,
    /// The session's application, if any.
    #[serde(default)]
    pub application: Option<Application>,
}

/// Whether the owner of an identity has proven they control it.
///
/// ```
/// use elements_sdk::identity::Verification;
///
/// assert_eq!(serde_json::to_string(&Verification::Pending).unwrap(), r#""PENDING""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verification {
    /// Nothing proven yet.
    Unverified,
    /// A verification is under way (e.g. a confirmation email was sent).
    Pending,
    /// Proven.
    Verified,
}

/// An identity: `{"scheme", "id", "userId", "verification"}`.
///
/// ```
/// use elements_sdk::identity::{Identity, Verification};
///
/// let i: Identity = serde_json::from_value(serde_json::json!({
///     "scheme": "email", "id": "ada@example.com", "userId": "u1", "verification": "UNVERIFIED"
/// })).unwrap();
/// assert_eq!(i.verification, Verification::Unverified);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The scheme, e.g. [`EMAIL`].
    pub scheme: String,
    /// The id within the scheme, e.g. an email address.
    pub id: String,
    /// The user it belongs to.
    pub user_id: String,
    /// Its verification status.
    pub verification: Verification,
}

/// A change to a profile for [`update_profile`]: fields left `None` stay as
/// they are; `metadata` replaces the whole metadata object.
///
/// ```
/// use elements_sdk::{identity::ProfileUpdate, json};
///
/// let update = ProfileUpdate { display_name: Some("Ada".into()), ..Default::default() };
/// assert_eq!(serde_json::to_value(&update).unwrap(), json!({"displayName": "Ada"}));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileUpdate {
    /// New display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// New image URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// New metadata (a JSON object), replacing the old.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

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

fn empty_object() -> Value {
    Value::Object(Map::new())
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
        let caller: Caller = parse(r#"{"user":{"id":"u","name":"n","level":"USER"}}"#).unwrap();
        assert!(caller.profile.is_none());
        assert_eq!(parse::<User>("{}").unwrap_err().status(), 500);
    }
}
