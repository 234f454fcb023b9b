//! `GET /user/me`, `GET /user` (search), `GET/PUT /user/{id}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use bytes::Bytes;

use elements_identity::require_self_or_superuser;

use super::{Authenticated, ErrorDto, UserPage, bad_request, page, paging};
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::parse_body;
use elements_wire as wire;

/// The calling user.
#[utoipa::path(get, path = "/api/rest/user/me", tag = "users",
    responses(
        (status = 200, description = "The caller", body = wire::User),
        (status = 401, description = "No valid session", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn get_me(Authenticated(caller): Authenticated) -> Result<Json<wire::User>, ApiError> {
    Ok(Json(caller.user.into()))
}

/// A user: the caller themself, or anyone for a superuser.
#[utoipa::path(get, path = "/api/rest/user/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = wire::User),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not the caller and not a superuser", body = ErrorDto),
        (status = 404, description = "No such user", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn get_user(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<wire::User>, ApiError> {
    require_self_or_superuser(&caller.user, &id)?;
    Ok(Json(app.identity.service.user(&id).await?.into()))
}

/// Change a user: the caller themself, or anyone for a superuser; only
/// superusers change levels and bans.
#[utoipa::path(put, path = "/api/rest/user/{id}", tag = "users", request_body = wire::UserUpdate,
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user after the change", body = wire::User),
        (status = 400, description = "Invalid field; `currentPassword` missing or wrong", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not allowed", body = ErrorDto),
        (status = 404, description = "No such user", body = ErrorDto),
        (status = 409, description = "Name or email taken", body = ErrorDto),
        (status = 429, description = "Too many wrong current passwords; see `Retry-After`", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn update_user(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<wire::User>, ApiError> {
    let update: wire::UserUpdate = parse_body(&body).map_err(bad_request)?;
    Ok(Json(
        app.identity
            .service
            .update_user_as(&caller, &id, update)
            .await?
            .into(),
    ))
}

/// Search users by name or email prefix (superusers only).
#[utoipa::path(get, path = "/api/rest/user", tag = "users",
    params(
        ("search" = Option<String>, Query, description = "Name or email prefix"),
        ("offset" = Option<u64>, Query, description = "Skip this many (default 0)"),
        ("count" = Option<u64>, Query, description = "At most this many (default 20, at most 100)"),
    ),
    responses(
        (status = 200, description = "One page", body = UserPage),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn search_users(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<UserPage>, ApiError> {
    let (offset, count) = paging(&query)?;
    let found = app
        .identity
        .service
        .search_users(
            &caller.user,
            query.get("search").map(String::as_str),
            offset,
            count,
        )
        .await?;
    let (offset, total, objects) = page(found);
    Ok(Json(UserPage {
        offset,
        total,
        objects,
    }))
}
