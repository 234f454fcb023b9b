//! Who may use the portal, and how they prove it.
//!
//! - Logging in opens an ordinary Elements session for a SUPERUSER (anyone
//!   else is refused before a session exists); its secret lives only in an
//!   HttpOnly, SameSite=Strict cookie scoped to `/admin` (over HTTPS a
//!   `__Host-` cookie for `/`, which no other origin can set), so page
//!   scripts never see it and other sites never send it. Every request resolves it
//!   again, so logging out, a ban or a demotion takes effect at once.
//! - State-changing forms carry a CSRF token derived from the session secret
//!   (the synchronizer-token pattern without server state), checked in
//!   constant time; an `Origin` other than the portal's exact origin, or a
//!   `Sec-Fetch-Site` other than `same-origin`, is refused too (Element
//!   content on another port of the same host is same-site). The login form, which has no session yet, uses a double-submit
//!   token in its own cookie.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use elements_identity::secret::{ct_eq, random_token};
use elements_identity::{IdentityError, Level, User};

use super::{
    Flash, LOGIN_COOKIE, Layout, PortalSettings, SESSION_COOKIE, cookie, error_page, flash_of, redirect_with,
    render, set_cookie,
};
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::ClientAddr;

/// The session cookie over HTTPS: the `__Host-` prefix makes browsers
/// accept it only from a secure origin, host-only and for `Path=/`, so no
/// other origin (an Element's page on another port or subdomain) can set it.
const HOST_SESSION_COOKIE: &str = "__Host-elements_admin";

/// The session cookie's name and path.
fn session_cookie(secure: bool) -> (&'static str, &'static str) {
    if secure {
        (HOST_SESSION_COOKIE, "/")
    } else {
        (SESSION_COOKIE, "/admin")
    }
}

/// The session cookie of a request.
fn session_of(headers: &HeaderMap, secure: bool) -> Option<&str> {
    cookie(headers, session_cookie(secure).0)
}

/// `Set-Cookie` for the session `secret` (a browser-session cookie).
fn set_session(secret: &str, secure: bool) -> http::HeaderValue {
    let (name, path) = session_cookie(secure);
    set_cookie(name, secret, path, None, secure)
}
/// How long a portal session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// A logged-in superuser, extracted from a request's session cookie. A
/// request without one is sent to the login page.
pub struct Admin {
    /// The superuser.
    pub user: User,
    /// The token this session's forms must carry.
    pub csrf: String,
    /// The previous action's outcome.
    pub flash: Option<Flash>,
    /// Cookies are `Secure`.
    pub secure: bool,
    secret: String,
}

impl Admin {
    /// The frame of a page titled `title` in section `nav`.
    pub fn layout(&self, title: impl Into<String>, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            nav,
            user: Some(self.user.name.clone()),
            csrf: self.csrf.clone(),
            flash: self.flash.clone(),
        }
    }

    /// The refusal of a submitted form whose CSRF token is not this
    /// session's; none when the token is right.
    pub fn refuse_forged(&self, token: &str) -> Option<Response> {
        (!ct_eq(token, &self.csrf)).then(|| error_page(Some(self), "home", csrf_error()))
    }
}

fn csrf_error() -> ApiError {
    ApiError::forbidden(
        "This form is not from your current portal session (it expired, or came from another site). \
         Reload the page and try again.",
    )
}

/// The CSRF token of the session with `secret`: only someone holding the
/// secret (the browser, through the page) can know it.
fn csrf_token(secret: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"elements-portal-csrf\0");
    hash.update(secret.as_bytes());
    hex::encode(hash.finalize())
}

/// Whether a state-changing request comes from anywhere but the portal's
/// own origin, by the headers browsers set themselves (absent headers prove
/// nothing either way). Same-*site* is not enough: Element content is
/// served on the same host (another port, or a sibling subdomain), which
/// browsers count as same-site and send `SameSite=Strict` cookies from.
/// The portal's origin must match exactly (scheme, host and port): the
/// configured one, else the admin listener's address or the request's
/// `Host` (it reached the admin listener, so it names it).
fn cross_site(headers: &HeaderMap, settings: &PortalSettings) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !matches!(v, "same-origin" | "none"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == "null" {
        return true;
    }
    let Some(origin) = elements_config::origin_of(origin) else {
        return true;
    };
    if settings.origin.as_deref() == Some(origin.as_str()) {
        return false;
    }
    if settings.behind_proxy {
        return true;
    }
    let host_origin = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| elements_config::origin_of(&format!("http://{h}")));
    host_origin.as_deref() != Some(origin.as_str())
}

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Admin, Response> {
        let writes = parts.method != Method::GET && parts.method != Method::HEAD;
        admin_of(parts, app).await.map_err(|mut refused| {
            if writes {
                // The form (perhaps a large upload) is left unread, so this
                // connection can't carry another request: say so, or the
                // client may reuse it and fail.
                refused
                    .headers_mut()
                    .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            refused
        })
    }
}

