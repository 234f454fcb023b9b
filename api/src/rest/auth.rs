//! `POST /api/rest/auth/oidc` and `/api/rest/auth/oauth2`: log in with a
//! registered auth scheme (see `auth_schemes`), creating the account on
//! first login with the identity VERIFIED; `…/link` adds the identity to
//! the caller's account instead.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use elements_identity::{Caller, FindOrCreate, VerifiedIdentity};
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::{ClientAddr, parse_body};
use elements_wire as wire;
use elements_wire::schemes::{OAuth2SessionRequest, OidcSessionRequest};

use super::{ErrorDto, bad_request, caller, session::open};

async fn oidc_identity(app: &App, request: &OidcSessionRequest) -> Result<VerifiedIdentity, ApiError> {
    let schemes = app.identity.service.oidc_schemes().await?;
    Ok(app.identity.schemes.verify_oidc(&schemes, &request.jwt).await?)
}

async fn oauth2_identity(app: &App, request: &OAuth2SessionRequest) -> Result<VerifiedIdentity, ApiError> {
    if request.scheme_id.is_empty() {
        return Err(bad_request("`schemeId` is required"));
    }
    let scheme = app.identity.service.oauth2_scheme(&request.scheme_id).await?;
    // Namazu merged the deprecated `requestHeaders` into the parameters.
    let mut values = request.request_headers.clone();
    values.extend(request.request_parameters.clone());
    Ok(app.identity.schemes.verify_oauth2(&scheme, &values).await?)
}

async fn log_in(
    app: &App,
    identity: VerifiedIdentity,
    client: Option<std::net::IpAddr>,
    profile_id: Option<&str>,
    application: Option<&str>,
) -> Result<Json<wire::SessionCreation>, ApiError> {
    let outcome = app
        .identity
        .service
        .find_or_create_user(FindOrCreate {
            identity,
            create: true,
            username: None,
            client,
        })
        .await?;
    Ok(Json(open(app, outcome.user, profile_id, application).await?))
}

async fn link(
    app: &App,
    caller: &Caller,
    identity: VerifiedIdentity,
    label: &str,
) -> Result<StatusCode, ApiError> {
    app.identity
        .service
        .link_verified(&caller.user.id, &identity, label)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log in with an ID token from a registered OIDC issuer (its `iss` picks
/// the scheme); the account is created on first login.
#[utoipa::path(post, path = "/api/rest/auth/oidc", tag = "sessions", request_body = OidcSessionRequest,
    responses(
        (status = 200, description = "Session opened", body = wire::SessionCreation),
        (status = 400, description = "No token", body = ErrorDto),
        (status = 401, description = "Not signed by a registered issuer for a registered audience, or expired", body = ErrorDto),
        (status = 403, description = "Banned", body = ErrorDto),
        (status = 502, description = "The issuer's keys could not be fetched", body = ErrorDto),
    ))]
pub async fn oidc_session(
    State(app): State<Arc<App>>,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<Json<wire::SessionCreation>, ApiError> {
    let request: OidcSessionRequest = parse_body(&body).map_err(bad_request)?;
    let identity = oidc_identity(&app, &request).await?;
    log_in(
        &app,
        identity,
        client,
        request.profile_id.as_deref(),
        request.application_name_or_id.as_deref(),
    )
    .await
}

/// Link an OIDC identity to the caller's account.
#[utoipa::path(post, path = "/api/rest/auth/oidc/link", tag = "sessions", request_body = OidcSessionRequest,
    responses(
        (status = 204, description = "Linked"),
        (status = 400, description = "No token", body = ErrorDto),
        (status = 401, description = "No valid session; a token not genuine", body = ErrorDto),
        (status = 409, description = "The identity belongs to another account", body = ErrorDto),
        (status = 502, description = "The issuer's keys could not be fetched", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn oidc_link(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    // The session first: nobody without one makes this server call a provider.
    let caller = caller(&app, &headers).await?;
    let request: OidcSessionRequest = parse_body(&body).map_err(bad_request)?;
    let identity = oidc_identity(&app, &request).await?;
    link(&app, &caller, identity, "OIDC identity").await
}

/// Log in through a registered OAuth2 provider: the scheme's validation
/// request, with the client's values, must say the token is valid and whose.
#[utoipa::path(post, path = "/api/rest/auth/oauth2", tag = "sessions", request_body = OAuth2SessionRequest,
    responses(
        (status = 200, description = "Session opened", body = wire::SessionCreation),
        (status = 400, description = "No scheme, or a value the scheme takes from the client missing", body = ErrorDto),
        (status = 401, description = "The provider says the token is not valid", body = ErrorDto),
        (status = 404, description = "No such scheme", body = ErrorDto),
        (status = 502, description = "The provider could not be reached", body = ErrorDto),
    ))]
pub async fn oauth2_session(
    State(app): State<Arc<App>>,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<Json<wire::SessionCreation>, ApiError> {
    let request: OAuth2SessionRequest = parse_body(&body).map_err(bad_request)?;
    let identity = oauth2_identity(&app, &request).await?;
    log_in(
        &app,
        identity,
        client,
        request.profile_id.as_deref(),
        request.application_name_or_id.as_deref(),
    )
    .await
}

/// Link an OAuth2 identity to the caller's account.
#[utoipa::path(post, path = "/api/rest/auth/oauth2/link", tag = "sessions", request_body = OAuth2SessionRequest,
    responses(
        (status = 204, description = "Linked"),
        (status = 400, description = "No scheme, or a value the scheme takes from the client missing", body = ErrorDto),
        (status = 401, description = "No valid session; a token not valid", body = ErrorDto),
        (status = 404, description = "No such scheme", body = ErrorDto),
        (status = 409, description = "The identity belongs to another account", body = ErrorDto),
        (status = 502, description = "The provider could not be reached", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn oauth2_link(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let caller = caller(&app, &headers).await?;
    let request: OAuth2SessionRequest = parse_body(&body).map_err(bad_request)?;
    let identity = oauth2_identity(&app, &request).await?;
    link(&app, &caller, identity, "OAuth2 identity").await
}
