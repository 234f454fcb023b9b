//! Auth schemes: the OIDC issuers and OAuth2 providers players may log in
//! with (`/api/rest/auth/{oidc,oauth2}`): list, register, delete. OIDC
//! schemes have a form; OAuth2 schemes, whose requests are lists of values,
//! are written as the admin API's JSON. Stored OAuth2 values never show.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use elements_identity::schemes::redacted;
use elements_server::App;
use elements_server::error::ApiError;
use elements_wire::schemes::{OAuth2AuthScheme, OidcAuthScheme};

use super::{Admin, Layout, after, error_page, render, time_text};

struct OidcRow {
    id: String,
    name: String,
    issuer: String,
    audiences: String,
    keys: String,
    updated: String,
}

struct OAuth2Row {
    id: String,
    name: String,
    validation_url: String,
    /// The scheme as JSON, stored values hidden.
    json: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "auth_schemes.html")]
struct ListPage {
    layout: Layout,
    oidc: Vec<OidcRow>,
    oauth2: Vec<OAuth2Row>,
}

/// `GET /admin/auth-schemes`.
pub async fn page(State(app): State<Arc<App>>, admin: Admin) -> Response {
    let service = &app.identity.service;
    let (oidc, oauth2) = match (service.oidc_schemes().await, service.oauth2_schemes().await) {
        (Ok(oidc), Ok(oauth2)) => (oidc, oauth2),
        (Err(e), _) | (_, Err(e)) => return error_page(Some(&admin), "auth-schemes", e.into()),
    };
    let oidc = oidc
        .into_iter()
        .map(|s| OidcRow {
            keys: match (&s.keys_url, &s.discovery_url) {
                _ if !s.keys.is_empty() => format!("{} key(s) given", s.keys.len()),
                (Some(url), _) => url.clone(),
                (None, Some(url)) => format!("discovered from {url}"),
                (None, None) => String::new(),
            },
            id: s.id,
            name: s.name,
            issuer: s.issuer,
            audiences: s.audiences.join(", "),
            updated: time_text(s.updated),
        })
        .collect();
    let oauth2 = oauth2
        .into_iter()
        .map(redacted)
        .map(|s| OAuth2Row {
            json: serde_json::to_string_pretty(&s).unwrap_or_default(),
            id: s.id,
            name: s.name,
            validation_url: s.validation_url,
            updated: time_text(s.updated),
        })
        .collect();
    let page = ListPage {
        layout: admin.layout("Auth schemes", "auth-schemes"),
        oidc,
        oauth2,
    };
    render(StatusCode::OK, &page)
}

/// The OIDC form.
#[derive(Debug, Deserialize)]
pub struct OidcForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    issuer: String,
    /// Comma- or line-separated.
    #[serde(default)]
    audiences: String,
    #[serde(default)]
    keys_url: String,
    #[serde(default)]
    discovery_url: String,
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// `POST /admin/auth-schemes/oidc`.
pub async fn create_oidc(State(app): State<Arc<App>>, admin: Admin, Form(form): Form<OidcForm>) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    let scheme = OidcAuthScheme {
        name: form.name.trim().to_owned(),
        issuer: form.issuer.trim().to_owned(),
        audiences: form
            .audiences
            .split([',', '\n'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        keys_url: optional(&form.keys_url),
        discovery_url: optional(&form.discovery_url),
        ..OidcAuthScheme::default()
    };
    let result = app
        .identity
        .service
        .create_oidc_scheme(&admin.user, scheme)
        .await
        .map_err(Into::into);
    after(
        &admin,
        result,
        "/admin/auth-schemes",
        "/admin/auth-schemes",
        |s| format!("Registered the OIDC scheme {}.", s.name),
    )
}

/// The OAuth2 form: the scheme as the admin API's JSON.
#[derive(Debug, Deserialize)]
pub struct OAuth2Form {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    json: String,
}

/// `POST /admin/auth-schemes/oauth2`.
pub async fn create_oauth2(
    State(app): State<Arc<App>>,
    admin: Admin,
    Form(form): Form<OAuth2Form>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    let result = match serde_json::from_str::<OAuth2AuthScheme>(&form.json) {
        Ok(scheme) => app
            .identity
            .service
            .create_oauth2_scheme(&admin.user, scheme)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(elements_server::request::bad_request(format!(
            "not an OAuth2 scheme: {e}"
        ))),
    };
    after(
        &admin,
        result,
        "/admin/auth-schemes",
        "/admin/auth-schemes",
        |s| format!("Registered the OAuth2 scheme {}.", s.name),
    )
}

/// The delete form.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/auth-schemes/{kind}/{id}/delete`.
pub async fn delete(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path((kind, id)): Path<(String, String)>,
    Form(form): Form<DeleteForm>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    let result = app
        .identity
        .service
        .delete_auth_scheme(&admin.user, kind == "oauth2", &id)
        .await
        .map_err(Into::into);
    after(
        &admin,
        result,
        "/admin/auth-schemes",
        "/admin/auth-schemes",
        |()| "Deleted the auth scheme.".to_owned(),
    )
}
