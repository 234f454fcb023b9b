//! HTTP requests to a running server, read the way the tests read them: the
//! status and the JSON body (an empty body reads as `null`), and where a test
//! needs it the `Retry-After` header.

use serde_json::Value;

use super::Server;

/// The Nakama server key a client sends as the Basic user where the `/v2` API
/// asks for it (the server's default `--server-key`).
pub const SERVER_KEY: &str = "defaultkey";

/// A response's status, `Retry-After` (whole seconds) and JSON body.
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

/// One JSON request to `server`'s public listener: `(status, body)`. Sends
/// `bearer` as the Bearer credential; on the Nakama authentication paths
/// (`/v2/account/authenticate/…`, `/v2/account/session/…`) without a
/// bearer, sends the server key as a Nakama client does.
pub async fn request(
    server: &Server,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let reply = request_full(server, method, path, bearer, body).await;
    (reply.status, reply.body)
}

/// [`request`], with the `Retry-After` header.
pub async fn request_full(
    server: &Server,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = server.client.request(parse_method(method), server.url(path));
    if bearer.is_none()
        && (path.starts_with("/v2/account/authenticate") || path.starts_with("/v2/account/session"))
    {
        req = req.basic_auth(SERVER_KEY, Some(""));
    }
    send(req, bearer, body).await
}

/// One JSON request to `server`'s admin listener: `(status, body)`.
pub async fn admin_request(
    server: &Server,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let req = server
        .client
        .request(parse_method(method), server.admin_url(path));
    let reply = send(req, bearer, body).await;
    (reply.status, reply.body)
}

/// The lines of Element `name`'s log buffer (admin API), oldest first.
pub async fn element_log(server: &Server, root: &str, name: &str) -> Vec<Value> {
    let path = format!("/api/rest/elements/deployment/{name}/logs");
    let (status, lines) = admin_request(server, "GET", &path, Some(root), None).await;
    assert_eq!(status, 200, "{lines}");
    match lines {
        Value::Array(lines) => lines,
        other => panic!("the log of {name} is not a list: {other}"),
    }
}

/// One request with these headers and this raw body (sent as
/// `application/json`, so a test can send malformed JSON): `(status, body)`,
/// where a body that is not JSON reads as a JSON string of its text.
pub async fn raw_request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = server.client.request(parse_method(method), server.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = req.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A response's status and JSON body (an empty body reads as `null`; any
/// other body that is not JSON fails the test).
pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, parse_json(&text))
}

/// The `Retry-After` header of `response`, in whole seconds.
pub fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn send(mut req: reqwest::RequestBuilder, bearer: Option<&str>, body: Option<Value>) -> Reply {
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req.send().await.expect("request");
    let status = response.status().as_u16();
    let retry_after = retry_after(&response);
    let text = response.text().await.expect("body");
    Reply {
        status,
        retry_after,
        body: parse_json(&text),
    }
}

fn parse_method(method: &str) -> reqwest::Method {
    reqwest::Method::from_bytes(method.as_bytes()).expect("method")
}

fn parse_json(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}
