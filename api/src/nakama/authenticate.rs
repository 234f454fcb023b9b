//! `POST /v2/account/authenticate/{device,email,custom}`,
//! `POST /v2/account/session/refresh`, `POST /v2/session/logout`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use bytes::Bytes;
use serde::Deserialize;
use utoipa::ToSchema;

use elements_identity::{Credential, TokenPair, scheme};

use super::error::{Code, NakamaError, NakamaStatus};
use super::{AccountEmail, AccountId, Empty, ServerKey, Session, SessionResponse};
use elements_server::App;
use elements_server::request::{ClientAddr, parse_body};

/// A refresh token to exchange (Nakama's `SessionRefreshRequest`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct SessionRefreshRequest {
    /// Refresh token.
    pub token: String,
    /// Session variables for the new session. Absent or empty (`{}`, what
    /// nakama-js sends by default): the refresh token's. Nakama can't tell
    /// the two apart either: its gateway passes the request on as protobuf,
    /// where an empty map is no map. `null` is absent too.
    #[serde(deserialize_with = "super::vars_or_null")]
    pub vars: BTreeMap<String, String>,
}

/// Tokens to revoke (Nakama's `SessionLogoutRequest`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct SessionLogoutRequest {
    /// Session token to revoke.
    pub token: String,
    /// Refresh token to revoke.
    pub refresh_token: String,
}

/// A boolean query parameter as grpc-gateway parses it (Go's `ParseBool`).
fn parse_bool(name: &str, value: &str) -> Result<bool, NakamaError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(NakamaError::invalid(format!(
            "parsing field \"{name}\": strconv.ParseBool: parsing {other:?}: invalid syntax"
        ))),
    }
}

fn session(created: bool, pair: TokenPair) -> Json<SessionResponse> {
    Json(SessionResponse {
        created,
        token: pair.token,
        refresh_token: pair.refresh_token,
    })
}

/// Authenticate with a device id, an email and password, a custom id, or a
/// provider's proof (Apple, Google, Facebook, Facebook Instant Games, Game
/// Center, Steam; see `proof`): finds the account (creating it unless `create=false`) and opens a session.
/// The body is `{"id", "vars"}` for device and custom, `{"email",
/// "password", "vars"}` for email. Email without an email address is a
/// username login, as in Nakama: `username` names an existing account whose
/// password the body gives; it never creates one, whatever `create` says.
#[utoipa::path(post, path = "/v2/account/authenticate/{scheme}", tag = "nakama",
    params(
        ("scheme" = String, Path, description = "`device`, `email`, `custom`, or a provider: `apple`, `google`, `facebook`, `facebookinstantgame`, `gamecenter`, `steam`"),
        ("create" = Option<bool>, Query, description = "Create the account if it does not exist (default true)"),
        ("username" = Option<String>, Query, description = "Username of a new account (default: generated); for email without an address, the account to log in to"),
        ("sync" = Option<bool>, Query, description = "Facebook and Steam: import friends (accepted; there is no friends feature yet)"),
    ),
    request_body(content = AccountId, description = "AccountDevice / AccountCustom; AccountEmail for email; \
        for a provider, `{\"token\"}` (AccountApple, AccountGoogle, AccountFacebook, AccountSteam), \
        `{\"signed_player_info\"}` (AccountFacebookInstantGame) or AccountGameCenter's fields"),
    responses(
        (status = 200, description = "Session", body = SessionResponse),
        (status = 400, description = "Invalid id, email, password or username; a provider not configured (code 9)", body = NakamaStatus),
        (status = 401, description = "Server key missing or invalid; wrong password; a provider's proof not genuine", body = NakamaStatus),
        (status = 403, description = "Account banned", body = NakamaStatus),
        (status = 404, description = "create=false (or a username login) and no such account; scheme not supported", body = NakamaStatus),
        (status = 409, description = "Username taken", body = NakamaStatus),
        (status = 429, description = "Too many failed logins (RESOURCE_EXHAUSTED); see `Retry-After`", body = NakamaStatus),
        (status = 502, description = "The login provider could not be reached (UNAVAILABLE)", body = NakamaStatus),
        (status = 503, description = "Password checks saturated (UNAVAILABLE); see `Retry-After`", body = NakamaStatus),
    ), security(("server_key" = [])))]
