//! The management portal at `/admin/`: server-rendered HTML pages (askama
//! templates in `portal/templates`, compiled into the binary) with a
//! little plain JavaScript (`portal/assets`), for superusers only.
//!
//! Like the JSON APIs, the pages are thin over the domain services: the
//! identity service for applications, users and profiles, the deployment
//! [`Catalog`](elements_deployments::catalog::Catalog) for Elements.
//!
//! Every state change is a `POST` form answered with a redirect (so a reload
//! never repeats it) carrying the outcome in a short-lived "flash" cookie the
//! next page shows. Sessions, CSRF and the login flow are in [`auth`].

mod applications;
mod assets;
mod auth;
mod auth_schemes;
mod elements;
mod home;
mod profiles;
mod services;
mod users;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use cookie::{Cookie, SameSite};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use elements_api::deployments::MAX_UPLOAD;
use elements_host::log_buffer::truncate;
use elements_server::App;
use elements_server::error::ApiError;

pub use auth::Admin;
pub use elements_server::portal::{
    COOKIE_NAMES, FLASH_COOKIE, LOGIN_COOKIE, PortalSettings, SESSION_COOKIE, is_portal_cookie,
};

/// Where the portal is mounted.
pub const ROOT: &str = "/admin/";

/// The portal's routes.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent(ROOT) }))
        .route("/admin/", get(home::page))
        .route("/admin/login", get(auth::login_page).post(auth::login))
        .route("/admin/logout", post(auth::logout))
        .route("/admin/assets/{file}", get(assets::serve))
        .route(
            "/admin/applications",
            get(applications::list).post(applications::create),
        )
        .route(
            "/admin/applications/{id}",
            get(applications::page).post(applications::update),
        )
        .route("/admin/applications/{id}/delete", post(applications::delete))
        .route(
            "/admin/elements",
            get(elements::index)
                .post(elements::upload)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/admin/elements/{name}", get(elements::page))
        .route("/admin/elements/{name}/live", get(elements::live))
        .route("/admin/elements/{name}/attributes", post(elements::attributes))
        .route("/admin/elements/{name}/enabled", post(elements::enabled))
        .route("/admin/elements/{name}/grants", post(elements::grants))
        .route("/admin/elements/{name}/delete", post(elements::delete))
        .route("/admin/auth-schemes", get(auth_schemes::page))
        .route("/admin/auth-schemes/oidc", post(auth_schemes::create_oidc))
        .route("/admin/auth-schemes/oauth2", post(auth_schemes::create_oauth2))
        .route(
            "/admin/auth-schemes/{kind}/{id}/delete",
            post(auth_schemes::delete),
        )
        .route("/admin/services", get(services::page))
        .route("/admin/services/{service}", post(services::save))
        .route("/admin/services/{service}/reset", post(services::reset))
        .route("/admin/users", get(users::list))
        .route("/admin/users/{id}", get(users::page))
        .route("/admin/users/{id}/level", post(users::level))
        .route("/admin/users/{id}/ban", post(users::ban))
        .route("/admin/profiles", get(profiles::list))
        .route("/admin/profiles/{id}", get(profiles::page))
        .layer(middleware::from_fn(finish))
}

/// What every page's frame shows: title, the active section, who is logged
/// in, the CSRF token of its forms, and the outcome of the last action.
pub struct Layout {
    /// The page title.
    pub title: String,
    /// The active section of the navigation (`home`, `applications`...).
    pub nav: &'static str,
    /// The logged-in superuser's name; none on the login page.
    pub user: Option<String>,
    /// The token every state-changing form carries.
    pub csrf: String,
    /// The outcome of the previous action.
    pub flash: Option<Flash>,
}

/// The outcome of an action, shown once on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// Success (else an error).
    pub ok: bool,
    /// What happened, for people.
    pub message: String,
}

impl Flash {
    /// A success.
    pub fn ok(message: impl Into<String>) -> Flash {
        Flash {
            ok: true,
            message: message.into(),
        }
    }

