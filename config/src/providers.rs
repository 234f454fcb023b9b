//! `[providers.*]`: the social and platform logins an operator set up. A
//! provider without its table is not configured, and logging in with it
//! answers Nakama's "… authentication is not configured.".
//!
//! Only the file sets these (they hold secrets and lists): no flag, no
//! variable. Every provider URL has the provider's documented default and
//! can be pointed elsewhere, which is how tests use local servers that sign
//! with test keys.

use std::time::Duration;

use elements_identity::Secret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every provider's settings; `None` is not configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Providers {
    /// `[providers.apple]`: Sign in with Apple.
    pub apple: Option<Apple>,
    /// `[providers.google]`: Google Sign-In.
    pub google: Option<Google>,
    /// `[providers.facebook]`: Facebook Login (classic and Limited Login).
    pub facebook: Option<Facebook>,
    /// `[providers.facebook_instant_game]`: Facebook Instant Games.
    pub facebook_instant_game: Option<FacebookInstantGame>,
    /// `[providers.game_center]`: Apple Game Center.
    pub game_center: Option<GameCenter>,
    /// `[providers.steam]`: Steam session tickets.
    pub steam: Option<Steam>,
    /// How long one call to a provider may take, in milliseconds.
    pub timeout_ms: u64,
    /// How long fetched signing keys and certificates are kept, in seconds,
    /// when the provider's answer says nothing shorter.
    pub keys_ttl_secs: u64,
}

impl Providers {
    /// [`Providers::timeout_ms`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// [`Providers::keys_ttl_secs`] as a duration.
    pub fn keys_ttl(&self) -> Duration {
        Duration::from_secs(self.keys_ttl_secs)
    }

    /// Checks what serde can't: the lists a provider needs are not empty.
    pub fn validate(&self) -> Result<(), String> {
        let check = |table: &str, key: &str, empty: bool| {
            if empty {
                Err(format!("[providers.{table}] {key} must name at least one"))
            } else {
                Ok(())
            }
        };
        if let Some(apple) = &self.apple {
            check("apple", "bundle_ids", apple.bundle_ids.is_empty())?;
        }
        if let Some(google) = &self.google {
            check("google", "client_ids", google.client_ids.is_empty())?;
        }
        if let Some(gc) = &self.game_center {
            check("game_center", "bundle_ids", gc.bundle_ids.is_empty())?;
        }
        if self.timeout_ms == 0 {
            return Err("[providers] timeout_ms must be positive".into());
        }
        Ok(())
    }
}

impl Default for Providers {
    fn default() -> Self {
        Providers {
            apple: None,
            google: None,
            facebook: None,
            facebook_instant_game: None,
            game_center: None,
            steam: None,
            timeout_ms: 5_000,
            keys_ttl_secs: 3_600,
        }
    }
}

/// Sign in with Apple: ID tokens signed by Apple's published keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Apple {
    /// The app's bundle ids (and Services IDs): a token's audience must be one.
    pub bundle_ids: Vec<String>,
    /// Apple's published keys (JWKS).
    #[serde(default = "apple_keys_url")]
    pub keys_url: String,
    /// The issuer tokens must name.
    #[serde(default = "apple_issuer")]
    pub issuer: String,
}

fn apple_keys_url() -> String {
    "https://appleid.apple.com/auth/keys".into()
}
fn apple_issuer() -> String {
    "https://appleid.apple.com".into()
}

/// Google Sign-In: ID tokens signed by Google's published keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Google {
    /// The OAuth client ids of the game: a token's audience must be one.
    pub client_ids: Vec<String>,
    /// Google's published keys (JWKS).
    #[serde(default = "google_keys_url")]
    pub keys_url: String,
    /// The issuers tokens may name (Google uses both spellings).
    #[serde(default = "google_issuers")]
    pub issuers: Vec<String>,
}

fn google_keys_url() -> String {
    "https://www.googleapis.com/oauth2/v3/certs".into()
}
fn google_issuers() -> Vec<String> {
    vec!["https://accounts.google.com".into(), "accounts.google.com".into()]
}

/// Facebook Login: access tokens checked through the Graph API against the
/// app, and Limited Login tokens (JWTs) against Facebook's keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Facebook {
    /// The app id: tokens must have been issued to it.
    pub app_id: String,
    /// The app secret (for the app access token `debug_token` needs).
    #[serde(serialize_with = "hidden", deserialize_with = "secret")]
    pub app_secret: Secret,
    /// The Graph API.
    #[serde(default = "facebook_graph_url")]
    pub graph_url: String,
    /// Limited Login's published keys (JWKS).
    #[serde(default = "facebook_keys_url")]
    pub limited_login_keys_url: String,
    /// The issuer Limited Login tokens must name.
    #[serde(default = "facebook_issuer")]
    pub limited_login_issuer: String,
}

fn facebook_graph_url() -> String {
    "https://graph.facebook.com/v19.0".into()
}
fn facebook_keys_url() -> String {
    "https://limited.facebook.com/.well-known/oauth/openid/jwks/".into()
}
fn facebook_issuer() -> String {
    "https://www.facebook.com".into()
}

/// Facebook Instant Games: signed player info, HMAC-SHA256 with the app secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FacebookInstantGame {
    /// The app secret the player info is signed with.
    #[serde(serialize_with = "hidden", deserialize_with = "secret")]
    pub app_secret: Secret,
    /// Signed player info older than this many seconds (`issued_at`) is
    /// refused as replayed.
    #[serde(default = "one_hour")]
    pub max_age_secs: u64,
}

fn one_hour() -> u64 {
    3_600
}

/// Apple Game Center: identity verification signatures.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GameCenter {
    /// The game's bundle ids: the signed bundle id must be one.
    pub bundle_ids: Vec<String>,
    /// Where the signing certificate may come from: the public key URL a
    /// client sends must start with this (scheme, host, port and path
    /// prefix), so the server never fetches from an address a client chose.
    #[serde(default = "game_center_key_url_prefix")]
    pub key_url_prefix: String,
    /// Signatures older (or further in the future) than this many seconds
    /// are refused as replayed.
    #[serde(default = "five_minutes")]
    pub max_age_secs: u64,
}

fn game_center_key_url_prefix() -> String {
    "https://static.gc.apple.com/".into()
}
fn five_minutes() -> u64 {
    300
}

/// Steam: session tickets checked with the Web API's `AuthenticateUserTicket`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Steam {
    /// The game's app id.
    pub app_id: u32,
    /// The publisher Web API key.
    #[serde(serialize_with = "hidden", deserialize_with = "secret")]
    pub publisher_key: Secret,
    /// The partner Web API.
    #[serde(default = "steam_api_url")]
    pub api_url: String,
}

fn steam_api_url() -> String {
    "https://partner.steam-api.com".into()
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    let value = String::deserialize(d)?;
    if value.is_empty() {
        return Err(serde::de::Error::custom("a secret can't be empty"));
    }
    Ok(Secret::new(value))
}

fn hidden<S: Serializer>(_: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("***")
}
