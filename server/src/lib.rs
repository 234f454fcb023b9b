//! The HTTP front the server's APIs stand on: the handlers' shared state
//! ([`App`]), the accept loop with its limits ([`connections`]), the one
//! mapping of errors to HTTP ([`error`]), metrics, what handlers read from
//! a request ([`request`]), and the routes of both listeners with the thin
//! handler that passes `/app/rest/<prefix>/...` to the Element mounted at
//! `<prefix>`. The core APIs (`elements-api`) and the portal
//! (`elements-portal`) are routers over [`App`] that the binary hands to
//! [`public_service`] and [`admin_router`].

pub mod connections;
pub mod error;
pub mod metrics;
pub mod portal;
pub mod request;

pub use connections::serve;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

use elements_identity::{IdentityService, Secret};
use elements_store::DocumentStore;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::portal::PortalSettings;
use elements_deployments::Deployer;
use elements_deployments::persist::Deployments;
use elements_deployments::registry::Registry;
use elements_host::element::ELEMENT_ROOT;
use elements_host::element::manifest::EXTENSION_ROUTES;
use elements_host::instance::RequestInfo;
use elements_host::log_buffer::{Level, Source};

/// The identity service and the settings its APIs need.
#[derive(Debug)]
pub struct IdentityApi {
    /// The service (also for host services).
    pub service: Arc<IdentityService>,
    /// Server key Nakama clients authenticate with.
    pub server_key: Secret,
    /// Key of RPC calls without a session (`?http_key=`), when set.
    pub http_key: Option<Secret>,
    /// The checker of the OIDC and OAuth2 auth schemes operators register.
    pub schemes: Arc<elements_providers::AuthSchemes>,
}

/// Shared state of the HTTP handlers.
pub struct App {
    /// Mounted Elements.
    pub registry: Arc<Registry>,
    /// Deploys Elements.
    pub deployer: Arc<Deployer>,
    /// Everything persistent.
    pub store: Arc<dyn DocumentStore>,
    /// Users, sessions and the settings of the identity APIs.
    pub identity: Arc<IdentityApi>,
    /// Deployments made through the admin API.
    pub deployments: Arc<Deployments>,
    /// The operator's settings of the host services.
    pub settings: Arc<elements_deployments::settings::ServiceSettings>,
    /// Settings of the management portal.
    pub portal: PortalSettings,
    /// Request metrics, when served.
    pub metrics: Option<Metrics>,
    /// The realtime hub (`/ws`, notifications, channel history).
    pub realtime: Arc<elements_realtime::Hub>,
    request_ids: RequestIds,
}

impl App {
    /// The operator's view of deployments.
    pub fn catalog(&self) -> elements_deployments::catalog::Catalog<'_> {
        elements_deployments::catalog::Catalog::new(&self.deployer, &self.deployments)
    }
}

/// What [`App`] is made of.
pub struct AppParts {
    /// Mounted Elements.
    pub registry: Arc<Registry>,
    /// Deploys Elements.
    pub deployer: Arc<Deployer>,
    /// Everything persistent.
    pub store: Arc<dyn DocumentStore>,
    /// The identity service and API settings.
    pub identity: Arc<IdentityApi>,
    /// Stored deployments.
    pub deployments: Arc<Deployments>,
    /// The operator's settings of the host services.
    pub settings: Arc<elements_deployments::settings::ServiceSettings>,
    /// Settings of the management portal.
    pub portal: PortalSettings,
    /// Record and serve metrics (`/metrics`).
    pub metrics: bool,
    /// The realtime hub.
    pub realtime: Arc<elements_realtime::Hub>,
}

impl App {
    /// The handlers' state.
    pub fn new(parts: AppParts) -> App {
        App {
            registry: parts.registry,
            deployer: parts.deployer,
            store: parts.store,
            identity: parts.identity,
            deployments: parts.deployments,
            settings: parts.settings,
            portal: parts.portal,
            metrics: parts.metrics.then(Metrics::new),
            realtime: parts.realtime,
            request_ids: RequestIds::new(),
        }
    }
}

pub(crate) use elements_host::instance::REQUEST_ID;

