//! The core HTTP APIs, thin over [`elements_identity::IdentityService`]:
//!
//! - [`rest`]: the Elements-style identity API under `/api/rest`;
//! - [`nakama`]: the Nakama-compatible `/v2` authentication API;
//! - [`deployments`] and [`services`]: the admin API (admin listener);
//! - [`extensions`]: the documentation of the core extension points;
//! - [`openapi`]: the OpenAPI documents (`/api/rest/openapi.json` on each
//!   listener) and Swagger UI (`/doc/swagger/`), served from the binary.

pub mod deployments;
pub mod extensions;
pub mod nakama;
pub mod openapi;
pub mod rest;
pub mod services;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use elements_identity::{IdentityConfig, IdentityService, Secret};
use elements_store::DocumentStore;

use crate::server::App;
use elements_config::IdentitySettings;

/// The identity service and the settings its APIs need.
#[derive(Debug)]
pub struct IdentityApi {
    /// The service (also for host services).
    pub service: Arc<IdentityService>,
    /// Server key Nakama clients authenticate with.
    pub server_key: Secret,
}

impl IdentityApi {
    /// Opens the identity service over `store` and bootstraps the `root`
    /// superuser on first start (printing a generated password once).
    pub async fn start(
        store: Arc<dyn DocumentStore>,
        settings: &IdentitySettings,
    ) -> anyhow::Result<Arc<IdentityApi>> {
        let config = IdentityConfig {
            token_key: settings.token_key.clone(),
            refresh_token_key: settings.refresh_token_key.clone(),
            token_expiry: settings.token_expiry,
            refresh_token_expiry: settings.refresh_token_expiry,
            session_expiry: settings.session_expiry,
            root_password: settings.root_password.clone(),
            login_throttle: settings.login_throttle.clone(),
            password_workers: settings.password_threads,
            password_queue: settings.password_queue,
            ..IdentityConfig::default()
        };
        let service = IdentityService::new(store, config)
            .await
            .context("starting the identity service")?;
        if let Some(bootstrap) = service
            .bootstrap()
            .await
            .context("creating the superuser `root`")?
        {
            match bootstrap.generated_password {
                // The one time this password exists outside the hash: the
                // operator needs it to log in (issue: "printed once").
                Some(password) => tracing::warn!(
                    "created the superuser `root` with the generated password {} (shown only now; \
                     set ELEMENTS_ROOT_PASSWORD before the first start to choose it)",
                    password.expose()
                ),
                None => tracing::info!("created the superuser `root` with the configured password"),
            }
        }
        Ok(Arc::new(IdentityApi {
            service: Arc::new(service),
            server_key: settings.server_key.clone(),
        }))
    }
}

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
}

/// A JSON body as `T`; an empty body is `T::default()` (Nakama clients send
/// none for empty messages).
pub(crate) fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

/// The address of the client a request came from: the TCP peer. No
/// forwarding header is believed (no trusted proxy can be configured), so
/// behind a proxy every client shares its address. `None` where the server
/// is embedded without connection info.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientAddr(peer))
    }
}

/// The credentials of an `Authorization: <scheme> <credentials>` header, if
/// it uses `scheme` (case-insensitive).
pub(crate) fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (given, credentials) = value.split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| credentials.trim())
        .filter(|c| !c.is_empty())
}

/// The user name of an HTTP Basic `Authorization` header.
pub(crate) fn basic_user(headers: &HeaderMap) -> Option<String> {
    let encoded = authorization(headers, "Basic")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map(|(user, _)| user)
            .unwrap_or(&text)
            .to_owned(),
    )
}
