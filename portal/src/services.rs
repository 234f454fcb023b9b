//! The Services page: the operator's settings of the host services (SMTP
//! relay, outbound HTTP), which no Element can read. Saving applies them on
//! every node; "use the configuration file's" drops what was set here.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;

use super::{Admin, Flash, Layout, redirect_with, render};
use elements_config::Network;
use elements_deployments::settings::{HttpChange, MailChange, Service, SettingsView};
use elements_server::App;
use elements_server::error::ApiError;

const PAGE: &str = "/admin/services";

#[derive(Template)]
#[template(path = "services.html")]
struct ServicesPage {
    layout: Layout,
    s: SettingsView,
    networks: String,
}

/// `GET /admin/services`.
pub async fn page(State(app): State<Arc<App>>, admin: Admin) -> Response {
    let s = app.settings.view();
    let networks = s.http.allow_networks.join(", ");
    render(
        StatusCode::OK,
        &ServicesPage {
            layout: admin.layout("Services", "services"),
            s,
            networks,
        },
    )
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim())
}

fn number<T: std::str::FromStr>(
    fields: &[(String, String)],
    key: &str,
    label: &str,
) -> Result<Option<T>, String> {
    match field(fields, key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{label} must be a whole number.")),
    }
}

fn mail_change(fields: &[(String, String)]) -> Result<MailChange, String> {
    let text = |key: &str| Some(field(fields, key).filter(|v| !v.is_empty()).map(str::to_owned));
    let password = if field(fields, "clear-password").is_some() {
        Some(None)
    } else {
        // Blank keeps the stored password: it is write-only.
        field(fields, "password")
            .filter(|p| !p.is_empty())
            .map(|p| Some(p.to_owned()))
    };
    Ok(MailChange {
        host: text("host"),
        port: number(fields, "port", "The port")?,
        starttls: Some(field(fields, "starttls").is_some()),
        user: text("user"),
        password,
        from: text("from"),
        max_per_request: number(fields, "max-per-request", "Messages per request")?,
    })
}

fn http_change(fields: &[(String, String)]) -> Result<HttpChange, String> {
    let networks = field(fields, "allow-networks")
        .unwrap_or_default()
        .split([',', '\n', ' '])
        .filter(|n| !n.trim().is_empty())
        .map(|n| n.parse::<Network>())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpChange {
        allow_networks: Some(networks),
        connect_timeout_ms: number(fields, "connect-timeout-ms", "The connect timeout")?,
        timeout_ms: number(fields, "timeout-ms", "The timeout")?,
        max_response_bytes: number(fields, "max-response-bytes", "The response cap")?,
    })
}

/// `POST /admin/services/{mail|http}`.
pub async fn save(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(service): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(field(&fields, "csrf").unwrap_or_default()) {
        return refused;
    }
    let result = async {
        match Service::parse(&service)? {
            Service::Mail => {
                let change = mail_change(&fields).map_err(elements_server::request::bad_request)?;
                app.settings.change_mail(change).await?;
            }
            Service::Http => {
                let change = http_change(&fields).map_err(elements_server::request::bad_request)?;
                app.settings.change_http(change).await?;
            }
        }
        Ok::<_, ApiError>(())
    }
    .await;
    let flash = match result {
        Ok(()) => Flash::ok(format!("Saved the {service} settings; every node applies them.")),
        Err(e) => Flash::error(e.message),
    };
    redirect_with(PAGE, flash, admin.secure)
}

/// `POST /admin/services/{mail|http}/reset`.
pub async fn reset(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(service): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(field(&fields, "csrf").unwrap_or_default()) {
        return refused;
    }
    let result = async { Ok::<_, ApiError>(app.settings.reset(Service::parse(&service)?).await?) }.await;
    let flash = match result {
        Ok(_) => Flash::ok(format!(
            "The {service} settings are the configuration file's again."
        )),
        Err(e) => Flash::error(e.message),
    };
    redirect_with(PAGE, flash, admin.secure)
}
