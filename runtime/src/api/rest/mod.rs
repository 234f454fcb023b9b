//! The Elements-style identity API under `/api/rest`: sessions, users,
//! profiles and applications. JSON in camelCase; errors are the runtime's
//! `{code, message}`. Callers authenticate with `Authorization: Bearer
//! <session secret>` or `Elements-SessionSecret: <session secret>` (a Nakama
//! session token is accepted as a bearer too).

mod application;
mod profile;
mod session;
mod user;

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use elements_identity::{Caller, IdentityError, Page};

use crate::error::ApiError;
use crate::server::App;

pub use application::*;
pub use elements_wire::{ApplicationDto, LevelDto, ProfileDto, SessionDto, UserDto};
pub use profile::*;
pub use session::*;
pub use user::*;

/// Where this API is mounted.
pub const ROOT: &str = "/api/rest";

/// The challenge of a 401 from this API.
pub const CHALLENGE: &str = "Bearer realm=\"elements\"";

/// The header carrying a session secret, besides `Authorization: Bearer`.
pub const SESSION_HEADER: &str = "elements-sessionsecret";

/// The API's routes, each documented by its handler's annotation (so
/// none is served undocumented).
pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(session::create_session))
        .routes(routes!(session::delete_session))
        .routes(routes!(session::signup_session))
        .routes(routes!(user::search_users))
        .routes(routes!(user::get_me))
        .routes(routes!(user::get_user, user::update_user))
        .routes(routes!(profile::list_profiles, profile::create_profile))
        .routes(routes!(profile::current_profile))
        .routes(routes!(
            profile::get_profile,
            profile::update_profile,
            profile::delete_profile
        ))
        .routes(routes!(
            application::list_applications,
            application::create_application
        ))
        .routes(routes!(
            application::get_application,
            application::update_application,
            application::delete_application
        ))
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> ApiError {
        match e {
            IdentityError::InvalidArgument(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", m)
            }
            IdentityError::Unauthenticated(m) => ApiError::unauthorized(CHALLENGE, m),
            IdentityError::PermissionDenied(m) => ApiError::forbidden(m),
            IdentityError::NotFound(m) => ApiError::not_found(m),
            IdentityError::AlreadyExists(m) => ApiError::new(StatusCode::CONFLICT, "DUPLICATE", m),
            IdentityError::Throttled {
                message,
                retry_after_secs,
            } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "THROTTLED", message)
                .with_retry_after(retry_after_secs),
            IdentityError::Busy { retry_after_secs } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "BUSY",
                "the server is busy checking passwords; retry later",
            )
            .with_retry_after(retry_after_secs),
            IdentityError::Unavailable(m) => {
                tracing::warn!("identity request failed, store unavailable: {m}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "storage is unavailable; retry later",
                )
            }
            IdentityError::Internal(m) => {
                // The detail is for operators, not clients.
                tracing::error!("identity request failed: {m}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "internal error",
                )
            }
        }
    }
}

/// 400 for a body or parameter that can't be read.
pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", message)
}

/// The session credential of a request, if any.
pub(crate) fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(secret) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        let secret = secret.trim();
        if !secret.is_empty() {
            return Some(secret);
        }
    }
    super::authorization(headers, "Bearer")
}

/// The calling user: 401 (with a challenge) without valid credentials.
pub(crate) async fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let credential = credential(headers).ok_or_else(|| {
        ApiError::unauthorized(
            CHALLENGE,
            "a session is required: send `Authorization: Bearer <session secret>` or `Elements-SessionSecret`",
        )
    })?;
    Ok(app.identity.service.resolve_credential(credential).await?)
}

/// `offset` and `count` query parameters (defaults 0 and 20, count at most 100).
pub(crate) fn paging(query: &HashMap<String, String>) -> Result<(u64, u64), ApiError> {
    let number = |name: &str, default: u64| match query.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| bad_request(format!("`{name}` must be a non-negative integer"))),
    };
    Ok((number("offset", 0)?, number("count", 20)?.min(100)))
}

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// Skipped before this page.
    pub offset: u64,
    /// Matching in all.
    pub total: u64,
    /// This page.
    pub objects: Vec<UserDto>,
}

/// One page of profiles.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfilePage {
    /// Skipped before this page.
    pub offset: u64,
    /// Matching in all.
    pub total: u64,
    /// This page.
    pub objects: Vec<ProfileDto>,
}

/// One page of applications.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationPage {
    /// Skipped before this page.
    pub offset: u64,
    /// Matching in all.
    pub total: u64,
    /// This page.
    pub objects: Vec<ApplicationDto>,
}

/// Converts a page of domain objects.
pub(crate) fn page<T, D: From<T>>(p: Page<T>) -> (u64, u64, Vec<D>) {
    (p.offset, p.total, p.items.into_iter().map(D::from).collect())
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDto {
    /// Stable machine-readable code (`INVALID_PARAMETER`, `UNAUTHORIZED`,
    /// `FORBIDDEN`, `NOT_FOUND`, `DUPLICATE`, `UNAVAILABLE`, `INTERNAL_ERROR`).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}
