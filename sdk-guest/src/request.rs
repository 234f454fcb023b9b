//! Incoming requests.

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// An HTTP method.
///
/// ```
/// use elements_sdk::Method;
///
/// assert_eq!(Method::from("POST"), Method::Post);
/// assert_eq!(Method::Post.as_str(), "POST");
/// assert_eq!(Method::from("PURGE"), Method::Other("PURGE".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, as sent.
    Other(String),
}

impl Method {
    /// The method's name, e.g. `"GET"`.
    ///
    /// ```
    /// assert_eq!(elements_sdk::Method::Delete.as_str(), "DELETE");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other(m) => m,
        }
    }
}

impl From<&str> for Method {
    fn from(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incoming request, as a handler sees it.
///
/// The path is the part below the Element's mount point: a request for
/// `/app/rest/hello/echo?x=1` reaches the `hello` Element as `/echo?x=1`.
/// The body is fully buffered.
///
/// [`Request::new`] and the `with_*` builders exist so that routers and
/// handlers can be unit-tested natively:
///
/// ```
/// use elements_sdk::{Method, Request};
///
/// let req = Request::new(Method::Post, "/users?dry_run=true")
///     .with_header("Content-Type", "application/json")
///     .with_body(r#"{"name":"ada"}"#);
/// assert_eq!(req.path(), "/users");
/// assert_eq!(req.query("dry_run").as_deref(), Some("true"));
/// assert_eq!(req.header("content-type"), Some("application/json"));
/// let v: serde_json::Value = req.json().unwrap();
/// assert_eq!(v["name"], "ada");
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    /// The request line and headers as they arrived, e.g.
    /// `GET /echo?x=1\r\nname: value\r\n`, read in place: a request's
    /// headers are looked at once or twice, so splitting them into owned
    /// pairs up front cost more than every lookup together. (A request
    /// built with [`Request::new`] has no method in it: `/echo?x=1\r\n`.)
    head: String,
    /// Where the path and query start in `head`.
    target_start: usize,
    /// Where the path ends: the index of `?`, or `target_end`.
    path_end: usize,
    /// Where the path and query end (at the line's `\r`).
    target_end: usize,
    /// Where the header lines start.
    headers_start: usize,
    body: Vec<u8>,
    pub(crate) params: Vec<(String, String)>,
}

impl Request {
    /// A request with `method` for `path_with_query` (e.g. `/users/7?full=1`),
    /// no headers and an empty body. An empty path means `/`.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Get, "/a?b=c");
    /// assert_eq!((req.path(), req.query_string()), ("/a", "b=c"));
    /// ```
    pub fn new(method: Method, path_with_query: impl AsRef<str>) -> Request {
        let target = path_with_query.as_ref();
        let mut head = String::with_capacity(target.len() + 3);
        if !target.starts_with('/') {
            head.push('/');
        }
        // A line break would end the target early: as in `with_header`, it
        // becomes a space.
        head.extend(
            target
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        );
        let target_end = head.len();
        head.push_str("\r\n");
        Request {
            method,
            path_end: query_start(&head, 0, target_end),
            head,
            target_start: 0,
            target_end,
            headers_start: target_end + 2,
            body: Vec::new(),
            params: Vec::new(),
        }
    }

    /// A request from the host's head (`GET /echo?x=1\r\n`, then a block
    /// of `name: value\r\n` lines with lowercase names; anything else in
    /// it is skipped) and body.
    pub(crate) fn from_head(head: String, body: Vec<u8>) -> Request {
        // Byte loops, not `str::find`: see `header_lines`. Every index
        // found is that of an ASCII byte, so a char boundary.
        let bytes = head.as_bytes();
        let target_end = bytes.iter().position(|&b| b == b'\r').unwrap_or(bytes.len());
        let headers_start = match bytes.get(target_end + 1) {
            Some(b'\n') => target_end + 2,
            _ => (target_end + 1).min(bytes.len()),
        };
        let (method, target_start) = match bytes[..target_end].iter().position(|&b| b == b' ') {
            Some(space) => (Method::from(&head[..space]), space + 1),
            None => (Method::from(&head[..target_end]), target_end),
        };
        if !head[target_start..target_end].starts_with('/') {
            // Not the host's (its paths start with `/`): made as `new` makes one.
            let mut request = Request::new(method, &head[target_start..target_end]);
            request.head.push_str(&head[headers_start..]);
            request.body = body;
            return request;
        }
        Request {
            method,
            path_end: query_start(&head, target_start, target_end),
            head,
            target_start,
            target_end,
            headers_start,
            body,
            params: Vec::new(),
        }
    }

