//! What the HTTP front knows of the management portal: its settings (part
//! of every handler's state) and the names of the cookies it reads, which
//! Elements may neither set nor see.

/// The cookie holding the portal session's secret (over plain HTTP).
pub const SESSION_COOKIE: &str = "elements_admin";
/// The login form's double-submit token.
pub const LOGIN_COOKIE: &str = "elements_admin_login";
/// The outcome of the last change, shown once by the next page.
pub const FLASH_COOKIE: &str = "elements_admin_flash";

/// Portal settings.
#[derive(Debug, Clone, Default)]
pub struct PortalSettings {
    /// Mark cookies `Secure` and name the session cookie `__Host-...`: the
    /// portal is reached over HTTPS (its admin public URL says so), so
    /// browsers must never send them over plain HTTP, and no other origin
    /// may set the session cookie.
    pub secure_cookies: bool,
    /// The portal's own origin (`scheme://host[:port]`): the admin public
    /// URL's when configured, else the admin listener's address (none when
    /// it listens on an unspecified address such as `0.0.0.0`).
    pub origin: Option<String>,
    /// The origin was configured (a proxy is in front): only it counts. Else
    /// the request's `Host` on the admin listener (e.g. `localhost:8081`
    /// for `127.0.0.1:8081`) names the portal's origin too.
    pub behind_proxy: bool,
    /// Base URL of the public listener, for links to the API documentation
    /// (served there, not on the admin listener).
    pub public_url: String,
}

/// The names of every cookie the portal reads. Element responses may not
/// set them (see `server`), in any case or with a `__Host-`/`__Secure-` prefix.
pub const COOKIE_NAMES: &[&str] = &[SESSION_COOKIE, LOGIN_COOKIE, FLASH_COOKIE];

/// Whether a cookie named `name` is one the portal reads (compared
/// case-insensitively, with any `__Host-`/`__Secure-` prefix removed).
pub fn is_portal_cookie(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower
        .strip_prefix("__host-")
        .or_else(|| lower.strip_prefix("__secure-"))
        .unwrap_or(&lower);
    COOKIE_NAMES.contains(&bare)
}
