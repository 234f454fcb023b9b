//! The one-call HTTP export, `elements:platform/request-handler`: the
//! request goes in as one record and the response comes back as one, where
//! `wasi:http/incoming-handler` takes a dozen resource calls (fields, bodies,
//! streams, the response out-parameter) for the same exchange. Measured on
//! the hello Element, those calls were most of the per-request cost of an
//! instance (see docs/performance-history.md). Elements built with elements-sdk
//! export only this one; the host prefers it when a component exports both,
//! and serves every other component through wasi:http.
//!
//! The guest's answer is checked as wasmtime-wasi-http checks a wasi:http
//! response: the status must be one `http` accepts, header names and values
//! HTTP does not allow are dropped, the body must fit the Element's limit.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use wasmtime::component::InstancePre;

use super::invoke::InvokeError;
use super::shape;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "elements:platform/request-host",
    exports: { default: async },
});

pub use RequestHost as RequestHostBindings;
pub use RequestHostPre as RequestHostBindingsPre;
use exports::elements::platform::request_handler::{Request as RequestRecord, Response as ResponseRecord};

use crate::instance::REQUEST_ID;

/// The export's interface, named without its version.
pub const INTERFACE: &str = "elements:platform/request-handler";

/// Checks, at deploy, that the component's `request-handler` export has the
/// shape this server calls (see [`super::shape`]).
pub fn check_shape<T>(pre: &InstancePre<T>) -> Result<(), String> {
    shape::check_func::<(RequestRecord,), (ResponseRecord,), T>(pre, INTERFACE, "handle")
}

/// The record for `request`, whose path is already the Element's own.
pub fn to_record(request: http::Request<Bytes>) -> RequestRecord {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let size = method.len()
        + target.len()
        + 3
        + parts
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    let mut head = Vec::with_capacity(size);
    // `http` admits no space, CR, LF or NUL in a method or a URI, and no
    // CR, LF or NUL in a header name or value: the lines can't be forged.
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b"\r\n");
    // The server's request id goes first, where the SDK finds it without
    // reading the other lines (it names the request in every error body).
    let request_id = parts.headers.get(&REQUEST_ID);
    if let Some(id) = request_id {
        head.extend_from_slice(b"x-request-id: ");
        head.extend_from_slice(id.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        if request_id.is_some() && *name == REQUEST_ID {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    RequestRecord {
        head,
        body: body.into(),
    }
}

/// The guest's response, checked. Headers that HTTP does not allow are
/// dropped, with a line for the Element's log each, naming the header but
/// never showing its value (it may be a secret).
pub fn from_record(
    record: ResponseRecord,
    max_body: usize,
) -> Result<(http::Response<Bytes>, Vec<String>), InvokeError> {
    let status = StatusCode::from_u16(record.status)
        .map_err(|_| InvokeError::BadResponse(format!("invalid status {}", record.status)))?;
    if record.body.len() > max_body {
        return Err(InvokeError::ResponseTooLarge(max_body));
    }
    let mut response = http::Response::new(Bytes::from(record.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    // Room for the headers the server adds on the way out too (length,
    // request id...): growing a `HeaderMap` rehashes it.
    headers.reserve(record.headers.len() + 4);
    let mut dropped = Vec::new();
    for (name, value) in record.headers {
        // The length is the body's, which is here whole; an Element's own
        // could only be wrong (older SDK builds sent it too).
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            (Ok(name), Err(_)) => dropped.push(format!(
                "dropped the response header {name}: its value is not valid in HTTP"
            )),
            (Err(_), _) => {
                dropped.push("dropped a response header: its name is not valid in HTTP".to_owned())
            }
        }
    }
    Ok((response, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: u16, headers: Vec<(&str, &[u8])>, body: &[u8]) -> ResponseRecord {
        ResponseRecord {
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_vec()))
                .collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn requests_carry_method_path_headers_and_body() {
        let request = http::Request::post("http://localhost/echo?x=1")
            .header("x-one", "1")
            .header("x-many", "a")
            .header("x-many", "b")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let record = to_record(request);
        assert_eq!(
            String::from_utf8(record.head).unwrap(),
            "POST /echo?x=1\r\nx-one: 1\r\nx-many: a\r\nx-many: b\r\n"
        );
        assert_eq!(record.body, b"{}");
        let empty = to_record(http::Request::new(Bytes::new()));
        assert_eq!(empty.head, b"GET /\r\n");
        assert!(empty.body.is_empty());
    }

    #[test]
    fn the_request_id_comes_first_and_once() {
        let request = http::Request::get("http://localhost/")
            .header("host", "h")
            .header("x-request-id", "r-1")
            .header("accept", "*/*")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(
            to_record(request).head,
            b"GET /\r\nx-request-id: r-1\r\nhost: h\r\naccept: */*\r\n"
        );
    }

    #[test]
    fn the_elements_content_length_is_ignored() {
        let (response, dropped) = from_record(
            record(
                200,
                vec![("Content-Length", b"999"), ("content-length", b"2"), ("x", b"y")],
                b"hi",
            ),
            10,
        )
        .unwrap();
        assert!(dropped.is_empty());
        assert_eq!(response.headers().len(), 1);
        assert_eq!(response.headers()["x"], "y");
    }

    #[test]
    fn a_good_response_keeps_everything_in_order() {
        let (response, dropped) = from_record(
            record(
                201,
                vec![("set-cookie", b"a=1"), ("Set-Cookie", b"b=2"), ("x-y", b"z")],
                b"hi",
            ),
            10,
        )
        .unwrap();
        assert!(dropped.is_empty());
        assert_eq!(response.status(), 201);
        assert_eq!(response.body().as_ref(), b"hi");
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }

    #[test]
    fn statuses_http_refuses_fail_the_request() {
        for status in [0, 99, 1000, u16::MAX] {
            let err = from_record(record(status, vec![], b""), 10).unwrap_err();
            assert!(
                matches!(&err, InvokeError::BadResponse(m) if m.contains(&status.to_string())),
                "{status}: {err}"
            );
        }
    }

    #[test]
    fn bad_headers_are_dropped_and_named_without_their_values() {
        let (response, dropped) = from_record(
            record(
                200,
                vec![
                    ("bad name", b"v"),
                    ("", b"v"),
                    ("x-secret", b"line\nbreak-secret"),
                    ("x-ok", b"fine"),
                ],
                b"",
            ),
            10,
        )
        .unwrap();
        assert_eq!(response.headers().len(), 1);
        assert_eq!(response.headers()["x-ok"], "fine");
        assert_eq!(dropped.len(), 3);
        assert_eq!(
            dropped[2],
            "dropped the response header x-secret: its value is not valid in HTTP"
        );
        assert!(!dropped.join(" ").contains("break"));
    }

    #[test]
    fn bodies_over_the_limit_fail_the_request() {
        assert!(from_record(record(200, vec![], &[0; 10]), 10).is_ok());
        assert!(matches!(
            from_record(record(200, vec![], &[0; 11]), 10),
            Err(InvokeError::ResponseTooLarge(10))
        ));
    }
}
