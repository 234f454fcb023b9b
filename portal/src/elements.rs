//! Elements: every deployment in a side bar with a status light, and per
//! Element its status, attributes (sensitive ones write-only), on/off
//! switch, new versions and its log, refreshed while the page is open.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::TokenForm;
use super::{Admin, Flash, Layout, encode_component, error_page, redirect_with, render, time_text};
use elements_deployments::catalog::{DeploymentView, MASK};
use elements_deployments::persist::{Edit, Upload};
use elements_host::element::manifest::AttributeKind;
use elements_host::log_buffer::LogLine;
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::bad_request;

/// Log lines a page shows.
const LOG_LINES: usize = 200;

/// An entry of the side bar.
struct Item {
    name: String,
    status: &'static str,
    light: &'static str,
}

fn light(status: &str) -> &'static str {
    match status {
        "LOADED" => "green",
        // Still answering, but the operator has a failed deploy to fix.
        "SERVING" => "amber",
        "FAILED" => "red",
        _ => "grey",
    }
}

fn items(views: &[DeploymentView]) -> Vec<Item> {
    views
        .iter()
        .map(|v| Item {
            name: v.id.clone(),
            status: v.status,
            light: light(v.status),
        })
        .collect()
}

/// One attribute row of the editor.
struct AttributeRow {
    name: String,
    /// The form field's id (attribute names hold dots).
    field: String,
    value: String,
    default: String,
    description: String,
    required: bool,
    sensitive: bool,
    /// A sensitive attribute has a value (shown only as the mask).
    is_set: bool,
    /// An operator's value, which the form can remove.
    removable: bool,
    /// The input's `type` (so the browser checks what the deploy will).
    input_type: &'static str,
    /// The input's `min`, `max` and `pattern` attributes (empty: none).
    min: String,
    max: String,
    pattern: &'static str,
    /// What the value must be, for people.
    rule: String,
}

/// How the editor asks for a value of `kind`: the input type, a pattern, and
/// the rule in words.
fn input_for(
    kind: AttributeKind,
    min: Option<i64>,
    max: Option<i64>,
) -> (&'static str, &'static str, String) {
    match kind {
        AttributeKind::Text => ("text", "", String::new()),
        AttributeKind::Boolean => ("text", "true|false", "true or false.".into()),
        AttributeKind::Url => ("url", "https?://.+", "An http:// or https:// URL.".into()),
        AttributeKind::Integer => {
            let rule = match (min, max) {
                (Some(min), Some(max)) => format!("A whole number from {min} to {max}."),
                (Some(min), None) => format!("A whole number, at least {min}."),
                (None, Some(max)) => format!("A whole number, at most {max}."),
                (None, None) => "A whole number.".into(),
            };
            ("number", "", rule)
        }
    }
}

/// One log line as shown.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogRow {
    time: String,
    level: String,
    source: String,
    request_id: String,
    message: String,
}

impl From<LogLine> for LogRow {
    fn from(l: LogLine) -> LogRow {
        let word = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        LogRow {
            time: time_text(l.time_ms as i64),
            level: word(serde_json::to_value(l.level).unwrap_or_default()),
            source: word(serde_json::to_value(l.source).unwrap_or_default()),
            request_id: l.request_id.unwrap_or_default(),
            message: l.message,
        }
    }
}

/// The details of the selected Element.
struct Detail {
    name: String,
    status: &'static str,
    light: &'static str,
    source: &'static str,
    from_folder: bool,
    enabled: bool,
    version: u64,
    /// What serves, in words: "version 1; the deploy of version 2 failed".
    serving: String,
    hash: String,
    mount_path: String,
    loaded_at: String,
    application: String,
    last_error: String,
    last_error_at: String,
    attributes: Vec<AttributeRow>,
    grants: Vec<GrantRow>,
    log: Vec<LogRow>,
}

/// One grant in the grants table.
struct GrantRow {
    field: String,
    grant: String,
    description: String,
    powerful: bool,
    requested: bool,
    approved: bool,
    from_configuration: bool,
}

