//! `GET /user/me`, `GET /user` (search), `GET/PUT /user/{id}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use elements_identity::{UserUpdate, require_self_or_superuser};

use super::{Authenticated, ErrorDto, LevelDto, UserDto, UserPage, bad_request, page, paging};
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::parse_body;

/// Changes to a user; absent fields stay as they are, an empty string clears
/// an optional text field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UserUpdateRequest {
    /// New unique name.
    pub name: Option<String>,
    /// New email (unverified until proven).
    pub email: Option<String>,
    /// New password. Changing your own password or email requires
    /// `currentPassword` (when the account has a password) and ends your
    /// other sessions.
    pub password: Option<String>,
    /// Your current password, to change your own password or email.
    pub current_password: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Language tag.
    pub lang_tag: Option<String>,
    /// Free-form JSON object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Level (superusers only).
    pub level: Option<LevelDto>,
    /// Banned (superusers only); a ban ends every session of the user.
    pub banned: Option<bool>,
}

/// The calling user.
#[utoipa::path(get, path = "/api/rest/user/me", tag = "users",
    responses(
        (status = 200, description = "The caller", body = UserDto),
        (status = 401, description = "No valid session", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn get_me(Authenticated(caller): Authenticated) -> Result<Json<UserDto>, ApiError> {
    Ok(Json(caller.user.into()))
}

/// A user: the caller themself, or anyone for a superuser.
#[utoipa::path(get, path = "/api/rest/user/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = UserDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not the caller and not a superuser", body = ErrorDto),
        (status = 404, description = "No such user", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn get_user(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<UserDto>, ApiError> {
    require_self_or_superuser(&caller.user, &id)?;
    Ok(Json(app.identity.service.user(&id).await?.into()))
}

/// Change a user: the caller themself, or anyone for a superuser; only
/// superusers change levels and bans.
#[utoipa::path(put, path = "/api/rest/user/{id}", tag = "users", request_body = UserUpdateRequest,
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user after the change", body = UserDto),
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
) -> Result<Json<UserDto>, ApiError> {
    let request: UserUpdateRequest = parse_body(&body).map_err(bad_request)?;
    let update = UserUpdate {
        name: request.name,
        email: request.email,
        password: request.password,
        current_password: request.current_password,
        display_name: request.display_name,
        avatar_url: request.avatar_url,
        lang_tag: request.lang_tag,
        metadata: request.metadata,
        level: request.level.map(Into::into),
        banned: request.banned,
    };
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
