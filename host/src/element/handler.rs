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
use exports::elements::platform::request_handler::Response as ResponseRecord;

use crate::instance::REQUEST_ID;

/// The export's interface, named without its version.
pub const INTERFACE: &str = "elements:platform/request-handler";

/// Checks, at deploy, that the component's `request-handler` export has the
/// shape this server calls (see [`super::shape`]).
pub fn check_shape<T>(pre: &InstancePre<T>) -> Result<(), String> {
    shape::check_func::<(Vec<u8>, u32), (ResponseRecord,), T>(pre, INTERFACE, "handle")
}

/// One request as the export takes it: its head and body in one list, and
/// where the body starts. The request's path is already the Element's own.
pub fn to_message(request: http::Request<Bytes>) -> (Vec<u8>, u32) {
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
            .sum::<usize>()
        + body.len();
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
    // The head goes as valid UTF-8, so the SDK takes it as text without
    // checking it again (in wasm, about as slow as a tenth of the rest of
    // its work). A header value may hold other bytes (obs-text): as the SDK
    // did, they become U+FFFD, here natively.
    if std::str::from_utf8(&head).is_err() {
        head = String::from_utf8_lossy(&head).into_owned().into_bytes();
        head.reserve(body.len());
    }
    // The Element's body limit, far below 4 GiB, bounds the head too (the
    // server's header limits are kilobytes); saturating keeps a bad limit
    // from wrapping into the body.
    let body_start = u32::try_from(head.len()).unwrap_or(u32::MAX);
    head.extend_from_slice(&body);
    (head, body_start)
}