/// What serves `view`, in words, and the deploy that failed if one did.
fn serving(view: &DeploymentView) -> String {
    match (view.serving_version, &view.last_failure) {
        (Some(n), Some(f)) => format!("version {n}; the deploy of version {} failed", f.version),
        (Some(n), None) => format!("version {n}"),
        (None, Some(f)) => format!("nothing; the deploy of version {} failed", f.version),
        (None, None) => "nothing".to_owned(),
    }
}

fn detail(view: DeploymentView, log: Vec<LogLine>) -> Detail {
    let from_folder = view.from_folder();
    let serving = serving(&view);
    let attributes = view
        .attributes
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let (input_type, pattern, rule) = input_for(a.kind, a.min, a.max);
            AttributeRow {
                field: format!("attribute-{i}"),
                input_type,
                pattern,
                rule,
                min: a.min.map(|m| m.to_string()).unwrap_or_default(),
                max: a.max.map(|m| m.to_string()).unwrap_or_default(),
                is_set: a.value.is_some(),
                removable: a.overridden && !a.required,
                value: if a.sensitive {
                    String::new()
                } else {
                    a.value.unwrap_or_default()
                },
                default: a.default.unwrap_or_default(),
                description: a.description,
                required: a.required,
                sensitive: a.sensitive,
                name: a.name,
            }
        })
        .collect();
    let grants = view
        .grants
        .into_iter()
        .enumerate()
        .map(|(i, g)| GrantRow {
            field: format!("grant-{i}"),
            approved: g.approved_by.is_some(),
            from_configuration: g.approved_by == Some("configuration"),
            grant: g.grant,
            description: g.description,
            powerful: g.powerful,
            requested: g.requested,
        })
        .collect();
    Detail {
        name: view.id,
        status: view.status,
        light: light(view.status),
        source: view.source,
        from_folder,
        enabled: view.enabled,
        version: view.version,
        serving,
        hash: view.hash.unwrap_or_default(),
        mount_path: view.mount_path.unwrap_or_default(),
        loaded_at: view.loaded_at.map(|t| time_text(t as i64)).unwrap_or_default(),
        application: view.application.unwrap_or_default(),
        last_error: view.last_error.unwrap_or_default(),
        last_error_at: view
            .last_error_at
            .map(|t| time_text(t as i64))
            .unwrap_or_default(),
        attributes,
        grants,
        log: log.into_iter().map(LogRow::from).collect(),
    }
}

#[derive(Template)]
#[template(path = "elements.html")]
struct ElementsPage {
    layout: Layout,
    items: Vec<Item>,
    selected: String,
    detail: Option<Detail>,
    mask: &'static str,
}

/// `GET /admin/elements`: the side bar and the deploy form.
pub async fn index(State(app): State<Arc<App>>, admin: Admin) -> Response {
    match app.catalog().list().await {
        Ok(views) => render(
            StatusCode::OK,
            &ElementsPage {
                layout: admin.layout("Elements", "elements"),
                items: items(&views),
                selected: String::new(),
                detail: None,
                mask: MASK,
            },
        ),
        Err(e) => error_page(Some(&admin), "elements", e.into()),
    }
}

/// `GET /admin/elements/{name}`.
pub async fn page(State(app): State<Arc<App>>, admin: Admin, Path(name): Path<String>) -> Response {
    let catalog = app.catalog();
    let result = async {
        let views = catalog.list().await?;
        let view = catalog.get(&name).await?;
        Ok::<_, ApiError>((views, view))
    }
    .await;
    match result {
        Ok((views, view)) => render(
            StatusCode::OK,
            &ElementsPage {
                layout: admin.layout(format!("Element {name}"), "elements"),
                items: items(&views),
                selected: name.clone(),
                detail: Some(detail(view, app.deployer.log(&name).recent(LOG_LINES))),
                mask: MASK,
            },
        ),
        Err(e) => error_page(Some(&admin), "elements", e),
    }
}

