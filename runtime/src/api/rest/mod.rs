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
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use elements_identity::{Application, Caller, IdentityError, Level, Page, Profile, User};

use crate::error::ApiError;
use crate::server::App;

pub use application::*;
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

/// A user's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LevelDto {
    /// May hold a session only.
    Unprivileged,
    /// A player.
    User,
    /// An administrator.
    Superuser,
}

impl From<Level> for LevelDto {
    fn from(l: Level) -> LevelDto {
        match l {
            Level::Unprivileged => LevelDto::Unprivileged,
            Level::User => LevelDto::User,
            Level::Superuser => LevelDto::Superuser,
        }
    }
}

impl From<LevelDto> for Level {
    fn from(l: LevelDto) -> Level {
        match l {
            LevelDto::Unprivileged => Level::Unprivileged,
            LevelDto::User => Level::User,
            LevelDto::Superuser => Level::Superuser,
        }
    }
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Avatar URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Language tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang_tag: Option<String>,
    /// Free-form JSON object.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Level.
    pub level: LevelDto,
    /// Banned.
    pub banned: bool,
    /// Creation time, epoch milliseconds.
    pub created: i64,
    /// Last update, epoch milliseconds.
    pub updated: i64,
}

impl From<User> for UserDto {
    fn from(u: User) -> UserDto {
        UserDto {
            id: u.id,
            name: u.name,
            email: u.email,
            display_name: u.display_name,
            avatar_url: u.avatar_url,
            lang_tag: u.lang_tag,
            metadata: u.metadata,
            level: u.level.into(),
            banned: u.banned,
            created: u.created,
            updated: u.updated,
        }
    }
}

/// A user's profile in one application.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileDto {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Application.
    pub application_id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Image URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Free-form JSON object.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Last session opened with this profile, epoch milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_login: Option<i64>,
    /// Creation time, epoch milliseconds.
    pub created: i64,
    /// Last update, epoch milliseconds.
    pub updated: i64,
}

impl From<Profile> for ProfileDto {
    fn from(p: Profile) -> ProfileDto {
        ProfileDto {
            id: p.id,
            user_id: p.user_id,
            application_id: p.application_id,
            display_name: p.display_name,
            image_url: p.image_url,
            metadata: p.metadata,
            last_login: p.last_login,
            created: p.created,
            updated: p.updated,
        }
    }
}

/// An application.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDto {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time, epoch milliseconds.
    pub created: i64,
    /// Last update, epoch milliseconds.
    pub updated: i64,
}

impl From<Application> for ApplicationDto {
    fn from(a: Application) -> ApplicationDto {
        ApplicationDto {
            id: a.id,
            name: a.name,
            description: a.description,
            created: a.created,
            updated: a.updated,
        }
    }
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
