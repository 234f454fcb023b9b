//! The core HTTP APIs, thin over [`elements_identity::IdentityService`] and
//! the deployer, as routers over the HTTP front's [`App`]:
//!
//! - [`rest`]: the Elements-style identity API under `/api/rest`;
//! - [`nakama`]: the Nakama-compatible `/v2` authentication API;
//! - [`deployments`], [`services`] and [`auth_schemes`]: the admin API
//!   (admin listener);
//! - [`extensions`]: the documentation of the core extension points;
//! - [`openapi`]: the OpenAPI documents (`/api/rest/openapi.json` on each
//!   listener) and Swagger UI (`/doc/swagger/`), served from the binary.

pub mod auth_schemes;
pub mod deployments;
pub mod extensions;
pub mod nakama;
pub mod notifications;
pub mod openapi;
pub mod rest;
pub mod services;

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use elements_server::App;

/// The core APIs served to clients on the public listener, with their
/// document and Swagger UI. The deployment admin API is served on the admin
/// listener ([`admin_router`]).
pub fn public_router() -> Router<Arc<App>> {
    let (router, mut document) = public_api().split_for_parts();
    openapi::add_common_responses(&mut document);
    router.merge(openapi::swagger(document))
}

/// The admin API (deployments, services) with its document.
pub fn admin_router() -> Router<Arc<App>> {
    let (router, mut document) = admin_api().split_for_parts();
    openapi::add_common_responses(&mut document);
    router.merge(openapi::document_route(document))
}

/// The public listener's API routes and document.
pub fn public_api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(rest::router())
        .merge(nakama::router())
}

/// The admin listener's API routes and document.
pub fn admin_api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(openapi::AdminApiDoc::openapi())
        .merge(deployments::router())
        .merge(services::router())
        .merge(auth_schemes::router())
        .merge(notifications::router())
}
