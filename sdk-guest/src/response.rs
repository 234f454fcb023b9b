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
    /// The headers as `name: value\r\n` lines, the block the host takes:
    /// one allocation for all of them, handed over as it is.
    headers: String,
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
            headers: String::new(),
            body: Vec::new(),
            error: None,
        }
    }

    fn with_body(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        // The SDK's own content types need no cleaning (see `push_header`).
        let mut headers = String::with_capacity(CONTENT_TYPE.len() + content_type.len() + 4);
        headers.push_str(CONTENT_TYPE);
        headers.push_str(": ");
        headers.push_str(content_type);
        headers.push_str("\r\n");
        Response {
            status,
            headers,
            body,
            error: None,
        }
    }

    /// Adds a `name: value` line. A CR or LF (in either) or a `:` (in the
    /// name) would make or break lines, so each becomes a NUL, which HTTP
    /// allows in neither: the host then drops the header and names it in
    /// the Element's log, as it does any header HTTP does not allow.
    fn push_header(&mut self, name: &str, value: &str) {
        push_cleaned(&mut self.headers, name, true);
        self.headers.push_str(": ");
        push_cleaned(&mut self.headers, value, false);
        self.headers.push_str("\r\n");
    }

    /// The header lines as `(name, value)` pairs, in order.
    fn header_lines(&self) -> impl Iterator<Item = (&str, &str)> {
        // `push_header` writes every line, so each has its `: `.
        self.headers.split_terminator("\r\n").map(|line| {
            let colon = line.find(':').unwrap_or(line.len());
            (&line[..colon], line.get(colon + 2..).unwrap_or(""))
        })
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
    /// A name or value HTTP does not allow is not sent: the server drops
    /// the header and says so in the Element's log. A line break in either,
    /// or a `:` in the name, can't add a header of its own (it is kept as a
    /// NUL, which HTTP allows nowhere).
    ///
    /// ```
    /// let r = elements_sdk::Response::text("x").with_header("Content-Type", "text/html");
    /// assert_eq!(r.headers().count(), 1);
    /// assert_eq!(r.header("content-type"), Some("text/html"));
    /// ```
    pub fn with_header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Response {
        let name = name.as_ref();
        if self.header(name).is_some() {
            let kept: String = self
                .headers
                .split_inclusive("\r\n")
                .filter(|line| {
                    let colon = line.find(':').unwrap_or(line.len());
                    !line[..colon].eq_ignore_ascii_case(name)
                })
                .collect();
            self.headers = kept;
        }
        self.push_header(name, value.as_ref());
        self
    }

    /// Adds a header value, keeping existing ones of the same name (for
    /// headers that may repeat, like `set-cookie`). What HTTP does not
    /// allow is dropped as with [`with_header`](Response::with_header).
    ///
    /// ```
    /// let r = elements_sdk::Response::empty(204)
    ///     .append_header("set-cookie", "a=1")
    ///     .append_header("set-cookie", "b=2");
    /// assert_eq!(r.headers().filter(|(n, _)| *n == "set-cookie").count(), 2);
    /// ```
    pub fn append_header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Response {
        self.push_header(name.as_ref(), value.as_ref());
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
        self.header_lines()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All headers as `(name, value)` pairs, in insertion order.
    ///
    /// ```
    /// let r = elements_sdk::Response::empty(204).with_header("x-a", "1");
    /// assert_eq!(r.headers().collect::<Vec<_>>(), [("x-a", "1")]);
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_lines()
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
        let headers = self
            .header_lines()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        (self.status, headers, self.body)
    }

    /// The status, the header lines as one block and the body: what the
    /// one-call export answers with.
    pub(crate) fn into_wire(self) -> (u16, Vec<u8>, Vec<u8>) {
        (self.status, self.headers.into_bytes(), self.body)
    }
}

const CONTENT_TYPE: &str = "content-type";

/// Appends `text` to `out`, with CR and LF (and `:` in a `name`) as NUL.
fn push_cleaned(out: &mut String, text: &str, name: bool) {
    // One comparison a byte in the usual case: every byte to replace is a
    // control byte or a `:`.
    if !text.bytes().any(|b| b < b' ' || (name && b == b':')) {
        out.push_str(text);
        return;
    }
    out.extend(text.chars().map(|c| match c {
        '\r' | '\n' => '\0',
        ':' if name => '\0',
        c => c,
    }));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_one_block_of_lines_in_order() {
        let r = Response::json(&1)
            .append_header("set-cookie", "a=1")
            .append_header("Set-Cookie", "b=2")
            .with_header("Content-Type", "text/html");
        assert_eq!(
            r.clone().into_wire().1,
            b"set-cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Type: text/html\r\n"
        );
        assert_eq!(r.header("content-type"), Some("text/html"));
        assert_eq!(
            r.headers().collect::<Vec<_>>(),
            [
                ("set-cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Content-Type", "text/html")
            ]
        );
        assert_eq!(r.into_parts().1.len(), 3);
        assert_eq!(Response::empty(204).into_wire().1, b"");
    }

    #[test]
    fn no_name_or_value_makes_a_line_of_its_own() {
        let r = Response::empty(200)
            .with_header("x-a", "v\r\nx-injected: 1")
            .with_header("x-b: x-injected", "2")
            .with_header("x-c", "3\n");
        let block = String::from_utf8(r.clone().into_wire().1).unwrap();
        assert_eq!(block.matches("\r\n").count(), 3, "{block:?}");
        assert!(block.lines().all(|l| !l.starts_with("x-injected")), "{block:?}");
        // The host drops these: NUL is valid in neither names nor values.
        assert_eq!(r.header("x-a"), Some("v\0\0x-injected: 1"));
        assert_eq!(r.header("x-b\0 x-injected"), Some("2"));
        assert_eq!(r.header("x-c"), Some("3\0"));
    }

    #[test]
    fn with_header_replaces_every_line_of_its_name() {
        let r = Response::text("x")
            .append_header("x-a", "1")
            .append_header("X-A", "2")
            .append_header("x-ab", "3")
            .with_header("x-a", "4");
        assert_eq!(
            r.headers().collect::<Vec<_>>(),
            [
                ("content-type", "text/plain; charset=utf-8"),
                ("x-ab", "3"),
                ("x-a", "4")
            ]
        );
    }
}
