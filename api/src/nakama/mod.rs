//! The Nakama-compatible authentication API under `/v2`, so existing Nakama
//! client SDKs work unchanged: the same paths, query parameters, request and
//! response bodies (snake_case, as Nakama's gateway marshals them), the
//! server key as the HTTP Basic user on authenticate/refresh, and bearer
//! session tokens elsewhere.

mod account;
mod authenticate;
pub mod error;
mod proof;
pub mod realtime;
mod user;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::HeaderMap;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use elements_identity::{TokenSession, secret::ct_eq};

use elements_server::App;

pub use account::*;
pub use authenticate::*;
use error::{BASIC_CHALLENGE, BEARER_CHALLENGE, NakamaError};
pub use user::*;

/// The API's routes, each documented by its handler's annotation.
pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(
            account::get_account,
            account::update_account,
            account::delete_account
        ))
        .routes(routes!(user::get_users))
        .routes(routes!(authenticate::authenticate))
        .routes(routes!(account::link))
        .routes(routes!(account::unlink))
        .routes(routes!(authenticate::refresh))
        .routes(routes!(authenticate::logout))
        .routes(routes!(realtime::socket))
        .routes(routes!(
            realtime::list_notifications,
            realtime::delete_notifications
        ))
        .routes(routes!(realtime::list_channel_messages))
        .routes(routes!(realtime::rpc))
}

/// A request carrying the server key (HTTP Basic user), as a handler
/// argument: any other is answered 401 before the handler runs.
pub struct ServerKey;

impl FromRequestParts<Arc<App>> for ServerKey {
    type Rejection = NakamaError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, NakamaError> {
        require_server_key(app, &parts.headers).map(|()| ServerKey)
    }
}

/// The caller's valid session token, as a handler argument: a request
/// without one is answered 401 before the handler runs.
pub struct Session(pub TokenSession);

impl FromRequestParts<Arc<App>> for Session {
    type Rejection = NakamaError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, NakamaError> {
        require_session(app, &parts.headers).await.map(Session)
    }
}

pub(crate) fn require_server_key(app: &App, headers: &HeaderMap) -> Result<(), NakamaError> {
    let Some(user) = elements_server::request::basic_user(headers) else {
        return Err(NakamaError::unauthenticated(
            BASIC_CHALLENGE,
            "Server key required",
        ));
    };
    if ct_eq(&user, app.identity.server_key.expose()) {
        Ok(())
    } else {
        Err(NakamaError::unauthenticated(
            BASIC_CHALLENGE,
            "Server key invalid",
        ))
    }
}

/// The caller's valid session token.
pub(crate) async fn require_session(app: &App, headers: &HeaderMap) -> Result<TokenSession, NakamaError> {
    let Some(token) = elements_server::request::authorization(headers, "Bearer") else {
        return Err(NakamaError::unauthenticated(
            BEARER_CHALLENGE,
            "Auth token required",
        ));
    };
    app.identity
        .service
        .verify_token(token)
        .await
        .map_err(|e| match e {
            elements_identity::IdentityError::Unauthenticated(m) => {
                NakamaError::unauthenticated(BEARER_CHALLENGE, m)
            }
            other => other.into(),
        })
}

/// Session variables as Nakama's gateway reads them: `null` is the same as
/// absent (protojson skips a null field).
pub(crate) fn vars_or_null<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// A device or custom id (Nakama's `AccountDevice` / `AccountCustom`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct AccountId {
    /// The id.
    pub id: String,
    /// Session variables, copied into the session token.
    #[serde(deserialize_with = "vars_or_null")]
    pub vars: BTreeMap<String, String>,
}

/// An email and password (Nakama's `AccountEmail`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct AccountEmail {
    /// Email address (empty on `authenticate/email`: a username login).
    pub email: String,
    /// Password.
    pub password: String,
    /// Session variables, copied into the session token.
    #[serde(deserialize_with = "vars_or_null")]
    pub vars: BTreeMap<String, String>,
}

/// A session (Nakama's `Session`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// True if the account was created by this call.
    pub created: bool,
    /// Session token (JWT).
    pub token: String,
    /// Refresh token (JWT).
    pub refresh_token: String,
}

/// An empty answer (`google.protobuf.Empty`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}
