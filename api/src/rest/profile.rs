//! `GET /profile/current`, profiles CRUD (owner or superuser).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use elements_identity::{CallerSession, NewProfile, ProfileQuery};

use super::{Authenticated, ErrorDto, ProfilePage, bad_request, page, paging};
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::parse_body;
use elements_wire as wire;

/// A profile to create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ProfileCreateRequest {
    /// Owner (default: the caller; another user needs a superuser).
    pub user_id: Option<String>,
    /// Application id or name.
    pub application: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Image URL.
    pub image_url: Option<String>,
    /// Free-form JSON object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// The profile of the calling session.
#[utoipa::path(get, path = "/api/rest/profile/current", tag = "profiles",
    responses(
        (status = 200, description = "The session's profile", body = wire::Profile),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 404, description = "The session has no profile", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn current_profile(Authenticated(caller): Authenticated) -> Result<Json<wire::Profile>, ApiError> {
    match caller.session {
        CallerSession::Elements(resolved) => match resolved.profile {
            Some(profile) => Ok(Json(profile.into())),
            None => Err(ApiError::not_found("this session has no profile")),
        },
        CallerSession::Token(_) => Err(ApiError::not_found("this session has no profile")),
    }
}

/// Profiles: the caller's, or anyone's for a superuser.
#[utoipa::path(get, path = "/api/rest/profile", tag = "profiles",
    params(
        ("user" = Option<String>, Query, description = "Only this user's"),
        ("application" = Option<String>, Query, description = "Only in this application (id or name)"),
        ("displayName" = Option<String>, Query, description = "Only those whose display name starts with this"),
        ("offset" = Option<u64>, Query, description = "Skip this many (default 0)"),
        ("count" = Option<u64>, Query, description = "At most this many (default 20, at most 100)"),
    ),
    responses(
        (status = 200, description = "One page", body = ProfilePage),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Another user's, and not a superuser", body = ErrorDto),
        (status = 404, description = "No such application", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn list_profiles(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ProfilePage>, ApiError> {
    let (offset, count) = paging(&query)?;
    let found = app
        .identity
        .service
        .list_profiles(
            &caller.user,
            &ProfileQuery {
                user_id: query.get("user").map(String::as_str),
                application: query.get("application").map(String::as_str),
                display_name: query.get("displayName").map(String::as_str),
            },
            offset,
            count,
        )
        .await?;
    let (offset, total, objects) = page(found);
    Ok(Json(ProfilePage {
        offset,
        total,
        objects,
    }))
}

/// Create a profile.
#[utoipa::path(post, path = "/api/rest/profile", tag = "profiles", request_body = ProfileCreateRequest,
    responses(
        (status = 201, description = "Created", body = wire::Profile),
        (status = 400, description = "Invalid field", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "For another user, and not a superuser", body = ErrorDto),
        (status = 404, description = "No such user or application", body = ErrorDto),
        (status = 409, description = "The user already has a profile in the application", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn create_profile(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ProfileCreateRequest = parse_body(&body).map_err(bad_request)?;
    if request.application.is_empty() {
        return Err(bad_request("`application` is required"));
    }
    let new = NewProfile {
        user_id: request.user_id.unwrap_or_else(|| caller.user.id.clone()),
        application: request.application,
        display_name: request.display_name,
        image_url: request.image_url,
        metadata: request.metadata,
    };
    let profile = app.identity.service.create_profile(&caller.user, new).await?;
    Ok((StatusCode::CREATED, Json(wire::Profile::from(profile))).into_response())
}

/// A profile (owner or superuser).
#[utoipa::path(get, path = "/api/rest/profile/{id}", tag = "profiles",
    params(("id" = String, Path, description = "Profile id")),
    responses(
        (status = 200, description = "The profile", body = wire::Profile),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not the owner and not a superuser", body = ErrorDto),
        (status = 404, description = "No such profile", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn get_profile(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<wire::Profile>, ApiError> {
    Ok(Json(
        app.identity.service.profile(&caller.user, &id).await?.into(),
    ))
}

/// Change a profile (owner or superuser).
#[utoipa::path(put, path = "/api/rest/profile/{id}", tag = "profiles", request_body = wire::ProfileUpdate,
    params(("id" = String, Path, description = "Profile id")),
    responses(
        (status = 200, description = "The profile after the change", body = wire::Profile),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not the owner and not a superuser", body = ErrorDto),
        (status = 404, description = "No such profile", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn update_profile(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<wire::Profile>, ApiError> {
    let update: wire::ProfileUpdate = parse_body(&body).map_err(bad_request)?;
    Ok(Json(
        app.identity
            .service
            .update_profile(&caller.user, &id, update)
            .await?
            .into(),
    ))
}

/// Delete a profile (owner or superuser).
#[utoipa::path(delete, path = "/api/rest/profile/{id}", tag = "profiles",
    params(("id" = String, Path, description = "Profile id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not the owner and not a superuser", body = ErrorDto),
        (status = 404, description = "No such profile", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn delete_profile(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.identity.service.delete_profile(&caller.user, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
