//! Outbound HTTP through the standard `wasi:http/outgoing-handler`.
//!
//! Two gates stand in front of every connection:
//!
//! 1. the Element's allow-list ([`AllowList`]): entries `host` (any port) or
//!    `host:port`, compared case-insensitively and exactly (no wildcards, so
//!    an allowed name never admits its subdomains), made of the Element's
//!    approved `http.outbound:HOST[:PORT]` grants ([`elements_config::grants`]);
//! 2. the address check: the host is resolved here, and every address that is
//!    not public ([`non_public`]: loopback, private, link-local including
//!    169.254.169.254, unique-local, CGNAT, unspecified, multicast,
//!    documentation and benchmark ranges, and their IPv4-mapped, NAT64 and
//!    6to4 forms) is refused unless the operator allowed its network
//!    (`[services.http] allow_networks`) or the allow-list names that exact
//!    address as an IP literal (an operator who approved `127.0.0.1:8089`
//!    approved that address).
//!
//! The connection then goes to an address that passed the check: this module
//! connects, does TLS (rustls, webpki roots, SNI and verification against the
//! host name) and HTTP/1.1 itself, so no second DNS lookup can hand a
//! different (rebound) address to the socket. The operator's connect timeout,
//! whole-exchange timeout and response size cap ([`HttpSettings`]) bound every
//! exchange; an Element's request options may only shorten the timeouts.
//!
//! A response read to its end leaves its connection to the Element's own
//! pool, for the Element's next exchange with the same destination under the
//! same operator settings (a Roblox Kit login makes two calls to Roblox: the
//! second, and the next login's, skip the connect and TLS handshake). Pools
//! are per Element and bounded; a connection is reused only while fresh.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep, timeout_at};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::{DeployContext, HostService, ServiceConfigError, ServiceDeps, ServicesError};
use crate::instance::{RequestInfo, RequestState};
use elements_config::HttpSettings;
use elements_config::ServicesConfig;
use elements_config::address::non_public;

/// The outbound HTTP service (its bindings are WASI's, linked with the rest
/// of `wasi:http`).
pub struct HttpService {
    /// Swapped whole when an operator changes the settings; an exchange
    /// keeps the policy it started with.
    policy: arc_swap::ArcSwap<Policy>,
    /// Answers in place of the network (the test harness's), if any.
    stub: Option<Arc<dyn OutboundStub>>,
}

/// Canned answers to outbound requests instead of the network: what the
/// test harness (`elements-test`) installs, so an Element's tests never
/// depend on the internet. The Element's allow-list still applies first, so
/// a test also sees a missing `http.outbound:` grant refused.
pub trait OutboundStub: Send + Sync {
    /// The answer to `method url` (the full URL, e.g.
    /// `https://users.roblox.com/v1/users/1`); `None` fails the request as a
    /// connection failure.
    fn answer(&self, method: &str, url: &str) -> Option<StubResponse>;
}

/// One canned response.
#[derive(Debug, Clone, Default)]
pub struct StubResponse {
    /// The status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What every exchange shares: the operator's settings and the TLS client.
struct Policy {
    settings: HttpSettings,
    /// Built once; an error here only fails `https` requests.
    tls: Result<Arc<rustls::ClientConfig>, String>,
    /// Which settings these are: a pooled connection is reused only under the
    /// settings it was checked and opened with.
    generation: u64,
}

/// Numbers the policies, so no two ever share a generation.
static POLICY_GENERATION: AtomicU64 = AtomicU64::new(0);

fn next_generation() -> u64 {
    POLICY_GENERATION.fetch_add(1, Ordering::Relaxed)
}

impl HttpService {
    /// The service with the operator's settings.
    pub fn new(settings: HttpSettings) -> HttpService {
        HttpService {
            policy: arc_swap::ArcSwap::from_pointee(Policy {
                settings,
                tls: tls_config().map_err(|e| e.to_string()),
                generation: next_generation(),
            }),
            stub: None,
        }
    }

