//! Routing requests to handlers.

use std::borrow::Cow;
use std::fmt;

use crate::error::Error;
use crate::request::{Method, Request, percent_decode};

/// Where the host calls an Element's RPCs (see [`Router::rpc`]).
const RPC_PATH: &str = "/.elements/rpc/";
use crate::response::{IntoResponse, Response};

type Handler = Box<dyn Fn(Request) -> Response + Send + Sync>;

struct Route {
    method: Method,
    pattern: Cow<'static, str>,
    handler: Handler,
}

/// Maps `(method, path pattern)` pairs to handlers.
///
/// A pattern is a path of `/`-separated segments. A segment is either
/// literal (matched exactly), `{name}` (matches any one non-empty segment and
/// makes it available as [`Request::param`]`("name")`), or, as the last
/// segment only, `{*name}` (matches the rest of the path — zero or more
/// segments, without the leading `/`).
///
/// Routes are tried in the order they were added; the first one whose
/// pattern and method match handles the request. When no pattern matches, the
/// router answers 404; when a pattern matches but not with this method, 405
/// with an `Allow` header. Both carry the usual JSON error body.
///
/// A handler is any `Fn(Request) -> R` where `R: `[`IntoResponse`].
///
/// ```
/// use elements_sdk::prelude::*;
///
/// let router = Router::new()
///     .get("/hello", |_req: Request| Response::json(&json!({"hello": "world"})))
///     .get("/users/{id}", |req: Request| Response::text(req.param("id").unwrap_or_default()))
///     .get("/files/{*path}", |req: Request| Response::text(req.param("path").unwrap_or_default()));
///
/// let get = |path: &str| router.handle(Request::new(Method::Get, path));
/// assert_eq!(get("/hello").body(), br#"{"hello":"world"}"#);
/// assert_eq!(get("/users/42").body(), b"42");
/// assert_eq!(get("/files/a/b.txt").body(), b"a/b.txt");
/// assert_eq!(get("/nope").status(), 404);
///
/// let res = router.handle(Request::new(Method::Post, "/hello"));
/// assert_eq!(res.status(), 405);
/// assert_eq!(res.header("allow"), Some("GET"));
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// An empty router (answers 404 to everything).
    ///
    /// ```
    /// use elements_sdk::{Method, Request, Router};
    /// let res = Router::new().handle(Request::new(Method::Get, "/"));
    /// assert_eq!(res.status(), 404);
    /// ```
    pub fn new() -> Router {
        Router { routes: Vec::new() }
    }

    /// Adds a route for `method` and `pattern`.
    ///
    /// # Panics
    ///
    /// If `pattern` does not start with `/`, or has a `{*name}` segment
    /// anywhere but last.
    ///
    /// ```
    /// use elements_sdk::{Method, Request, Response, Router};
    ///
    /// let router = Router::new().route(Method::Options, "/", |_req: Request| Response::empty(204));
    /// assert_eq!(router.handle(Request::new(Method::Options, "/")).status(), 204);
    /// ```
    pub fn route<H, R>(mut self, method: Method, pattern: impl Into<Cow<'static, str>>, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        let pattern = pattern.into();
        validate(&pattern);
        self.routes.push(Route {
            method,
            pattern,
            handler: Box::new(move |req| handler(req).into_response()),
        });
        self
    }

    /// Adds a `GET` route. See [`Router::route`].
    ///
    /// ```
    /// use elements_sdk::{Method, Request, Response, Router};
    /// let router = Router::new().get("/ping", |_req: Request| Response::text("pong"));
    /// assert_eq!(router.handle(Request::new(Method::Get, "/ping")).body(), b"pong");
    /// ```
    pub fn get<H, R>(self, pattern: impl Into<Cow<'static, str>>, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(Method::Get, pattern, handler)
    }

    /// Adds a `POST` route. See [`Router::route`].
    ///
    /// ```
    /// use elements_sdk::prelude::*;
    ///
    /// fn create(req: Request) -> Result<Response> {
    ///     let v: serde_json::Value = req.json()?;
    ///     Ok(Response::json(&v).with_status(201))
    /// }
    /// let router = Router::new().post("/items", create);
    /// let res = router.handle(Request::new(Method::Post, "/items").with_body("{}"));
    /// assert_eq!(res.status(), 201);
    /// ```
    pub fn post<H, R>(self, pattern: impl Into<Cow<'static, str>>, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(Method::Post, pattern, handler)
    }

    /// Serves the Nakama RPC `id` (`POST /v2/rpc/ID` and the realtime
    /// socket's `rpc`). Declare the id in the manifest too (`rpcs = ["ID"]`,
    /// which the operator approves as the grant `rpc:ID`). The handler gets
    /// the payload as the request body ([`Request::text`]) and the caller
    /// through [`crate::identity::caller`]; what it answers with a 2xx status
    /// is the RPC's answer, and an error answer fails the RPC with its
    /// message. The host calls it at `POST /.elements/rpc/ID`, a path no
    /// client can reach. Ids are lowercase.
    ///
    /// ```
    /// use elements_sdk::prelude::*;
    ///
    /// let router = Router::new().rpc("roll_dice", |req: Request| -> Result<Response> {
    ///     let sides: u32 = req.text()?.trim().parse().map_err(|_| Error::bad_request("sides?"))?;
    ///     Ok(Response::text(format!("{}", sides.min(1))))
    /// });
    /// let res = router.handle(Request::new(Method::Post, "/.elements/rpc/roll_dice").with_body("6"));
    /// assert_eq!(res.body(), b"1");
    /// ```
    pub fn rpc<H, R>(self, id: &str, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(
            Method::Post,
            format!("{RPC_PATH}{}", id.to_ascii_lowercase()),
            handler,
        )
    }

    /// Adds a `PUT` route. See [`Router::route`].
    ///
    /// ```
    /// use elements_sdk::{Method, Request, Response, Router};
    /// let router = Router::new().put("/items/{id}", |_req: Request| Response::empty(204));
    /// assert_eq!(router.handle(Request::new(Method::Put, "/items/1")).status(), 204);
    /// ```
    pub fn put<H, R>(self, pattern: impl Into<Cow<'static, str>>, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(Method::Put, pattern, handler)
    }

    /// Adds a `DELETE` route. See [`Router::route`].
    ///
    /// ```
    /// use elements_sdk::{Method, Request, Response, Router};
    /// let router = Router::new().delete("/items/{id}", |_req: Request| Response::empty(204));
    /// assert_eq!(router.handle(Request::new(Method::Delete, "/items/1")).status(), 204);
    /// ```
    pub fn delete<H, R>(self, pattern: impl Into<Cow<'static, str>>, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(Method::Delete, pattern, handler)
    }

    /// Adds a `PATCH` route. See [`Router::route`].
    ///
    /// ```
    /// use elements_sdk::{Method, Request, Response, Router};
    /// let router = Router::new().patch("/items/{id}", |_req: Request| Response::empty(204));
    /// assert_eq!(router.handle(Request::new(Method::Patch, "/items/1")).status(), 204);
    /// ```
    pub fn patch<H, R>(self, pattern: impl Into<Cow<'static, str>>, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(Method::Patch, pattern, handler)
    }

    /// Routes `req` and runs its handler; this is what the exported HTTP
    /// handler calls for every request. Public so routers can be tested
    /// natively.
    ///
    /// ```
    /// use elements_sdk::{Method, Request, Response, Router};
    ///
    /// let router = Router::new().get("/a", |_req: Request| Response::text("a"));
    /// let res = router.handle(Request::new(Method::Get, "/a?x=1"));
    /// assert_eq!((res.status(), res.body()), (200, &b"a"[..]));
    /// ```
    pub fn handle(&self, req: Request) -> Response {
        // The server's id of the request, for the body of an error answer.
        let request_id = req.request_id().map(str::to_owned);
        let response = self.dispatch(req);
        match &request_id {
            Some(id) => response.name_request(id),
            None => response,
        }
    }

    /// Routes `req` and runs its handler.
    fn dispatch(&self, mut req: Request) -> Response {
        let mut params = Vec::new();
        let mut allowed: Vec<&str> = Vec::new();
        for route in &self.routes {
            if !matches(&route.pattern, req.path(), &mut params) {
                continue;
            }
            if route.method == *req.method() {
                req.params = params;
                return (route.handler)(req);
            }
            params.clear();
            let m = route.method.as_str();
            if !allowed.contains(&m) {
                allowed.push(m);
            }
        }
        if allowed.is_empty() {
            Error::not_found(format!("no route for {}", req.path())).to_response()
        } else {
            Error::new(
                405,
                "METHOD_NOT_ALLOWED",
                format!("method {} is not allowed for {}", req.method(), req.path()),
            )
            .to_response()
            .with_header("allow", allowed.join(", "))
        }
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|r| format!("{} {}", r.method, r.pattern)))
            .finish()
    }
}

