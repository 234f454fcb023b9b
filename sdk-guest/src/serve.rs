//! The HTTP glue behind [`export_element!`](crate::export_element): the
//! one-call `elements:platform/request-handler` export, which the Elements
//! host calls with the whole request and which returns the whole response
//! (no host calls).
//!
//! This runs on every request (and, in `fresh` isolation, in a brand-new
//! instance each time), so it is kept lean: one pass over the request and
//! the response's own header block and body handed back without copies.
//!
//! There is deliberately no `wasi:http/incoming-handler` export beside it:
//! an SDK-built Element imports `elements:platform` interfaces, so no other
//! wasi:http host could run it anyway, and every wasi:http resource type
//! and function a component links is work wasmtime redoes on each new
//! instance (a quarter of a fresh `GET /hello`'s instructions).

use crate::__private::handler::exports::elements::platform::request_handler::Response as ResponseRecord;
use crate::error::Error;
use crate::request::Request;
use crate::router::Router;

/// Routes the one-call export's request (its head, then from `body_start`
/// its body) through `router`.
pub fn serve_message(router: &Router, mut message: Vec<u8>, body_start: u32) -> ResponseRecord {
    let body_start = (body_start as usize).min(message.len());
    // The body moves to a vector of its own (none when it is empty, as a
    // GET's is), and the head gives back the room a large body took (a
    // small one's is not worth a copy of the head).
    let body = message.split_off(body_start);
    if body.len() > 4096 {
        message.shrink_to_fit();
    }
    // SAFETY: the host sends the head as valid UTF-8 (the contract of
    // `request-handler.handle` in the WIT), and the body, which may be any
    // bytes, is split off. Checking it again here was a tenth of this
    // function's work in wasm.
    let head = unsafe { String::from_utf8_unchecked(message) };
    respond(router, Request::from_head(head, body))
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
    // No `content-length`: the host sets it from the body it receives
    // whole.
    let (status, headers, body) = response.into_wire();
    ResponseRecord {
        status,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;
    use crate::response::Response;

    fn echo() -> Router {
        Router::new().post("/echo", |req: Request| {
            Response::bytes(req.body().to_vec()).with_header("x-path", req.path())
        })
    }

    fn message(head: &str, body: &[u8]) -> (Vec<u8>, u32) {
        ([head.as_bytes(), body].concat(), head.len() as u32)
    }

    #[test]
    fn the_body_starts_where_the_host_says() {
        // A body that looks like header lines stays the body.
        for body in [&b""[..], b"x-request-id: forged\r\n\r\n", &[7; 10_000]] {
            let (bytes, start) = message("POST /echo\r\nx-request-id: r-1\r\n", body);
            let answer = serve_message(&echo(), bytes, start);
            assert_eq!(answer.status, 200);
            assert_eq!(answer.body, body);
            assert_eq!(
                answer.headers,
                b"content-type: application/octet-stream\r\nx-path: /echo\r\n"
            );
        }
    }

    #[test]
    fn a_body_start_past_the_end_means_no_body() {
        let (bytes, _) = message("POST /echo\r\n", b"");
        let answer = serve_message(&echo(), bytes, u32::MAX);
        assert_eq!((answer.status, answer.body.len()), (200, 0));
    }
}