    /// Applies new operator settings to every request from now on.
    pub fn apply(&self, settings: HttpSettings) {
        let tls = self.policy.load().tls.clone();
        self.policy.store(Arc::new(Policy {
            settings,
            tls,
            generation: next_generation(),
        }));
    }
}

impl Default for HttpService {
    fn default() -> Self {
        HttpService::new(HttpSettings::default())
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // An explicit provider: the process-wide default is ambiguous when more
    // than one crypto backend is compiled in.
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where one Element may connect.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AllowList {
    /// `(host, port)`; `None` means any port.
    entries: BTreeSet<(String, Option<u16>)>,
}

impl AllowList {
    /// Parses an allow-list attribute value: entries separated by commas or
    /// white space.
    pub fn parse(value: &str) -> Result<AllowList, String> {
        AllowList::from_entries(value.split([',', ' ', '\n', '\t']).filter(|e| !e.is_empty()))
            .map_err(|message| format!("allow-list: {message}"))
    }

    /// An allow-list of `entries`, each `host` or `host:port` (an IPv6
    /// address with a port in brackets: `[::1]:8080`).
    pub fn from_entries<I>(entries: I) -> Result<AllowList, String>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let entries = entries
            .into_iter()
            .map(|entry| parse_entry(entry.as_ref().trim()))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    /// Whether a connection to `host:port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = unbracket(host).to_ascii_lowercase();
        self.entries.contains(&(host.clone(), Some(port))) || self.entries.contains(&(host, None))
    }

    /// Whether an entry is the IP literal `ip` (with `port` or any port): the
    /// operator approved that exact address, whatever kind it is.
    pub fn names_address(&self, ip: IpAddr, port: u16) -> bool {
        let ip = ip.to_canonical();
        self.entries.iter().any(|(host, p)| {
            p.is_none_or(|p| p == port) && host.parse::<IpAddr>().is_ok_and(|h| h.to_canonical() == ip)
        })
    }
}

fn parse_entry(entry: &str) -> Result<(String, Option<u16>), String> {
    if entry.contains('/') {
        return Err(format!(
            "{entry:?} is not a host or host:port (give no scheme or path)"
        ));
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("bad port in {entry:?}"))?;
            (host, Some(port))
        }
        _ => (entry, None),
    };
    let host = unbracket(host).to_ascii_lowercase();
    if host.is_empty() || host.contains('*') || host.contains('@') || host.contains(char::is_whitespace) {
        return Err(format!("{entry:?} is not a host or host:port"));
    }
    Ok((host, port))
}

