//! The JSON shapes of the identity entities — users, profiles,
//! applications, identities and sessions — as every client sees them. One
//! definition serves everyone who exchanges them:
//!
//! - the `/api/rest` API answers and reads them (with their OpenAPI schemas
//!   under the `openapi` feature);
//! - the host's identity service hands them to Elements as JSON text, and
//!   the Element SDK (`elements_sdk::identity`) re-exports these very types
//!   to read it, so the server and Elements can't drift apart;
//! - the Nakama-compatible API's own shapes are in [`nakama`].
//!
//! The conversions from the domain model (`elements-identity`) live beside
//! that model (`elements_identity::wire`), so this crate depends on nothing
//! but serde and builds for `wasm32-wasip2`.
//!
//! Field names are camelCase; times are epoch milliseconds. A reader
//! ignores fields it doesn't know, so a newer server may add fields without
//! breaking Elements built against an older SDK.
//!
//! ```
//! use elements_wire::{Level, User};
//!
//! let user: User = serde_json::from_str(
//!     r#"{"id":"u1","name":"ada","level":"USER","metadata":{},"banned":false,"created":1,"updated":2}"#,
//! ).unwrap();
//! assert_eq!(user.level, Level::User);
//! assert_eq!(user.email, None);
//! ```

pub mod nakama;
pub mod schemes;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A user's privilege level.
///
/// ```
/// assert_eq!(serde_json::to_string(&elements_wire::Level::Superuser).unwrap(), r#""SUPERUSER""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// May hold a session but do nothing a user can.
    Unprivileged,
    /// A player: manages their own account and profiles.
    #[default]
    User,
    /// An administrator: every user, profile and application.
    Superuser,
}

impl Level {
    /// The wire name (`UNPRIVILEGED`, `USER`, `SUPERUSER`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Unprivileged => "UNPRIVILEGED",
            Level::User => "USER",
            Level::Superuser => "SUPERUSER",
        }
    }
}

/// Whether the owner of an identity has proven they control it.
///
/// ```
/// use elements_wire::Verification;
///
/// assert_eq!(serde_json::to_string(&Verification::Pending).unwrap(), r#""PENDING""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verification {
    /// Nothing proven (a device id, an email nobody confirmed).
    #[default]
    Unverified,
    /// A verification is under way (e.g. a confirmation email was sent).
    Pending,
    /// Proven (a confirmed email, a token a provider vouched for).
    Verified,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Language tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang_tag: Option<String>,
    /// Where the user says they are (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Time zone (free text, e.g. `Europe/Paris`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Free-form JSON object.
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Value,
    /// Privilege level.
    pub level: Level,
    /// Banned users can't log in, and their sessions are ended.
    #[serde(default)]
    pub banned: bool,
    /// Creation time, epoch milliseconds.
    pub created: i64,
    /// Last update, epoch milliseconds.
    pub updated: i64,
}

/// A user's profile in one application.
///
/// ```
/// let p: elements_wire::Profile = serde_json::from_value(serde_json::json!({
///     "id": "p1", "userId": "u1", "applicationId": "a1", "metadata": {"level": 3},
///     "created": 1, "updated": 1
/// })).unwrap();
/// assert_eq!(p.metadata["level"], 3);
/// assert_eq!(p.display_name, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Value,
    /// Last session opened with this profile, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login: Option<i64>,
    /// Creation time, epoch milliseconds.
    pub created: i64,
    /// Last update, epoch milliseconds.
    pub updated: i64,
}

/// An application (a game, usually).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time, epoch milliseconds.
    pub created: i64,
    /// Last update, epoch milliseconds.
    pub updated: i64,
}

