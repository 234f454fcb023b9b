//! The deployment admin API (superusers only), under
//! `/api/rest/elements/deployment`: upload, list, read, edit, remove, and
//! read the log of Elements. Uploads are stored (see
//! [`crate::deploy::persist`]) so they survive restarts and reach every node.
//! Sensitive attribute values are write-only: every response masks them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use elements_identity::require_superuser;
use serde::Serialize;

use super::rest::{bad_request, caller};
use crate::deploy::Status;
use crate::deploy::persist::{Edit, PersistError, Record, Upload};
use crate::element::log_buffer::LogLine;
use crate::element::manifest::{AttributeSpec, Manifest};
use crate::error::ApiError;
use crate::server::{App, ELEMENT_ROOT};

/// Largest upload (component, manifest and fields together): components
/// are often larger than axum's default 2 MiB body limit.
pub const MAX_UPLOAD: usize = 64 << 20;

/// Shown instead of a sensitive attribute's value.
pub const MASK: &str = "********";

/// The routes.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/api/rest/elements/deployment",
            get(list).post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route(
            "/api/rest/elements/deployment/{id}",
            get(read).put(edit).delete(remove),
        )
        .route("/api/rest/elements/deployment/{id}/logs", get(logs))
}

/// One deployment as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    /// The Element's name (the deployment's id).
    pub id: String,
    /// `api` (stored) or `folder` (the deploy folder).
    pub source: &'static str,
    /// `LOADED`, `FAILED` or `DISABLED`.
    pub status: &'static str,
    /// Successful deploys so far.
    pub version: u64,
    /// SHA-256 of the serving (or stored) component.
    pub hash: Option<String>,
    /// Where it serves.
    pub mount_path: Option<String>,
    /// When the serving version was loaded, epoch milliseconds.
    pub loaded_at: Option<u64>,
    /// The latest deploy's error, if it failed.
    pub last_error: Option<String>,
    /// When it failed, epoch milliseconds.
    pub last_error_at: Option<u64>,
    /// Whether it is switched on.
    pub enabled: bool,
    /// The application it is deployed for.
    pub application: Option<String>,
    /// Declared and set attributes; sensitive values masked.
    pub attributes: Vec<AttributeView>,
}

/// One attribute.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeView {
    /// Name.
    pub name: String,
    /// Effective value (masked when sensitive), if any.
    pub value: Option<String>,
    /// Declared default (masked when sensitive).
    pub default: Option<String>,
    /// Declared description.
    pub description: String,
    /// Deploys fail without a value.
    pub required: bool,
    /// Write-only.
    pub sensitive: bool,
}

fn millis(t: std::time::SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

/// Undeclared attributes whose names say they hold a secret are masked too.
fn looks_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|w| name.ends_with(w))
}

fn mask(sensitive: bool, value: Option<String>) -> Option<String> {
    if sensitive {
        value.map(|_| MASK.to_owned())
    } else {
        value
    }
}

/// The attribute table: declared ones first, then any other value set.
fn attributes(
    specs: &BTreeMap<String, AttributeSpec>,
    values: &BTreeMap<String, String>,
) -> Vec<AttributeView> {
    let mut out: Vec<AttributeView> = specs
        .iter()
        .map(|(name, spec)| AttributeView {
            name: name.clone(),
            value: mask(spec.sensitive, values.get(name).cloned()),
            default: mask(spec.sensitive, spec.default.clone()),
            description: spec.description.clone(),
            required: spec.required,
            sensitive: spec.sensitive,
        })
        .collect();
    for (name, value) in values {
        if !specs.contains_key(name) {
            let sensitive = looks_sensitive(name);
            out.push(AttributeView {
                name: name.clone(),
                value: mask(sensitive, Some(value.clone())),
                default: None,
                description: String::new(),
                required: false,
                sensitive,
            });
        }
    }
    out
}

/// Builds the view of `name` from the deployer's status and its stored record.
fn view(status: Option<Status>, record: Option<&Record>) -> Option<DeploymentView> {
    let name = status
        .as_ref()
        .map(|s| s.name.clone())
        .or(record.map(|r| r.name.clone()))?;
    let element = status.as_ref().and_then(|s| s.element.clone());
    let failure = status.as_ref().and_then(|s| s.failure.clone());
    let enabled = record
        .map(|r| r.enabled)
        .unwrap_or(!status.as_ref().is_some_and(|s| s.disabled));
    let state = if !enabled {
        "DISABLED"
    } else if failure.is_some() || element.is_none() {
        "FAILED"
    } else {
        "LOADED"
    };
    // Declared attributes: from the serving version, else from the stored manifest.
    let (specs, values) = match (&element, record) {
        (Some(e), _) => (e.attribute_specs.clone(), (*e.attributes).clone()),
        (None, Some(r)) => {
            let manifest = r
                .manifest
                .as_deref()
                .and_then(|m| Manifest::parse(m).ok())
                .unwrap_or_default();
            let mut values = manifest.values.clone();
            values.extend(r.values.clone());
            (manifest.attributes, values)
        }
        (None, None) => Default::default(),
    };
    // Operator-wide attributes (SMTP settings, the public URL...) are the
    // operator's, not the deployment's: show only what the Element declares
    // or the deployment sets.
    let own: BTreeMap<String, String> = values
        .into_iter()
        .filter(|(k, _)| specs.contains_key(k) || record.is_some_and(|r| r.values.contains_key(k)))
        .collect();
    Some(DeploymentView {
        id: name,
        source: if status.as_ref().is_some_and(|s| s.managed) || record.is_some() {
            "api"
        } else {
            "folder"
        },
        status: state,
        version: status.as_ref().map(|s| s.version).unwrap_or(0),
        hash: element
            .as_ref()
            .map(|e| e.hash.clone())
            .or(record.map(|r| r.hash.clone())),
        mount_path: element.as_ref().map(|e| format!("{ELEMENT_ROOT}{}", e.prefix)),
        loaded_at: element.as_ref().and_then(|e| millis(e.loaded_at)),
        last_error: failure.as_ref().map(|f| f.error.clone()),
        last_error_at: failure.as_ref().and_then(|f| millis(f.at)),
        enabled,
        application: record
            .and_then(|r| r.application.clone())
            .or(element.and_then(|e| e.application.clone())),
        attributes: attributes(&specs, &own),
    })
}