    /// A failure.
    pub fn error(message: impl Into<String>) -> Flash {
        Flash {
            ok: false,
            message: message.into(),
        }
    }

    /// The CSS class.
    pub fn kind(&self) -> &'static str {
        if self.ok { "ok" } else { "error" }
    }

    /// The ARIA role: errors interrupt, successes are announced politely.
    pub fn role(&self) -> &'static str {
        if self.ok { "status" } else { "alert" }
    }

    fn encode(&self) -> String {
        // Cookie values can't hold spaces, commas or semicolons: base64url.
        let text = format!(
            "{}{}",
            if self.ok { 'o' } else { 'e' },
            truncate(&self.message, 600)
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    fn decode(value: &str) -> Option<Flash> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut chars = text.chars();
        let ok = match chars.next()? {
            'o' => true,
            'e' => false,
            _ => return None,
        };
        Some(Flash {
            ok,
            message: chars.as_str().to_owned(),
        })
    }
}

/// The value of cookie `name` in a request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        .map(|v| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always (scripts never
/// read them; other sites never send them), for `path`; `max_age` None is a
/// browser-session cookie, zero deletes it.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<Duration>,
    secure: bool,
) -> HeaderValue {
    let mut cookie = Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure);
    if let Some(age) = max_age {
        let seconds = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        cookie = cookie.max_age(cookie::time::Duration::seconds(seconds));
    }
    // Names and values here are ASCII tokens (hex, base64url).
    HeaderValue::from_str(&cookie.build().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The flash of a request.
fn flash_of(headers: &HeaderMap) -> Option<Flash> {
    cookie(headers, FLASH_COOKIE).and_then(Flash::decode)
}

/// A `303 See Other` to `to`, carrying `flash` to the next page.
pub(crate) fn redirect_with(to: &str, flash: Flash, secure: bool) -> Response {
    // Paths here are built from percent-encoded parts; should one still not
    // be a valid header value, go home rather than fail the response.
    let to = if HeaderValue::from_str(to).is_ok() {
        to
    } else {
        ROOT
    };
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            FLASH_COOKIE,
            &flash.encode(),
            "/admin",
            Some(Duration::from_secs(60)),
            secure,
        ),
    );
    response
}

/// The redirect after an action: to `ok_to` with `success` when it worked,
/// to `error_to` with the server's message when it did not.
pub(crate) fn after<T>(
    admin: &Admin,
    result: Result<T, ApiError>,
    ok_to: &str,
    error_to: &str,
    success: impl FnOnce(T) -> String,
) -> Response {
    match result {
        Ok(value) => redirect_with(ok_to, Flash::ok(success(value)), admin.secure),
        Err(e) => redirect_with(error_to, Flash::error(e.message), admin.secure),
    }
}

/// A rendered page.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("rendering a portal page failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// A page saying what went wrong (in the portal's frame).
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    message: String,
}

/// The error page for `error`, as seen by `admin` (or nobody).
pub(crate) fn error_page(admin: Option<&Admin>, nav: &'static str, error: ApiError) -> Response {
    let layout = match admin {
        Some(a) => a.layout("Error", nav),
        None => Layout {
            title: "Error".into(),
            nav,
            user: None,
            csrf: String::new(),
            flash: None,
        },
    };
    render(
        error.status,
        &ErrorPage {
            layout,
            status: error.status.as_u16(),
            message: error.message,
        },
    )
}

/// Epoch milliseconds as RFC 3339 text, to the second, in UTC.
pub(crate) fn time_text(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms))
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// Paging of a listing: the offset of the previous and next pages, if any.
pub(crate) struct Pager {
    /// First item shown, 1-based (0 when none).
    pub first: u64,
    /// Last item shown.
    pub last: u64,
    /// Items in all.
    pub total: u64,
    /// Query string (without offset) of the listing, URL-encoded.
    pub query: String,
    /// Offset of the previous page.
    pub previous: Option<u64>,
    /// Offset of the next page.
    pub next: Option<u64>,
}

