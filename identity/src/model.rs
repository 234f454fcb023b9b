//! The identity model. Each type serializes exactly as it is stored in its
//! core collection (`_id` is the document id); [`crate::wire`] converts them to
//! the shapes clients see.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Identifier schemes the server knows out of the box. Social providers add
/// their own (`apple`, `google`, ...) by registering an
/// [`IdentityVerifier`](crate::IdentityVerifier).
pub mod scheme {
    /// A device identifier (Nakama `authenticate/device`).
    pub const DEVICE: &str = "device";
    /// A custom identifier from an external identity service (Nakama `authenticate/custom`).
    pub const CUSTOM: &str = "custom";
    /// An email address, with the account's password.
    pub const EMAIL: &str = "email";
    /// Sign in with Apple (an Apple ID token).
    pub const APPLE: &str = "apple";
    /// Google Sign-In (a Google ID token).
    pub const GOOGLE: &str = "google";
    /// Facebook Login (an access token, or a Limited Login token).
    pub const FACEBOOK: &str = "facebook";
    /// Facebook Instant Games (signed player info).
    pub const FACEBOOK_INSTANT_GAME: &str = "facebookinstantgame";
    /// Apple Game Center (an identity verification signature).
    pub const GAME_CENTER: &str = "gamecenter";
    /// Steam (a session ticket).
    pub const STEAM: &str = "steam";
}

/// Levels and verification statuses are plain vocabulary, the same in
/// storage and on the wire: one definition, in `elements-wire`.
pub use elements_wire::{Level, Verification};

/// An account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id (UUID).
    #[serde(rename = "_id")]
    pub id: String,
    /// Unique name (Nakama's `username`).
    pub name: String,
    /// The account's email, if it has one (unique; also an identity of scheme `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Privilege level.
    #[serde(default)]
    pub level: Level,
    /// Name to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Avatar image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Language tag, e.g. `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang_tag: Option<String>,
    /// Where the user says they are (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The user's time zone (free text, e.g. `Europe/Paris`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Free-form JSON object.
    #[serde(default = "empty_object")]
    pub metadata: Value,
    /// Banned users cannot authenticate, and their sessions are revoked.
    #[serde(default)]
    pub banned: bool,
    /// When the ban started (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_at: Option<i64>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Last update (epoch ms).
    pub updated: i64,
}

/// An identifier that logs into one user: `(scheme, id)`, unique per scheme.
/// Also called a UID. Stored with `_id = "<scheme>:<id>"`, so the store's
/// primary key enforces uniqueness and decides races.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `<scheme>:<id>`.
    #[serde(rename = "_id")]
    pub key: String,
    /// The scheme (`device`, `custom`, `email`, later `google`...).
    pub scheme: String,
    /// The id within the scheme (emails lower-cased).
    pub id: String,
    /// The user it logs into.
    pub user_id: String,
    /// Verification status.
    #[serde(default)]
    pub status: Verification,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Last update (epoch ms).
    pub updated: i64,
}

impl Identity {
    /// The document id of `(scheme, id)`.
    pub fn key_of(scheme: &str, id: &str) -> String {
        format!("{scheme}:{id}")
    }
}

/// A user's presence in one application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Id (UUID).
    #[serde(rename = "_id")]
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Application.
    pub application_id: String,
    /// Name to show in this application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Free-form JSON object.
    #[serde(default = "empty_object")]
    pub metadata: Value,
    /// Last session created with this profile (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login: Option<i64>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Last update (epoch ms).
    pub updated: i64,
}

/// A game or service served by this runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    /// Id (UUID).
    #[serde(rename = "_id")]
    pub id: String,
    /// Unique name (`[A-Za-z0-9_-]`, 1..=48 bytes: it also names the
    /// application's storage namespace).
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Last update (epoch ms).
    pub updated: i64,
}

/// An Elements-style session. Its secret, handed to the client once, is
/// this signed (the serde names are the payload's, kept short); nothing of
/// it is stored (see `sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id: random, new at each login, what a logout revokes. Not the
    /// secret, which is the session signed.
    #[serde(rename = "sid")]
    pub id: String,
    /// The user.
    #[serde(rename = "uid")]
    pub user_id: String,
    /// The profile, if the session was opened for one.
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// The application, if any.
    #[serde(rename = "aid", default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// Expiry (epoch ms).
    #[serde(rename = "exp")]
    pub expiry: i64,
    /// Creation time (epoch ms).
    #[serde(rename = "iat")]
    pub created: i64,
    /// The generation of the user's sessions it was issued in: revoking
    /// all of them moves the user's on.
    #[serde(rename = "gen")]
    pub generation: u64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Items skipped before this page.
    pub offset: u64,
    /// Items matching in all.
    pub total: u64,
    /// This page's items.
    pub items: Vec<T>,
}

pub(crate) fn empty_object() -> Value {
    Value::Object(Default::default())
}
