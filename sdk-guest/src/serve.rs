//! The HTTP glue behind [`export_element!`](crate::export_element): the
//! one-call `elements:platform/request-handler` export, which the Elements
//! host calls with the whole request and which returns the whole response
//! (no host calls).
//!
//! This runs on every request (and, in `fresh` isolation, in a brand-new
//! instance each time), so it is kept lean: one pass over the request and
//! the response's own vectors handed back without copies.
//!
//! There is deliberately no `wasi:http/incoming-handler` export beside it:
//! an SDK-built Element imports `elements:platform` interfaces, so no other
//! wasi:http host could run it anyway, and every wasi:http resource type
//! and function a component links is work wasmtime redoes on each new
//! instance (a quarter of a fresh `GET /hello`'s instructions).

use crate::__private::handler::exports::elements::platform::request_handler::{
    Request as RequestRecord, Response as ResponseRecord,
};
use crate::error::Error;
use crate::request::Request;
use crate::router::Router;

/// Routes the one-call export's `request` through `router`.
pub fn serve_record(router: &Router, request: RequestRecord) -> ResponseRecord {
    respond(router, Request::from_head(text(request.head), request.body))
}

/// Bytes as the SDK's text, lossily if they aren't UTF-8 (without copying
/// when they are).
fn text(value: Vec<u8>) -> String {
    String::from_utf8(value).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The router's response to `request`: its status (a 500 in place of one
/// outside 100-999), its headers and its body.
fn respond(router: &Router, request: Request) -> ResponseRecord {
    let response = router.handle(request);
    let response = if (100..=999).contains(&response.status()) {
        response
    } else {
        Error::internal(format!("handler returned invalid status {}", response.status())).to_response()
    };
    let (status, headers, body) = response.into_parts();

    // Collected in place: the pairs have the same layout, so the response's
    // own vector is reused. No `content-length`: the host sets it from the
    // body it receives whole.
    let headers: Vec<(String, Vec<u8>)> = headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    ResponseRecord {
        status,
        headers,
        body,
    }
}