/// The logged-in superuser of a request, or the answer refusing it.
async fn admin_of(parts: &Parts, app: &Arc<App>) -> Result<Admin, Response> {
    let secure = app.portal.secure_cookies;
    let to_login = |flash: Option<Flash>| {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/admin/");
        let to = format!("/admin/login?{}", super::query_string(&[("next", next)]));
        let mut response = match flash {
            Some(f) => redirect_with(&to, f, secure),
            None => Redirect::to(&to).into_response(),
        };
        if session_of(&parts.headers, secure).is_some() {
            response
                .headers_mut()
                .append(header::SET_COOKIE, clear_session(secure));
        }
        response
    };
    let Some(secret) = session_of(&parts.headers, secure) else {
        return Err(to_login(None));
    };
    let user = match app.identity.service.resolve_session(secret).await {
        Ok(resolved) => resolved.user,
        Err(IdentityError::Unavailable(m)) => {
            tracing::warn!("portal request failed, store unavailable: {m}");
            return Err(error_page(None, "home", IdentityError::Unavailable(m).into()));
        }
        Err(IdentityError::PermissionDenied(m)) => return Err(to_login(Some(Flash::error(m)))),
        Err(_) => {
            return Err(to_login(Some(Flash::error(
                "Your portal session ended; log in again.",
            ))));
        }
    };
    if user.level != Level::Superuser {
        // Demoted since logging in: the session no longer opens the portal.
        return Err(to_login(Some(Flash::error(not_superuser()))));
    }
    if parts.method != Method::GET && parts.method != Method::HEAD && cross_site(&parts.headers, &app.portal)
    {
        return Err(error_page(None, "home", csrf_error()));
    }
    Ok(Admin {
        csrf: csrf_token(secret),
        flash: flash_of(&parts.headers),
        secure,
        secret: secret.to_owned(),
        user,
    })
}

fn not_superuser() -> String {
    "This account is not a superuser: the management portal is for superusers only.".into()
}

fn clear_session(secure: bool) -> http::HeaderValue {
    let (name, path) = session_cookie(secure);
    set_cookie(name, "", path, Some(Duration::ZERO), secure)
}

/// Only portal paths are followed after logging in (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        // Visible ASCII only: it goes into a Location header as it is.
        Some(n)
            if n.starts_with("/admin/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/admin/",
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    login: String,
    error: Option<String>,
}

/// The query of the login page.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Renders the login form with a fresh double-submit token.
fn login_form(
    status: StatusCode,
    secure: bool,
    next: &str,
    login: &str,
    error: Option<String>,
    flash: Option<Flash>,
) -> Response {
    let token = match random_token(24) {
        Ok(t) => t,
        Err(e) => return error_page(None, "home", e.into()),
    };
    let page = LoginPage {
        layout: Layout {
            title: "Log in".into(),
            nav: "login",
            user: None,
            csrf: token.clone(),
            flash,
        },
        next: safe_next(Some(next)).to_owned(),
        login: login.to_owned(),
        error,
    };
    let mut response = render(status, &page);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_COOKIE,
            &token,
            "/admin/login",
            Some(Duration::from_secs(3600)),
            secure,
        ),
    );
    response
}