pub async fn authenticate(
    State(app): State<Arc<App>>,
    ClientAddr(client): ClientAddr,
    Path(scheme_name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    _: ServerKey,
    body: Bytes,
) -> Result<Json<SessionResponse>, NakamaError> {
    let create = match query.get("create") {
        Some(v) => parse_bool("create", v)?,
        None => true,
    };
    let username = query.get("username").filter(|u| !u.is_empty()).cloned();
    let (credential, vars) = match scheme_name.as_str() {
        scheme::DEVICE | scheme::CUSTOM => {
            let account: AccountId = parse_body(&body).map_err(NakamaError::invalid)?;
            (Credential::id(account.id), account.vars)
        }
        scheme::EMAIL => {
            let account: AccountEmail = parse_body(&body).map_err(NakamaError::invalid)?;
            if account.email.is_empty() {
                // Nakama's username login: the `username` parameter names an
                // existing account; `create` is ignored (never creates).
                let service = &app.identity.service;
                let name = username.as_deref().unwrap_or_default();
                let user = service.login_username(name, &account.password, client).await?;
                let pair = service.issue_tokens(&user, account.vars).await?;
                return Ok(session(false, pair));
            }
            let credential = Credential {
                id: account.email,
                password: Some(account.password),
                ..Credential::default()
            };
            (credential, account.vars)
        }
        other => match super::proof::provider(&app.identity.service, other, &body) {
            Some(parsed) => parsed?,
            // A scheme this server has no route for: 404, not a server
            // error (a 501 would read as the server failing).
            None => {
                return Err(NakamaError::new(
                    Code::NotFound,
                    format!("Authentication with {other:?} is not supported."),
                ));
            }
        },
    };
    let service = &app.identity.service;
    let outcome = service
        .authenticate(&scheme_name, &credential, create, username, client)
        .await?;
    let pair = service.issue_login_tokens(&outcome, vars)?;
    Ok(session(outcome.created, pair))
}

/// Exchange a refresh token for a new session.
#[utoipa::path(post, path = "/v2/account/session/refresh", tag = "nakama",
    request_body = SessionRefreshRequest,
    responses(
        (status = 200, description = "New session", body = SessionResponse),
        (status = 400, description = "No refresh token", body = NakamaStatus),
        (status = 401, description = "Server key missing or invalid; refresh token invalid, expired or revoked", body = NakamaStatus),
        (status = 403, description = "Account banned", body = NakamaStatus),
    ), security(("server_key" = [])))]
pub async fn refresh(
    State(app): State<Arc<App>>,
    _: ServerKey,
    body: Bytes,
) -> Result<Json<SessionResponse>, NakamaError> {
    let request: SessionRefreshRequest = parse_body(&body).map_err(NakamaError::invalid)?;
    let (_, pair) = app
        .identity
        .service
        .refresh_tokens(&request.token, request.vars)
        .await?;
    Ok(session(false, pair))
}

/// Revoke the given session and/or refresh token of the caller (every token
/// of the caller when neither is given).
#[utoipa::path(post, path = "/v2/session/logout", tag = "nakama",
    request_body = SessionLogoutRequest,
    responses(
        (status = 200, description = "Revoked", body = Empty),
        (status = 400, description = "A token that is not the caller's or not valid", body = NakamaStatus),
        (status = 401, description = "No valid session token", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn logout(
    State(app): State<Arc<App>>,
    Session(caller): Session,
    body: Bytes,
) -> Result<Json<Empty>, NakamaError> {
    let request: SessionLogoutRequest = parse_body(&body).map_err(NakamaError::invalid)?;
    app.identity
        .service
        .logout_tokens(
            &caller.user_id,
            Some(&request.token),
            Some(&request.refresh_token),
        )
        .await?;
    Ok(Json(Empty {}))
}