/// What the page's script refreshes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Live {
    status: &'static str,
    version: u64,
    serving: String,
    last_error: String,
    last_error_at: String,
    log: Vec<LogRow>,
}

/// `GET /admin/elements/{name}/live`: status and log as JSON for the open page.
pub async fn live(State(app): State<Arc<App>>, _admin: Admin, Path(name): Path<String>) -> Response {
    match app.catalog().get(&name).await {
        Ok(view) => {
            let d = detail(view, app.deployer.log(&name).recent(LOG_LINES));
            Json(Live {
                status: d.status,
                version: d.version,
                serving: d.serving,
                last_error: d.last_error,
                last_error_at: d.last_error_at,
                log: d.log,
            })
            .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn element_url(name: &str) -> String {
    format!("/admin/elements/{}", encode_component(name))
}

/// The flash after a change that redeployed `view`.
fn outcome(view: &DeploymentView, done: &str) -> Flash {
    match (view.status, &view.last_error) {
        ("FAILED" | "SERVING", Some(error)) => Flash::error(format!(
            "{done}, but the deploy failed: {}.{}",
            error.trim_end_matches('.'),
            match view.serving_version {
                Some(n) => format!(" The previous version keeps serving: version {n}."),
                None => " Nothing is serving it.".to_owned(),
            }
        )),
        ("DISABLED", _) => Flash::ok(format!("{done}; {} is disabled.", view.id)),
        _ => Flash::ok(format!(
            "{done}; {} is serving version {}.",
            view.id, view.version
        )),
    }
}

fn changes(n: usize) -> String {
    if n == 1 {
        "1 attribute".into()
    } else {
        format!("{n} attributes")
    }
}

/// `POST /admin/elements/{name}/attributes`: the editor's fields are
/// `value:<attribute>` (a sensitive one left blank keeps its value),
/// `clear:<attribute>` (remove the value), and `new-name`/`new-value` to set
/// an attribute the Element does not declare.
pub async fn attributes(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if let Some(refused) = admin.refuse_forged(csrf) {
        return refused;
    }
    let back = element_url(&name);
    let catalog = app.catalog();
    let result = async {
        let current = catalog.get(&name).await?;
        let edit = attribute_edit(&current, &fields)?;
        if edit.attributes.is_empty() {
            return Ok(None);
        }
        let n = edit.attributes.len();
        Ok::<_, ApiError>(Some((catalog.edit(&name, edit).await?, n)))
    }
    .await;
    let flash = match result {
        Ok(None) => Flash::ok("Nothing to save: no attribute changed."),
        Ok(Some((view, n))) => outcome(&view, &format!("Saved {}", changes(n))),
        Err(e) => Flash::error(e.message),
    };
    redirect_with(&back, flash, admin.secure)
}

/// The edit the attribute form asks for, against the `current` values.
fn attribute_edit(current: &DeploymentView, fields: &[(String, String)]) -> Result<Edit, ApiError> {
    let mut attributes: BTreeMap<String, Option<String>> = BTreeMap::new();
    let cleared: Vec<&str> = fields
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("clear:"))
        .collect();
    for (key, value) in fields {
        let Some(attribute) = key.strip_prefix("value:") else {
            continue;
        };
        let Some(existing) = current.attributes.iter().find(|a| a.name == attribute) else {
            return Err(bad_request(format!(
                "{name} has no attribute {attribute:?}; add it as a new attribute",
                name = current.id
            )));
        };
        if cleared.contains(&attribute) {
            continue;
        }
        let value = value.trim();
        if existing.sensitive {
            // Write-only: blank keeps the secret; the mask itself is never a new value.
            if !value.is_empty() && value != MASK {
                attributes.insert(attribute.to_owned(), Some(value.to_owned()));
            }
        } else if existing.value.as_deref().unwrap_or("") != value {
            if value.is_empty() && existing.required {
                return Err(bad_request(format!("{attribute} is required: give it a value")));
            }
            attributes.insert(
                attribute.to_owned(),
                Some(value.to_owned()).filter(|v| !v.is_empty()),
            );
        }
    }
    for attribute in cleared {
        match current.attributes.iter().find(|a| a.name == attribute) {
            Some(a) if a.required => {
                return Err(bad_request(format!(
                    "{attribute} is required: set a new value instead of clearing it"
                )));
            }
            Some(a) if !a.overridden => {
                return Err(bad_request(format!(
                    "{attribute} has no value set here to remove (its value comes from the manifest \
                     or its default)"
                )));
            }
            Some(_) => {
                attributes.insert(attribute.to_owned(), None);
            }
            None => return Err(bad_request(format!("no attribute {attribute:?} to clear"))),
        }
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or_default()
    };
    let (new_name, new_value) = (field("new-name"), field("new-value"));
    if !new_name.is_empty() {
        if new_name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad_request(
                "An attribute name has no spaces or control characters.",
            ));
        }
        if new_value.is_empty() {
            return Err(bad_request(format!("Give the new attribute {new_name} a value.")));
        }
        attributes.insert(new_name.to_owned(), Some(new_value.to_owned()));
    } else if !new_value.is_empty() {
        return Err(bad_request("Give the new attribute a name."));
    }
    Ok(Edit {
        attributes,
        enabled: None,
        grants: None,
    })
}

