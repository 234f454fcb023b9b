//! Test fixture: an Element with only the standard
//! `wasi:http/incoming-handler` export (no SDK). `GET /hello` answers a
//! fixed JSON body with a header; any `POST` echoes its body, method, path
//! and query back, and every answer names the request's authority.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Handler;

impl Guest for Handler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let authority = request.authority().unwrap_or_default();
        let post = matches!(request.method(), Method::Post);
        let mut body = Vec::new();
        if post {
            let incoming = request.consume().expect("body");
            let stream = incoming.stream().expect("stream");
            while let Ok(chunk) = stream.blocking_read(1 << 16) {
                body.extend_from_slice(&chunk);
            }
            drop(stream);
            drop(incoming);
        }
        let (status, body, extra) = match (post, target.as_str()) {
            (false, "/hello") => (
                200,
                br#"{"message":"Hello over plain wasi:http"}"#.to_vec(),
                "plain",
            ),
            (true, _) => (200, body, "echo"),
            _ => (
                404,
                br#"{"code":"NOT_FOUND","message":"no such route"}"#.to_vec(),
                "none",
            ),
        };
        let headers = Fields::from_list(&[
            ("content-type".to_owned(), b"application/json".to_vec()),
            ("x-served-by".to_owned(), extra.as_bytes().to_vec()),
            ("x-target".to_owned(), target.into_bytes()),
            ("x-authority".to_owned(), authority.into_bytes()),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(status).expect("status");
        let out = response.body().expect("body");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = out.write().expect("stream");
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).expect("write");
        }
        drop(stream);
        OutgoingBody::finish(out, None).expect("finish");
    }
}

wasip2::http::proxy::export!(Handler with_types_in wasip2);