    /// Adds a header (builder, for tests). The name is lowercased; line
    /// breaks, which HTTP doesn't allow in a value, become spaces.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Get, "/")
    ///     .with_header("x-user", "ada")
    ///     .with_header("x-note", "two\r\nlines");
    /// assert_eq!(req.header("X-User"), Some("ada"));
    /// assert_eq!(req.header("x-note"), Some("two  lines"));
    /// ```
    pub fn with_header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Request {
        // The header lines end the head: a new one goes last.
        let clean = |c: char| if matches!(c, '\r' | '\n' | ':') { ' ' } else { c };
        self.head
            .extend(name.as_ref().chars().map(|c| clean(c.to_ascii_lowercase())));
        self.head.push_str(": ");
        self.head.extend(
            value
                .as_ref()
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        );
        self.head.push_str("\r\n");
        self
    }

    /// Replaces the body (builder, for tests).
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Post, "/")
    ///     .with_body("hello");
    /// assert_eq!(req.body(), b"hello");
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The request method.
    ///
    /// ```
    /// use elements_sdk::{Method, Request};
    /// assert_eq!(*Request::new(Method::Put, "/").method(), Method::Put);
    /// ```
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path below the Element's mount point, without the query string,
    /// still percent-encoded. Always starts with `/`.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Get, "/files/a%20b?x=1");
    /// assert_eq!(req.path(), "/files/a%20b");
    /// ```
    pub fn path(&self) -> &str {
        &self.head[self.target_start..self.path_end]
    }

    /// The raw query string after `?`, or `""` when there is none.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Get, "/search?q=a+b&page=2");
    /// assert_eq!(req.query_string(), "q=a+b&page=2");
    /// ```
    pub fn query_string(&self) -> &str {
        self.head.get(self.path_end + 1..self.target_end).unwrap_or("")
    }

    /// The first value of query parameter `name`, percent-decoded (`+` means
    /// a space). A parameter without `=` has the value `""`.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Get, "/s?q=caf%C3%A9+au+lait&flag");
    /// assert_eq!(req.query("q").as_deref(), Some("café au lait"));
    /// assert_eq!(req.query("flag").as_deref(), Some(""));
    /// assert_eq!(req.query("missing"), None);
    /// ```
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// All query parameters in order, percent-decoded.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Get, "/?a=1&b=x%2Fy&a=3");
    /// let pairs: Vec<_> = req.query_pairs().collect();
    /// assert_eq!(pairs, [("a".into(), "1".into()), ("b".into(), "x/y".into()), ("a".into(), "3".into())]);
    /// ```
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        self.query_string()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k, true), percent_decode(v, true))
            })
    }

    /// The value of route parameter `name` (from a `{name}` or `{*name}`
    /// segment of the matched route), percent-decoded.
    ///
    /// ```
    /// use elements_sdk::{Request, Response, Router};
    ///
    /// let router = Router::new().get("/users/{id}", |req: Request| {
    ///     Response::text(req.param("id").unwrap_or_default())
    /// });
    /// let res = router.handle(Request::new(elements_sdk::Method::Get, "/users/42"));
    /// assert_eq!(res.body(), b"42");
    /// ```
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All route parameters of the matched route, in pattern order.
    ///
    /// ```
    /// use elements_sdk::{Method, Request, Response, Router};
    ///
    /// let router = Router::new().get("/{a}/{b}", |req: Request| {
    ///     Response::text(format!("{:?}", req.params().collect::<Vec<_>>()))
    /// });
    /// let res = router.handle(Request::new(Method::Get, "/x/y"));
    /// assert_eq!(res.body(), br#"[("a", "x"), ("b", "y")]"#);
    /// ```
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The first value of header `name`, compared case-insensitively. Values
    /// that were not valid UTF-8 are converted lossily.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Get, "/")
    ///     .with_header("accept", "application/json");
    /// assert_eq!(req.header("Accept"), Some("application/json"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The server's id of this request (`x-request-id`). The host writes
    /// it as the first line of the header block, so it is found without
    /// reading the others; a block from elsewhere is searched.
    pub(crate) fn request_id(&self) -> Option<&str> {
        match self.head[self.headers_start..].strip_prefix("x-request-id: ") {
            Some(rest) => rest.bytes().position(|b| b == b'\r').map(|end| &rest[..end]),
            None => self.header("x-request-id"),
        }
    }

    /// All headers as `(name, value)` pairs; names are lowercase.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Get, "/")
    ///     .with_header("X-A", "1")
    ///     .with_header("x-a", "2");
    /// assert_eq!(req.headers().collect::<Vec<_>>(), [("x-a", "1"), ("x-a", "2")]);
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        header_lines(&self.head[self.headers_start..])
    }

    /// The raw body.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Post, "/").with_body(vec![1, 2]);
    /// assert_eq!(req.body(), [1, 2]);
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out of the request.
    ///
    /// ```
    /// let req = elements_sdk::Request::new(elements_sdk::Method::Post, "/").with_body("abc");
    /// assert_eq!(req.into_body(), b"abc");
    /// ```
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text; invalid UTF-8 is a 400 error.
    ///
    /// ```
    /// use elements_sdk::{Method, Request};
    ///
    /// assert_eq!(Request::new(Method::Post, "/").with_body("hé").text().unwrap(), "hé");
    /// let bad = Request::new(Method::Post, "/").with_body(vec![0xff]);
    /// assert_eq!(bad.text().unwrap_err().status(), 400);
    /// ```
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::bad_request(format!("request body is not valid UTF-8: {e}")))
    }

    /// The body parsed as JSON into `T`. Malformed JSON, or JSON that does
    /// not fit `T`, is a 400 error whose message says what is wrong.
    ///
    /// ```
    /// use elements_sdk::{Method, Request};
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// struct NewUser { name: String }
    ///
    /// let req = Request::new(Method::Post, "/users").with_body(r#"{"name":"ada"}"#);
    /// assert_eq!(req.json::<NewUser>().unwrap().name, "ada");
    ///
    /// let bad = Request::new(Method::Post, "/users").with_body("{");
    /// let err = bad.json::<NewUser>().unwrap_err();
    /// assert_eq!((err.status(), err.code()), (400, "BAD_REQUEST"));
    /// assert!(err.message().starts_with("invalid JSON body"));
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Where the query of `head[start..end]` starts: the index of its `?`, or
/// `end` when it has none.
fn query_start(head: &str, start: usize, end: usize) -> usize {
    head.as_bytes()[start..end]
        .iter()
        .position(|&b| b == b'?')
        .map_or(end, |q| start + q)
}

