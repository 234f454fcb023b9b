//! Outbound HTTP requests, over the standard `wasi:http/outgoing-handler`.
//!
//! The server only lets an Element reach the hosts it holds a grant for:
//! its manifest requests `http.outbound:HOST` or `http.outbound:HOST:PORT`
//! (exact names, no wildcards) and the operator approves them. A request
//! anywhere else, or to a name that resolves to a private, loopback or
//! link-local address the operator did not allow, fails with
//! [`HttpError::Denied`] before any connection is made.
//!
//! ```toml
//! # the Element's manifest
//! grants = ["http.outbound:api.example.com"]
//! ```
//!
//! ```no_run
//! use elements_sdk::{http, json, Result};
//!
//! #[derive(serde::Deserialize)]
//! struct Profile { name: String }
//!
//! fn profile(id: u64) -> Result<Profile> {
//!     let res = http::get(&format!("https://api.example.com/users/{id}"))?;
//!     if res.status != 200 {
//!         return Err(elements_sdk::Error::not_found(format!("no user {id}")));
//!     }
//!     Ok(res.json()?)
//! }
//!
//! fn notify() -> Result<()> {
//!     http::post("https://api.example.com/notify")
//!         .header("authorization", "Bearer s3cr3t")
//!         .json(&json!({"text": "hi"}))
//!         .send()?;
//!     Ok(())
//! }
//! ```
//!
//! A request blocks until the whole response body has arrived. Any non-2xx
//! status is still an `Ok` response: check [`ClientResponse::status`].
//! [`HttpError`] converts into the SDK [`Error`] as 502 `UPSTREAM_UNAVAILABLE`
//! (500 for a request the Element built wrong), so `?` works in handlers.
//!
//! Requests call the host, so the examples here are compiled but not run.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::error::Error;
use crate::request::Method;

/// Largest single read from the response body stream.
const READ_CHUNK: u64 = 64 * 1024;
/// Most bytes `blocking-write-and-flush` accepts in one call.
const WRITE_CHUNK: usize = 4096;

/// `GET url`.
///
/// ```no_run
/// let res = elements_sdk::http::get("https://api.example.com/status")?;
/// elements_sdk::info!("upstream says {} {}", res.status, res.text()?);
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn get(url: &str) -> Result<ClientResponse, HttpError> {
    request(Method::Get, url).send()
}

/// Starts a `POST url`.
///
/// ```no_run
/// let res = elements_sdk::http::post("https://api.example.com/items").body("raw").send()?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn post(url: &str) -> ClientRequest {
    request(Method::Post, url)
}

/// Starts a request with any method.
///
/// ```no_run
/// use elements_sdk::{http, Method};
///
/// let res = http::request(Method::Delete, "https://api.example.com/items/7").send()?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn request(method: Method, url: &str) -> ClientRequest {
    ClientRequest {
        method,
        url: url.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout: None,
    }
}

/// An outbound request being built; [`send`](ClientRequest::send) sends it.
///
/// ```
/// use elements_sdk::{http, json};
///
/// let req = http::post("https://api.example.com/items").json(&json!({"a": 1}));
/// assert_eq!(req.body_bytes(), br#"{"a":1}"#);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until `send`"]
pub struct ClientRequest {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

impl ClientRequest {
    /// Adds a header.
    ///
    /// ```
    /// let req = elements_sdk::http::post("https://x.io/").header("x-api-key", "k");
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> ClientRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    ///
    /// ```
    /// let req = elements_sdk::http::post("https://x.io/").body("hello");
    /// assert_eq!(req.body_bytes(), b"hello");
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> ClientRequest {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, and `content-type: application/json`.
    /// A value that can't be serialized leaves the body empty.
    ///
    /// ```
    /// let req = elements_sdk::http::post("https://x.io/").json(&[1, 2]);
    /// assert_eq!(req.body_bytes(), b"[1,2]");
    /// ```
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> ClientRequest {
        self.body = serde_json::to_vec(value).unwrap_or_default();
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        self.headers
            .push(("content-type".into(), "application/json".into()));
        self
    }

    /// Gives up connecting, or waiting for the response to start, after
    /// `timeout`. (The Element's own request deadline applies in any case.)
    ///
    /// ```
    /// let req = elements_sdk::http::post("https://x.io/").timeout(std::time::Duration::from_secs(2));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> ClientRequest {
        self.timeout = Some(timeout);
        self
    }

