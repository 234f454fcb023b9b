//! `POST /session`, `DELETE /session/{secret}`, `POST /signup/session`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use elements_identity::{Application, Level, NewUser, Profile, User};

use super::{ErrorDto, bad_request};
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::{ClientAddr, parse_body};
use elements_wire as wire;

/// Log in.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionRequest {
    /// The user's name or email.
    pub user_id: String,
    /// Password.
    pub password: String,
    /// Open the session for this profile (must be the user's).
    pub profile_id: Option<String>,
    /// Open the session for this application (id or name): the user's
    /// profile in it is found or created.
    pub application: Option<String>,
}

/// Sign up, then log in.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SignupRequest {
    /// Unique name (no spaces or control characters, at most 128 bytes).
    pub name: String,
    /// Email.
    pub email: Option<String>,
    /// Password (at least 8 characters).
    pub password: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Open the session for this application (id or name), with a new profile.
    pub application: Option<String>,
}

/// Opens a session for `user`, for a profile / application if asked.
pub(crate) async fn open(
    app: &App,
    user: User,
    profile_id: Option<&str>,
    application: Option<&str>,
) -> Result<wire::SessionCreation, ApiError> {
    let service = &app.identity.service;
    let (profile, application): (Option<Profile>, Option<Application>) = match (profile_id, application) {
        (Some(id), _) => {
            let profile = service.profile(&user, id).await?;
            let application = service.application(&profile.application_id).await?;
            (Some(profile), Some(application))
        }
        (None, Some(name)) => {
            let application = service.application(name).await?;
            let (profile, _) = service.find_or_create_profile(&user.id, &application.id).await?;
            (Some(profile), Some(application))
        }
        (None, None) => (None, None),
    };
    let (secret, session) = service
        .create_session(
            &user.id,
            profile.as_ref().map(|p| p.id.as_str()),
            application.as_ref().map(|a| a.id.as_str()),
            None,
        )
        .await?;
    Ok(wire::SessionCreation {
        session_secret: secret,
        session: elements_identity::wire::session(user, profile, application, session.expiry),
    })
}

/// Log in with a name or email and a password.
#[utoipa::path(post, path = "/api/rest/session", tag = "sessions", request_body = SessionRequest,
    responses(
        (status = 200, description = "Session opened", body = wire::SessionCreation),
        (status = 400, description = "Missing fields", body = ErrorDto),
        (status = 401, description = "Invalid credentials", body = ErrorDto),
        (status = 403, description = "Banned, or not the user's profile", body = ErrorDto),
        (status = 429, description = "Too many failed logins for the account or from the address; see `Retry-After`", body = ErrorDto),
        (status = 503, description = "Password checks saturated; see `Retry-After`", body = ErrorDto),
    ))]
pub async fn create_session(
    State(app): State<Arc<App>>,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<Json<wire::SessionCreation>, ApiError> {
    let request: SessionRequest = parse_body(&body).map_err(bad_request)?;
    if request.user_id.is_empty() || request.password.is_empty() {
        return Err(bad_request("`userId` and `password` are required"));
    }
    let user = app
        .identity
        .service
        .login_password(&request.user_id, &request.password, client)
        .await?;
    let created = open(
        &app,
        user,
        request.profile_id.as_deref(),
        request.application.as_deref(),
    )
    .await?;
    Ok(Json(created))
}

/// Log out: end the session with this secret.
#[utoipa::path(delete, path = "/api/rest/session/{secret}", tag = "sessions",
    params(("secret" = String, Path, description = "The session secret")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 404, description = "No such session", body = ErrorDto),
    ))]
pub async fn delete_session(
    State(app): State<Arc<App>>,
    Path(secret): Path<String>,
) -> Result<Response, ApiError> {
    if app.identity.service.delete_session(&secret).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("no such session"))
    }
}

/// Create an account (level USER) and log in.
#[utoipa::path(post, path = "/api/rest/signup/session", tag = "sessions", request_body = SignupRequest,
    responses(
        (status = 200, description = "Account created and session opened", body = wire::SessionCreation),
        (status = 400, description = "Invalid name, email or password", body = ErrorDto),
        (status = 409, description = "Name or email taken", body = ErrorDto),
    ))]
pub async fn signup_session(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<Json<wire::SessionCreation>, ApiError> {
    let request: SignupRequest = parse_body(&body).map_err(bad_request)?;
    if request.password.is_empty() {
        return Err(bad_request("`password` is required"));
    }
    // Check the application before creating anything.
    if let Some(application) = &request.application {
        app.identity.service.application(application).await?;
    }
    let user = app
        .identity
        .service
        .create_user(NewUser {
            name: request.name,
            email: request.email.filter(|e| !e.is_empty()),
            password: Some(request.password),
            display_name: request.display_name,
            level: Level::User,
        })
        .await?;
    let created = open(&app, user, None, request.application.as_deref()).await?;
    Ok(Json(created))
}