fn unbracket(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// One Element's outbound HTTP state.
#[derive(Debug)]
pub struct ElementHttp {
    /// The Element's name, for the log.
    element: Arc<str>,
    /// Where it may connect.
    allow: AllowList,
    /// Its idle keep-alive connections. Each Element has its own: a
    /// connection another Element used (and may have desynchronised with a
    /// crafted request) is never handed to it.
    pool: Pool,
}

/// The `wasi:http` hooks of one instance: the allow-list and address checks
/// in front of this module's own client.
#[derive(Clone)]
pub struct OutboundHooks {
    element: Arc<ElementHttp>,
    policy: Arc<Policy>,
    stub: Option<Arc<dyn OutboundStub>>,
}

impl HostService for HttpService {
    type Deployed = Arc<ElementHttp>;
    type Instance = OutboundHooks;

    fn start(deps: &ServiceDeps) -> Result<HttpService, ServicesError> {
        Ok(HttpService {
            stub: deps.outbound_stub.clone(),
            ..HttpService::new(deps.settings.http.clone())
        })
    }

    fn reconfigure(&self, settings: &ServicesConfig) -> Result<(), ServicesError> {
        self.apply(settings.http.clone());
        Ok(())
    }

    fn add_to_linker(_linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        // `wasi:http/outgoing-handler` is linked with the rest of wasi:http.
        Ok(())
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<Arc<ElementHttp>, ServiceConfigError> {
        // The Element's approved `http.outbound:` grants are its allow-list.
        let allow = AllowList {
            entries: element
                .grants
                .http_hosts()
                .map(|(host, port)| (host.to_owned(), port))
                .collect(),
        };
        Ok(Arc::new(ElementHttp {
            element: element.name.clone(),
            allow,
            pool: Pool::default(),
        }))
    }

    fn prepare(&self, deployed: &Arc<ElementHttp>, _request: &RequestInfo) -> OutboundHooks {
        OutboundHooks {
            element: deployed.clone(),
            policy: self.policy.load_full(),
            stub: self.stub.clone(),
        }
    }

    fn renew(&self, _deployed: &Arc<ElementHttp>, instance: &mut OutboundHooks, _request: &RequestInfo) {
        let OutboundHooks {
            element: _,
            policy,
            stub: _,
        } = instance;
        // The operator's policy as it is now (it may have changed since
        // this instance's last request); cloned only when it did.
        let current = self.policy.load();
        if !Arc::ptr_eq(&current, policy) {
            *policy = arc_swap::Guard::into_inner(current);
        }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendResult = Result<(http::Response<WasiBody>, IoFuture), HttpError>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        // Request-body errors surface through hyper's error; nothing to report here.
        drop(fut);
        let uri = request.uri();
        let Some(host) = uri.host().map(|h| unbracket(h).to_ascii_lowercase()) else {
            return Box::new(async { Err(HttpError::HttpRequestUriInvalid) });
        };
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        if !self.element.allow.allows(&host, port) {
            tracing::warn!(
                element = %self.element.element,
                %host,
                port,
                "outbound HTTP refused: not in the Element's allow-list"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        if let Some(stub) = &self.stub {
            return Box::new(std::future::ready(stubbed(stub.as_ref(), &request)));
        }
        let exchange = Exchange {
            element: self.element.clone(),
            policy: self.policy.clone(),
            host,
            port,
            tls,
        };
        Box::new(exchange.run(request, options))
    }
}

/// The stub's answer to a request that passed the allow-list.
fn stubbed(stub: &dyn OutboundStub, request: &http::Request<WasiBody>) -> SendResult {
    let url = request.uri().to_string();
    let Some(answer) = stub.answer(request.method().as_str(), &url) else {
        return Err(HttpError::InternalError(Some(format!(
            "no stubbed response for {} {url}",
            request.method()
        ))));
    };
    let mut response = http::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    let body = http_body_util::Full::new(Bytes::from(answer.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let response = response
        .body(body)
        .map_err(|e| HttpError::InternalError(Some(format!("invalid stubbed response for {url}: {e}"))))?;
    let io: IoFuture = Box::new(async { Ok(()) });
    Ok((response, io))
}

/// One outbound request that passed the allow-list.
struct Exchange {
    element: Arc<ElementHttp>,
    policy: Arc<Policy>,
    /// Lower-case, without IPv6 brackets.
    host: String,
    port: u16,
    tls: bool,
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

impl Exchange {
    async fn run(self, mut request: http::Request<WasiBody>, options: Option<RequestOptions>) -> SendResult {
        let settings = &self.policy.settings;
        let started = Instant::now();
        let deadline = started + settings.timeout;
        let connect_timeout = shortest(settings.connect_timeout, options.and_then(|o| o.connect_timeout));
        let connect_deadline = (started + connect_timeout).min(deadline);

        let key = PoolKey {
            host: self.host.clone(),
            port: self.port,
            tls: self.tls,
            generation: self.policy.generation,
        };
        let mut conn = match self.element.pool.take(&key) {
            Some(conn) => conn,
            None => self.connect(connect_deadline).await?,
        };

        // The request goes to the origin, not a proxy: origin-form target.
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse::<http::Uri>()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        *request.uri_mut() = target;

        let head_deadline = match options.and_then(|o| o.first_byte_timeout) {
            Some(first_byte) => deadline.min(Instant::now() + first_byte),
            None => deadline,
        };
        let response = timeout_at(head_deadline, conn.sender.send_request(request))
            .await
            .map_err(|_| HttpError::HttpResponseTimeout)?
            .map_err(hyper_error)?;

        let max = settings.max_response_bytes;
        if let Some(length) = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && length > max
        {
            tracing::debug!(
                element = %self.element.element,
                host = %self.host,
                length,
                max,
                "outbound HTTP response over the size cap"
            );
            return Err(HttpError::HttpResponseBodySize(Some(length)));
        }
        let idle = options.and_then(|o| o.between_bytes_timeout);
        let response = response.map(|incoming| {
            CappedBody {
                incoming,
                read: 0,
                max,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
                done: false,
                checkin: Some(Checkin {
                    element: self.element.clone(),
                    key,
                    conn,
                }),
            }
            .boxed_unsync()
        });
        // The connection runs on its own task (see `connect`).
        let io: IoFuture = Box::new(async { Ok(()) });
        Ok((response, io))
    }

    /// A new connection to the destination: resolved, checked, connected
    /// and (for https) TLS-verified within `connect_deadline`.
    async fn connect(&self, connect_deadline: Instant) -> Result<Connection, HttpError> {
        let addresses = timeout_at(connect_deadline, self.resolve())
            .await
            .map_err(|_| HttpError::DnsTimeout)??;
        let addresses = self.checked(addresses)?;
        let stream = timeout_at(connect_deadline, connect_any(&addresses, self.port))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
        let stream: Box<dyn Io> = if self.tls {
            Box::new(
                timeout_at(connect_deadline, self.tls_handshake(stream))
                    .await
                    .map_err(|_| HttpError::ConnectionTimeout)??,
            )
        } else {
            Box::new(stream)
        };
        let (sender, conn) = timeout_at(
            connect_deadline,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(hyper_error)?;
        // The connection lives on its own task, for one exchange and, pooled,
        // for those that reuse it within `REUSE_WINDOW`; it is dropped (and
        // its socket closed) once no exchange can still be using it, so a
        // stalled upstream can't hold a socket for longer.
        let lifetime = REUSE_WINDOW + self.policy.settings.timeout;
        let opened = Instant::now();
        tokio::spawn(async move {
            let _ = tokio::time::timeout_at(opened + lifetime, conn).await;
        });
        Ok(Connection {
            sender,
            opened,
            idle_since: opened,
        })
    }

    async fn resolve(&self) -> Result<Vec<IpAddr>, HttpError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let dns_error = |message: String| HttpError::DnsError {
            rcode: Some(message),
            info_code: None,
        };
        let mut addresses = Vec::new();
        for address in tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| dns_error(e.to_string()))?
        {
            if !addresses.contains(&address.ip()) {
                addresses.push(address.ip());
            }
        }
        if addresses.is_empty() {
            return Err(dns_error(format!("no address for {}", self.host)));
        }
        Ok(addresses)
    }

    /// The addresses that pass the address check, canonical (IPv4-mapped
    /// addresses as IPv4); a denial when none does.
    fn checked(&self, addresses: Vec<IpAddr>) -> Result<Vec<IpAddr>, HttpError> {
        let settings = &self.policy.settings;
        let mut refused = None;
        let permitted: Vec<IpAddr> = addresses
            .into_iter()
            .map(|ip| ip.to_canonical())
            .filter(|&ip| match non_public(ip) {
                None => true,
                Some(_) if settings.allow_networks.iter().any(|n| n.contains(ip)) => true,
                Some(_) if self.element.allow.names_address(ip, self.port) => true,
                Some(why) => {
                    refused.get_or_insert((ip, why));
                    false
                }
            })
            .collect();
        if permitted.is_empty() {
            if let Some((address, why)) = refused {
                tracing::warn!(
                    element = %self.element.element,
                    host = %self.host,
                    port = self.port,
                    %address,
                    range = why,
                    "outbound HTTP refused: the host resolves to a non-public address \
                     (allow it with [services.http] allow_networks)"
                );
            }
            return Err(HttpError::HttpRequestDenied);
        }
        Ok(permitted)
    }

    async fn tls_handshake(&self, stream: TcpStream) -> Result<impl Io, HttpError> {
        use rustls::pki_types::ServerName;

        let config = self
            .policy
            .tls
            .as_ref()
            .map_err(|e| HttpError::InternalError(Some(format!("TLS is not available: {e}"))))?;
        let name = match self.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(self.host.clone())?,
        };
        tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, stream)
            .await
            .map_err(tls_error)
    }
}

/// `configured`, or `requested` when that is shorter.
fn shortest(configured: Duration, requested: Option<Duration>) -> Duration {
    requested.map_or(configured, |r| r.min(configured))
}

/// Connects to the first of `addresses` that answers.
async fn connect_any(addresses: &[IpAddr], port: u16) -> Result<TcpStream, HttpError> {
    let mut last = HttpError::DestinationUnavailable;
    for &ip in addresses {
        match TcpStream::connect(SocketAddr::new(ip, port)).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = connect_error(e),
        }
    }
    Err(last)
}

fn connect_error(e: std::io::Error) -> HttpError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => HttpError::ConnectionTerminated,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => HttpError::DestinationUnavailable,
        ErrorKind::TimedOut => HttpError::ConnectionTimeout,
        _ => HttpError::Connect(e),
    }
}

fn tls_error(e: std::io::Error) -> HttpError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => HttpError::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => HttpError::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        Some(_) => HttpError::TlsProtocolError,
        None => connect_error(e),
    }
}

