//! The Elements-style identity API under `/api/rest`: sessions, users,
//! profiles and applications. JSON in camelCase; errors are the runtime's
//! `{code, message}`. Callers authenticate with `Authorization: Bearer
//! <session secret>` or `Elements-SessionSecret: <session secret>` (a Nakama
//! session token is accepted as a bearer too).

mod application;
mod auth;
mod profile;
mod session;
mod user;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::HeaderMap;
use http::request::Parts;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use elements_identity::{Caller, Page};
use elements_wire as wire;

use elements_server::App;
use elements_server::error::ApiError;

pub use application::*;
pub use elements_server::request::{CHALLENGE, SESSION_HEADER, bad_request, credential};
pub use profile::*;
pub use session::*;
pub use user::*;

/// Where this API is mounted.
pub const ROOT: &str = "/api/rest";

/// The API's routes, each documented by its handler's annotation (so
/// none is served undocumented).
pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(session::create_session))
        .routes(routes!(auth::oidc_session))
        .routes(routes!(auth::oidc_link))
        .routes(routes!(auth::oauth2_session))
        .routes(routes!(auth::oauth2_link))
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

/// The calling user, as a handler argument: a request without a valid
/// session credential is answered 401 (with a challenge) before the
/// handler runs.
pub struct Authenticated(pub Caller);

impl FromRequestParts<Arc<App>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        caller(app, &parts.headers).await.map(Authenticated)
    }
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
// ApiError is every handler's error (one per failed request, not per item):
// its size costs nothing here, and boxing it here alone would gain nothing.
#[allow(clippy::result_large_err)]
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
    pub objects: Vec<wire::User>,
}

/// One page of profiles.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfilePage {
    /// Skipped before this page.
    pub offset: u64,
    /// Matching in all.
    pub total: u64,
    /// This page.
    pub objects: Vec<wire::Profile>,
}

/// One page of applications.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationPage {
    /// Skipped before this page.
    pub offset: u64,
    /// Matching in all.
    pub total: u64,
    /// This page.
    pub objects: Vec<wire::Application>,
}

/// Converts a page of domain objects.
pub(crate) fn page<T, D: From<T>>(p: Page<T>) -> (u64, u64, Vec<D>) {
    (p.offset, p.total, p.items.into_iter().map(D::from).collect())
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDto {
    /// Stable machine-readable code (`INVALID_PARAMETER`, `UNAUTHORIZED`,
    /// `FORBIDDEN`, `NOT_FOUND`, `DUPLICATE`, `UNAVAILABLE`, `INTERNAL`).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The request's id, as in its `x-request-id` header: what an operator
    /// looks the failure up by in the log.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}
