//! Auth schemes an operator registers (as in Namazu Elements): OIDC issuers
//! whose ID tokens log players in, and OAuth2 providers whose token
//! validation endpoint vouches for them. Managed through the admin API
//! (`/api/rest/auth_scheme/{oidc,oauth2}`); used by
//! `POST /api/rest/auth/{oidc,oauth2}`.

use serde::{Deserialize, Serialize};

/// An OIDC issuer. Tokens must be signed by one of its keys (given inline,
/// or fetched from `keysUrl`, or from the `jwks_uri` of `discoveryUrl`),
/// name it as `iss`, and be meant for one of `audiences`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct OidcAuthScheme {
    /// Id (assigned by the server).
    pub id: String,
    /// Unique name; identities from this scheme are `oidc.<name>`.
    pub name: String,
    /// The issuer: must equal the tokens' `iss`. Unique among OIDC schemes.
    pub issuer: String,
    /// The audiences a token may be for (`aud`), e.g. the game's client
    /// ids. At least one: without it, a token the same issuer minted for
    /// any other app would log in.
    pub audiences: Vec<String>,
    /// Signing keys (JWKs), when the issuer publishes none at a URL.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub keys: Vec<serde_json::Value>,
    /// Where the issuer publishes its keys (JWKS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_url: Option<String>,
    /// The issuer's discovery document (`.well-known/openid-configuration`),
    /// whose `jwks_uri` gives the keys when `keysUrl` is not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Last change (epoch ms).
    pub updated: i64,
}

/// How an OAuth2 validation request carries one value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct OAuth2KeyValue {
    /// The parameter, header or body field name.
    pub key: String,
    /// The operator's value (an API key, an app id); absent when the value
    /// comes from the client. Never shown once stored: answers carry
    /// `valueSet` instead, and an update that leaves it out keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whether a stored value exists (answers only).
    pub value_set: bool,
    /// The client supplies the value at login (`requestParameters[key]`).
    pub from_client: bool,
    /// This value is the player's id at the provider (instead of
    /// `responseIdMapping`). Only with `fromClient`, and only one per scheme.
    pub user_id: bool,
}

/// An OAuth2 provider: a login sends the configured request to
/// `validationUrl`, and the answer says whether the client's token is valid
/// and whose it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct OAuth2AuthScheme {
    /// Id (assigned by the server).
    pub id: String,
    /// Unique name; identities from this scheme are `oauth2.<name>`.
    pub name: String,
    /// The provider's token validation endpoint.
    pub validation_url: String,
    /// `GET` or `POST`.
    pub method: String,
    /// Headers of the validation request.
    pub headers: Vec<OAuth2KeyValue>,
    /// Query parameters of the validation request.
    pub params: Vec<OAuth2KeyValue>,
    /// Body fields of a `POST` validation request.
    pub body: Vec<OAuth2KeyValue>,
    /// `JSON` or `FORM_URL_ENCODED` (the body's encoding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_type: Option<String>,
    /// The key whose value, anywhere in the JSON answer, is the player's id
    /// (e.g. `steamid` in `{"response": {"params": {"steamid": ...}}}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_id_mapping: Option<String>,
    /// A key whose value says whether the token is valid (e.g. `is_valid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_valid_mapping: Option<String>,
    /// The value that key must have; when absent, `true` or any non-empty
    /// value that is not `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_valid_expected_value: Option<String>,
    /// Statuses whose answer is read; any other means "not valid" (4xx) or
    /// "provider unavailable" (5xx). Default `[200]`.
    pub valid_status_codes: Vec<u16>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Last change (epoch ms).
    pub updated: i64,
}

/// Log in (or link) with an ID token from a registered OIDC issuer
/// (Namazu's `OidcSessionRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct OidcSessionRequest {
    /// The ID token; its `iss` picks the scheme.
    pub jwt: String,
    /// Open the session for this profile (must be the user's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// Open the session for this application (name or id): the user's
    /// profile in it is found or created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_name_or_id: Option<String>,
}

/// Log in (or link) through a registered OAuth2 provider (Namazu's
/// `OAuth2SessionRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct OAuth2SessionRequest {
    /// The scheme, by id or name.
    pub scheme_id: String,
    /// The values the scheme takes from the client, by key.
    pub request_parameters: std::collections::BTreeMap<String, String>,
    /// Deprecated in Namazu: merged into `requestParameters`.
    pub request_headers: std::collections::BTreeMap<String, String>,
    /// Open the session for this profile (must be the user's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// Open the session for this application (name or id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_name_or_id: Option<String>,
}