/// `POST /admin/elements/{name}/grants`: every ticked `grant`, plus
/// `new-grant` when given, is what operators approve here from now on (the
/// configuration file's approvals stay); the Element is redeployed.
pub async fn grants(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let field = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim());
    if let Some(refused) = admin.refuse_forged(field("csrf").unwrap_or_default()) {
        return refused;
    }
    let mut approved: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "grant")
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    if let Some(new) = field("new-grant").filter(|g| !g.is_empty()) {
        approved.push(new.to_owned());
    }
    let edit = Edit {
        attributes: BTreeMap::new(),
        enabled: None,
        grants: Some(approved),
    };
    let flash = match app.catalog().edit(&name, edit).await {
        Ok(view) => outcome(&view, "Saved the grants"),
        Err(e) => Flash::error(ApiError::from(e).message),
    };
    redirect_with(&element_url(&name), flash, admin.secure)
}

/// The on/off form.
#[derive(Debug, Deserialize)]
pub struct EnabledForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: String,
}

/// `POST /admin/elements/{name}/enabled`.
pub async fn enabled(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<EnabledForm>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    let enabled = match form.enabled.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            let flash = Flash::error("`enabled` must be true or false.");
            return redirect_with(&element_url(&name), flash, admin.secure);
        }
    };
    let edit = Edit {
        attributes: BTreeMap::new(),
        enabled: Some(enabled),
        grants: None,
    };
    let flash = match app.catalog().edit(&name, edit).await {
        Ok(view) => outcome(&view, if enabled { "Enabled" } else { "Disabled" }),
        Err(e) => Flash::error(ApiError::from(e).message),
    };
    redirect_with(&element_url(&name), flash, admin.secure)
}

/// `POST /admin/elements/{name}/delete`: removes an uploaded Element.
pub async fn delete(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    match app.catalog().remove(&name).await {
        Ok(()) => redirect_with(
            "/admin/elements",
            Flash::ok(format!("Removed {name}; it no longer serves.")),
            admin.secure,
        ),
        Err(e) => redirect_with(
            &element_url(&name),
            Flash::error(ApiError::from(e).message),
            admin.secure,
        ),
    }
}