/// An identity: an identifier `(scheme, id)` that logs into one user (an
/// email address, a device id, a player id on another platform).
///
/// ```
/// use elements_wire::{Identity, Verification};
///
/// let i: Identity = serde_json::from_value(serde_json::json!({
///     "scheme": "email", "id": "ada@example.com", "userId": "u1", "verification": "UNVERIFIED"
/// })).unwrap();
/// assert_eq!(i.verification, Verification::Unverified);
/// assert_eq!(i.verification_status, Verification::Unverified);
///
/// // Namazu Elements' `UserUid` names the status `verificationStatus`; both
/// // names are written, either is read.
/// let i: Identity = serde_json::from_value(serde_json::json!({
///     "scheme": "email", "id": "ada@example.com", "userId": "u1", "verificationStatus": "PENDING"
/// })).unwrap();
/// assert_eq!(i.verification, Verification::Pending);
/// let json = serde_json::to_value(&i).unwrap();
/// assert_eq!((&json["verification"], &json["verificationStatus"]), (&"PENDING".into(), &"PENDING".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", try_from = "IdentityFields")]
pub struct Identity {
    /// The scheme, e.g. `email`.
    pub scheme: String,
    /// The id within the scheme, e.g. an email address.
    pub id: String,
    /// The user it logs into.
    pub user_id: String,
    /// Its verification status (the name this server's clients have read
    /// since 0.1; kept so they don't break).
    pub verification: Verification,
    /// The same status under Namazu Elements' `UserUid` name. Always equal
    /// to `verification`; build an identity with [`Identity::new`].
    pub verification_status: Verification,
}

impl Identity {
    /// An identity whose two status fields agree.
    pub fn new(scheme: String, id: String, user_id: String, status: Verification) -> Identity {
        Identity {
            scheme,
            id,
            user_id,
            verification: status,
            verification_status: status,
        }
    }
}

/// What an [`Identity`] is read from: either status name (the newer,
/// Namazu's, wins when both are given and differ).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityFields {
    scheme: String,
    id: String,
    user_id: String,
    #[serde(default)]
    verification: Option<Verification>,
    #[serde(default)]
    verification_status: Option<Verification>,
}

impl TryFrom<IdentityFields> for Identity {
    type Error = &'static str;

    fn try_from(f: IdentityFields) -> Result<Identity, &'static str> {
        let status = f
            .verification_status
            .or(f.verification)
            .ok_or("an identity needs `verificationStatus` (or `verification`)")?;
        Ok(Identity::new(f.scheme, f.id, f.user_id, status))
    }
}

/// A session: whose it is, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// Its user.
    pub user: User,
    /// Its profile, if opened for one.
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Its application, if opened for one.
    #[serde(default)]
    pub application: Option<Application>,
    /// Expiry, epoch milliseconds.
    pub expiry: i64,
}

/// A new session and its secret, shown only in this answer.
///
/// ```
/// use elements_wire::SessionCreation;
///
/// let json = serde_json::json!({
///     "sessionSecret": "s3cr3t",
///     "session": {"user": {"id": "u1", "name": "ada", "metadata": {}, "level": "USER",
///                          "banned": false, "created": 1, "updated": 1},
///                 "profile": null, "application": null, "expiry": 1}
/// });
/// let created: SessionCreation = serde_json::from_value(json.clone()).unwrap();
/// assert_eq!(created.session_secret, "s3cr3t");
/// assert_eq!(serde_json::to_value(&created).unwrap(), json); // round-trips
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionCreation {
    /// The credential: send it as `Authorization: Bearer` or
    /// `Elements-SessionSecret`.
    pub session_secret: String,
    /// The session.
    pub session: Session,
}

impl fmt::Debug for SessionCreation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCreation")
            .field("session_secret", &"<redacted>")
            .field("session", &self.session)
            .finish()
    }
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