/// `GET /admin/login`.
pub async fn login_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let secure = app.portal.secure_cookies;
    // Already logged in as a superuser: nothing to do here.
    if let Some(secret) = session_of(&headers, secure)
        && let Ok(resolved) = app.identity.service.resolve_session(secret).await
        && resolved.user.level == Level::Superuser
    {
        return Redirect::to(safe_next(query.next.as_deref())).into_response();
    }
    login_form(
        StatusCode::OK,
        secure,
        query.next.as_deref().unwrap_or("/admin/"),
        "",
        None,
        flash_of(&headers),
    )
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    login: String,
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/login`: a superuser's name or email and password.
pub async fn login(
    State(app): State<Arc<App>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let secure = app.portal.secure_cookies;
    let retry = |status: StatusCode, message: String| {
        login_form(status, secure, &form.next, form.login.trim(), Some(message), None)
    };
    let token_ok = cookie(&headers, LOGIN_COOKIE).is_some_and(|expected| ct_eq(&form.csrf, expected));
    if !token_ok || cross_site(&headers, &app.portal) {
        return retry(
            StatusCode::FORBIDDEN,
            "The login form expired or came from another site; try again.".into(),
        );
    }
    let login = form.login.trim();
    if login.is_empty() || form.password.is_empty() {
        return retry(
            StatusCode::BAD_REQUEST,
            "Enter your name or email and your password.".into(),
        );
    }
    let service = &app.identity.service;
    let user = match service.login_password(login, &form.password, client).await {
        Ok(user) => user,
        Err(e) => {
            let error = ApiError::from(e);
            let mut response = retry(error.status, error.message);
            if let Some(secs) = error.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, http::HeaderValue::from(secs));
            }
            return response;
        }
    };
    if user.level != Level::Superuser {
        tracing::info!(user = %user.id, "portal login refused: not a superuser");
        return retry(StatusCode::FORBIDDEN, not_superuser());
    }
    let secret = match service
        .create_session(&user.id, None, None, Some(SESSION_TTL))
        .await
    {
        Ok((secret, _)) => secret,
        Err(e) => {
            let error = ApiError::from(e);
            return retry(error.status, error.message);
        }
    };
    tracing::info!(user = %user.id, "portal login");
    let mut response = redirect_with(
        safe_next(Some(&form.next)),
        Flash::ok(format!("Logged in as {}.", user.name)),
        secure,
    );
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, set_session(&secret, secure));
    headers.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/admin/login", Some(Duration::ZERO), secure),
    );
    response
}

/// A form with only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    /// The CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// `POST /admin/logout`: ends the session everywhere (it is deleted from the
/// store, not only from the browser).
pub async fn logout(State(app): State<Arc<App>>, admin: Admin, Form(form): Form<TokenForm>) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    if let Err(e) = app.identity.service.delete_session(&admin.secret).await {
        return error_page(Some(&admin), "home", e.into());
    }
    let mut response = redirect_with("/admin/login", Flash::ok("Logged out."), admin.secure);
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_session(admin.secure));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_only_stays_in_the_portal() {
        assert_eq!(safe_next(Some("/admin/users?q=a")), "/admin/users?q=a");
        for bad in [
            "https://evil.example/",
            "//evil.example/admin/",
            "/admin/..//x",
            "/api/rest/user",
            "/admin/\nSet-Cookie: x",
            "/admin/é",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin/", "{bad}");
        }
    }

    fn settings(origin: Option<&str>, behind_proxy: bool) -> PortalSettings {
        PortalSettings {
            origin: origin.map(str::to_owned),
            behind_proxy,
            ..PortalSettings::default()
        }
    }

    fn with(headers: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_the_portals_exact_origin_may_post() {
        let portal = settings(Some("http://127.0.0.1:8081"), false);
        let host = ("host", "127.0.0.1:8081");
        assert!(!cross_site(&with(&[host]), &portal));
        assert!(!cross_site(
            &with(&[host, ("origin", "http://127.0.0.1:8081")]),
            &portal
        ));
        assert!(!cross_site(
            &with(&[
                host,
                ("origin", "http://127.0.0.1:8081"),
                ("sec-fetch-site", "same-origin")
            ]),
            &portal
        ));
        // Element content on the public port: same site, another origin.
        assert!(cross_site(
            &with(&[host, ("origin", "http://127.0.0.1:8080")]),
            &portal
        ));
        assert!(cross_site(
            &with(&[host, ("sec-fetch-site", "same-site")]),
            &portal
        ));
        assert!(cross_site(
            &with(&[host, ("sec-fetch-site", "cross-site")]),
            &portal
        ));
        assert!(cross_site(
            &with(&[host, ("origin", "http://evil.example")]),
            &portal
        ));
        assert!(cross_site(&with(&[host, ("origin", "null")]), &portal));
        assert!(cross_site(
            &with(&[host, ("origin", "https://127.0.0.1:8081")]),
            &portal
        ));
        // The listener reached by another name: its Host, port included.
        let localhost = ("host", "localhost:8081");
        assert!(!cross_site(
            &with(&[localhost, ("origin", "http://localhost:8081")]),
            &portal
        ));
        assert!(cross_site(
            &with(&[localhost, ("origin", "http://localhost:8080")]),
            &portal
        ));
    }

    #[test]
    fn behind_a_proxy_only_the_configured_origin_counts() {
        let portal = settings(Some("https://ops.example"), true);
        let host = ("host", "ops.example");
        assert!(!cross_site(
            &with(&[host, ("origin", "https://ops.example")]),
            &portal
        ));
        assert!(!cross_site(
            &with(&[host, ("origin", "https://OPS.example:443")]),
            &portal
        ));
        assert!(cross_site(
            &with(&[host, ("origin", "http://ops.example")]),
            &portal
        ));
        assert!(cross_site(
            &with(&[host, ("origin", "https://games.ops.example")]),
            &portal
        ));
        assert!(cross_site(
            &with(&[host, ("origin", "https://ops.example.evil.example")]),
            &portal
        ));
    }

    #[test]
    fn the_session_cookie_is_host_prefixed_over_https() {
        assert_eq!(session_cookie(false), ("elements_admin", "/admin"));
        assert_eq!(session_cookie(true), ("__Host-elements_admin", "/"));
        let value = set_session("s3cret", true);
        let cookie =
            cookie::Cookie::parse(value.to_str().expect("ASCII").to_owned()).expect("a Set-Cookie value");
        assert_eq!(
            (cookie.name(), cookie.value(), cookie.path()),
            ("__Host-elements_admin", "s3cret", Some("/"))
        );
        assert_eq!((cookie.http_only(), cookie.secure()), (Some(true), Some(true)));
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict));
    }

    #[test]
    fn csrf_tokens_depend_on_the_session() {
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a"), csrf_token("a"));
    }
}
