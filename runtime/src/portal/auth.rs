//! Who may use the portal, and how they prove it.
//!
//! - Logging in opens an ordinary Elements session for a SUPERUSER (anyone
//!   else is refused before a session exists); its secret lives only in an
//!   HttpOnly, SameSite=Strict cookie scoped to `/admin`, so page scripts
//!   never see it and other sites never send it. Every request resolves it
//!   again, so logging out, a ban or a demotion takes effect at once.
//! - State-changing forms carry a CSRF token derived from the session secret
//!   (the synchronizer-token pattern without server state), checked in
//!   constant time; cross-site `Origin`/`Sec-Fetch-Site` headers are refused
//!   too. The login form, which has no session yet, uses a double-submit
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

use super::{Flash, Layout, cookie, error_page, flash_of, redirect_with, render, set_cookie};
use crate::error::ApiError;
use crate::server::App;

/// The cookie holding the portal session's secret.
const SESSION_COOKIE: &str = "elements_admin";
/// The login form's double-submit token.
const LOGIN_COOKIE: &str = "elements_admin_login";
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

/// Whether a state-changing request comes from another site, by the headers
/// browsers set themselves (absent headers prove nothing either way). The
/// page's origin is the request's `Host`, or the server's public URL (a
/// reverse proxy may rewrite `Host`).
fn cross_site(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), host) {
        (Some("null"), _) => true,
        (Some(origin), host) => {
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
            let same_host = host.is_some_and(|h| origin_host.eq_ignore_ascii_case(h));
            let public_origin = public_url.is_some_and(|p| {
                // The public URL's scheme and authority, without any path.
                let start = p.find("://").map(|i| i + 3).unwrap_or(0);
                let end = p[start..].find('/').map(|i| start + i).unwrap_or(p.len());
                origin.eq_ignore_ascii_case(&p[..end])
            });
            !same_host && !public_origin
        }
        (None, _) => false,
    }
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
        if cookie(&parts.headers, SESSION_COOKIE).is_some() {
            response
                .headers_mut()
                .append(header::SET_COOKIE, clear_session(secure));
        }
        response
    };
    let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
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
    if parts.method != Method::GET
        && parts.method != Method::HEAD
        && cross_site(&parts.headers, app.portal.public_url.as_deref())
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
    set_cookie(SESSION_COOKIE, "", "/admin", Some(Duration::ZERO), secure)
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
    if let Some(secret) = cookie(&headers, SESSION_COOKIE)
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
pub async fn login(State(app): State<Arc<App>>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let secure = app.portal.secure_cookies;
    let retry = |status: StatusCode, message: String| {
        login_form(status, secure, &form.next, form.login.trim(), Some(message), None)
    };
    let token_ok = cookie(&headers, LOGIN_COOKIE).is_some_and(|expected| ct_eq(&form.csrf, expected));
    if !token_ok || cross_site(&headers, app.portal.public_url.as_deref()) {
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
    let user = match service.login_password(login, &form.password).await {
        Ok(user) => user,
        Err(e) => {
            let error = ApiError::from(e);
            return retry(error.status, error.message);
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
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &secret, "/admin", None, secure),
    );
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

    #[test]
    fn cross_site_requests_are_recognized() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&headers, None));
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&headers, None));
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(cross_site(&headers, None));
        assert!(cross_site(&headers, Some("https://games.example.com/")));
        // Behind a proxy that rewrote Host: the public URL's origin is ours.
        headers.insert(header::ORIGIN, "https://games.example.com".parse().unwrap());
        assert!(!cross_site(&headers, Some("https://games.example.com/elements")));
        assert!(cross_site(
            &headers,
            Some("https://games.example.com.evil.example")
        ));
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_site(&headers, None));
    }

    #[test]
    fn csrf_tokens_depend_on_the_session() {
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a"), csrf_token("a"));
    }
}
