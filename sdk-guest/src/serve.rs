//! The HTTP glue behind [`export_element!`](crate::export_element): the
//! one-call `elements:platform/request-handler` export, which the Elements
//! host calls (the request and response as two records, no host calls), and
//! `wasi:http/incoming-handler`, which any wasi:http host can call. Both
//! answer the same: they share the router and the response checks.
//!
//! This runs on every request (and, in `fresh` isolation, in a brand-new
//! instance each time), so it is kept lean: one pass over the request, the
//! body read in as few host calls as possible, and the response written in
//! 4096-byte chunks (the most `blocking-write-and-flush` accepts per call).

use wasip2::http::types::{
    Fields, IncomingRequest, Method as WasiMethod, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

use crate::__private::handler::exports::elements::platform::request_handler::{
    Request as RequestRecord, Response as ResponseRecord,
};
use crate::error::Error;
use crate::request::{Method, Request};
use crate::router::Router;

/// Largest single read from the request body stream. The host has the body
/// buffered already; big reads just mean fewer calls.
const READ_CHUNK: u64 = 1 << 20;
/// Most bytes `blocking-write-and-flush` accepts in one call.
const WRITE_CHUNK: usize = 4096;

/// Reads `request`, routes it through `router` and writes the response to
/// `response_out`.
pub fn serve(router: &Router, request: IncomingRequest, response_out: ResponseOutparam) {
    let request = read_request(request);
    let (status, entries, body) = respond(router, request);
    write_response(status, entries, body, response_out);
}

/// Routes the one-call export's `request` through `router`.
pub fn serve_record(router: &Router, request: RequestRecord) -> ResponseRecord {
    let request = Request::from_parts(
        Method::from(request.method.as_str()),
        request.path_with_query,
        text(request.headers),
        request.body,
    );
    let (status, headers, body) = respond(router, request);
    ResponseRecord {
        status,
        headers,
        body,
    }
}

/// Bytes as the SDK's text, lossily if they aren't UTF-8 (without copying
/// when they are).
fn text(value: Vec<u8>) -> String {
    String::from_utf8(value).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The router's response to `request`: its status (a 500 in place of one
/// outside 100-999), its headers with the body's exact length, and its body.
fn respond(router: &Router, request: Request) -> (u16, Vec<(String, Vec<u8>)>, Vec<u8>) {
    let response = router.handle(request);
    let response = if (100..=999).contains(&response.status()) {
        response
    } else {
        Error::internal(format!("handler returned invalid status {}", response.status())).to_response()
    };
    let (status, headers, body) = response.into_parts();

    // Collected in place: the pairs have the same layout, so the response's
    // own vector is reused.
    let mut entries: Vec<(String, Vec<u8>)> = headers
        .into_iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    // The length is known exactly, so say it: the host need not chunk.
    if !(status < 200 || status == 204 || status == 304) {
        entries.push(("content-length".to_owned(), body.len().to_string().into_bytes()));
    }
    (status, entries, body)
}

fn read_request(request: IncomingRequest) -> Request {
    let method = match request.method() {
        WasiMethod::Get => Method::Get,
        WasiMethod::Head => Method::Head,
        WasiMethod::Post => Method::Post,
        WasiMethod::Put => Method::Put,
        WasiMethod::Delete => Method::Delete,
        WasiMethod::Connect => Method::Connect,
        WasiMethod::Options => Method::Options,
        WasiMethod::Trace => Method::Trace,
        WasiMethod::Patch => Method::Patch,
        WasiMethod::Other(m) => Method::Other(m),
    };
    let target = request.path_with_query().unwrap_or_default();

    let fields = request.headers();
    let mut block = Vec::new();
    let mut empty = false;
    for (name, value) in fields.entries() {
        // Names come lowercase; line breaks can't be in either (wasi:http
        // refuses them), so each pair is one line.
        empty |= name.eq_ignore_ascii_case("content-length") && value.trim_ascii() == b"0";
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(&value);
        block.extend_from_slice(b"\r\n");
    }
    drop(fields);
    let headers = text(block);

    let mut body = Vec::new();
    // The Elements host buffers every request and states its exact length,
    // so an empty body needs no stream at all (five host calls saved on
    // every GET). Without the header (another host), read the stream.
    if empty {
        drop(request);
        return Request::from_parts(method, target, headers, body);
    }
    if let Ok(incoming) = request.consume() {
        if let Ok(stream) = incoming.stream() {
            // Stops at `closed` (end of body) or a failed read.
            while let Ok(chunk) = stream.blocking_read(READ_CHUNK) {
                if body.is_empty() {
                    body = chunk;
                } else {
                    body.extend_from_slice(&chunk);
                }
            }
            // The stream is a child of the body: drop it first.
            drop(stream);
        }
        drop(incoming);
    }
    drop(request);

    Request::from_parts(method, target, headers, body)
}

fn write_response(
    status: u16,
    entries: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    response_out: ResponseOutparam,
) {
    let fields = Fields::from_list(&entries).unwrap_or_else(|_| {
        // Some header is invalid or forbidden: keep the ones that are fine.
        let fields = Fields::new();
        for (name, value) in &entries {
            let _ = fields.append(name, value);
        }
        fields
    });

    let outgoing = OutgoingResponse::new(fields);
    // A new response is 200 already: one host call fewer for most answers.
    if status != 200 {
        let _ = outgoing.set_status_code(status);
    }
    let out_body = outgoing.body().expect("outgoing response body is taken once");
    ResponseOutparam::set(response_out, Ok(outgoing));

    if !body.is_empty() {
        let stream = out_body.write().expect("outgoing body stream is taken once");
        for chunk in body.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The client went away; nothing more to do.
                break;
            }
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(out_body, None);
}
