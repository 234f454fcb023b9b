//! The operator's settings of the host services (superusers only), under
//! `/api/rest/services`: `GET` shows them (the SMTP password never: only
//! whether one is set), `PUT /{mail|http}` changes them for every node
//! (absent fields keep their value, `null` clears an optional one), `DELETE
//! /{mail|http}` goes back to the configuration file's. See
//! [`elements_deployments::settings`].

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deployments::Superuser;
use super::rest::{ErrorDto, bad_request};
use elements_deployments::settings::Service;
pub use elements_deployments::settings::{HttpChange, MailChange, SettingsView};

/// The services with settings, as a path parameter.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Parsed by `Service::parse`; here for the document.
pub enum ServiceName {
    /// `[services.mail]`.
    Mail,
    /// `[services.http]`.
    Http,
}

/// A change to one service: the body's shape depends on the path.
#[derive(ToSchema)]
#[allow(dead_code)] // Parsed per service by `change`; here for the document.
pub enum ServiceChange {
    /// For `mail`.
    Mail(MailChange),
    /// For `http`.
    Http(HttpChange),
}
use elements_server::App;
use elements_server::error::ApiError;

/// The routes, each documented by its handler's annotation.
pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(read))
        .routes(routes!(change, reset))
}

/// Every service's settings.
#[utoipa::path(get, path = "/api/rest/services", tag = "services",
    responses(
        (status = 200, description = "The settings", body = SettingsView),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
    ), security(("session" = [])))]
async fn read(State(app): State<Arc<App>>, _: Superuser) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(app.settings.view()))
}

/// Change one service's settings: `MailChange` for `mail`, `HttpChange`
/// for `http`; absent fields keep their value, `null` clears an optional one.
#[utoipa::path(put, path = "/api/rest/services/{service}", tag = "services",
    params(("service" = inline(ServiceName), Path, description = "The service")),
    request_body(content = ServiceChange),
    responses(
        (status = 200, description = "The settings after the change", body = SettingsView),
        (status = 400, description = "Invalid settings", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 404, description = "No such service", body = ErrorDto),
        (status = 503, description = "The store is unavailable", body = ErrorDto),
    ), security(("session" = [])))]
async fn change(
    State(app): State<Arc<App>>,
    _: Superuser,
    Path(service): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<SettingsView>, ApiError> {
    let view = match Service::parse(&service)? {
        Service::Mail => {
            let change: MailChange = serde_json::from_slice(&body)
                .map_err(|e| bad_request(format!("invalid mail settings: {e}")))?;
            app.settings.change_mail(change).await?
        }
        Service::Http => {
            let change: HttpChange = serde_json::from_slice(&body)
                .map_err(|e| bad_request(format!("invalid http settings: {e}")))?;
            app.settings.change_http(change).await?
        }
    };
    Ok(Json(view))
}

/// Go back to the configuration file's settings of one service.
#[utoipa::path(delete, path = "/api/rest/services/{service}", tag = "services",
    params(("service" = inline(ServiceName), Path, description = "The service")),
    responses(
        (status = 200, description = "The settings after the reset", body = SettingsView),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 404, description = "No such service", body = ErrorDto),
        (status = 503, description = "The store is unavailable", body = ErrorDto),
    ), security(("session" = [])))]
async fn reset(
    State(app): State<Arc<App>>,
    _: Superuser,
    Path(service): Path<String>,
) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(app.settings.reset(Service::parse(&service)?).await?))
}