/// Request ids, `x-request-id` on both listeners: a random per-process
/// prefix and a counter, unique across restarts and nodes without a random
/// draw per request. Both listeners share one counter.
#[derive(Clone)]
struct RequestIds {
    /// The prefix as text, `{:08x}-`, written once.
    prefix: [u8; 9],
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> RequestIds {
        let mut prefix = [b'-'; 9];
        write_hex(uuid::Uuid::new_v4().as_u128() as u32 as u64, &mut prefix[..8]);
        RequestIds {
            prefix,
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        // `{prefix:08x}-{counter:x}`, written by hand rather than with
        // `format!`: this runs for every request, and the formatting
        // machinery was a tenth of the request-id layers' cost.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
        let mut id = [0u8; 9 + 16];
        id[..9].copy_from_slice(&self.prefix);
        write_hex(n, &mut id[9..9 + digits]);
        // Hex digits and a hyphen: always a valid header value.
        HeaderValue::from_bytes(&id[..9 + digits])
            .ok()
            .map(RequestId::new)
    }
}

/// The low `out.len()` hex digits of `n`, most significant first.
fn write_hex(mut n: u64, out: &mut [u8]) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// A client's own `x-request-id` is dropped, never adopted: the id goes
/// into the server log, the Element's log and error bodies, where a
/// client's text could pose as another request's id (or fill the line with
/// up to the header limit of anything). Every request gets ours, which a
/// client can quote to an operator; a proxy in front keeps its own ids.
fn drop_client_request_id(mut request: Request) -> Request {
    request.headers_mut().remove(&REQUEST_ID);
    request
}

/// The public listener's routes: Element content, the client APIs (`api`),
/// their documentation, metrics and `/health`. Never the portal or the deployment
/// admin API: those are on the admin listener ([`admin_router`]), an origin
/// Element pages can't read or post to.
pub fn public_service(app: Arc<App>, api: Router<Arc<App>>) -> PublicService {
    let mut router = Router::new().route("/health", get(health));
    for path in EXTENSION_ROUTES {
        router = router.route(path, any(core_extension));
    }
    if app.metrics.is_some() {
        router = router.route("/metrics", get(metrics));
    }
    for path in ADMIN_ONLY {
        router = router.route(path, any(on_admin_listener));
    }
    let router = router.merge(api).fallback(not_found);
    PublicService {
        elements: finish_router(Router::new().fallback(element), app.clone()),
        routes: finish_router(router, app),
    }
}

/// The public listener's service: a request below [`ELEMENT_ROOT`] goes to
/// the Element front without being routed, any other through the router.
/// Element requests are the hot path, and routing them only decoded their
/// path into a parameter nobody reads and kept a matched path for it
/// (callgrind: about 1,000 instructions of 33,000 a request). Both sides
/// have the same layers (request ids, metrics, JSON errors).
#[derive(Clone)]
pub struct PublicService {
    elements: Router,
    routes: Router,
}

impl tower::Service<Request> for PublicService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // A router is always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.uri().path().starts_with(ELEMENT_ROOT) {
            tower::Service::call(&mut self.elements, request)
        } else {
            tower::Service::call(&mut self.routes, request)
        }
    }
}

/// The admin listener's routes: `/health` and `admin` (the management
/// portal and the deployment admin API).
pub fn admin_router(app: Arc<App>, admin: Router<Arc<App>>) -> Router {
    let router = Router::new()
        .route("/health", get(health))
        .merge(admin)
        .fallback(not_found);
    finish_router(router, app)
}

/// Paths served only on the admin listener; the public one says where they went.
const ADMIN_ONLY: &[&str] = &[
    "/admin",
    "/admin/",
    "/admin/{*rest}",
    "/api/rest/elements/deployment",
    "/api/rest/elements/deployment/{*rest}",
    "/api/rest/services",
    "/api/rest/services/{*rest}",
    "/api/rest/auth_scheme",
    "/api/rest/auth_scheme/{*rest}",
];

async fn on_admin_listener(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "nothing is served at {} on this listener: the management portal and the deployment \
         admin API are on the admin listener (--admin-listen)",
        request.uri().path()
    ))
}