    /// The body set so far.
    ///
    /// ```
    /// assert!(elements_sdk::http::post("https://x.io/").body_bytes().is_empty());
    /// ```
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Sends the request and reads the whole response.
    ///
    /// ```no_run
    /// let res = elements_sdk::http::post("https://api.example.com/x").body("1").send()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn send(self) -> Result<ClientResponse, HttpError> {
        let url = Url::parse(&self.url)?;
        // wasi:http's generated imports abort a native test binary.
        if cfg!(not(target_arch = "wasm32")) {
            return Err(HttpError::Failed(format!(
                "{}: {}",
                url.authority,
                crate::OUTSIDE_RUNTIME
            )));
        }

        let entries: Vec<(String, Vec<u8>)> = self
            .headers
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.into_bytes()))
            .collect();
        let headers = Fields::from_list(&entries)
            .map_err(|e| HttpError::InvalidRequest(format!("invalid or forbidden header: {e:?}")))?;
        let request = OutgoingRequest::new(headers);
        request
            .set_method(&wasi_method(&self.method))
            .map_err(|()| HttpError::InvalidRequest(format!("invalid method {}", self.method)))?;
        let scheme = if url.https { Scheme::Https } else { Scheme::Http };
        let _ = request.set_scheme(Some(&scheme));
        request
            .set_authority(Some(url.authority))
            .map_err(|()| HttpError::InvalidRequest(format!("invalid host in {}", self.url)))?;
        request
            .set_path_with_query(Some(&url.path_with_query))
            .map_err(|()| HttpError::InvalidRequest(format!("invalid path in {}", self.url)))?;
        let body = request.body().expect("outgoing request body is taken once");

        let options = self.timeout.map(|t| {
            let options = RequestOptions::new();
            let nanos = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            options
        });
        let future = outgoing_handler::handle(request, options).map_err(|e| HttpError::from_code(e, &url))?;

        // Send the body after handing the request over, so that a body larger
        // than the host's buffer can't block before anyone reads it.
        if !self.body.is_empty() {
            let stream = body.write().expect("outgoing body stream is taken once");
            for chunk in self.body.chunks(WRITE_CHUNK) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    // The request failed; the future says why.
                    break;
                }
            }
            drop(stream);
        }
        let _ = OutgoingBody::finish(body, None);

        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(HttpError::from_code(code, &url)),
            Some(Err(())) | None => return Err(HttpError::Failed("no response from the host".into())),
        };
        drop(future);
        read_response(response)
    }
}

fn read_response(response: IncomingResponse) -> Result<ClientResponse, HttpError> {
    let status = response.status();
    let fields = response.headers();
    let headers = fields
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    drop(fields);

    let mut body = Vec::new();
    let incoming = response
        .consume()
        .map_err(|()| HttpError::Failed("the response body was already taken".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Failed("the response body was already taken".into()))?;
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Failed(format!(
                    "reading the response body failed: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    // The stream is a child of the body: drop it first.
    drop(stream);
    drop(IncomingBody::finish(incoming));
    drop(response);
    Ok(ClientResponse {
        status,
        headers,
        body,
    })
}

fn wasi_method(method: &Method) -> WasiMethod {
    match method {
        Method::Get => WasiMethod::Get,
        Method::Head => WasiMethod::Head,
        Method::Post => WasiMethod::Post,
        Method::Put => WasiMethod::Put,
        Method::Delete => WasiMethod::Delete,
        Method::Connect => WasiMethod::Connect,
        Method::Options => WasiMethod::Options,
        Method::Trace => WasiMethod::Trace,
        Method::Patch => WasiMethod::Patch,
        Method::Other(m) => WasiMethod::Other(m.clone()),
    }
}

/// A URL split the way `wasi:http` wants it.
#[derive(Debug, PartialEq, Eq)]
struct Url<'a> {
    https: bool,
    authority: &'a str,
    path_with_query: String,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Url<'a>, HttpError> {
        let invalid = || HttpError::InvalidRequest(format!("{url:?} is not an http:// or https:// URL"));
        let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(invalid());
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_with_query) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid());
        }
        let path_with_query = if path_with_query.starts_with('/') {
            path_with_query.to_owned()
        } else {
            format!("/{path_with_query}")
        };
        Ok(Url {
            https,
            authority,
            path_with_query,
        })
    }
}