/// The `(name, value)` pairs of a block of `name: value\r\n` lines (one
/// space after the colon is not part of the value). Anything that is not a
/// whole line with a colon is skipped.
pub(crate) fn header_lines(block: &str) -> impl Iterator<Item = (&str, &str)> {
    // Plain byte loops, not `split`/`split_once`: `str`'s pattern searchers
    // (memchr, a word at a time, with set-up on every call) cost several
    // times as much on lines this short, and this runs on every request
    // (measured: a third of a `GET /hello`'s guest instructions). `\n` and
    // `:` are ASCII, so every index found is a char boundary.
    let mut rest = block;
    std::iter::from_fn(move || {
        loop {
            let end = rest.bytes().position(|b| b == b'\n')?;
            let line = &rest[..end];
            rest = &rest[end + 1..];
            let Some(line) = line.strip_suffix('\r') else {
                continue;
            };
            let Some(colon) = line.bytes().position(|b| b == b':') else {
                continue;
            };
            let value = &line[colon + 1..];
            return Some((&line[..colon], value.strip_prefix(' ').unwrap_or(value)));
        }
    })
}

/// Decodes `%XX` escapes (and `+` as space when `plus_as_space`); borrows
/// when there is nothing to decode. Malformed escapes are kept as they are;
/// invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str, plus_as_space: bool) -> Cow<'_, str> {
    if plus_as_space && s.contains('+') {
        let spaced = s.replace('+', " ");
        return Cow::Owned(
            percent_encoding::percent_decode_str(&spaced)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    percent_encoding::percent_decode_str(s).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode() {
        assert_eq!(percent_decode("abc", true), "abc");
        assert!(matches!(percent_decode("abc", true), Cow::Borrowed(_)));
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("a%20b+c", false), "a b+c");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz%4", true), "%zz%4");
        assert_eq!(percent_decode("%C3%A9", false), "é");
        assert_eq!(percent_decode("%FF", false), "\u{FFFD}");
    }

    #[test]
    fn target_normalization() {
        let r = Request::new(Method::Get, "");
        assert_eq!((r.path(), r.query_string()), ("/", ""));
        let r = Request::new(Method::Get, "?x=1");
        assert_eq!((r.path(), r.query_string()), ("/", "x=1"));
        let r = Request::new(Method::Get, "/a?");
        assert_eq!((r.path(), r.query_string()), ("/a", ""));
        assert_eq!(r.query("x"), None);
    }

    #[test]
    fn the_hosts_head_is_read_in_place() {
        let r = Request::from_head(
            "POST /echo/a%20b?x=1&y\r\nx-request-id: r-9\r\ncontent-type: text/plain\r\n".into(),
            b"hi".to_vec(),
        );
        assert_eq!(*r.method(), Method::Post);
        assert_eq!((r.path(), r.query_string()), ("/echo/a%20b", "x=1&y"));
        assert_eq!(r.request_id(), Some("r-9"));
        assert_eq!(
            r.headers().collect::<Vec<_>>(),
            [("x-request-id", "r-9"), ("content-type", "text/plain")]
        );
        assert_eq!(r.body(), b"hi");
        // Headers added by a test go after the host's.
        let r = r.with_header("x-extra", "1");
        assert_eq!(r.header("x-extra"), Some("1"));
        assert_eq!(r.query_string(), "x=1&y");

        let r = Request::from_head("PURGE /\r\n".into(), Vec::new());
        assert_eq!(
            (r.method().as_str(), r.path(), r.query_string()),
            ("PURGE", "/", "")
        );
        assert_eq!(r.headers().count(), 0);
    }

    #[test]
    fn a_malformed_head_is_read_without_panicking() {
        for head in [
            "",
            "GET",
            "GET ",
            "GET x?y",
            "GET /\r",
            "GET /\ré: x\r\n",
            "\r\n\r\n",
            "GET /a b\r\n",
        ] {
            let r = Request::from_head(head.into(), Vec::new());
            assert!(r.path().starts_with('/'), "{head:?}: {}", r.path());
            let _ = (r.query_string(), r.headers().count(), r.request_id());
        }
        let r = Request::from_head("GET x?y\r\na: b\r\n".into(), Vec::new());
        assert_eq!(
            (r.path(), r.query_string(), r.header("a")),
            ("/x", "y", Some("b"))
        );
    }

    #[test]
    fn a_built_target_stays_on_its_line() {
        let r = Request::new(Method::Get, "/a\r\nx-injected: yes");
        assert_eq!(r.path(), "/a  x-injected: yes");
        assert_eq!(r.headers().count(), 0);
    }

    #[test]
    fn header_lines_split_into_names_and_values() {
        let block = "host: example.org\r\nx-empty: \r\nx-colon: a: b\r\nx-latin: caf\u{fffd}\r\n";
        assert_eq!(
            header_lines(block).collect::<Vec<_>>(),
            [
                ("host", "example.org"),
                ("x-empty", ""),
                ("x-colon", "a: b"),
                ("x-latin", "caf\u{fffd}"),
            ]
        );
        assert_eq!(header_lines("").count(), 0);
        // Anything not a whole line is not a header.
        assert_eq!(header_lines("no-colon\r\ntruncated: x").count(), 0);
    }

    #[test]
    fn the_request_id_is_found_first_or_anywhere() {
        let first = Request::new(Method::Get, "/")
            .with_header("x-request-id", "r-1")
            .with_header("a", "b");
        assert_eq!(first.request_id(), Some("r-1"));
        let later = Request::new(Method::Get, "/")
            .with_header("a", "b")
            .with_header("X-Request-Id", "r-2");
        assert_eq!(later.request_id(), Some("r-2"));
        assert_eq!(
            Request::new(Method::Get, "/").with_header("a", "b").request_id(),
            None
        );
        // Only a whole line counts.
        let cut = Request::from_head("GET /\r\nx-request-id: r-3".into(), Vec::new());
        assert_eq!(cut.request_id(), None);
    }

    #[test]
    fn built_headers_stay_one_per_line() {
        let r = Request::new(Method::Get, "/")
            .with_header("X-A", "1\nx-injected: yes")
            .with_header("x:b", "2");
        assert_eq!(
            r.headers().collect::<Vec<_>>(),
            [("x-a", "1 x-injected: yes"), ("x b", "2")]
        );
        assert_eq!(r.header("x-injected"), None);
    }

    #[test]
    fn query_first_value_wins() {
        let r = Request::new(Method::Get, "/?a=1&a=2&&b%20c=d");
        assert_eq!(r.query("a").as_deref(), Some("1"));
        assert_eq!(r.query("b c").as_deref(), Some("d"));
    }
}