fn hyper_error(e: hyper::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::HttpResponseTimeout
    } else if e.is_incomplete_message() {
        HttpError::HttpResponseIncomplete
    } else if e.is_parse_too_large() {
        HttpError::HttpResponseHeaderSectionSize(None)
    } else {
        // Keeps the cause: a failed request body carries the guest's error code.
        HttpError::Hyper(e)
    }
}

/// How long after it was opened a connection may be reused. Short enough
/// that an upstream's own keep-alive timeout rarely closes it under us.
const REUSE_WINDOW: Duration = Duration::from_secs(30);
/// How long a connection may sit idle and still be reused: well under the
/// keep-alive timeouts servers commonly use (Node's is 5 s), so a request is
/// rarely sent on a connection the upstream is closing at that moment.
const IDLE_REUSE: Duration = Duration::from_secs(2);
/// Most idle connections an Element keeps to one destination.
const MAX_IDLE_PER_DESTINATION: usize = 16;
/// Most destinations an Element keeps idle connections to.
const MAX_DESTINATIONS: usize = 32;

/// A destination as the pool sees it: the checked host name, port, scheme
/// and the operator settings the connection was opened under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    host: String,
    port: u16,
    tls: bool,
    generation: u64,
}

/// One Element's idle keep-alive connections, each usable until
/// [`REUSE_WINDOW`] after it was opened.
#[derive(Debug, Default)]
struct Pool {
    idle: std::sync::Mutex<HashMap<PoolKey, Vec<Connection>>>,
}

