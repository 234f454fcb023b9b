//! The OpenAPI 3 document of the core API, generated from the handlers'
//! annotations, at `/api/rest/openapi.json`, and Swagger UI at
//! `/doc/swagger/`, its assets compiled into the binary (no CDN).

use std::sync::Arc;

use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{nakama, rest};
use crate::server::App;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/rest/openapi.json";

/// The core API's document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Elements core API",
        description = "Identity in Elements style (`/api/rest`) and the Nakama-compatible \
                       authentication API (`/v2`)."
    ),
    paths(
        rest::create_session,
        rest::delete_session,
        rest::signup_session,
        rest::get_me,
        rest::get_user,
        rest::update_user,
        rest::search_users,
        rest::current_profile,
        rest::list_profiles,
        rest::create_profile,
        rest::get_profile,
        rest::update_profile,
        rest::delete_profile,
        rest::list_applications,
        rest::create_application,
        rest::get_application,
        rest::update_application,
        rest::delete_application,
        nakama::authenticate,
        nakama::refresh,
        nakama::logout,
        nakama::get_account,
        nakama::link,
        nakama::unlink,
    ),
    components(schemas(nakama::AccountEmail)),
    modifiers(&Security),
    tags(
        (name = "sessions", description = "Log in and out (`/api/rest`)"),
        (name = "users", description = "Users (`/api/rest`)"),
        (name = "profiles", description = "Profiles: a user in an application (`/api/rest`)"),
        (name = "applications", description = "Applications (`/api/rest`, superusers)"),
        (name = "nakama", description = "Nakama-compatible authentication (`/v2`)"),
    )
)]
pub struct ApiDoc;

/// Adds the security schemes the paths refer to.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("session", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "server_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The document and Swagger UI routes.
pub fn swagger() -> Router<Arc<App>> {
    SwaggerUi::new("/doc/swagger")
        .url(OPENAPI_PATH, ApiDoc::openapi())
        .into()
}