impl Pager {
    pub(crate) fn new(offset: u64, shown: usize, total: u64, page: u64, query: String) -> Pager {
        let shown = shown as u64;
        Pager {
            first: if shown == 0 { 0 } else { offset + 1 },
            last: offset + shown,
            total,
            query,
            previous: (offset > 0).then(|| offset.saturating_sub(page)),
            next: (offset + shown < total).then_some(offset + shown),
        }
    }
}

/// Rows per listing page.
pub(crate) const PAGE: u64 = 50;

/// Query pairs as a query string, each part percent-encoded (pairs with
/// an empty value left out).
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Everything but RFC 3986's unreserved characters is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` as one percent-encoded URL path segment or query value.
pub(crate) fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Headers every portal response gets, and the flash cookie cleared once a
/// page has shown it.
async fn finish(request: Request, next: Next) -> Response {
    let had_flash = cookie(request.headers(), FLASH_COOKIE).is_some();
    let is_asset = request.uri().path().starts_with("/admin/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // Scripts and styles only from the portal itself; no framing (clickjacking).
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // No other origin may embed the portal's responses (`<script src>`,
    // `<img>`) or keep a handle on its windows.
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !is_asset {
        // Pages show live state and personal data: never cached.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if had_flash && !response.status().is_redirection() {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(FLASH_COOKIE, "", "/admin", Some(Duration::ZERO), false),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_round_trips_any_text() {
        for flash in [
            Flash::ok("Saved \"roblox-kit\"; redeployed, version 2."),
            Flash::error("élément: ✓ = bad"),
        ] {
            assert_eq!(Flash::decode(&flash.encode()), Some(flash));
        }
        assert_eq!(Flash::decode("not base64!"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; elements_admin=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, "elements_admin"), Some("xyz"));
        assert_eq!(cookie(&headers, "elements"), None);
    }

    #[test]
    fn pager_and_query_strings() {
        let p = Pager::new(50, 50, 120, 50, String::new());
        assert_eq!(
            (p.first, p.last, p.previous, p.next),
            (51, 100, Some(0), Some(100))
        );
        let p = Pager::new(0, 0, 0, 50, String::new());
        assert_eq!((p.first, p.previous, p.next), (0, None, None));
        assert_eq!(query_string(&[("q", "a b&c"), ("x", "")]), "q=a%20b%26c");
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_https() {
        let parse = |value: HeaderValue| {
            Cookie::parse(value.to_str().expect("ASCII").to_owned()).expect("a Set-Cookie value")
        };
        let plain = parse(set_cookie("a", "b", "/admin", None, false));
        assert_eq!(
            (plain.name(), plain.value(), plain.path()),
            ("a", "b", Some("/admin"))
        );
        assert_eq!(plain.http_only(), Some(true));
        assert_eq!(plain.same_site(), Some(SameSite::Strict));
        assert_eq!((plain.max_age(), plain.secure()), (None, None));
        let secure = parse(set_cookie("a", "", "/admin", Some(Duration::ZERO), true));
        assert_eq!(
            (secure.name(), secure.value(), secure.path()),
            ("a", "", Some("/admin"))
        );
        assert_eq!(secure.max_age(), Some(cookie::time::Duration::ZERO));
        assert_eq!(secure.secure(), Some(true));
        assert_eq!(secure.http_only(), Some(true));
        assert_eq!(secure.same_site(), Some(SameSite::Strict));
    }

    #[test]
    fn portal_cookies_are_recognized_in_any_form() {
        for name in [
            "elements_admin",
            "ELEMENTS_ADMIN",
            "__Host-elements_admin",
            "__secure-Elements_Admin_Flash",
            "elements_admin_login",
        ] {
            assert!(is_portal_cookie(name), "{name}");
        }
        for name in ["elements_admin2", "session", "__Host-other", "x-elements_admin"] {
            assert!(!is_portal_cookie(name), "{name}");
        }
    }

    #[test]
    fn times_are_utc_text() {
        assert_eq!(time_text(0), "1970-01-01 00:00:00 UTC");
    }
}
