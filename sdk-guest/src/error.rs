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
/// JSON error body the server itself answers with: `{"code": "NOT_FOUND",
/// "message": "...", "requestId": "..."}`, codes in SCREAMING_SNAKE_CASE,
/// and `requestId` the server's id of the request (its `x-request-id`
/// header, which the router reads), so a client quotes one id to the
/// operator whichever side failed.
///
/// ```
/// use elements_sdk::{Error, IntoResponse, Method, Request, Router};
///
/// let response = Error::not_found("no such user").into_response();
/// assert_eq!(response.status(), 404);
/// assert_eq!(response.body(), br#"{"code":"NOT_FOUND","message":"no such user"}"#);
///
/// // Through the router, the request's id comes along.
/// let router = Router::new().get("/u", |_req: Request| Error::not_found("no such user"));
/// let response = router.handle(Request::new(Method::Get, "/u").with_header("x-request-id", "r-1"));
/// assert_eq!(
///     response.body(),
///     br#"{"code":"NOT_FOUND","message":"no such user","requestId":"r-1"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: u16,
    code: Cow<'static, str>,
    message: String,
}

impl Error {
    /// An error with any status, code and message. The code is written in
    /// SCREAMING_SNAKE_CASE, as every code the server sends (letters upper
    /// case, `-`, `.` and spaces as `_`), so clients match one spelling.
    ///
    /// ```
    /// use elements_sdk::Error;
    ///
    /// let e = Error::new(429, "RATE_LIMITED", "slow down");
    /// assert_eq!((e.status(), e.code(), e.message()), (429, "RATE_LIMITED", "slow down"));
    /// assert_eq!(Error::new(429, "rate-limited", "slow down").code(), "RATE_LIMITED");
    /// ```
    pub fn new(status: u16, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error {
            status,
            code: screaming(code.into()),
            message: message.into(),
        }
    }

    /// 400 Bad Request, code `BAD_REQUEST`: the client sent something invalid.
    ///
    /// ```
    /// let e = elements_sdk::Error::bad_request("missing field `name`");
    /// assert_eq!((e.status(), e.code()), (400, "BAD_REQUEST"));
    /// ```
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BAD_REQUEST", message)
    }

    /// 401 Unauthorized, code `UNAUTHORIZED`: the caller is not authenticated.
    ///
    /// ```
    /// let e = elements_sdk::Error::unauthorized("log in first");
    /// assert_eq!((e.status(), e.code()), (401, "UNAUTHORIZED"));
    /// ```
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "UNAUTHORIZED", message)
    }

    /// 403 Forbidden, code `FORBIDDEN`: the caller may not do this.
    ///
    /// ```
    /// let e = elements_sdk::Error::forbidden("admins only");
    /// assert_eq!((e.status(), e.code()), (403, "FORBIDDEN"));
    /// ```
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "FORBIDDEN", message)
    }

    /// 404 Not Found, code `NOT_FOUND`.
    ///
    /// ```
    /// let e = elements_sdk::Error::not_found("no user 42");
    /// assert_eq!((e.status(), e.code()), (404, "NOT_FOUND"));
    /// ```
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }

    /// 409 Conflict, code `CONFLICT`: the request conflicts with current state.
    ///
    /// ```
    /// let e = elements_sdk::Error::conflict("name already taken");
    /// assert_eq!((e.status(), e.code()), (409, "CONFLICT"));
    /// ```
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "CONFLICT", message)
    }

    /// 500 Internal Server Error, code `INTERNAL`: a bug or broken configuration
    /// on the Element's side.
    ///
    /// ```
    /// let e = elements_sdk::Error::internal("database attribute is not a URL");
    /// assert_eq!((e.status(), e.code()), (500, "INTERNAL"));
    /// ```
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "INTERNAL", message)
    }

    /// The HTTP status code.
    ///
    /// ```
    /// assert_eq!(elements_sdk::Error::conflict("x").status(), 409);
    /// ```
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The machine-readable code, e.g. `NOT_FOUND`.
    ///
    /// ```
    /// assert_eq!(elements_sdk::Error::not_found("x").code(), "NOT_FOUND");
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

    /// 503 Service Unavailable, code `UNAVAILABLE`: something the Element
    /// needs (the store, a host service) can't be reached right now.
    ///
    /// ```
    /// let e = elements_sdk::Error::unavailable("the store is down");
    /// assert_eq!((e.status(), e.code()), (503, "UNAVAILABLE"));
    /// ```
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "UNAVAILABLE", message)
    }

    /// Renders the error as its response: the error's status and the JSON
    /// body `{"code": ..., "message": ...}`. Returned from a handler, the
    /// router adds the request's `requestId`.
    ///
    /// ```
    /// let r = elements_sdk::Error::forbidden("no").to_response();
    /// assert_eq!(r.status(), 403);
    /// assert_eq!(r.header("content-type"), Some("application/json"));
    /// ```
    pub fn to_response(&self) -> Response {
        Response::error_body(self.body(None), self.clone()).with_status(self.status)
    }

    /// The JSON body, naming request `request_id` when given.
    pub(crate) fn body(&self, request_id: Option<&str>) -> Vec<u8> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            request_id: Option<&'a str>,
        }
        let body = Body {
            code: &self.code,
            message: &self.message,
            request_id,
        };
        // Two strings and an option: serializing them can't fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// `code` in SCREAMING_SNAKE_CASE; borrowed as it is when it already is.
fn screaming(code: Cow<'static, str>) -> Cow<'static, str> {
    if code
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return code;
    }
    Cow::Owned(
        code.chars()
            .map(|c| match c {
                '-' | '.' | ' ' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect(),
    )
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
