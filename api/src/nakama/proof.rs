//! The bodies of the social and platform logins (Nakama's `AccountApple`,
//! `AccountGoogle`, `AccountFacebook`, `AccountFacebookInstantGame`,
//! `AccountGameCenter`, `AccountSteam`), shared by authenticate, link and
//! unlink, turned into the credential the provider's verifier checks.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use elements_identity::{Credential, IdentityService, scheme};

use super::error::{Code, NakamaError};
use elements_server::request::parse_body;

/// A provider's token (Nakama's `AccountApple`, `AccountGoogle`,
/// `AccountFacebook`, `AccountSteam`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct AccountToken {
    /// The provider's token: an Apple or Google ID token, a Facebook access
    /// token (or Limited Login token), a Steam session ticket (hex).
    pub token: String,
    /// Session variables, copied into the session token.
    pub vars: BTreeMap<String, String>,
}

/// Facebook Instant Games signed player info (Nakama's `AccountFacebookInstantGame`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct AccountFacebookInstantGame {
    /// `getSignedPlayerInfoAsync()`'s `getSignature()`.
    pub signed_player_info: String,
    /// Session variables, copied into the session token.
    pub vars: BTreeMap<String, String>,
}

/// A Game Center identity verification signature (Nakama's `AccountGameCenter`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct AccountGameCenter {
    /// The player id.
    pub player_id: String,
    /// The game's bundle id.
    pub bundle_id: String,
    /// When the signature was made, Unix seconds (a number, or a string as
    /// grpc-gateway writes int64).
    #[serde(deserialize_with = "int64")]
    #[schema(value_type = String)]
    pub timestamp_seconds: String,
    /// The salt, base64.
    pub salt: String,
    /// The signature, base64.
    pub signature: String,
    /// The URL of Apple's signing certificate.
    pub public_key_url: String,
    /// Session variables, copied into the session token.
    pub vars: BTreeMap<String, String>,
}

/// An int64 as grpc-gateway accepts it: a JSON number or a string.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(i64),
        Text(String),
    }
    Ok(match Int64::deserialize(d)? {
        Int64::Number(n) => n.to_string(),
        Int64::Text(s) => s,
    })
}

/// What a body presents: the credential, and the session variables.
pub(crate) type Presented = (Credential, BTreeMap<String, String>);

/// The provider schemes, with the names Nakama's messages use.
const PROVIDERS: &[(&str, &str)] = &[
    (scheme::APPLE, "Apple"),
    (scheme::GOOGLE, "Google"),
    (scheme::FACEBOOK, "Facebook"),
    (scheme::FACEBOOK_INSTANT_GAME, "Facebook Instant Game"),
    (scheme::GAME_CENTER, "Game Center"),
    (scheme::STEAM, "Steam"),
];

/// The credential and session variables of a provider login's body, for
/// `scheme`; `None` when `scheme` is not a provider. A provider the
/// operator didn't configure is Nakama's `FAILED_PRECONDITION` (400, code
/// 9), before the body is looked at.
pub(crate) fn provider(
    identity: &IdentityService,
    scheme_name: &str,
    body: &Bytes,
) -> Option<Result<Presented, NakamaError>> {
    let (_, name) = PROVIDERS.iter().find(|(s, _)| *s == scheme_name)?;
    if identity.verifier(scheme_name).is_err() {
        return Some(Err(NakamaError::new(
            Code::FailedPrecondition,
            format!("{name} authentication is not configured."),
        )));
    }
    Some(parse(scheme_name, body))
}

fn parse(scheme_name: &str, body: &Bytes) -> Result<Presented, NakamaError> {
    let token = |token: String| Credential {
        token: Some(token),
        ..Credential::default()
    };
    match scheme_name {
        scheme::FACEBOOK_INSTANT_GAME => {
            let account: AccountFacebookInstantGame = parse_body(body).map_err(NakamaError::invalid)?;
            Ok((token(account.signed_player_info), account.vars))
        }
        scheme::GAME_CENTER => {
            let account: AccountGameCenter = parse_body(body).map_err(NakamaError::invalid)?;
            let fields = [
                ("bundle_id", account.bundle_id),
                ("timestamp_seconds", account.timestamp_seconds),
                ("salt", account.salt),
                ("signature", account.signature),
                ("public_key_url", account.public_key_url),
            ];
            let credential = Credential {
                id: account.player_id,
                fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                ..Credential::default()
            };
            Ok((credential, account.vars))
        }
        scheme::STEAM => {
            // Linking Steam takes Nakama's `LinkSteamRequest`,
            // `{"account": {"token"}, "sync"}`; the other calls the token.
            #[derive(Default, Deserialize)]
            #[serde(default)]
            struct Steam {
                token: String,
                vars: BTreeMap<String, String>,
                account: Option<AccountToken>,
            }
            let steam: Steam = parse_body(body).map_err(NakamaError::invalid)?;
            Ok(match steam.account {
                Some(account) if steam.token.is_empty() => (token(account.token), account.vars),
                _ => (token(steam.token), steam.vars),
            })
        }
        _ => {
            let account: AccountToken = parse_body(body).map_err(NakamaError::invalid)?;
            Ok((token(account.token), account.vars))
        }
    }
}
