//! The error type handlers return.

use std::borrow::Cow;
use std::fmt;

use crate::response::Response;

/// `Result<T, Error>`: what handlers and SDK helpers return.
///
/// ```
/// use elements_sdk::{Error, Result};
///
/// fn positive(n: i64) -> Result<i64> {
///     if n > 0 { Ok(n) } else { Err(Error::bad_request("n must be positive")) }
/// }
/// assert_eq!(positive(3).unwrap(), 3);
/// assert_eq!(positive(-1).unwrap_err().status(), 400);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An HTTP error: a status code, a machine-readable `code` and a human-readable
/// `message`.
///
/// Returned from a handler, it becomes a response with that status and the
/// project-wide JSON error body `{"code": "...", "message": "..."}`.
///
/// ```
/// use elements_sdk::{Error, IntoResponse};
///
/// let response = Error::not_found("no such user").into_response();
/// assert_eq!(response.status(), 404);
/// assert_eq!(response.body(), br#"{"code":"not_found","message":"no such user"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: u16,
    code: Cow<'static, str>,
    message: String,
}

impl Error {
    /// An error with any status, code and message.
    ///
    /// ```
    /// use elements_sdk::Error;
    ///
    /// let e = Error::new(429, "rate_limited", "slow down");
    /// assert_eq!((e.status(), e.code(), e.message()), (429, "rate_limited", "slow down"));
    /// ```
    pub fn new(status: u16, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 400 Bad Request, code `bad_request`: the client sent something invalid.
    ///
    /// ```
    /// let e = elements_sdk::Error::bad_request("missing field `name`");
    /// assert_eq!((e.status(), e.code()), (400, "bad_request"));
    /// ```
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 401 Unauthorized, code `unauthorized`: the caller is not authenticated.
    ///
    /// ```
    /// let e = elements_sdk::Error::unauthorized("log in first");
    /// assert_eq!((e.status(), e.code()), (401, "unauthorized"));
    /// ```
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    /// 403 Forbidden, code `forbidden`: the caller may not do this.
    ///
    /// ```
    /// let e = elements_sdk::Error::forbidden("admins only");
    /// assert_eq!((e.status(), e.code()), (403, "forbidden"));
    /// ```
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// 404 Not Found, code `not_found`.
    ///
    /// ```
    /// let e = elements_sdk::Error::not_found("no user 42");
    /// assert_eq!((e.status(), e.code()), (404, "not_found"));
    /// ```
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 409 Conflict, code `conflict`: the request conflicts with current state.
    ///
    /// ```
    /// let e = elements_sdk::Error::conflict("name already taken");
    /// assert_eq!((e.status(), e.code()), (409, "conflict"));
    /// ```
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    /// 500 Internal Server Error, code `internal`: a bug or broken configuration
    /// on the Element's side.
    ///
    /// ```
    /// let e = elements_sdk::Error::internal("database attribute is not a URL");
    /// assert_eq!((e.status(), e.code()), (500, "internal"));
    /// ```
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    /// The HTTP status code.
    ///
    /// ```
    /// assert_eq!(elements_sdk::Error::conflict("x").status(), 409);
    /// ```
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The machine-readable code, e.g. `not_found`.
    ///
    /// ```
    /// assert_eq!(elements_sdk::Error::not_found("x").code(), "not_found");
    /// ```
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human-readable message.
    ///
    /// ```
    /// assert_eq!(elements_sdk::Error::not_found("no user 7").message(), "no user 7");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Renders the error as its response: the error's status and the JSON
    /// body `{"code": ..., "message": ...}`.
    ///
    /// ```
    /// let r = elements_sdk::Error::forbidden("no").to_response();
    /// assert_eq!(r.status(), 403);
    /// assert_eq!(r.header("content-type"), Some("application/json"));
    /// ```
    pub fn to_response(&self) -> Response {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            code: &'a str,
            message: &'a str,
        }
        Response::json(&Body {
            code: &self.code,
            message: &self.message,
        })
        .with_status(self.status)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// JSON that fails to parse or does not fit the expected type is the client's
/// fault (400); an I/O failure while reading or writing JSON is ours (500).
///
/// ```
/// use elements_sdk::{Error, Result};
///
/// fn parse(s: &str) -> Result<u32> {
///     Ok(serde_json::from_str(s)?)
/// }
/// assert_eq!(parse("[").unwrap_err().status(), 400);
/// ```
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        if e.is_io() {
            Error::internal(format!("JSON I/O error: {e}"))
        } else {
            Error::bad_request(format!("invalid JSON: {e}"))
        }
    }
}
