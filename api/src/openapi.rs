//! The OpenAPI 3 documents, one per listener, each served at
//! `/api/rest/openapi.json` on its listener: a listener's document lists
//! exactly what that listener serves (the client API on the public one, the
//! deployment and services admin API on the admin one), so neither
//! advertises routes it would answer 404. The routes under `/api/rest` and
//! `/v2` are registered from their handlers' annotations
//! ([`utoipa_axum`]), so none is served undocumented; the extension points
//! and `/health` are added here. Swagger UI (`/doc/swagger/`, assets
//! compiled in, no CDN) is on the public listener only: a large third-party
//! script stays off the admin origin.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{extensions, nakama};
use elements_server::App;

/// Where each listener serves its document.
pub const OPENAPI_PATH: &str = "/api/rest/openapi.json";

/// The public listener's document; [`super::public_router`] adds the
/// routes of `/api/rest` and `/v2`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Elements core API",
        description = "Identity in Elements style (`/api/rest`), the Nakama-compatible \
                       authentication API (`/v2`) and the core extension points Elements serve. \
                       The deployment admin API is on the admin listener, with its own document."
    ),
    paths(
        elements_server::health,
        extensions::request_email_verification,
        extensions::complete_email_verification,
    ),
    components(schemas(nakama::AccountEmail)),
    modifiers(&Security),
    tags(
        (name = "sessions", description = "Log in and out (`/api/rest`)"),
        (name = "users", description = "Users (`/api/rest`)"),
        (name = "profiles", description = "Profiles: a user in an application (`/api/rest`)"),
        (name = "applications", description = "Applications (`/api/rest`, superusers)"),
        (name = "nakama", description = "Nakama-compatible authentication, realtime socket (`/ws`), notifications, channel history and RPC (`/v2`)"),
        (name = "extensions", description = "Core API extension points, served by the Elements that claim them"),
        (name = "server", description = "The server itself"),
    )
)]
pub struct ApiDoc;

/// The admin listener's document; [`super::admin_router`] adds the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Elements admin API",
        description = "The deployment admin API and the host services' operator settings \
                       (superusers), served on the admin listener only."
    ),
    paths(elements_server::health),
    modifiers(&Security),
    tags(
        (name = "deployments", description = "Deploy, edit and remove Elements; read their logs"),
        (name = "services", description = "The host services' operator settings"),
        (name = "realtime", description = "Notifications to players' sockets"),
        (name = "server", description = "The server itself"),
    )
)]
pub struct AdminApiDoc;

/// Adds the security schemes the paths refer to.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("session", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "sessionHeader",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("Elements-SessionSecret"))),
        );
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

/// The public document and Swagger UI.
pub(crate) fn swagger(document: utoipa::openapi::OpenApi) -> Router<Arc<App>> {
    SwaggerUi::new("/doc/swagger").url(OPENAPI_PATH, document).into()
}

/// The admin document, as JSON (no Swagger UI on the admin origin).
pub(crate) fn document_route(document: utoipa::openapi::OpenApi) -> Router<Arc<App>> {
    Router::new().route(
        OPENAPI_PATH,
        get(move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }),
    )
}

/// Adds the answers every operation can give whatever its handler does:
/// `400` (a query that isn't UTF-8 once decoded, a body the framework can't
/// read), `408` (a body that didn't arrive in time, see
/// [`crate::connections`]) and, where a body is taken, `413`. Each in the
/// error shape of its API: Nakama's on `/v2`, `{code, message}` elsewhere.
pub(crate) fn add_common_responses(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    for (path, item) in document.paths.paths.iter_mut() {
        let schema = if path.starts_with("/v2/") {
            "NakamaStatus"
        } else {
            "ErrorDto"
        };
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
        ];
        for operation in operations.into_iter().flatten() {
            let mut common = vec![
                ("400", "Malformed request (query or body)"),
                ("408", "The request body did not arrive in time"),
            ];
            if operation.request_body.is_some() {
                common.push(("413", "Request body too large"));
            }
            for (status, description) in common {
                if operation.responses.responses.contains_key(status) {
                    continue;
                }
                let content = ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(schema)))
                    .build();
                let response = ResponseBuilder::new()
                    .description(description)
                    .content("application/json", content)
                    .build();
                operation
                    .responses
                    .responses
                    .insert(status.to_owned(), response.into());
            }
        }
    }
}
