//! Responses and the [`IntoResponse`] conversion handlers rely on.

use serde::Serialize;

use crate::error::Error;

/// An HTTP response: status, headers and a body.
///
/// Build one with [`Response::json`], [`Response::text`], [`Response::bytes`]
/// or [`Response::empty`], then adjust it with [`with_status`](Response::with_status)
/// and [`with_header`](Response::with_header).
///
/// ```
/// use elements_sdk::{Response, json};
///
/// let r = Response::json(&json!({"id": 7}))
///     .with_status(201)
///     .with_header("location", "/users/7");
/// assert_eq!(r.status(), 201);
/// assert_eq!(r.header("Location"), Some("/users/7"));
/// assert_eq!(r.body(), br#"{"id":7}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The error this response renders, if it is one: the router names
    /// the request in its body.
    error: Option<Box<Error>>,
}

impl Response {
    /// 200 with `value` serialized as JSON and `content-type: application/json`.
    ///
    /// If `value` cannot be serialized (e.g. a map with non-string keys) the
    /// result is a 500 error response instead.
    ///
    /// ```
    /// use elements_sdk::Response;
    ///
    /// #[derive(serde::Serialize)]
    /// struct User { name: &'static str }
    ///
    /// let r = Response::json(&User { name: "ada" });
    /// assert_eq!(r.status(), 200);
    /// assert_eq!(r.body(), br#"{"name":"ada"}"#);
    /// ```
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::with_body(200, "application/json", body),
            Err(e) => Error::internal(format!("cannot serialize response: {e}")).to_response(),
        }
    }

    /// 200 with a UTF-8 text body and `content-type: text/plain; charset=utf-8`.
    ///
    /// ```
    /// let r = elements_sdk::Response::text("hi");
    /// assert_eq!(r.body(), b"hi");
    /// assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    /// ```
    pub fn text(text: impl Into<String>) -> Response {
        Response::with_body(200, "text/plain; charset=utf-8", text.into().into_bytes())
    }

    /// 200 with a binary body and `content-type: application/octet-stream`
    /// (override it with [`with_header`](Response::with_header)).
    ///
    /// ```
    /// let r = elements_sdk::Response::bytes(vec![0x89, b'P', b'N', b'G'])
    ///     .with_header("content-type", "image/png");
    /// assert_eq!(r.header("content-type"), Some("image/png"));
    /// assert_eq!(r.body().len(), 4);
    /// ```
    pub fn bytes(body: impl Into<Vec<u8>>) -> Response {
        Response::with_body(200, "application/octet-stream", body.into())
    }

    /// A response with `status`, no headers and an empty body.
    ///
    /// ```
    /// let r = elements_sdk::Response::empty(204);
    /// assert_eq!(r.status(), 204);
    /// assert!(r.body().is_empty());
    /// ```
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            error: None,
        }
    }

    fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        // Room for the `content-length` the SDK adds when it answers.
        let mut headers = Vec::with_capacity(2);
        headers.push(("content-type".to_owned(), content_type.to_owned()));
        Response {
            status,
            headers,
            body,
            error: None,
        }
    }

    /// The response of `error`, whose JSON body is `body`.
    pub(crate) fn error_body(body: Vec<u8>, error: Error) -> Response {
        Response {
            error: Some(Box::new(error)),
            ..Response::with_body(200, "application/json", body)
        }
    }

    /// This response, its body naming request `id` if it renders an error.
    /// Status and headers stay as the handler left them.
    pub(crate) fn name_request(mut self, id: &str) -> Response {
        if let Some(error) = self.error.take() {
            self.body = error.body(Some(id));
        }
        self
    }

    /// Replaces the status code.
    ///
    /// ```
    /// let r = elements_sdk::Response::text("created").with_status(201);
    /// assert_eq!(r.status(), 201);
    /// ```
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Sets a header, replacing any existing values of the same name
    /// (names compare case-insensitively).
    ///
    /// ```
    /// let r = elements_sdk::Response::text("x").with_header("Content-Type", "text/html");
    /// assert_eq!(r.headers().count(), 1);
    /// assert_eq!(r.header("content-type"), Some("text/html"));
    /// ```
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a header value, keeping existing ones of the same name (for
    /// headers that may repeat, like `set-cookie`).
    ///
    /// ```
    /// let r = elements_sdk::Response::empty(204)
    ///     .append_header("set-cookie", "a=1")
    ///     .append_header("set-cookie", "b=2");
    /// assert_eq!(r.headers().filter(|(n, _)| *n == "set-cookie").count(), 2);
    /// ```
    pub fn append_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The status code.
    ///
    /// ```
    /// assert_eq!(elements_sdk::Response::text("x").status(), 200);
    /// ```
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (case-insensitive).
    ///
    /// ```
    /// let r = elements_sdk::Response::json(&1);
    /// assert_eq!(r.header("Content-Type"), Some("application/json"));
    /// assert_eq!(r.header("etag"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers as `(name, value)` pairs, in insertion order.
    ///
    /// ```
    /// let r = elements_sdk::Response::empty(204).with_header("x-a", "1");
    /// assert_eq!(r.headers().collect::<Vec<_>>(), [("x-a", "1")]);
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The body bytes.
    ///
    /// ```
    /// assert_eq!(elements_sdk::Response::text("hey").body(), b"hey");
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Splits the response into status, headers and body.
    ///
    /// ```
    /// let (status, headers, body) = elements_sdk::Response::text("x").into_parts();
    /// assert_eq!((status, headers.len(), body), (200, 1, b"x".to_vec()));
    /// ```
    pub fn into_parts(self) -> (u16, Vec<(String, String)>, Vec<u8>) {
        (self.status, self.headers, self.body)
    }
}

/// What a handler may return: anything that converts into a [`Response`].
///
/// Implemented for [`Response`], [`Error`], [`serde_json::Value`] (200 JSON)
/// and `Result<T, E>` where both `T` and `E` convert — so a handler can
/// return `Response`, `Result<Response>`, `Result<serde_json::Value>`, ….
///
/// ```
/// use elements_sdk::{Error, IntoResponse, Response, Result, json};
///
/// let ok: Result<Response> = Ok(Response::text("fine"));
/// assert_eq!(ok.into_response().status(), 200);
///
/// let err: Result<serde_json::Value> = Err(Error::conflict("taken"));
/// assert_eq!(err.into_response().status(), 409);
///
/// assert_eq!(json!({"a": 1}).into_response().body(), br#"{"a":1}"#);
/// ```
pub trait IntoResponse {
    /// Performs the conversion.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

impl IntoResponse for serde_json::Value {
    fn into_response(self) -> Response {
        Response::json(&self)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for std::result::Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(v) => v.into_response(),
            Err(e) => e.into_response(),
        }
    }
}