/// A response to an outbound request, with its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercase; values that were not UTF-8 converted
    /// lossily.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// Whether the status is 2xx.
    ///
    /// ```
    /// let res = elements_sdk::http::ClientResponse { status: 204, headers: vec![], body: vec![] };
    /// assert!(res.is_success());
    /// ```
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name`, compared case-insensitively.
    ///
    /// ```
    /// let res = elements_sdk::http::ClientResponse {
    ///     status: 200,
    ///     headers: vec![("content-type".into(), "text/plain".into())],
    ///     body: vec![],
    /// };
    /// assert_eq!(res.header("Content-Type"), Some("text/plain"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text; invalid UTF-8 is [`HttpError::InvalidResponse`].
    ///
    /// ```
    /// let res = elements_sdk::http::ClientResponse { status: 200, headers: vec![], body: b"hi".to_vec() };
    /// assert_eq!(res.text().unwrap(), "hi");
    /// ```
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body)
            .map_err(|e| HttpError::InvalidResponse(format!("the response body is not UTF-8: {e}")))
    }

    /// The body parsed as JSON into `T`; a body that does not parse or fit
    /// is [`HttpError::InvalidResponse`].
    ///
    /// ```
    /// let res = elements_sdk::http::ClientResponse { status: 200, headers: vec![], body: br#"{"n":1}"#.to_vec() };
    /// let v: serde_json::Value = res.json().unwrap();
    /// assert_eq!(v["n"], 1);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            HttpError::InvalidResponse(format!("the response body is not the expected JSON: {e}"))
        })
    }
}

/// Why an outbound request failed.
///
/// ```
/// use elements_sdk::{Error, http::HttpError};
///
/// let e = Error::from(HttpError::Denied("evil.example.com".into()));
/// assert_eq!((e.status(), e.code()), (502, "UPSTREAM_UNAVAILABLE"));
/// assert!(e.message().contains("evil.example.com"));
/// assert_eq!(Error::from(HttpError::InvalidRequest("bad URL".into())).status(), 500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The destination (the host named here) is not one the Element holds an
    /// `http.outbound:` grant for, or resolves to an address the operator
    /// does not allow.
    Denied(String),
    /// The request could not be made or got no response: DNS, connection
    /// refused, TLS, timeout, a broken response, ...
    Failed(String),
    /// The response arrived but its body is not what the caller expected
    /// (not UTF-8, not the expected JSON).
    InvalidResponse(String),
    /// The Element built an invalid request: a bad URL, method or header.
    InvalidRequest(String),
}

impl HttpError {
    fn from_code(code: ErrorCode, url: &Url<'_>) -> HttpError {
        match code {
            ErrorCode::HttpRequestDenied => HttpError::Denied(url.authority.to_owned()),
            ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
                HttpError::InvalidRequest(format!("{code:?}"))
            }
            ErrorCode::InternalError(Some(m)) => HttpError::Failed(format!("{}: {m}", url.authority)),
            code => HttpError::Failed(format!("{}: {code:?}", url.authority)),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(host) => write!(
                f,
                "outbound HTTP to {host} is not allowed (no http.outbound grant for it, or a private address)"
            ),
            HttpError::Failed(m) => write!(f, "outbound HTTP failed: {m}"),
            HttpError::InvalidResponse(m) => write!(f, "unexpected upstream response: {m}"),
            HttpError::InvalidRequest(m) => write!(f, "invalid outbound request: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// [`HttpError::InvalidRequest`] is 500 `INTERNAL` (the Element's mistake);
/// everything else is 502 `UPSTREAM_UNAVAILABLE`.
impl From<HttpError> for Error {
    fn from(e: HttpError) -> Error {
        match e {
            HttpError::InvalidRequest(_) => Error::internal(e.to_string()),
            _ => Error::new(502, "UPSTREAM_UNAVAILABLE", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://api.example.com/users/7?full=1#top").unwrap();
        assert_eq!(
            u,
            Url {
                https: true,
                authority: "api.example.com",
                path_with_query: "/users/7?full=1".into()
            }
        );
        let u = Url::parse("HTTP://127.0.0.1:8089").unwrap();
        assert_eq!(
            (u.https, u.authority, &*u.path_with_query),
            (false, "127.0.0.1:8089", "/")
        );
        let u = Url::parse("http://h?x=1").unwrap();
        assert_eq!((u.authority, &*u.path_with_query), ("h", "/?x=1"));
        for bad in ["ftp://x/", "example.com/a", "http:///a", "http://user@h/"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