fn validate(pattern: &str) {
    assert!(
        pattern.starts_with('/'),
        "route pattern {pattern:?} must start with '/'"
    );
    // Only a `*` can start trouble, and most patterns have none: look for
    // each with a plain byte search, then at the two bytes before it. (A
    // search for the three-byte `/{*` compares windows at every byte, a
    // fresh instance's biggest cost in building its router.)
    let bytes = pattern.as_bytes();
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|&b| b == b'*') {
        let star = from + offset;
        if star >= 2 && bytes[star - 2] == b'/' && bytes[star - 1] == b'{' {
            assert!(
                !bytes[star..].contains(&b'/'),
                "route pattern {pattern:?}: a {{*name}} wildcard must be the last segment"
            );
            return;
        }
        from = star + 1;
    }
}

fn capture(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

/// Matches `path` against `pattern`, appending captured parameters to
/// `params`. On failure `params` is left empty.
fn matches(pattern: &str, path: &str, params: &mut Vec<(String, String)>) -> bool {
    // Both start with '/': compare what follows.
    let mut rest = Some(path.get(1..).unwrap_or(""));
    for seg in pattern[1..].split('/') {
        if let Some(name) = capture(seg).and_then(|s| s.strip_prefix('*')) {
            let tail = rest.unwrap_or("");
            params.push((name.to_owned(), percent_decode(tail, false).into_owned()));
            return true;
        }
        let Some(r) = rest else {
            params.clear();
            return false;
        };
        let (head, tail) = match r.split_once('/') {
            Some((h, t)) => (h, Some(t)),
            None => (r, None),
        };
        rest = tail;
        match capture(seg) {
            Some(name) if !head.is_empty() => {
                params.push((name.to_owned(), percent_decode(head, false).into_owned()));
            }
            None if seg == head => {}
            _ => {
                params.clear();
                return false;
            }
        }
    }
    if rest.is_some() {
        params.clear();
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Result;

    fn m(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        let mut p = Vec::new();
        let ok = matches(pattern, path, &mut p);
        assert!(ok || p.is_empty());
        ok.then_some(p)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn literal_matching_is_exact() {
        assert_eq!(m("/", "/"), Some(vec![]));
        assert_eq!(m("/", "/a"), None);
        assert_eq!(m("/a", "/a"), Some(vec![]));
        assert_eq!(m("/a", "/a/"), None);
        assert_eq!(m("/a/", "/a"), None);
        assert_eq!(m("/a/b", "/a/b"), Some(vec![]));
        assert_eq!(m("/a/b", "/a/c"), None);
        assert_eq!(m("/a/b", "/a"), None);
        assert_eq!(m("/a", "/a/b"), None);
        assert_eq!(m("/A", "/a"), None);
    }

    #[test]
    fn params() {
        assert_eq!(m("/u/{id}", "/u/42"), Some(pairs(&[("id", "42")])));
        assert_eq!(m("/u/{id}", "/u/"), None);
        assert_eq!(m("/u/{id}", "/u"), None);
        assert_eq!(m("/u/{id}", "/u/1/2"), None);
        assert_eq!(
            m("/u/{id}/posts/{post}", "/u/a%20b/posts/7"),
            Some(pairs(&[("id", "a b"), ("post", "7")]))
        );
        assert_eq!(m("/u/{id}/posts", "/u/1/comments"), None);
    }

    #[test]
    fn wildcard() {
        assert_eq!(m("/f/{*p}", "/f/a/b"), Some(pairs(&[("p", "a/b")])));
        assert_eq!(m("/f/{*p}", "/f/"), Some(pairs(&[("p", "")])));
        assert_eq!(m("/f/{*p}", "/f"), Some(pairs(&[("p", "")])));
        assert_eq!(m("/f/{*p}", "/g/a"), None);
        assert_eq!(m("/{*p}", "/"), Some(pairs(&[("p", "")])));
        assert_eq!(m("/{*p}", "/x/y/"), Some(pairs(&[("p", "x/y/")])));
        assert_eq!(
            m("/{d}/{*p}", "/x/y%2Fz"),
            Some(pairs(&[("d", "x"), ("p", "y/z")]))
        );
    }

    #[test]
    #[should_panic(expected = "must be the last segment")]
    fn wildcard_must_be_last() {
        let _ = Router::new().get("/{*a}/b", |_r: Request| Response::empty(200));
    }

    #[test]
    #[should_panic(expected = "must be the last segment")]
    fn a_literal_star_does_not_hide_a_wildcard_in_the_middle() {
        let _ = Router::new().get("/a*/{*b}/c", |_r: Request| Response::empty(200));
    }

    #[test]
    fn stars_in_literal_segments_and_a_last_wildcard_are_fine() {
        let router = Router::new().get("/*a/b*/{*rest}", |r: Request| {
            Response::text(r.param("rest").unwrap_or_default().to_owned())
        });
        assert_eq!(
            router.handle(Request::new(Method::Get, "/*a/b*/x/y")).body(),
            b"x/y"
        );
    }

    #[test]
    #[should_panic(expected = "must start with '/'")]
    fn pattern_must_be_absolute() {
        let _ = Router::new().get("a", |_r: Request| Response::empty(200));
    }

    fn router() -> Router {
        fn echo(req: Request) -> Result<Response> {
            let v: serde_json::Value = req.json()?;
            Ok(Response::json(&v))
        }
        Router::new()
            .get("/a", |_r: Request| Response::text("get a"))
            .post("/a", |_r: Request| Response::text("post a"))
            .put("/a", |_r: Request| Response::text("put a"))
            .get("/u/{id}", |r: Request| {
                Response::text(r.param("id").unwrap().to_owned())
            })
            .get("/u/me", |_r: Request| Response::text("shadowed"))
            .post("/echo", echo)
            .get("/err", |_r: Request| -> Result<Response> {
                Err(Error::forbidden("nope"))
            })
            .get("/value", |_r: Request| serde_json::json!({"v": 1}))
    }

    fn call(method: Method, path: &str, body: &str) -> Response {
        router().handle(Request::new(method, path).with_body(body))
    }

    #[test]
    fn dispatch() {
        assert_eq!(call(Method::Get, "/a", "").body(), b"get a");
        assert_eq!(call(Method::Post, "/a", "").body(), b"post a");
        assert_eq!(call(Method::Get, "/u/me", "").body(), b"me");
        assert_eq!(call(Method::Get, "/value", "").body(), br#"{"v":1}"#);
        let r = call(Method::Get, "/err", "");
        assert_eq!(r.status(), 403);
        assert_eq!(r.body(), br#"{"code":"FORBIDDEN","message":"nope"}"#);
    }

    #[test]
    fn not_found_and_method_not_allowed() {
        let r = call(Method::Get, "/missing", "");
        assert_eq!(r.status(), 404);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.body(),
            br#"{"code":"NOT_FOUND","message":"no route for /missing"}"#
        );

        let r = call(Method::Delete, "/a?x=1", "");
        assert_eq!(r.status(), 405);
        assert_eq!(r.header("Allow"), Some("GET, POST, PUT"));
        assert_eq!(
            r.body(),
            br#"{"code":"METHOD_NOT_ALLOWED","message":"method DELETE is not allowed for /a"}"#
        );
    }

    #[test]
    fn json_errors_are_400() {
        let r = call(Method::Post, "/echo", r#"{"a":[1,2]}"#);
        assert_eq!((r.status(), r.body()), (200, &br#"{"a":[1,2]}"#[..]));
        let r = call(Method::Post, "/echo", "{not json");
        assert_eq!(r.status(), 400);
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v["code"], "BAD_REQUEST");
        assert!(v["message"].as_str().unwrap().starts_with("invalid JSON body"));
    }

    #[test]
    fn error_answers_name_the_request_and_others_are_left_alone() {
        let with_id = |method, path: &str| {
            router().handle(Request::new(method, path).with_header("X-Request-Id", "req-7"))
        };
        let r = with_id(Method::Get, "/err");
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.body(),
            br#"{"code":"FORBIDDEN","message":"nope","requestId":"req-7"}"#
        );
        let r = with_id(Method::Delete, "/a");
        assert_eq!((r.status(), r.header("allow")), (405, Some("GET, POST, PUT")));
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            (&v["code"], &v["requestId"]),
            (&"METHOD_NOT_ALLOWED".into(), &"req-7".into())
        );
        let r = with_id(Method::Post, "/echo");
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            (&v["code"], &v["requestId"]),
            (&"BAD_REQUEST".into(), &"req-7".into())
        );
        // A successful answer is the handler's own, id or not.
        assert_eq!(with_id(Method::Get, "/value").body(), br#"{"v":1}"#);
    }

    #[test]
    fn debug_lists_routes() {
        let r = Router::new().get("/a", |_r: Request| Response::empty(200));
        assert_eq!(format!("{r:?}"), r#"["GET /a"]"#);
    }
}