/// The most header lines a response may carry, in bytes (HTTP servers
/// commonly refuse requests with more than 8 to 64 KiB of them; clients
/// are no more generous).
pub const MAX_HEADER_BYTES: usize = 64 << 10;

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
    if record.headers.len() > MAX_HEADER_BYTES {
        return Err(InvokeError::BadResponse(format!(
            "more than {} KiB of headers",
            MAX_HEADER_BYTES >> 10
        )));
    }
    let mut response = http::Response::new(Bytes::from(record.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    // Room for the headers the server adds on the way out too (length,
    // request id...): growing a `HeaderMap` rehashes it. (A guess from the
    // block's size: counting its lines would be a pass of its own.)
    headers.reserve(4 + record.headers.len() / 24);
    let mut dropped = Vec::new();
    let mut rest = record.headers.as_slice();
    while !rest.is_empty() {
        let line;
        (line, rest) = match memchr::memchr(b'\n', rest) {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            dropped.push("dropped a response header line: it has no ':'".to_owned());
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        // The length is the body's, which is here whole; an Element's own
        // could only be wrong (older SDK builds sent it too).
        if name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            (Ok(name), Ok(value)) => {
                if headers.try_append(name, value).is_err() {
                    return Err(InvokeError::BadResponse("more headers than HTTP allows".into()));
                }
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

    fn record(status: u16, headers: &[u8], body: &[u8]) -> ResponseRecord {
        ResponseRecord {
            status,
            headers: headers.to_vec(),
            body: body.to_vec(),
        }
    }

    /// The head and the body of a message, as text.
    fn split(message: (Vec<u8>, u32)) -> (String, Vec<u8>) {
        let (mut head, body_start) = message;
        let body = head.split_off(body_start as usize);
        (String::from_utf8(head).unwrap(), body)
    }

    #[test]
    fn requests_carry_method_path_headers_and_body() {
        let request = http::Request::post("http://localhost/echo?x=1")
            .header("x-one", "1")
            .header("x-many", "a")
            .header("x-many", "b")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let (head, body) = split(to_message(request));
        assert_eq!(head, "POST /echo?x=1\r\nx-one: 1\r\nx-many: a\r\nx-many: b\r\n");
        assert_eq!(body, b"{}");
        let (head, body) = split(to_message(http::Request::new(Bytes::new())));
        assert_eq!(head, "GET /\r\n");
        assert!(body.is_empty());
    }

    #[test]
    fn a_body_that_looks_like_headers_stays_the_body() {
        let request = http::Request::post("http://localhost/")
            .body(Bytes::from_static(b"x-request-id: forged\r\n\r\n"))
            .unwrap();
        let (head, body) = split(to_message(request));
        assert_eq!(head, "POST /\r\n");
        assert_eq!(body, b"x-request-id: forged\r\n\r\n");
    }

    #[test]
    fn the_head_is_utf_8_whatever_the_header_bytes() {
        let request = http::Request::post("http://localhost/")
            .header("x-a", http::HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .body(Bytes::from_static(b"\xff\xfe"))
            .unwrap();
        let (head, body) = split(to_message(request));
        assert_eq!(head, "POST /\r\nx-a: caf\u{fffd}\r\n");
        // The body is passed as it came.
        assert_eq!(body, b"\xff\xfe");
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
            split(to_message(request)).0,
            "GET /\r\nx-request-id: r-1\r\nhost: h\r\naccept: */*\r\n"
        );
    }

    #[test]
    fn the_elements_content_length_is_ignored() {
        let (response, dropped) = from_record(
            record(
                200,
                b"Content-Length: 999\r\ncontent-length: 2\r\nx: y\r\n",
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
            record(201, b"set-cookie: a=1\r\nSet-Cookie: b=2\r\nx-y: z\r\n", b"hi"),
            10,
        )
        .unwrap();
        assert!(dropped.is_empty());
        assert_eq!(response.status(), 201);
        assert_eq!(response.body().as_ref(), b"hi");
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(response.headers()["x-y"], "z");
    }

    #[test]
    fn lines_are_read_as_http_1_1_reads_them() {
        // LF alone ends a line too; the last needs no line end; the
        // spaces and tabs around a value are not part of it; empty lines
        // are skipped.
        let (response, dropped) = from_record(record(200, b"a:1\nb: \t2 \r\n\r\n\nc:3", b""), 10).unwrap();
        assert!(dropped.is_empty(), "{dropped:?}");
        let headers = response.headers();
        assert_eq!(
            (&headers["a"], &headers["b"], &headers["c"]),
            (
                &"1".parse().unwrap(),
                &"2".parse().unwrap(),
                &"3".parse().unwrap()
            )
        );
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn statuses_http_refuses_fail_the_request() {
        for status in [0, 99, 1000, u16::MAX] {
            let err = from_record(record(status, b"", b""), 10).unwrap_err();
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
                b"bad name: v\r\n: v\r\nx-secret: line\0break-secret\r\nno colon secret\r\n\xff: v\r\nx-ok: fine\r\n",
                b"",
            ),
            10,
        )
        .unwrap();
        assert_eq!(response.headers().len(), 1);
        assert_eq!(response.headers()["x-ok"], "fine");
        assert_eq!(dropped.len(), 5, "{dropped:?}");
        assert_eq!(
            dropped[2],
            "dropped the response header x-secret: its value is not valid in HTTP"
        );
        assert_eq!(dropped[3], "dropped a response header line: it has no ':'");
        assert!(!dropped.join(" ").contains("secret-") && !dropped.join(" ").contains("colon"));
    }

    #[test]
    fn header_blocks_over_the_limit_fail_the_request() {
        let line = b"x-a: 0123456789abcdef\r\n";
        let fits: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(MAX_HEADER_BYTES / line.len() * line.len())
            .collect();
        let (response, _) = from_record(record(200, &fits, b""), 10).unwrap();
        assert_eq!(
            response.headers().get_all("x-a").iter().count(),
            MAX_HEADER_BYTES / line.len()
        );
        let over = [fits.as_slice(), line].concat();
        assert!(matches!(
            from_record(record(200, &over, b""), 10),
            Err(InvokeError::BadResponse(m)) if m.contains("64 KiB")
        ));
    }

    #[test]
    fn bodies_over_the_limit_fail_the_request() {
        assert!(from_record(record(200, b"", &[0; 10]), 10).is_ok());
        assert!(matches!(
            from_record(record(200, b"", &[0; 11]), 10),
            Err(InvokeError::ResponseTooLarge(10))
        ));
    }
}