/// An open HTTP/1.1 connection (its task drives it, see `Exchange::connect`).
struct Connection {
    sender: SendRequest<WasiBody>,
    opened: Instant,
    /// When it last finished an exchange.
    idle_since: Instant,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("opened", &self.opened)
            .finish()
    }
}

impl Connection {
    /// Whether an exchange started now may use it: the exchange's deadline
    /// then falls before the connection task's end.
    fn reusable(&self, now: Instant) -> bool {
        now.duration_since(self.opened) < REUSE_WINDOW
            && now.duration_since(self.idle_since) < IDLE_REUSE
            && !self.sender.is_closed()
    }
}

impl Pool {
    /// An idle connection to `key` still open and within its reuse window.
    fn take(&self, key: &PoolKey) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        let found = loop {
            let Some(conn) = list.pop() else { break None };
            if conn.reusable(now) && conn.sender.is_ready() {
                break Some(conn);
            }
        };
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Keeps `conn` for the next exchange to `key`, if it is still of use
    /// and there is room; otherwise it is dropped, which closes it.
    fn put(&self, key: PoolKey, mut conn: Connection) {
        let now = Instant::now();
        conn.idle_since = now;
        if !conn.reusable(now) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Connections past their window are of no use to anyone: let go of them.
        idle.retain(|_, list| {
            list.retain(|c| c.reusable(now));
            !list.is_empty()
        });
        if !idle.contains_key(&key) && idle.len() >= MAX_DESTINATIONS {
            return;
        }
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_DESTINATION {
            list.push(conn);
        }
    }
}

/// A response body cut at the size cap and the exchange's deadline.
struct CappedBody {
    incoming: Incoming,
    /// Bytes passed on so far.
    read: u64,
    max: u64,
    deadline: Pin<Box<Sleep>>,
    /// The Element's between-bytes timeout, if it set one.
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    /// An error was reported; the body ends there.
    done: bool,
    /// Where the connection goes back once this body was read to its end.
    checkin: Option<Checkin>,
}