async fn superuser(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let caller = caller(app, headers).await?;
    require_superuser(&caller.user)?;
    Ok(())
}

impl From<PersistError> for ApiError {
    fn from(e: PersistError) -> ApiError {
        match e {
            PersistError::Invalid(m) => bad_request(m),
            PersistError::NotFound(_) => ApiError::not_found(e.to_string()),
            PersistError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "CONFLICT", m),
            PersistError::Store(s) if s.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("the store is unavailable: {s}"),
            ),
            PersistError::Store(s) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", s.to_string())
            }
        }
    }
}

async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    superuser(&app, &headers).await?;
    let records: BTreeMap<String, Record> = app
        .deployments
        .list()
        .await?
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    let mut views: BTreeMap<String, DeploymentView> = BTreeMap::new();
    for status in app.deployer.statuses() {
        let record = records.get(&status.name);
        if let Some(v) = view(Some(status), record) {
            views.insert(v.id.clone(), v);
        }
    }
    for (name, record) in &records {
        if !views.contains_key(name)
            && let Some(v) = view(app.deployer.status(name), Some(record))
        {
            views.insert(name.clone(), v);
        }
    }
    Ok(Json(views.into_values().collect()))
}

async fn read(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    superuser(&app, &headers).await?;
    let record = app.deployments.get(&id).await?;
    view(app.deployer.status(&id), record.as_ref())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no deployment named {id:?}")))
}

/// Upload (multipart form): `name`, `component` (the .wasm), optional
/// `manifest` (TOML text), `attributes` (a JSON object of values),
/// `application`, `enabled`. Uploading an existing stored name replaces its
/// version; if the new version fails, the previous one keeps serving.
async fn upload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<impl IntoResponse, ApiError> {
    superuser(&app, &headers).await?;
    let mut upload = Upload::default();
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
        let text =
            || String::from_utf8(bytes.to_vec()).map_err(|_| bad_request(format!("{name:?} must be text")));
        match name.as_str() {
            "name" => upload.name = text()?.trim().to_owned(),
            "component" => upload.component = bytes.to_vec(),
            "manifest" => upload.manifest = Some(text()?).filter(|m| !m.trim().is_empty()),
            "application" => upload.application = Some(text()?.trim().to_owned()).filter(|a| !a.is_empty()),
            "enabled" => {
                upload.enabled = Some(
                    text()?
                        .trim()
                        .parse()
                        .map_err(|_| bad_request("`enabled` must be true or false"))?,
                )
            }
            "attributes" => {
                upload.values = serde_json::from_str(&text()?)
                    .map_err(|e| bad_request(format!("`attributes` must be a JSON object of strings: {e}")))?
            }
            other => return Err(bad_request(format!("unknown form field {other:?}"))),
        }
    }
    let name = upload.name.clone();
    let created = app.deployments.get(&name).await?.is_none();
    let record = app.deployments.upload(upload).await?;
    let view = view(app.deployer.status(&name), Some(&record))
        .ok_or_else(|| ApiError::not_found(format!("no deployment named {name:?}")))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// Edit: `{"attributes": {"name": "value" | null}, "enabled": bool}`; the
/// Element is redeployed with the change.
async fn edit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<DeploymentView>, ApiError> {
    superuser(&app, &headers).await?;
    let edit: Edit =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))?;
    if app.deployer.is_from_folder(&id) {
        // A folder Element keeps its files; an operator can still switch it
        // off and on and set attribute values (stored, over its manifest's).
        if !edit.attributes.is_empty() {
            app.deployments.set_folder_values(&id, edit.attributes).await?;
        }
        if let Some(enabled) = edit.enabled {
            app.deployments.set_folder_enabled(&id, enabled).await?;
        }
        return view(app.deployer.status(&id), None)
            .map(Json)
            .ok_or_else(|| ApiError::not_found(format!("no deployment named {id:?}")));
    }
    let record = app.deployments.edit(&id, edit).await?;
    view(app.deployer.status(&id), Some(&record))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no deployment named {id:?}")))
}

async fn remove(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    superuser(&app, &headers).await?;
    if app.deployer.is_from_folder(&id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!("{id:?} is deployed from the deploy folder; remove its file there"),
        ));
    }
    app.deployments.remove(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<LogLine>>, ApiError> {
    superuser(&app, &headers).await?;
    if app.deployer.status(&id).is_none() && app.deployments.get(&id).await?.is_none() {
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