fn finish_router(router: Router<Arc<App>>, app: Arc<App>) -> Router {
    // One layer, not one per concern: axum boxes each `Router::layer` around
    // every route and clones the box for every request.
    //
    // Request ids outermost, so every answer (404s, framework rejections,
    // errors rewritten by `json_errors`) carries the id. No tower-http
    // `TimeoutLayer`: an Element's deadline is its own (504
    // `ELEMENT_TIMEOUT`), and the slow phases of a connection have theirs
    // in `connections`.
    let record = app
        .metrics
        .is_some()
        .then(|| middleware::from_fn_with_state(app.clone(), record_request));
    let layers = ServiceBuilder::new()
        .layer(MapRequestLayer::new(drop_client_request_id))
        .layer(SetRequestIdLayer::new(
            REQUEST_ID.clone(),
            app.request_ids.clone(),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .option_layer(record)
        .layer(middleware::from_fn(json_errors));
    router.layer(layers).with_state(app)
}

/// Every error the server itself answers is JSON: framework rejections
/// (a body over the limit, a malformed JSON body or query, a wrong method)
/// come as plain text and are rewritten here, in the `/api/rest` shape, or
/// in Nakama's on `/v2`. Errors in the `/api/rest` shape name the request
/// (`requestId`, as in `x-request-id`); Nakama's shape stays Nakama's.
async fn json_errors(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().cloned();
    let path = request.uri().path();
    let nakama = path.starts_with("/v2/");
    // An Element's own answers pass untouched (its errors are its own).
    let element = path.starts_with(ELEMENT_ROOT) || EXTENSION_ROUTES.contains(&path);
    let lossy_query = !element && request.uri().query().is_some_and(|q| !query_is_utf8(q));
    let mut response = if lossy_query {
        (
            StatusCode::BAD_REQUEST,
            "The query string is not valid UTF-8 once percent-decoded.",
        )
            .into_response()
    } else {
        next.run(request).await
    };
    let request_id = request_id.as_ref().and_then(|id| id.header_value().to_str().ok());
    if let Some(id) = request_id {
        response = crate::error::name_request(response, id);
    }
    let status = response.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body was never read: the connection can't carry
        // another request, and a client must not reuse it.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if element
        || !(status.is_client_error() || status.is_server_error())
        || response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"))
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Framework rejections are short texts; cap what is read anyway.
    let text = match Limited::new(body, 16 * 1024).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut rewritten = if nakama {
        let code = match status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY => 3,
            StatusCode::UNAUTHORIZED => 16,
            StatusCode::FORBIDDEN => 7,
            StatusCode::NOT_FOUND => 5,
            StatusCode::CONFLICT => 6,
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => 12,
            StatusCode::TOO_MANY_REQUESTS => 8,
            StatusCode::SERVICE_UNAVAILABLE => 14,
            _ => 13,
        };
        axum::Json(serde_json::json!({"code": code, "message": message, "details": []})).into_response()
    } else {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "REQUEST_TOO_LARGE",
            StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            StatusCode::FORBIDDEN => "FORBIDDEN",
            s if s.is_client_error() => "BAD_REQUEST",
            _ => "INTERNAL",
        };
        let mut body = serde_json::json!({"code": code, "message": message});
        if let Some(id) = request_id {
            body["requestId"] = id.into();
        }
        axum::Json(body).into_response()
    };
    *rewritten.status_mut() = status;
    // Keep what the original said beyond its body (Allow, WWW-Authenticate, Connection...).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name.clone(), value.clone());
        }
    }
    rewritten
}

/// True if `query` percent-decodes to UTF-8. The form decoder behind axum's
/// `Query` replaces invalid bytes with U+FFFD, so `username=%FF%FE` would
/// become a name nobody typed; the server's own routes refuse such a query
/// instead (an Element reads its query itself). Decoding the whole string
/// at once is the same as pair by pair: `&` and `=` are ASCII and can't
/// split a multi-byte character.
fn query_is_utf8(query: &str) -> bool {
    percent_encoding::percent_decode_str(query).decode_utf8().is_ok()
}

/// `GET /metrics`: Prometheus metrics (see [`crate::metrics`]).
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let Some(metrics) = &app.metrics else {
        return ApiError::not_found("metrics are switched off").into_response();
    };
    let (mut loaded, mut serving, mut failed, mut disabled) = (0, 0, 0, 0);
    // The same states as the catalog's (`DeploymentView::status`).
    for status in app.deployer.statuses() {
        match (status.disabled, &status.element, &status.failure) {
            (true, _, _) => disabled += 1,
            (false, None, _) => failed += 1,
            (false, Some(_), Some(_)) => serving += 1,
            (false, Some(_), None) => loaded += 1,
        }
    }
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        metrics.render(loaded, serving, failed, disabled),
    )
        .into_response()
}