/// A connection to hand back to its Element's pool.
struct Checkin {
    element: Arc<ElementHttp>,
    key: PoolKey,
    conn: Connection,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let failed = |this: &mut CappedBody, error| {
            this.done = true;
            Poll::Ready(Some(Err(error)))
        };
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read = this.read.saturating_add(data.len() as u64);
                    if this.read > this.max {
                        return failed(this, HttpError::HttpResponseBodySize(Some(this.read)));
                    }
                }
                if let Some((idle, sleep)) = &mut this.idle {
                    sleep.as_mut().reset(Instant::now() + *idle);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => failed(this, hyper_error(e)),
            Poll::Ready(None) => {
                // Read to its end: the connection may serve another exchange.
                // (A body dropped before its end drops the connection with it.)
                if let Some(checkin) = this.checkin.take() {
                    checkin.element.pool.put(checkin.key, checkin.conn);
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    return failed(this, HttpError::HttpResponseTimeout);
                }
                if let Some((_, sleep)) = &mut this.idle
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    return failed(this, HttpError::ConnectionReadTimeout);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reused instance's hooks take the policy as the operator last set
    /// it: the same one while it is unchanged (no copy per request), the
    /// new one once it changed.
    #[test]
    fn a_renewed_instance_takes_the_current_policy() {
        let service = HttpService::new(HttpSettings::default());
        let deployed = Arc::new(ElementHttp {
            element: "e".into(),
            allow: AllowList::parse("example.com").unwrap(),
            pool: Pool::default(),
        });
        let request = RequestInfo::internal("r1");
        let mut hooks = service.prepare(&deployed, &request);
        let first = hooks.policy.clone();
        service.renew(&deployed, &mut hooks, &request);
        assert!(Arc::ptr_eq(&first, &hooks.policy));
        service.apply(HttpSettings {
            max_response_bytes: 123,
            ..HttpSettings::default()
        });
        service.renew(&deployed, &mut hooks, &request);
        assert_eq!(hooks.policy.settings.max_response_bytes, 123);
        assert!(Arc::ptr_eq(&hooks.element, &deployed));
    }

    #[test]
    fn allow_list_matching() {
        let list = AllowList::parse("users.roblox.com, 127.0.0.1:8089 [::1]:9000").unwrap();
        assert!(list.allows("users.roblox.com", 443));
        assert!(list.allows("USERS.roblox.com", 80));
        assert!(list.allows("127.0.0.1", 8089));
        assert!(!list.allows("127.0.0.1", 8090));
        assert!(list.allows("::1", 9000));
        assert!(list.allows("[::1]", 9000));
        assert!(!list.allows("evil.users.roblox.com", 443));
        assert!(!list.allows("roblox.com", 443));
        assert!(!AllowList::parse("").unwrap().allows("localhost", 80));
        for bad in ["*.roblox.com", "http://x", "a:notaport", "user@host"] {
            let err = AllowList::parse(bad).unwrap_err();
            assert!(err.starts_with("allow-list"), "{err}");
        }
    }

    #[test]
    fn allow_list_from_entries() {
        let list = AllowList::from_entries(["api.example.com:443", "10.0.0.5", "[fd00::1]:8080"]).unwrap();
        assert!(list.allows("api.example.com", 443));
        assert!(!list.allows("api.example.com", 80));
        assert!(list.allows("10.0.0.5", 1234));
        assert!(list.allows("fd00::1", 8080));
        assert_eq!(
            list,
            AllowList::parse("api.example.com:443 10.0.0.5,[fd00::1]:8080").unwrap()
        );
        let err = AllowList::from_entries(vec![String::from("*.example.com")]).unwrap_err();
        assert!(err.contains("*.example.com"), "{err}");
        assert!(AllowList::from_entries(Vec::<String>::new()).unwrap() == AllowList::default());
    }

    #[test]
    fn literal_entries_name_their_address() {
        let list = AllowList::parse("127.0.0.1:8089 10.1.2.3 localhost:80 [::1]:9000").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(list.names_address(ip("127.0.0.1"), 8089));
        assert!(list.names_address(ip("::ffff:127.0.0.1"), 8089));
        assert!(
            !list.names_address(ip("127.0.0.1"), 80),
            "the port is part of the entry"
        );
        assert!(!list.names_address(ip("127.0.0.2"), 8089));
        assert!(list.names_address(ip("10.1.2.3"), 1));
        assert!(list.names_address(ip("::1"), 9000));
        // A name is not an address, even one that resolves to it.
        assert!(!list.names_address(ip("127.0.0.1"), 80));
    }
}
