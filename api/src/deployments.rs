//! The deployment admin API (superusers only), under
//! `/api/rest/elements/deployment`: upload, list, read, edit, remove, and
//! read the log of Elements. Uploads are stored (see
//! [`elements_deployments::persist`]) so they survive restarts and reach every node.
//! Sensitive attribute values are write-only: every response masks them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Multipart, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use elements_identity::require_superuser;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rest::{ErrorDto, bad_request, caller};
pub use elements_deployments::catalog::{AttributeView, DeploymentView, MASK};
pub use elements_deployments::persist::Edit;
use elements_deployments::persist::Upload;
use elements_host::log_buffer::LogLine;
use elements_server::App;
use elements_server::error::ApiError;

/// Largest upload (component, manifest and fields together): components
/// are often larger than axum's default 2 MiB body limit.
pub const MAX_UPLOAD: usize = 64 << 20;

/// The routes, each documented by its handler's annotation.
pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list, upload))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .routes(routes!(read, edit, remove))
        .routes(routes!(logs))
}

/// The upload form (`multipart/form-data`), as documented.
#[derive(ToSchema)]
#[allow(dead_code)] // Read field by field by `read_upload`; here for the document.
pub struct UploadForm {
    /// The Element's name (lower-case letters, digits, `-`).
    name: String,
    /// The component (`.wasm`).
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
    /// The manifest (TOML text).
    manifest: Option<String>,
    /// A JSON object of attribute values (strings).
    attributes: Option<String>,
    /// The application it is deployed for (id or name).
    application: Option<String>,
    /// Switched on (default true).
    enabled: Option<bool>,
}

/// A superuser's request, as a handler argument: any other is answered 401
/// or 403 before the handler runs.
pub struct Superuser;

impl FromRequestParts<Arc<App>> for Superuser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        superuser(app, &parts.headers).await.map(|()| Superuser)
    }
}

pub(crate) async fn superuser(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let caller = caller(app, headers).await?;
    require_superuser(&caller.user)?;
    Ok(())
}

/// Every deployment.
#[utoipa::path(get, path = "/api/rest/elements/deployment", tag = "deployments",
    responses(
        (status = 200, description = "Every deployment", body = Vec<DeploymentView>),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 503, description = "The store is unavailable", body = ErrorDto),
    ), security(("session" = [])))]
async fn list(State(app): State<Arc<App>>, _: Superuser) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    Ok(Json(app.catalog().list().await?))
}

/// One deployment.
#[utoipa::path(get, path = "/api/rest/elements/deployment/{id}", tag = "deployments",
    params(("id" = String, Path, description = "The Element's name")),
    responses(
        (status = 200, description = "The deployment", body = DeploymentView),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 404, description = "No such deployment", body = ErrorDto),
        (status = 503, description = "The store is unavailable", body = ErrorDto),
    ), security(("session" = [])))]
async fn read(
    State(app): State<Arc<App>>,
    _: Superuser,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    Ok(Json(app.catalog().get(&id).await?))
}

/// Upload (multipart form): `name`, `component` (the .wasm), optional
/// `manifest` (TOML text), `attributes` (a JSON object of values),
/// `application`, `enabled`. Uploading an existing stored name replaces its
/// version; if the new version fails, the previous one keeps serving.
#[utoipa::path(post, path = "/api/rest/elements/deployment", tag = "deployments",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "A new version of an uploaded Element", body = DeploymentView),
        (status = 201, description = "A new Element", body = DeploymentView),
        (status = 400, description = "Bad form, not a component, bad manifest or attributes", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 409, description = "The name is the deploy folder's", body = ErrorDto),
        (status = 413, description = "Over the upload limit", body = ErrorDto),
        (status = 503, description = "The store is unavailable", body = ErrorDto),
    ), security(("session" = [])))]