/// Counts every request by its route template (not its raw path: the
/// series stay few whatever clients send).
async fn record_request(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        // Element requests aren't routed (see [`PublicService`]).
        None if request.uri().path().starts_with(ELEMENT_ROOT) => ELEMENT_ROUTE.to_owned(),
        None => "unmatched".to_owned(),
    };
    let response = next.run(request).await;
    if let Some(metrics) = &app.metrics {
        metrics.http_request(
            method.as_str(),
            &route,
            response.status().as_u16(),
            started.elapsed(),
        );
    }
    response
}

/// The route label of Element requests in the metrics.
const ELEMENT_ROUTE: &str = "/app/rest/{*path}";

/// `GET /health`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`: the server answers.
    pub status: &'static str,
}

/// The server is up (both listeners).
#[utoipa::path(get, path = "/health", tag = "server",
    responses((status = 200, description = "Up", body = Health)))]
pub(crate) async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!("nothing is served at {}", request.uri().path()))
}

/// Headers that describe one connection, not the message: never forwarded
/// between the client and an Element.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "te" | "trailer" | "upgrade"
    )
}

async fn element(State(app): State<Arc<App>>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    // The raw (still percent-encoded) path, so the Element sees exactly what
    // the client sent below the mount point.
    let path = request.uri().path().to_owned();
    let rest = path.strip_prefix(ELEMENT_ROOT).unwrap_or_default();
    let (prefix, below) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let reserved = is_reserved(below);
    let result = match app.registry.get(prefix) {
        // The host's own calls into the Element (RPCs) are not a client's to make.
        Some(_) if reserved => Err(ApiError::not_found(format!(
            "{ELEMENT_ROOT}{prefix}{below} is reserved for the server's calls into the Element"
        ))),
        Some(element) => serve_counted(&app, element, request, below, &request_id).await,
        None => Err(ApiError::not_found(format!(
            "no Element is mounted at {ELEMENT_ROOT}{prefix}"
        ))),
    };
    with_request_id(result, &request_id)
}

/// Whether `below` (still percent-encoded) names the host's own calls into
/// an Element, however the client encoded it. Decoded only when it holds a
/// `%`: most paths don't, and decoding is a copy.
fn is_reserved(below: &str) -> bool {
    let prefix = elements_host::element::HOST_PATH_PREFIX;
    if below.contains('%') {
        percent_encoding::percent_decode_str(below)
            .decode_utf8_lossy()
            .starts_with(prefix)
    } else {
        below.starts_with(prefix)
    }
}

/// An extension route of the core API (see [`EXTENSION_ROUTES`]), served by
/// the Element that claims it; the Element sees the full path.
async fn core_extension(State(app): State<Arc<App>>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    let path = request.uri().path().to_owned();
    let result = match app.registry.core_route(&path) {
        Some(element) => serve_counted(&app, element, request, &path, &request_id).await,
        None => Err(ApiError::not_found(format!(
            "nothing serves {path} on this server"
        ))),
    };
    with_request_id(result, &request_id)
}

/// The request's id, as the host services take it.
fn request_id_of(request: &Request) -> Arc<str> {
    crate::request::request_id(request.extensions())
        .unwrap_or_default()
        .into()
}

/// The Element's answer, or the error tagged with the request id (the
/// `x-request-id` header is set by the layers of `finish_router`).
fn with_request_id(result: Result<Response, ApiError>, request_id: &str) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => error.with_request_id(request_id).into_response(),
    }
}

/// [`serve_element`], recorded in the Element's metrics.
async fn serve_counted(
    app: &App,
    element: Arc<elements_host::element::Element>,
    request: Request,
    below: &str,
    request_id: &Arc<str>,
) -> Result<Response, ApiError> {
    let Some(metrics) = &app.metrics else {
        return serve_element(app, element, request, below, request_id).await;
    };
    let started = Instant::now();
    let name = element.name.clone();
    let result = serve_element(app, element, request, below, request_id).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(error) => error.status,
    };
    metrics.element_request(&name, status.as_u16(), started.elapsed());
    result
}

