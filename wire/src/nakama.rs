//! The shapes of Nakama's API that this server answers with. They are
//! Nakama's, not ours, and can't merge with [`crate::User`]: Nakama clients
//! expect `username` and snake_case names, metadata as JSON *text* and
//! RFC 3339 times. Built from the domain model by
//! `elements_identity::wire`.

use serde::{Deserialize, Serialize};

/// Nakama's `User` (fields it leaves out when empty are left out here too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = NakamaUser))]
pub struct User {
    /// User id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Language tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang_tag: Option<String>,
    /// Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Metadata, a JSON object encoded as a string.
    pub metadata: String,
    /// Linked Facebook id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facebook_id: Option<String>,
    /// Linked Google id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_id: Option<String>,
    /// Linked Game Center player id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamecenter_id: Option<String>,
    /// Linked Steam id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steam_id: Option<String>,
    /// Linked Apple id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_id: Option<String>,
    /// Linked Facebook Instant Games player id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facebook_instant_game_id: Option<String>,
    /// Creation time (RFC 3339).
    pub create_time: String,
    /// Last update (RFC 3339).
    pub update_time: String,
}

/// A device linked to the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AccountDevice))]
pub struct AccountDevice {
    /// Device id.
    pub id: String,
}

/// Nakama's `Account`: the user and what logs into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Account))]
pub struct Account {
    /// The user.
    pub user: User,
    /// Wallet, a JSON object encoded as a string.
    pub wallet: String,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Linked devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<AccountDevice>,
    /// Linked custom id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    /// When the email was verified (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_time: Option<String>,
    /// When the account was banned (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_time: Option<String>,
}

/// Users by id or username (Nakama's `Users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Users))]
pub struct Users {
    /// The users found; ids and names that match nobody are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
}

/// Changes to the caller's account (Nakama's `UpdateAccountRequest`): an
/// absent field stays as it is, an empty string clears it (a username
/// can't be cleared).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = UpdateAccountRequest))]
#[serde(default, deny_unknown_fields)]
pub struct UpdateAccount {
    /// New username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Avatar URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Language tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang_tag: Option<String>,
    /// Location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}