async fn upload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Multipart,
) -> Result<axum::response::Response, ApiError> {
    if let Err(refused) = superuser(&app, &headers).await {
        // The upload is left unread, so this connection can't carry another
        // request: say so, or a client's pool may reuse it and fail.
        let mut response = refused.into_response();
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return Ok(response);
    }
    let (upload, others) = read_upload(form).await?;
    if let Some(other) = others.keys().next() {
        return Err(bad_request(format!("unknown form field {other:?}")));
    }
    let (view, created) = app.catalog().upload(upload).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

/// Edit: `{"attributes": {"name": "value" | null}, "enabled": bool,
/// "grants": ["mail.send", ...]}` (`grants` replaces what operators approved
/// here; the configuration file's approvals stay); the Element is
/// redeployed with the change.
#[utoipa::path(put, path = "/api/rest/elements/deployment/{id}", tag = "deployments",
    params(("id" = String, Path, description = "The Element's name")),
    request_body = Edit,
    responses(
        (status = 200, description = "The deployment after the change", body = DeploymentView),
        (status = 400, description = "Bad body, attribute or grant", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 404, description = "No such deployment", body = ErrorDto),
        (status = 409, description = "Conflicting change", body = ErrorDto),
        (status = 503, description = "The store is unavailable", body = ErrorDto),
    ), security(("session" = [])))]
async fn edit(
    State(app): State<Arc<App>>,
    _: Superuser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<DeploymentView>, ApiError> {
    let edit: Edit =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))?;
    Ok(Json(app.catalog().edit(&id, edit).await?))
}

/// Remove an uploaded Element (a folder's stays: its files are the source).
#[utoipa::path(delete, path = "/api/rest/elements/deployment/{id}", tag = "deployments",
    params(("id" = String, Path, description = "The Element's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 404, description = "No such deployment", body = ErrorDto),
        (status = 409, description = "Deployed from the folder", body = ErrorDto),
        (status = 503, description = "The store is unavailable", body = ErrorDto),
    ), security(("session" = [])))]
async fn remove(
    State(app): State<Arc<App>>,
    _: Superuser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.catalog().remove(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The Element's recent log lines, oldest first.
#[utoipa::path(get, path = "/api/rest/elements/deployment/{id}/logs", tag = "deployments",
    params(
        ("id" = String, Path, description = "The Element's name"),
        ("limit" = Option<usize>, Query, description = "At most this many of the latest lines (default 200)"),
    ),
    responses(
        (status = 200, description = "Log lines", body = Vec<LogLine>),
        (status = 400, description = "Bad `limit`", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 404, description = "No such deployment", body = ErrorDto),
        (status = 503, description = "The store is unavailable", body = ErrorDto),
    ), security(("session" = [])))]
async fn logs(
    State(app): State<Arc<App>>,
    _: Superuser,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<LogLine>>, ApiError> {
    if !app.catalog().exists(&id).await? {
        return Err(ApiError::not_found(format!("no deployment named {id:?}")));
    }
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| bad_request("`limit` must be a number"))?,
        None => 200,
    };
    Ok(Json(app.deployer.log(&id).recent(limit)))
}

/// Reads an upload form: `name`, `component`, optional `manifest`,
/// `application`, `enabled` and `attributes` (a JSON object of strings).
/// Other fields come back as text, for the caller to use or refuse.
pub async fn read_upload(mut form: Multipart) -> Result<(Upload, BTreeMap<String, String>), ApiError> {
    let mut upload = Upload::default();
    let mut others = BTreeMap::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad_request(format!("bad form: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad_request(format!("bad form field {name:?}: {e}")))?;
        if name == "component" {
            upload.component = bytes.to_vec();
            continue;
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| bad_request(format!("{name:?} must be text")))?
            .trim()
            .to_owned();
        match name.as_str() {
            "name" => upload.name = text,
            "manifest" => upload.manifest = Some(text).filter(|m| !m.is_empty()),
            "application" => upload.application = Some(text).filter(|a| !a.is_empty()),
            "enabled" => {
                upload.enabled = Some(
                    text.parse()
                        .map_err(|_| bad_request("`enabled` must be true or false"))?,
                )
            }
            "attributes" => {
                upload.values = serde_json::from_str(&text)
                    .map_err(|e| bad_request(format!("`attributes` must be a JSON object of strings: {e}")))?
            }
            _ => {
                others.insert(name, text);
            }
        }
    }
    Ok((upload, others))
}
