//! The admin API of auth schemes (admin listener, superusers):
//! `/api/rest/auth_scheme/oidc` and `/api/rest/auth_scheme/oauth2`, as in
//! Namazu Elements. A scheme that can't work is refused here (400), not at
//! a player's login. OAuth2 values the operator stores (API keys) are never
//! shown: answers carry `valueSet`, and an update that leaves a value out
//! keeps it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use elements_identity::schemes::redacted;
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::parse_body;
use elements_wire::schemes::{OAuth2AuthScheme, OidcAuthScheme};

use crate::rest::{ErrorDto, bad_request, caller};

/// The admin routes.
pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list_oidc, create_oidc))
        .routes(routes!(get_oidc, update_oidc, delete_oidc))
        .routes(routes!(list_oauth2, create_oauth2))
        .routes(routes!(get_oauth2, update_oauth2, delete_oauth2))
}

async fn actor(app: &App, headers: &HeaderMap) -> Result<elements_identity::User, ApiError> {
    let caller = caller(app, headers).await?;
    elements_identity::require_superuser(&caller.user)?;
    Ok(caller.user)
}

/// Every OIDC scheme.
#[utoipa::path(get, path = "/api/rest/auth_scheme/oidc", tag = "auth schemes",
    responses(
        (status = 200, description = "The schemes", body = Vec<OidcAuthScheme>),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn list_oidc(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Vec<OidcAuthScheme>>, ApiError> {
    actor(&app, &headers).await?;
    Ok(Json(app.identity.service.oidc_schemes().await?))
}

/// Register an OIDC issuer.
#[utoipa::path(post, path = "/api/rest/auth_scheme/oidc", tag = "auth schemes", request_body = OidcAuthScheme,
    responses(
        (status = 201, description = "Registered", body = OidcAuthScheme),
        (status = 400, description = "A scheme that can't work (no audience, no keys, a bad URL...)", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 409, description = "Name or issuer taken", body = ErrorDto),
    ), security(("session" = [])))]
async fn create_oidc(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = actor(&app, &headers).await?;
    let scheme: OidcAuthScheme = parse_body(&body).map_err(bad_request)?;
    let created = app.identity.service.create_oidc_scheme(&actor, scheme).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// One OIDC scheme.
#[utoipa::path(get, path = "/api/rest/auth_scheme/oidc/{id}", tag = "auth schemes",
    params(("id" = String, Path, description = "Id or name")),
    responses(
        (status = 200, description = "The scheme", body = OidcAuthScheme),
        (status = 404, description = "No such scheme", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn get_oidc(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<OidcAuthScheme>, ApiError> {
    actor(&app, &headers).await?;
    Ok(Json(app.identity.service.oidc_scheme(&id).await?))
}

/// Replace an OIDC scheme (its id stays).
#[utoipa::path(put, path = "/api/rest/auth_scheme/oidc/{id}", tag = "auth schemes", request_body = OidcAuthScheme,
    params(("id" = String, Path, description = "Id or name")),
    responses(
        (status = 200, description = "Replaced", body = OidcAuthScheme),
        (status = 400, description = "A scheme that can't work", body = ErrorDto),
        (status = 404, description = "No such scheme", body = ErrorDto),
        (status = 409, description = "Name or issuer taken", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn update_oidc(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<OidcAuthScheme>, ApiError> {
    let actor = actor(&app, &headers).await?;
    let scheme: OidcAuthScheme = parse_body(&body).map_err(bad_request)?;
    Ok(Json(
        app.identity
            .service
            .update_oidc_scheme(&actor, &id, scheme)
            .await?,
    ))
}

/// Delete an OIDC scheme. Accounts it created stay, with their other logins.
#[utoipa::path(delete, path = "/api/rest/auth_scheme/oidc/{id}", tag = "auth schemes",
    params(("id" = String, Path, description = "Id or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such scheme", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn delete_oidc(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let actor = actor(&app, &headers).await?;
    app.identity
        .service
        .delete_auth_scheme(&actor, false, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every OAuth2 scheme (stored values hidden).
#[utoipa::path(get, path = "/api/rest/auth_scheme/oauth2", tag = "auth schemes",
    responses(
        (status = 200, description = "The schemes", body = Vec<OAuth2AuthScheme>),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn list_oauth2(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Vec<OAuth2AuthScheme>>, ApiError> {
    actor(&app, &headers).await?;
    let schemes = app.identity.service.oauth2_schemes().await?;
    Ok(Json(schemes.into_iter().map(redacted).collect()))
}

/// Register an OAuth2 provider.
#[utoipa::path(post, path = "/api/rest/auth_scheme/oauth2", tag = "auth schemes", request_body = OAuth2AuthScheme,
    responses(
        (status = 201, description = "Registered (stored values hidden)", body = OAuth2AuthScheme),
        (status = 400, description = "A scheme that can't work (nothing from the client, no way to name the player...)", body = ErrorDto),
        (status = 409, description = "Name taken", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn create_oauth2(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = actor(&app, &headers).await?;
    let scheme: OAuth2AuthScheme = parse_body(&body).map_err(bad_request)?;
    let created = app.identity.service.create_oauth2_scheme(&actor, scheme).await?;
    Ok((StatusCode::CREATED, Json(redacted(created))).into_response())
}

/// One OAuth2 scheme (stored values hidden).
#[utoipa::path(get, path = "/api/rest/auth_scheme/oauth2/{id}", tag = "auth schemes",
    params(("id" = String, Path, description = "Id or name")),
    responses(
        (status = 200, description = "The scheme", body = OAuth2AuthScheme),
        (status = 404, description = "No such scheme", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn get_oauth2(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<OAuth2AuthScheme>, ApiError> {
    actor(&app, &headers).await?;
    Ok(Json(redacted(app.identity.service.oauth2_scheme(&id).await?)))
}

/// Replace an OAuth2 scheme; a stored value left out is kept.
#[utoipa::path(put, path = "/api/rest/auth_scheme/oauth2/{id}", tag = "auth schemes", request_body = OAuth2AuthScheme,
    params(("id" = String, Path, description = "Id or name")),
    responses(
        (status = 200, description = "Replaced (stored values hidden)", body = OAuth2AuthScheme),
        (status = 400, description = "A scheme that can't work", body = ErrorDto),
        (status = 404, description = "No such scheme", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn update_oauth2(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<OAuth2AuthScheme>, ApiError> {
    let actor = actor(&app, &headers).await?;
    let scheme: OAuth2AuthScheme = parse_body(&body).map_err(bad_request)?;
    let updated = app
        .identity
        .service
        .update_oauth2_scheme(&actor, &id, scheme)
        .await?;
    Ok(Json(redacted(updated)))
}

/// Delete an OAuth2 scheme.
#[utoipa::path(delete, path = "/api/rest/auth_scheme/oauth2/{id}", tag = "auth schemes",
    params(("id" = String, Path, description = "Id or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such scheme", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn delete_oauth2(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let actor = actor(&app, &headers).await?;
    app.identity.service.delete_auth_scheme(&actor, true, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