/// Passes `request` to `element`, which sees the path `below`.
async fn serve_element(
    app: &App,
    element: Arc<elements_host::element::Element>,
    request: Request,
    below: &str,
    request_id: &Arc<str>,
) -> Result<Response, ApiError> {
    // Not tower-http's `RequestBodyLimitLayer`: the limit is the Element's,
    // known only once the route is.
    let limit = element.limits.max_request_body;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::request_too_large(limit));
    }
    let (mut parts, body) = request.into_parts();
    // Most Element requests are GETs: nothing to collect.
    let body = if http_body::Body::is_end_stream(&body) {
        Bytes::new()
    } else {
        match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => return Err(ApiError::request_too_large(limit)),
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    format!("could not read the request body: {e}"),
                ));
            }
        }
    };

    // The path below the mount point; the host adds the authority where an
    // Element's interface needs one (wasi:http).
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{below}?{q}"),
        None => below.to_owned(),
    };
    parts.uri = Uri::try_from(path_and_query).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("bad request URI: {e}"),
        )
    })?;
    strip_hop_by_hop(&mut parts.headers);
    // The body is buffered: say exactly how long it is (the guest SDK skips
    // reading an empty one).
    let length = match body.len() {
        0 => HeaderValue::from_static("0"),
        n => HeaderValue::from(n),
    };
    parts.headers.insert(header::CONTENT_LENGTH, length);
    // The host resolves the caller from the session credential; the Element
    // asks `identity.caller` and never sees the secret itself.
    let credential = take_credential(&mut parts.headers);
    let request = http::Request::from_parts(parts, body);
    let info = RequestInfo::http(request_id.clone(), credential);
    match element.serve(&app.deployer.host().services, request, info).await {
        Ok(response) => {
            let (mut parts, body): (_, Bytes) = response.into_parts();
            // Most responses carry none of the names filtered here: one
            // look at each name instead of a lookup per filtered name.
            if parts.headers.keys().any(is_filtered_in_responses) {
                filter_response_headers(&mut parts.headers, &element, request_id);
            }
            Ok(Response::from_parts(parts, Body::from(body)))
        }
        Err(e) => {
            tracing::error!(element = %element.name, request_id = %request_id, "Element request failed: {e}");
            Err(ApiError::from_invoke(&element.name, &e))
        }
    }
}

/// Removes every `Set-Cookie` that would set one of the portal's cookies
/// (which the browser would send to the admin listener too: cookies don't
/// isolate ports); returns the names removed. A header that isn't text or
/// has no name is dropped as well, since no browser cookie could come of it
/// and it can't be checked.
fn strip_portal_cookies(headers: &mut HeaderMap) -> Vec<String> {
    if !headers.contains_key(header::SET_COOKIE) {
        return Vec::new();
    }
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    for value in headers.get_all(header::SET_COOKIE) {
        let parsed = value.to_str().ok().and_then(|v| cookie::Cookie::parse(v).ok());
        let name = parsed.as_ref().map(|c| c.name());
        match name {
            Some(name) if !crate::portal::is_portal_cookie(name) => kept.push(value.clone()),
            Some(name) => removed.push(name.to_owned()),
            // Never repeat the value: it may be a secret.
            None => removed.push("(no name)".to_owned()),
        }
    }
    if !removed.is_empty() {
        headers.remove(header::SET_COOKIE);
        for value in kept {
            headers.append(header::SET_COOKIE, value);
        }
    }
    removed
}

/// Removes from an Element's response the headers that are the server's
/// (hop-by-hop ones, the request id, the framing) and the portal's cookies,
/// saying so in the Element's log for the cookies.
fn filter_response_headers(
    headers: &mut HeaderMap,
    element: &elements_host::element::Element,
    request_id: &str,
) {
    strip_hop_by_hop(headers);
    // The id is the server's: an Element can't answer as another request.
    headers.remove(&REQUEST_ID);
    // The server frames the body itself.
    headers.remove(header::CONTENT_LENGTH);
    for name in strip_portal_cookies(headers) {
        element.log.push(
            Level::Warn,
            Source::Host,
            Some(request_id),
            &format!(
                "dropped the response's Set-Cookie for {name:?}: that cookie belongs to the \
                 management portal"
            ),
        );
        tracing::warn!(element = %element.name, request_id = %request_id, cookie = %name,
            "dropped an Element's Set-Cookie for a portal cookie");
    }
}

/// Whether `name` is one an Element's response may not pass to the client
/// as it is (see [`serve_element`]).
fn is_filtered_in_responses(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || name == REQUEST_ID || name == header::CONTENT_LENGTH || name == header::SET_COOKIE
}