/// Changes to a user: absent fields stay as they are, an empty string clears
/// an optional text field. A key not listed here is an error, so a typo
/// doesn't pass for a change.
///
/// ```
/// use elements_wire::UserUpdate;
///
/// let update: UserUpdate = serde_json::from_str(r#"{"displayName": "Ada"}"#).unwrap();
/// assert_eq!(update.display_name.as_deref(), Some("Ada"));
/// assert!(serde_json::from_str::<UserUpdate>(r#"{"displayname": "Ada"}"#).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UserUpdate {
    /// New unique name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New email (unverified until proven).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// New password. Changing your own password or email requires
    /// `currentPassword` (when the account has a password) and ends your
    /// other sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Your current password, to change your own password or email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Avatar URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Language tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang_tag: Option<String>,
    /// Location (free text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Time zone (free text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Free-form JSON object, replacing the old one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
    /// Level (superusers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Banned (superusers only); a ban ends every session of the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banned: Option<bool>,
}

/// Passwords never reach a log through `{:?}`.
impl fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |p: &Option<String>| p.as_ref().map(|_| "<redacted>");
        f.debug_struct("UserUpdate")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("password", &redacted(&self.password))
            .field("current_password", &redacted(&self.current_password))
            .field("display_name", &self.display_name)
            .field("avatar_url", &self.avatar_url)
            .field("lang_tag", &self.lang_tag)
            .field("location", &self.location)
            .field("timezone", &self.timezone)
            .field("metadata", &self.metadata)
            .field("level", &self.level)
            .field("banned", &self.banned)
            .finish()
    }
}

/// Changes to a profile: absent fields stay as they are, an empty string
/// clears a text field, `metadata` replaces the whole metadata object. A key
/// not listed here is an error.
///
/// ```
/// use elements_wire::ProfileUpdate;
/// use serde_json::json;
///
/// let update = ProfileUpdate { display_name: Some("Ada".into()), ..Default::default() };
/// assert_eq!(serde_json::to_value(&update).unwrap(), json!({"displayName": "Ada"}));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ProfileUpdate {
    /// New display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// New image URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// New metadata (a JSON object), replacing the old.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
}

/// An application to create (`name` required), or changes to one: absent
/// fields stay as they are, an empty description clears it. A key not
/// listed here is an error.
///
/// ```
/// let change: elements_wire::ApplicationUpdate =
///     serde_json::from_str(r#"{"description": "Chess, fast"}"#).unwrap();
/// assert_eq!(change.name, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ApplicationUpdate {
    /// Unique name: 1–48 ASCII letters, digits, `_` or `-` (it also names
    /// the application's storage namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_update_debug_hides_passwords() {
        let update = UserUpdate {
            password: Some("hunter22-secret".into()),
            current_password: Some("old-secret".into()),
            ..Default::default()
        };
        let shown = format!("{update:?}");
        assert!(
            !shown.contains("hunter22") && !shown.contains("old-secret"),
            "{shown}"
        );
        let created = SessionCreation {
            session_secret: "s3cr3t-value".into(),
            session: Session {
                user: serde_json::from_value(json!({
                    "id": "u", "name": "n", "level": "USER", "created": 1, "updated": 1
                }))
                .unwrap(),
                profile: None,
                application: None,
                expiry: 1,
            },
        };
        assert!(!format!("{created:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn unknown_fields_are_ignored_in_entities_but_refused_in_updates() {
        let user: User = serde_json::from_value(json!({
            "id": "u", "name": "n", "level": "USER", "created": 1, "updated": 1, "addedLater": true
        }))
        .unwrap();
        assert_eq!(user.metadata, json!({}));
        let err = serde_json::from_value::<ProfileUpdate>(json!({"imageURL": "x"})).unwrap_err();
        assert!(err.to_string().contains("imageURL"), "{err}");
    }

    #[test]
    fn session_profile_and_application_are_null_when_absent() {
        let session = Session {
            user: serde_json::from_value(json!({
                "id": "u", "name": "n", "level": "USER", "created": 1, "updated": 1
            }))
            .unwrap(),
            profile: None,
            application: None,
            expiry: 9,
        };
        let json = serde_json::to_value(&session).unwrap();
        assert_eq!(
            (&json["profile"], &json["application"]),
            (&Value::Null, &Value::Null)
        );
    }
}