/// `POST /admin/elements` (multipart): deploys a new Element or a new
/// version: `name`, `component` (the .wasm file), optional `manifest` (TOML)
/// and `application`.
pub async fn upload(State(app): State<Arc<App>>, admin: Admin, form: Multipart) -> Response {
    let (csrf, upload) = match read_upload(form).await {
        Ok(read) => read,
        Err(e) => return redirect_with("/admin/elements", Flash::error(e.message), admin.secure),
    };
    if let Some(refused) = admin.refuse_forged(&csrf) {
        return refused;
    }
    let name = upload.name.clone();
    let back = if app.catalog().exists(&name).await.unwrap_or(false) {
        element_url(&name)
    } else {
        "/admin/elements".to_owned()
    };
    match app.catalog().upload(upload).await {
        Ok((view, created)) => {
            let done = if created {
                format!("Uploaded {name}")
            } else {
                format!("Uploaded a new version of {name}")
            };
            redirect_with(&element_url(&name), outcome(&view, &done), admin.secure)
        }
        Err(e) => redirect_with(&back, Flash::error(ApiError::from(e).message), admin.secure),
    }
}

/// The upload form: the admin API's fields plus the CSRF token.
async fn read_upload(form: Multipart) -> Result<(String, Upload), ApiError> {
    let (upload, mut others) = elements_api::deployments::read_upload(form).await?;
    let csrf = others.remove("csrf").unwrap_or_default();
    if let Some(other) = others.keys().next() {
        return Err(bad_request(format!("Unknown form field {other:?}.")));
    }
    if upload.name.is_empty() {
        return Err(bad_request("Give the Element a name."));
    }
    if upload.component.is_empty() {
        return Err(bad_request("Choose the component (.wasm file) to upload."));
    }
    Ok((csrf, upload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use elements_deployments::catalog::AttributeView;

    fn attribute(name: &str, value: Option<&str>, required: bool, sensitive: bool) -> AttributeView {
        AttributeView {
            name: name.into(),
            value: value.map(Into::into),
            default: None,
            description: String::new(),
            required,
            sensitive,
            overridden: true,
            kind: AttributeKind::Text,
            min: None,
            max: None,
        }
    }

    fn view() -> DeploymentView {
        DeploymentView {
            id: "kit".into(),
            source: "folder",
            status: "LOADED",
            version: 1,
            serving_version: Some(1),
            last_failure: None,
            hash: None,
            mount_path: None,
            loaded_at: None,
            last_error: None,
            last_error_at: None,
            enabled: true,
            application: None,
            attributes: vec![
                attribute("kit.secret", Some(MASK), true, true),
                attribute("kit.url", Some("https://a"), false, false),
                attribute("kit.note", None, false, false),
            ],
            grants: vec![],
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_changed_values_are_sent_and_secrets_stay_write_only() {
        let edit = attribute_edit(
            &view(),
            &form(&[
                ("value:kit.secret", ""),
                ("value:kit.url", "https://a"),
                ("value:kit.note", "hello"),
            ]),
        )
        .unwrap();
        assert_eq!(edit.attributes.len(), 1);
        assert_eq!(edit.attributes["kit.note"], Some("hello".into()));

        let edit = attribute_edit(&view(), &form(&[("value:kit.secret", MASK)])).unwrap();
        assert!(edit.attributes.is_empty(), "the mask is never stored as a value");

        let edit = attribute_edit(&view(), &form(&[("value:kit.secret", "new-secret")])).unwrap();
        assert_eq!(edit.attributes["kit.secret"], Some("new-secret".into()));
    }

    #[test]
    fn required_values_cannot_be_removed_and_unknown_names_are_refused() {
        assert!(attribute_edit(&view(), &form(&[("clear:kit.secret", "on")])).is_err());
        assert!(attribute_edit(&view(), &form(&[("value:other", "x")])).is_err());
        let edit = attribute_edit(&view(), &form(&[("clear:kit.url", "on")])).unwrap();
        assert_eq!(edit.attributes["kit.url"], None);
        let edit = attribute_edit(&view(), &form(&[("new-name", "extra.flag"), ("new-value", "1")])).unwrap();
        assert_eq!(edit.attributes["extra.flag"], Some("1".into()));
        assert!(attribute_edit(&view(), &form(&[("new-name", "a b"), ("new-value", "1")])).is_err());
        assert!(attribute_edit(&view(), &form(&[("new-value", "1")])).is_err());
    }
}
