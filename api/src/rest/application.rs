//! Applications CRUD (superusers only).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;

use elements_identity::require_superuser;

use super::{ApplicationPage, Authenticated, ErrorDto, bad_request, page, paging};
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::parse_body;
use elements_wire as wire;

/// Applications by name.
#[utoipa::path(get, path = "/api/rest/application", tag = "applications",
    params(
        ("offset" = Option<u64>, Query, description = "Skip this many (default 0)"),
        ("count" = Option<u64>, Query, description = "At most this many (default 20, at most 100)"),
    ),
    responses(
        (status = 200, description = "One page", body = ApplicationPage),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn list_applications(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ApplicationPage>, ApiError> {
    let (offset, count) = paging(&query)?;
    let found = app
        .identity
        .service
        .list_applications(&caller.user, offset, count)
        .await?;
    let (offset, total, objects) = page(found);
    Ok(Json(ApplicationPage {
        offset,
        total,
        objects,
    }))
}

/// Create an application.
#[utoipa::path(post, path = "/api/rest/application", tag = "applications", request_body = wire::ApplicationUpdate,
    responses(
        (status = 201, description = "Created", body = wire::Application),
        (status = 400, description = "Invalid name", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 409, description = "Name taken", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn create_application(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: wire::ApplicationUpdate = parse_body(&body).map_err(bad_request)?;
    let name = request.name.unwrap_or_default();
    let created = app
        .identity
        .service
        .create_application(&caller.user, &name, request.description)
        .await?;
    Ok((StatusCode::CREATED, Json(wire::Application::from(created))).into_response())
}

/// An application, by id or name.
#[utoipa::path(get, path = "/api/rest/application/{id}", tag = "applications",
    params(("id" = String, Path, description = "Application id or name")),
    responses(
        (status = 200, description = "The application", body = wire::Application),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 404, description = "No such application", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn get_application(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<wire::Application>, ApiError> {
    require_superuser(&caller.user)?;
    Ok(Json(app.identity.service.application(&id).await?.into()))
}

/// Change an application.
#[utoipa::path(put, path = "/api/rest/application/{id}", tag = "applications", request_body = wire::ApplicationUpdate,
    params(("id" = String, Path, description = "Application id or name")),
    responses(
        (status = 200, description = "The application after the change", body = wire::Application),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 404, description = "No such application", body = ErrorDto),
        (status = 409, description = "Name taken", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn update_application(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<wire::Application>, ApiError> {
    let update: wire::ApplicationUpdate = parse_body(&body).map_err(bad_request)?;
    Ok(Json(
        app.identity
            .service
            .update_application(&caller.user, &id, update)
            .await?
            .into(),
    ))
}

/// Delete an application and its profiles.
#[utoipa::path(delete, path = "/api/rest/application/{id}", tag = "applications",
    params(("id" = String, Path, description = "Application id or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 404, description = "No such application", body = ErrorDto),
    ), security(("session" = [])))]
pub async fn delete_application(
    State(app): State<Arc<App>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.identity.service.delete_application(&caller.user, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