/// Removes the caller's session credential from `headers` and returns it
/// (as [`crate::request::credential`] reads it). A bearer `Authorization`
/// is removed even when empty.
fn take_credential(headers: &mut HeaderMap) -> Option<Arc<str>> {
    // One lookup per header: this runs on every Element request.
    let session = headers.remove(&crate::request::SESSION_HEADER);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer "))
        });
    let credential = session
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Arc::from)
        .or_else(|| {
            bearer
                .then(|| crate::request::authorization(headers, "Bearer"))
                .flatten()
                .map(Arc::from)
        });
    if bearer {
        headers.remove(header::AUTHORIZATION);
    }
    credential
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_prefix_and_the_counter_in_hex() {
        let mut ids = RequestIds::new();
        let prefix = std::str::from_utf8(&ids.prefix).unwrap().to_owned();
        assert!(prefix.len() == 9 && prefix.ends_with('-'), "{prefix}");
        assert!(
            prefix[..8]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let request = http::Request::new(());
        for (counter, suffix) in [
            (1, "1"),
            (0xf, "f"),
            (0x10, "10"),
            (0xabc_0001, "abc0001"),
            (u64::MAX, "ffffffffffffffff"),
        ] {
            ids.next.store(counter, Ordering::Relaxed);
            let id = ids.make_request_id(&request).expect("an id");
            assert_eq!(id.header_value().to_str().unwrap(), format!("{prefix}{suffix}"));
        }
        // The counter wraps rather than panics after u64::MAX.
        assert!(ids.make_request_id(&request).is_some());
    }

    #[test]
    fn the_credential_is_taken_as_credential_reads_it_and_never_forwarded() {
        let session = crate::request::SESSION_HEADER.as_str();
        for (pairs, kept_authorization) in [
            (&[][..], None),
            (&[(session, " s1 ")][..], None),
            (&[(session, "s1"), ("authorization", "Bearer b1")][..], None),
            (&[(session, "  "), ("authorization", "bearer  b1 ")][..], None),
            (&[("authorization", "  BEARER b1")][..], None),
            (&[("authorization", "Bearer ")][..], None),
            (&[("authorization", "Bearer")][..], Some("Bearer")),
            (&[("authorization", "Basic dTpw")][..], Some("Basic dTpw")),
            (
                &[(session, "s1"), ("authorization", "Basic dTpw")][..],
                Some("Basic dTpw"),
            ),
            (&[("authorization", "Bearerb1")][..], Some("Bearerb1")),
        ] {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
            let expected = crate::request::credential(&headers).map(str::to_owned);
            let taken = take_credential(&mut headers);
            assert_eq!(taken.as_deref(), expected.as_deref(), "{pairs:?}");
            assert!(
                !headers.contains_key(&crate::request::SESSION_HEADER),
                "{pairs:?}"
            );
            let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap());
            assert_eq!(authorization, kept_authorization, "{pairs:?}");
            assert!(headers.contains_key(header::ACCEPT));
        }
    }

    #[test]
    fn the_hosts_paths_are_reserved_however_encoded() {
        for path in [
            "/.elements/rpc/x",
            "/%2Eelements/rpc/x",
            "/.%65lements/",
            "/%2e%65lements/",
        ] {
            assert!(is_reserved(path), "{path}");
        }
        for path in [
            "/",
            "/hello",
            "/elements/x",
            "/.elements",
            "/%2Eelement/x",
            "/x/.elements/",
        ] {
            assert!(!is_reserved(path), "{path}");
        }
    }

    #[test]
    fn only_portal_cookies_are_stripped_from_element_responses() {
        let mut headers = HeaderMap::new();
        for value in [
            "theme=dark; Path=/",
            "elements_admin=forged; Path=/admin; HttpOnly",
            "__Host-Elements_Admin=forged; Path=/; Secure",
            " ELEMENTS_ADMIN_FLASH =x",
            "__Secure-elements_admin_login=y; Secure",
            "garbage-without-a-name",
            "session=abc",
        ] {
            headers.append(header::SET_COOKIE, HeaderValue::from_str(value).unwrap());
        }
        let removed = strip_portal_cookies(&mut headers);
        assert_eq!(
            removed,
            [
                "elements_admin",
                "__Host-Elements_Admin",
                "ELEMENTS_ADMIN_FLASH",
                "__Secure-elements_admin_login",
                "(no name)"
            ]
        );
        let kept: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(kept, ["theme=dark; Path=/", "session=abc"]);

        let mut none = HeaderMap::new();
        none.insert(header::SET_COOKIE, HeaderValue::from_static("a=b"));
        assert!(strip_portal_cookies(&mut none).is_empty());
        assert_eq!(none.get(header::SET_COOKIE).unwrap(), "a=b");
    }
}
