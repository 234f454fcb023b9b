//! What the server runs with and what its operator allowed: the server
//! configuration (defaults, overridden by an optional TOML file, overridden
//! by `ELEMENTS_*` environment variables, overridden by flags), the
//! [`grants`] an Element may be approved, and which [`address`]es are
//! public. The bottom layer: every other crate of the server reads it, it
//! reads none of them.
//!
//! Nothing is required: `elements` with no configuration listens on
//! `127.0.0.1:8080`, loads Elements from `./deploy` and keeps its data in
//! `./data`.

pub mod address;
pub mod grants;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use elements_identity::{Secret, ThrottleConfig};

use crate::grants::Grant;
use serde::Deserialize;

/// Command-line flags. Every flag also reads an `ELEMENTS_*` variable; a flag
/// or variable wins over the configuration file, which wins over defaults.
#[derive(Debug, Default, Parser)]
#[command(
    name = "elements",
    version,
    about = "The Elements server: hosts WebAssembly component Elements behind HTTP.",
    after_help = "Configuration file keys (TOML) mirror the flags: listen, deploy_dir, data_dir, \
cache_dir, log_format, log, pooling, max_instances, mongodb_uri, mongodb_database, public_url, admin_listen, admin_public_url, metrics, and a [limits] table (timeout_ms, memory_mib, \
max_request_body, max_response_body, max_concurrency, max_log_lines, isolation, reuse_max_requests). Operator attributes: \
[attributes] for every Element and [elements.NAME.attributes] for one; approved grants: \
[elements.NAME] grants = [...]; host services: [services.mail], [services.http]. Identity: server_key, \
root_password, token_key, refresh_token_key, token_expiry_secs, refresh_token_expiry_secs, \
session_expiry_secs, and a [login] table (account_failures, address_failures, lockout_secs, \
max_lockout_secs, forget_after_secs, max_tracked, password_threads, password_queue). Operator service \
settings: [services.http] (allow_networks, connect_timeout_ms, timeout_ms, max_response_bytes). Deploys: \
[deploy] (compile_timeout_ms, max_compiles, max_component_bytes, max_function_bytes, gc_grace_secs). \
Client connections, per listener: [connections] (max_connections, idle_timeout_ms, header_read_timeout_ms, \
body_read_timeout_ms, write_timeout_ms, max_header_bytes, max_headers)."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "ELEMENTS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]. Port 0 picks a free port.
    #[arg(long, env = "ELEMENTS_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address of the operators' listener: the management portal, the
    /// deployment admin API and `/health` [default: 127.0.0.1:8081]. Port 0
    /// picks a free port. Must differ from `--listen`.
    #[arg(long, env = "ELEMENTS_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// The admin listener's public base URL when operators reach it through
    /// a proxy: the portal's origin for its cross-site checks, and `https://`
    /// makes its cookies `Secure` [default: http:// and the admin address].
    #[arg(long, env = "ELEMENTS_ADMIN_PUBLIC_URL", value_name = "URL")]
    pub admin_public_url: Option<String>,
    /// Folder holding `NAME.wasm` Elements and their `NAME.toml` manifests [default: ./deploy].
    #[arg(long, env = "ELEMENTS_DEPLOY_DIR", value_name = "DIR")]
    pub deploy_dir: Option<PathBuf>,
    /// Folder for the server's data [default: ./data].
    #[arg(long, env = "ELEMENTS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Folder for compiled Elements [default: DATA_DIR/cache].
    #[arg(long, env = "ELEMENTS_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Log output format [default: text].
    #[arg(long, env = "ELEMENTS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter in `tracing` syntax, e.g. `info` or `info,elements_runtime=debug` [default: info].
    #[arg(long, env = "ELEMENTS_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Instance allocation: `auto` tries the pooling allocator and falls back
    /// to on-demand allocation when the address space can't be reserved [default: auto].
    #[arg(long, env = "ELEMENTS_POOLING", value_enum)]
    pub pooling: Option<Pooling>,
    /// Most Element instances alive at once (bounds concurrency and reserved memory) [default: 256].
    #[arg(long, env = "ELEMENTS_MAX_INSTANCES", value_name = "N")]
    pub max_instances: Option<u32>,
    /// Default wall-clock deadline of one request, in milliseconds [default: 10000].
    #[arg(long, env = "ELEMENTS_TIMEOUT_MS", value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Default memory cap of one instance (all its memories and tables), in MiB [default: 64].
    #[arg(long, env = "ELEMENTS_MEMORY_MIB", value_name = "MIB")]
    pub memory_mib: Option<u64>,
    /// Most instances of one Element alive at once [default: max(1, max_instances / 4)].
    #[arg(long, env = "ELEMENTS_MAX_CONCURRENCY", value_name = "N")]
    pub max_concurrency: Option<u32>,
    /// Default maximum request body, in bytes [default: 1048576].
    #[arg(long, env = "ELEMENTS_MAX_REQUEST_BODY", value_name = "BYTES")]
    pub max_request_body: Option<usize>,
    /// The server's public base URL, used in links it sends (e.g. email
    /// verification) [default: http:// and the address it listens on].
    #[arg(long, env = "ELEMENTS_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Shifts the wall clock the server, its store and its Elements see, in
    /// seconds (for tests of expiry; never needed in production) [default: 0].
    #[arg(
        long,
        env = "ELEMENTS_CLOCK_OFFSET_SECS",
        value_name = "SECS",
        allow_hyphen_values = true
    )]
    pub clock_offset_secs: Option<i64>,
    /// MongoDB connection string; when set, MongoDB replaces the embedded SQLite store.
    #[arg(long, env = "ELEMENTS_MONGODB_URI", value_name = "URI")]
    pub mongodb_uri: Option<String>,
    /// MongoDB database name [default: elements].
    #[arg(long, env = "ELEMENTS_MONGODB_DATABASE", value_name = "NAME")]
    pub mongodb_database: Option<String>,
    /// Default maximum response body, in bytes [default: 8388608].
    #[arg(long, env = "ELEMENTS_MAX_RESPONSE_BODY", value_name = "BYTES")]
    pub max_response_body: Option<usize>,
    /// Server key Nakama clients send as the HTTP Basic user to authenticate [default: defaultkey].
    #[arg(long, env = "ELEMENTS_SERVER_KEY", value_name = "KEY", hide_env_values = true)]
    pub server_key: Option<String>,
    /// Password of the `root` superuser created on first start [default: random, printed once].
    #[arg(
        long,
        env = "ELEMENTS_ROOT_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub root_password: Option<String>,
    /// HMAC key of session tokens [default: generated once, kept in the store].
    #[arg(long, env = "ELEMENTS_TOKEN_KEY", value_name = "KEY", hide_env_values = true)]
    pub token_key: Option<String>,
    /// HMAC key of refresh tokens [default: generated once, kept in the store].
    #[arg(
        long,
        env = "ELEMENTS_REFRESH_TOKEN_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub refresh_token_key: Option<String>,
    /// Lifetime of a session token, in seconds [default: 60].
    #[arg(long, env = "ELEMENTS_TOKEN_EXPIRY_SECS", value_name = "SECS")]
    pub token_expiry_secs: Option<u64>,
    /// Lifetime of a refresh token, in seconds [default: 3600].
    #[arg(long, env = "ELEMENTS_REFRESH_TOKEN_EXPIRY_SECS", value_name = "SECS")]
    pub refresh_token_expiry_secs: Option<u64>,
    /// Lifetime of an `/api/rest` session, in seconds [default: 86400].
    #[arg(long, env = "ELEMENTS_SESSION_EXPIRY_SECS", value_name = "SECS")]
    pub session_expiry_secs: Option<u64>,
    /// Serve Prometheus metrics at `/metrics` [default: true].
    #[arg(long, env = "ELEMENTS_METRICS", value_name = "BOOL")]
    pub metrics: Option<bool>,
    /// SMTP host for the mail service; unset means mail is not configured.
    #[arg(long, env = "ELEMENTS_SMTP_HOST", value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port [default: 587].
    #[arg(long, env = "ELEMENTS_SMTP_PORT", value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// Require STARTTLS [default: true].
    #[arg(long, env = "ELEMENTS_SMTP_STARTTLS", value_name = "BOOL")]
    pub smtp_starttls: Option<bool>,
    /// SMTP user name; unset means no authentication.
    #[arg(long, env = "ELEMENTS_SMTP_USER", value_name = "USER")]
    pub smtp_user: Option<String>,
    /// SMTP password.
    #[arg(
        long,
        env = "ELEMENTS_SMTP_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub smtp_password: Option<String>,
    /// Sender of messages that name none.
    #[arg(long, env = "ELEMENTS_SMTP_FROM", value_name = "ADDRESS")]
    pub smtp_from: Option<String>,
    /// Networks (CIDR) or addresses outbound HTTP may reach although they are
    /// loopback, private, link-local and so on; comma-separated [default: none].
    #[arg(
        long,
        env = "ELEMENTS_HTTP_ALLOW_NETWORKS",
        value_name = "CIDR,...",
        value_delimiter = ','
    )]
    pub http_allow_networks: Option<Vec<Network>>,
    /// Outbound HTTP: most time to connect (DNS, TCP, TLS), in milliseconds [default: 5000].
    #[arg(long, env = "ELEMENTS_HTTP_CONNECT_TIMEOUT_MS", value_name = "MS")]
    pub http_connect_timeout_ms: Option<u64>,
    /// Outbound HTTP: most time for a whole exchange, response body included, in milliseconds [default: 30000].
    #[arg(long, env = "ELEMENTS_HTTP_TIMEOUT_MS", value_name = "MS")]
    pub http_timeout_ms: Option<u64>,
    /// Outbound HTTP: largest response body, in bytes [default: 8388608].
    #[arg(long, env = "ELEMENTS_HTTP_MAX_RESPONSE_BYTES", value_name = "BYTES")]
    pub http_max_response_bytes: Option<u64>,
    /// Longest a deploy may spend compiling and validating an Element, in
    /// milliseconds; a slower one fails [default: 60000].
    #[arg(long, env = "ELEMENTS_COMPILE_TIMEOUT_MS", value_name = "MS")]
    pub compile_timeout_ms: Option<u64>,
    /// Most deploys compiling at once; others wait for a turn, at most the
    /// compile timeout [default: 2].
    #[arg(long, env = "ELEMENTS_MAX_COMPILES", value_name = "N")]
    pub max_compiles: Option<u32>,
    /// Largest component a deploy accepts, in bytes; at most 12533760 (a
    /// stored component is one document of at most 16 MiB, base64) [default: 11534336].
    #[arg(long, env = "ELEMENTS_MAX_COMPONENT_BYTES", value_name = "BYTES")]
    pub max_component_bytes: Option<usize>,
    /// Largest function body a deploy compiles, in bytes [default: 4194304].
    #[arg(long, env = "ELEMENTS_MAX_FUNCTION_BYTES", value_name = "BYTES")]
    pub max_function_bytes: Option<usize>,
    /// How long a stored component or compiled-cache entry no deployment
    /// needs is kept before it is removed, in seconds [default: 3600].
    #[arg(long, env = "ELEMENTS_DEPLOY_GC_GRACE_SECS", value_name = "SECS")]
    pub deploy_gc_grace_secs: Option<u64>,
}

/// How the server writes its log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Instance allocation strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Pooling when the address space can be reserved, otherwise on-demand.
    #[default]
    Auto,
    /// Pooling or fail to start.
    On,
    /// Always on-demand.
    Off,
}

/// How an Element's requests map to instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A new instance for every request: nothing leaks between requests.
    #[default]
    Fresh,
    /// A warm instance serves requests one after another, up to
    /// `reuse_max_requests`, and is discarded after any trap or limit breach.
    /// Guest globals persist between the requests it serves.
    Reuse,
}

/// Per-request limits. Server-wide defaults; a manifest may override each,
/// but may not raise a cap above the operator's (see [`Limits::check_ceiling`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline of one request.
    pub timeout: Duration,
    /// Memory cap of one instance, in bytes: all its linear memories and
    /// tables together.
    pub memory_bytes: u64,
    /// Largest accepted request body, in bytes.
    pub max_request_body: usize,
    /// Largest response body an Element may produce, in bytes.
    pub max_response_body: usize,
    /// Instance policy.
    pub isolation: Isolation,
    /// With [`Isolation::Reuse`], how many requests one instance serves.
    pub reuse_max_requests: u32,
    /// Most instances of one Element alive at once (busy, or idle and warm
    /// under [`Isolation::Reuse`]), so one Element can't take every slot.
    pub max_concurrency: u32,
    /// Most log lines (log calls, stdout and stderr together) one request
    /// may write; past it lines are dropped and one line says so.
    pub max_log_lines: u32,
}

/// The default of [`Limits::max_concurrency`] for a server with
/// `max_instances` slots: a quarter of them, at least one.
pub fn fair_concurrency(max_instances: u32) -> u32 {
    (max_instances / 4).max(1)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            max_request_body: 1 << 20,
            max_response_body: 8 << 20,
            isolation: Isolation::Fresh,
            reuse_max_requests: 10_000,
            max_concurrency: fair_concurrency(DEFAULT_MAX_INSTANCES),
            max_log_lines: 1000,
        }
    }
}

/// Partial limits as written in a configuration file or a manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    /// See [`Limits::timeout`], in milliseconds.
    pub timeout_ms: Option<u64>,
    /// See [`Limits::memory_bytes`], in MiB.
    pub memory_mib: Option<u64>,
    /// See [`Limits::max_request_body`].
    pub max_request_body: Option<usize>,
    /// See [`Limits::max_response_body`].
    pub max_response_body: Option<usize>,
    /// See [`Limits::isolation`].
    pub isolation: Option<Isolation>,
    /// See [`Limits::reuse_max_requests`].
    pub reuse_max_requests: Option<u32>,
    /// See [`Limits::max_concurrency`].
    pub max_concurrency: Option<u32>,
    /// See [`Limits::max_log_lines`].
    pub max_log_lines: Option<u32>,
}

impl Limits {
    /// These limits with every value `o` sets replaced.
    pub fn with(&self, o: &LimitsOverride) -> Limits {
        Limits {
            timeout: o.timeout_ms.map(Duration::from_millis).unwrap_or(self.timeout),
            memory_bytes: o.memory_mib.map(|m| m << 20).unwrap_or(self.memory_bytes),
            max_request_body: o.max_request_body.unwrap_or(self.max_request_body),
            max_response_body: o.max_response_body.unwrap_or(self.max_response_body),
            isolation: o.isolation.unwrap_or(self.isolation),
            reuse_max_requests: o.reuse_max_requests.unwrap_or(self.reuse_max_requests),
            max_concurrency: o.max_concurrency.unwrap_or(self.max_concurrency),
            max_log_lines: o.max_log_lines.unwrap_or(self.max_log_lines),
        }
    }

    /// Checks that `o` (a manifest's limits) only lowers the caps of these
    /// (the operator's) limits; the message names each key set too high.
    /// `isolation` and `reuse_max_requests` are the Element's choice.
    pub fn check_ceiling(&self, o: &LimitsOverride) -> Result<(), String> {
        let mut above = Vec::new();
        let mut check = |key: &str, asked: Option<u64>, allowed: u64| {
            if let Some(asked) = asked
                && asked > allowed
            {
                above.push(format!("{key} = {asked} (the operator allows at most {allowed})"));
            }
        };
        check("timeout_ms", o.timeout_ms, self.timeout.as_millis() as u64);
        check("memory_mib", o.memory_mib, self.memory_bytes >> 20);
        check(
            "max_request_body",
            o.max_request_body.map(|v| v as u64),
            self.max_request_body as u64,
        );
        check(
            "max_response_body",
            o.max_response_body.map(|v| v as u64),
            self.max_response_body as u64,
        );
        check(
            "max_concurrency",
            o.max_concurrency.map(u64::from),
            self.max_concurrency.into(),
        );
        check(
            "max_log_lines",
            o.max_log_lines.map(u64::from),
            self.max_log_lines.into(),
        );
        if above.is_empty() {
            Ok(())
        } else {
            Err(format!("above the server's limits: {}", above.join(", ")))
        }
    }
}

/// The default of [`Config::max_instances`].
const DEFAULT_MAX_INSTANCES: u32 = 256;
/// A network of addresses, written as CIDR (`10.1.0.0/16`, `fd00::/8`) or as
/// one exact address (`127.0.0.1`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network(ipnet::IpNet);

impl Network {
    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`) counts as the IPv4 address it maps.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Network, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            // `10.1.2.3/8` is almost certainly a typo for `10.0.0.0/8`; the
            // network it names is the same, so accept it as that network.
            return Ok(Network(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Network(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("{s:?} is not a CIDR network (e.g. 10.0.0.0/8) or an IP address"))
    }
}

impl TryFrom<String> for Network {
    type Error = String;

    fn try_from(s: String) -> Result<Network, String> {
        s.parse()
    }
}

impl From<Network> for String {
    fn from(n: Network) -> String {
        n.to_string()
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Operator settings of outbound HTTP (`[services.http]`). No Element can
/// read or change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Networks Elements may reach although they are loopback, private,
    /// link-local, ... (every other non-public address is refused).
    pub allow_networks: Vec<Network>,
    /// Most time to connect: DNS, TCP and TLS.
    pub connect_timeout: Duration,
    /// Most time for a whole exchange, from the request to the last byte of
    /// the response body.
    pub timeout: Duration,
    /// Largest response body, in bytes.
    pub max_response_bytes: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            allow_networks: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_response_bytes: 8 << 20,
        }
    }
}

/// `[services.http]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFileConfig {
    allow_networks: Option<Vec<Network>>,
    connect_timeout_ms: Option<u64>,
    timeout_ms: Option<u64>,
    max_response_bytes: Option<u64>,
}

/// The configuration file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    deploy_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    pooling: Option<Pooling>,
    max_instances: Option<u32>,
    mongodb_uri: Option<String>,
    mongodb_database: Option<String>,
    public_url: Option<String>,
    admin_listen: Option<SocketAddr>,
    admin_public_url: Option<String>,
    clock_offset_secs: Option<i64>,
    metrics: Option<bool>,
    #[serde(default)]
    limits: LimitsOverride,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    elements: BTreeMap<String, ElementFileConfig>,
    #[serde(default)]
    services: ServicesFile,
    #[serde(default)]
    connections: ConnectionLimits,
    #[serde(default)]
    deploy: DeployFile,
    server_key: Option<String>,
    root_password: Option<String>,
    token_key: Option<String>,
    refresh_token_key: Option<String>,
    token_expiry_secs: Option<u64>,
    refresh_token_expiry_secs: Option<u64>,
    session_expiry_secs: Option<u64>,
    #[serde(default)]
    login: LoginFile,
}

/// `[login]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginFile {
    account_failures: Option<u32>,
    address_failures: Option<u32>,
    lockout_secs: Option<u64>,
    max_lockout_secs: Option<u64>,
    forget_after_secs: Option<u64>,
    max_tracked: Option<usize>,
    password_threads: Option<usize>,
    password_queue: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ElementFileConfig {
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Approved grants; replaces the default approvals of that name.
    grants: Option<Vec<String>>,
}

/// The file's `[services.*]` tables: settings of host services, the
/// operator's alone (no Element reads them).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicesFile {
    #[serde(default)]
    mail: MailFile,
    #[serde(default)]
    http: HttpFileConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MailFile {
    host: Option<String>,
    port: Option<u16>,
    starttls: Option<bool>,
    user: Option<String>,
    password: Option<String>,
    from: Option<String>,
    max_per_request: Option<u32>,
}

/// Settings of the host services: the operator's, typed, never attributes.
#[derive(Debug, Clone, Default)]
pub struct ServicesConfig {
    /// The mail service's SMTP relay.
    pub mail: MailSettings,
    /// Outbound HTTP.
    pub http: HttpSettings,
}

/// The SMTP relay Elements with the `mail.send` grant send through.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// SMTP host; `None` means mail is not configured.
    pub host: Option<String>,
    /// SMTP port.
    pub port: u16,
    /// Upgrade with STARTTLS (required when true).
    pub starttls: bool,
    /// User name; `None` means no authentication.
    pub user: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Sender when a message names none.
    pub from: Option<String>,
    /// Most messages one request may send.
    pub max_per_request: u32,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            host: None,
            port: 587,
            starttls: true,
            user: None,
            password: None,
            from: None,
            max_per_request: 10,
        }
    }
}

/// Attribute names that were service settings before 0.2: refused in the
/// configuration, since as attributes every Element could read them.
const MOVED_ATTRIBUTES: &[(&str, &str)] = &[
    ("dev.getelements.elements.email.", "[services.mail]"),
    (
        "dev.getelements.elements.http.allow",
        "grants (http.outbound:HOST)",
    ),
];

fn refuse_moved_attributes<'a>(
    where_: &str,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), ConfigError> {
    for name in names {
        if let Some((_, instead)) = MOVED_ATTRIBUTES
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
        {
            return Err(ConfigError::Invalid(format!(
                "{where_}: {name:?} is no longer an attribute (Elements could read it); use {instead}"
            )));
        }
    }
    Ok(())
}

/// Which document store backend the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// Embedded SQLite in the data directory (the default: no setup).
    Sqlite,
    /// MongoDB, shared by every node.
    Mongo {
        /// Connection string.
        uri: String,
        /// Database name.
        database: String,
    },
}

/// The file's `[deploy]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployFile {
    compile_timeout_ms: Option<u64>,
    max_compiles: Option<u32>,
    max_component_bytes: Option<usize>,
    max_function_bytes: Option<usize>,
    gc_grace_secs: Option<u64>,
}

/// The largest component the store holds: one document of at most 16 MiB,
/// the bytes in base64 (4 for 3), with room for the other fields.
pub const MAX_STORABLE_COMPONENT: usize = ((16 << 20) - (64 << 10)) / 4 * 3;

/// Bounds on deploys and the clean-up after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploySettings {
    /// Longest a deploy may spend compiling and validating (a cache hit
    /// included); also the longest it waits for a compile slot.
    pub compile_timeout: Duration,
    /// Most deploys compiling at once.
    pub max_compiles: u32,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Largest function body compiled, in bytes: the compiler's memory grows
    /// with the function it works on.
    pub max_function_bytes: usize,
    /// Age under which an unneeded stored component or cache entry is
    /// kept: it may belong to an upload another node is making.
    pub gc_grace: Duration,
}

impl Default for DeploySettings {
    fn default() -> Self {
        DeploySettings {
            compile_timeout: Duration::from_secs(60),
            max_compiles: 2,
            max_component_bytes: 11 << 20,
            max_function_bytes: 4 << 20,
            gc_grace: Duration::from_secs(3600),
        }
    }
}

/// Identity settings: the Nakama server key, the bootstrap superuser's
/// password, token keys and lifetimes. Secrets never print (`Secret`).
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// Server key Nakama clients authenticate with (HTTP Basic user).
    pub server_key: Secret,
    /// Password of the `root` superuser created on first start.
    pub root_password: Option<Secret>,
    /// HMAC key of session tokens (generated and stored when absent).
    pub token_key: Option<Secret>,
    /// HMAC key of refresh tokens (generated and stored when absent).
    pub refresh_token_key: Option<Secret>,
    /// Lifetime of a session token.
    pub token_expiry: Duration,
    /// Lifetime of a refresh token.
    pub refresh_token_expiry: Duration,
    /// Lifetime of an `/api/rest` session.
    pub session_expiry: Duration,
    /// Limits on failed password logins, per node (`[login]`).
    pub login_throttle: ThrottleConfig,
    /// Threads hashing passwords (`[login] password_threads`).
    pub password_threads: usize,
    /// Password jobs that may wait; beyond, logins get 503 (`[login] password_queue`).
    pub password_queue: usize,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            server_key: Secret::new("defaultkey"),
            root_password: None,
            token_key: None,
            refresh_token_key: None,
            token_expiry: Duration::from_secs(60),
            refresh_token_expiry: Duration::from_secs(3600),
            session_expiry: Duration::from_secs(86_400),
            login_throttle: ThrottleConfig::default(),
            password_threads: elements_identity::password::default_workers(),
            password_queue: elements_identity::password::DEFAULT_QUEUE,
        }
    }
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on: Element content and the client APIs.
    pub listen: SocketAddr,
    /// Address of the operators' listener (portal, deployment admin API):
    /// never the same origin as Element content.
    pub admin_listen: SocketAddr,
    /// The admin listener's public base URL, without a trailing slash, when
    /// a proxy stands in front of it.
    pub admin_public_url: Option<String>,
    /// Folder the Elements are loaded from.
    pub deploy_dir: PathBuf,
    /// Folder for the server's data.
    pub data_dir: PathBuf,
    /// Folder for compiled Elements.
    pub cache_dir: PathBuf,
    /// Log output format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log: String,
    /// Instance allocation strategy.
    pub pooling: Pooling,
    /// Most instances alive at once.
    pub max_instances: u32,
    /// Default per-request limits.
    pub limits: Limits,
    /// Where everything persistent lives.
    pub store: StoreChoice,
    /// Operator attributes given to every Element.
    pub attributes: BTreeMap<String, String>,
    /// Operator attributes for one Element, by Element name.
    pub element_attributes: BTreeMap<String, BTreeMap<String, String>>,
    /// Identity settings.
    pub identity: IdentitySettings,
    /// Grants the operator approved, by Element name (see
    /// [`crate::grants`]); by default those of the bundled Elements
    /// ([`bundled_grants`]).
    pub element_grants: BTreeMap<String, BTreeSet<Grant>>,
    /// The server's public base URL, without a trailing slash; when not
    /// configured, `http://` and the address the server listens on.
    pub public_url: Option<String>,
    /// Seconds added to the wall clock (tests only).
    pub clock_offset_secs: i64,
    /// Serve Prometheus metrics at `/metrics`.
    pub metrics: bool,
    /// Operator settings of the host services.
    pub services: ServicesConfig,
    /// Limits on client connections, per listener.
    pub connections: ConnectionLimits,
    /// Bounds on deploys.
    pub deploy: DeploySettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_public_url: None,
            deploy_dir: PathBuf::from("deploy"),
            data_dir: PathBuf::from("data"),
            cache_dir: PathBuf::from("data").join("cache"),
            log_format: LogFormat::Text,
            log: "info".into(),
            pooling: Pooling::Auto,
            max_instances: DEFAULT_MAX_INSTANCES,
            limits: Limits::default(),
            store: StoreChoice::Sqlite,
            attributes: BTreeMap::new(),
            element_attributes: BTreeMap::new(),
            identity: IdentitySettings::default(),
            element_grants: bundled_grants(),
            public_url: None,
            clock_offset_secs: 0,
            metrics: true,
            services: ServicesConfig::default(),
            connections: Default::default(),
            deploy: DeploySettings::default(),
        }
    }
}

/// A configuration that can't be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Resolves flags (which include the environment) over the file they name
    /// over the defaults.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Config::default();
        let data_dir = pick(&cli.data_dir, file.data_dir, defaults.data_dir);
        let cache_dir = cli
            .cache_dir
            .clone()
            .or(file.cache_dir)
            .unwrap_or_else(|| data_dir.join("cache"));
        let flag_limits = LimitsOverride {
            timeout_ms: cli.timeout_ms,
            memory_mib: cli.memory_mib,
            max_request_body: cli.max_request_body,
            max_response_body: cli.max_response_body,
            isolation: None,
            reuse_max_requests: None,
            max_concurrency: cli.max_concurrency,
            max_log_lines: None,
        };
        let secret = |flag: &Option<String>, file: Option<String>| {
            flag.clone().or(file).filter(|s| !s.is_empty()).map(Secret::new)
        };
        let secs = |flag: &Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).map(Duration::from_secs).unwrap_or(default)
        };
        refuse_moved_attributes("[attributes]", file.attributes.keys())?;
        for (name, element) in &file.elements {
            refuse_moved_attributes(
                &format!("[elements.{name}.attributes]"),
                element.attributes.keys(),
            )?;
        }
        let mail_file = &file.services.mail;
        let mail_defaults = MailSettings::default();
        let mail = MailSettings {
            host: cli
                .smtp_host
                .clone()
                .or(mail_file.host.clone())
                .filter(|h| !h.trim().is_empty()),
            port: pick(&cli.smtp_port, mail_file.port, mail_defaults.port),
            starttls: pick(&cli.smtp_starttls, mail_file.starttls, mail_defaults.starttls),
            user: cli
                .smtp_user
                .clone()
                .or(mail_file.user.clone())
                .filter(|u| !u.trim().is_empty()),
            password: secret(&cli.smtp_password, mail_file.password.clone()),
            from: cli
                .smtp_from
                .clone()
                .or(mail_file.from.clone())
                .filter(|f| !f.trim().is_empty()),
            max_per_request: mail_file.max_per_request.unwrap_or(mail_defaults.max_per_request),
        };
        let http_defaults = HttpSettings::default();
        let file_http = &file.services.http;
        let millis = |flag: &Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).map(Duration::from_millis).unwrap_or(default)
        };
        let services = ServicesConfig {
            http: HttpSettings {
                allow_networks: pick(
                    &cli.http_allow_networks,
                    file_http.allow_networks.clone(),
                    http_defaults.allow_networks,
                ),
                connect_timeout: millis(
                    &cli.http_connect_timeout_ms,
                    file_http.connect_timeout_ms,
                    http_defaults.connect_timeout,
                ),
                timeout: millis(&cli.http_timeout_ms, file_http.timeout_ms, http_defaults.timeout),
                max_response_bytes: pick(
                    &cli.http_max_response_bytes,
                    file_http.max_response_bytes,
                    http_defaults.max_response_bytes,
                ),
            },
            mail,
        };
        let deploy_defaults = DeploySettings::default();
        let deploy = DeploySettings {
            compile_timeout: millis(
                &cli.compile_timeout_ms,
                file.deploy.compile_timeout_ms,
                deploy_defaults.compile_timeout,
            ),
            max_compiles: pick(
                &cli.max_compiles,
                file.deploy.max_compiles,
                deploy_defaults.max_compiles,
            ),
            max_component_bytes: pick(
                &cli.max_component_bytes,
                file.deploy.max_component_bytes,
                deploy_defaults.max_component_bytes,
            ),
            max_function_bytes: pick(
                &cli.max_function_bytes,
                file.deploy.max_function_bytes,
                deploy_defaults.max_function_bytes,
            ),
            gc_grace: secs(
                &cli.deploy_gc_grace_secs,
                file.deploy.gc_grace_secs,
                deploy_defaults.gc_grace,
            ),
        };
        let identity_defaults = IdentitySettings::default();
        let identity = IdentitySettings {
            server_key: secret(&cli.server_key, file.server_key).unwrap_or(identity_defaults.server_key),
            root_password: secret(&cli.root_password, file.root_password),
            token_key: secret(&cli.token_key, file.token_key),
            refresh_token_key: secret(&cli.refresh_token_key, file.refresh_token_key),
            token_expiry: secs(
                &cli.token_expiry_secs,
                file.token_expiry_secs,
                identity_defaults.token_expiry,
            ),
            refresh_token_expiry: secs(
                &cli.refresh_token_expiry_secs,
                file.refresh_token_expiry_secs,
                identity_defaults.refresh_token_expiry,
            ),
            session_expiry: secs(
                &cli.session_expiry_secs,
                file.session_expiry_secs,
                identity_defaults.session_expiry,
            ),
            login_throttle: {
                let login = &file.login;
                let d = &identity_defaults.login_throttle;
                ThrottleConfig {
                    account_failures: login.account_failures.unwrap_or(d.account_failures),
                    address_failures: login.address_failures.unwrap_or(d.address_failures),
                    base_lockout: secs(&None, login.lockout_secs, d.base_lockout),
                    max_lockout: secs(&None, login.max_lockout_secs, d.max_lockout),
                    forget_after: secs(&None, login.forget_after_secs, d.forget_after),
                    max_keys: login.max_tracked.unwrap_or(d.max_keys),
                }
            },
            password_threads: file
                .login
                .password_threads
                .unwrap_or(identity_defaults.password_threads),
            password_queue: file
                .login
                .password_queue
                .unwrap_or(identity_defaults.password_queue),
        };
        let max_instances = pick(&cli.max_instances, file.max_instances, defaults.max_instances);
        // The fair share follows the configured pool unless set explicitly.
        let base_limits = Limits {
            max_concurrency: fair_concurrency(max_instances),
            ..defaults.limits.clone()
        };
        let config = Config {
            identity,
            listen: pick(&cli.listen, file.listen, defaults.listen),
            admin_listen: pick(&cli.admin_listen, file.admin_listen, defaults.admin_listen),
            admin_public_url: cli
                .admin_public_url
                .clone()
                .or(file.admin_public_url)
                .filter(|u| !u.is_empty())
                .map(|u| u.trim_end_matches('/').to_owned()),
            deploy_dir: pick(&cli.deploy_dir, file.deploy_dir, defaults.deploy_dir),
            data_dir,
            cache_dir,
            log_format: pick(&cli.log_format, file.log_format, defaults.log_format),
            log: pick(&cli.log, file.log, defaults.log),
            pooling: pick(&cli.pooling, file.pooling, defaults.pooling),
            max_instances,
            limits: base_limits.with(&file.limits).with(&flag_limits),
            store: match cli
                .mongodb_uri
                .clone()
                .or(file.mongodb_uri)
                .filter(|u| !u.is_empty())
            {
                Some(uri) => StoreChoice::Mongo {
                    uri,
                    database: cli
                        .mongodb_database
                        .clone()
                        .or(file.mongodb_database)
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| "elements".into()),
                },
                None => StoreChoice::Sqlite,
            },
            attributes: file.attributes,
            element_grants: element_grants(&file.elements, defaults.element_grants)?,
            element_attributes: file
                .elements
                .into_iter()
                .map(|(name, e)| (name, e.attributes))
                .collect(),
            public_url: cli
                .public_url
                .clone()
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_owned()),
            clock_offset_secs: pick(&cli.clock_offset_secs, file.clock_offset_secs, 0),
            metrics: pick(&cli.metrics, file.metrics, defaults.metrics),
            services,
            connections: file.connections,
            deploy,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.connections.validate().map_err(ConfigError::Invalid)?;
        for (key, url) in [
            ("public_url", &self.public_url),
            ("admin_public_url", &self.admin_public_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(ConfigError::Invalid(format!(
                    "{key} {url:?} must start with http:// or https://"
                )));
            }
        }
        if let Some(url) = &self.admin_public_url
            && origin_of(url).is_none()
        {
            return Err(ConfigError::Invalid(format!(
                "admin_public_url {url:?} is not a valid URL"
            )));
        }
        // One listener would put the portal on the Elements' origin, which
        // is what the second listener exists to prevent. Port 0 picks two
        // different free ports.
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(ConfigError::Invalid(format!(
                "listen and admin_listen are both {}: the portal and the admin API need a listener of \
                 their own, away from Element content",
                self.listen
            )));
        }
        if self.max_instances == 0 {
            return Err(ConfigError::Invalid("max_instances must be at least 1".into()));
        }
        let identity = &self.identity;
        if identity.token_expiry.is_zero()
            || identity.refresh_token_expiry.is_zero()
            || identity.session_expiry.is_zero()
        {
            return Err(ConfigError::Invalid(
                "token_expiry_secs, refresh_token_expiry_secs and session_expiry_secs must be at least 1"
                    .into(),
            ));
        }
        let throttle = &identity.login_throttle;
        if throttle.account_failures == 0 || throttle.address_failures == 0 {
            return Err(ConfigError::Invalid(
                "login: account_failures and address_failures must be at least 1".into(),
            ));
        }
        if throttle.max_lockout < throttle.base_lockout {
            return Err(ConfigError::Invalid(
                "login: max_lockout_secs must be at least lockout_secs".into(),
            ));
        }
        if throttle.max_keys < 2 {
            return Err(ConfigError::Invalid(
                "login: max_tracked must be at least 2".into(),
            ));
        }
        if !(1..=256).contains(&identity.password_threads) || identity.password_queue > 100_000 {
            return Err(ConfigError::Invalid(
                "login: password_threads must be 1 to 256 and password_queue at most 100000".into(),
            ));
        }
        let http = &self.services.http;
        if http.connect_timeout.is_zero() || http.timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "services.http: connect_timeout_ms and timeout_ms must be at least 1".into(),
            ));
        }
        let deploy = &self.deploy;
        if deploy.compile_timeout.is_zero()
            || deploy.max_compiles == 0
            || deploy.max_component_bytes == 0
            || deploy.max_function_bytes == 0
        {
            return Err(ConfigError::Invalid(
                "deploy: compile_timeout_ms, max_compiles, max_component_bytes and max_function_bytes \
                 must be at least 1"
                    .into(),
            ));
        }
        if deploy.max_component_bytes > MAX_STORABLE_COMPONENT {
            return Err(ConfigError::Invalid(format!(
                "deploy: max_component_bytes may be at most {MAX_STORABLE_COMPONENT}: a stored component \
                 is one document of at most 16 MiB, in base64"
            )));
        }
        validate_limits(&self.limits).map_err(ConfigError::Invalid)
    }

    /// A configuration for tests and embedding: defaults with every folder
    /// below `root`.
    pub fn in_dir(root: &Path) -> Config {
        Config {
            deploy_dir: root.join("deploy"),
            data_dir: root.join("data"),
            cache_dir: root.join("data").join("cache"),
            ..Config::default()
        }
    }
}

/// Checks that limits are usable; the message names the bad value.
pub fn validate_limits(limits: &Limits) -> Result<(), String> {
    if limits.timeout.is_zero() {
        return Err("timeout_ms must be at least 1".into());
    }
    if limits.memory_bytes < (1 << 20) {
        return Err("memory_mib must be at least 1".into());
    }
    if limits.memory_bytes > MAX_MEMORY_BYTES {
        return Err(format!("memory_mib must be at most {}", MAX_MEMORY_BYTES >> 20));
    }
    if limits.reuse_max_requests == 0 {
        return Err("reuse_max_requests must be at least 1".into());
    }
    if limits.max_concurrency == 0 {
        return Err("max_concurrency must be at least 1".into());
    }
    Ok(())
}

/// The largest linear memory any Element may have. The pooling allocator
/// reserves this much address space per instance slot.
pub const MAX_MEMORY_BYTES: u64 = 1 << 30;

/// The grants the default configuration approves: exactly what the bundled
/// Elements request, under their usual names.
pub fn bundled_grants() -> BTreeMap<String, BTreeSet<Grant>> {
    let parse = |list: &[&str]| -> BTreeSet<Grant> { list.iter().filter_map(|g| g.parse().ok()).collect() };
    BTreeMap::from([
        (
            "roblox-kit".to_owned(),
            parse(&[
                "identity.scheme:dev.getelements.robloxkit.player.id",
                "identity.session",
                "http.outbound:users.roblox.com",
            ]),
        ),
        (
            "email-verification".to_owned(),
            parse(&[
                "identity.verify:email",
                "mail.send",
                "events.publish:dev.getelements.email_verification.*",
                "route.core:/api/rest/user/me/email/verify",
                "route.core:/api/rest/verify",
            ]),
        ),
    ])
}

/// The file's `[elements.NAME] grants` over the defaults (a name the file
/// gives grants for gets exactly those).
fn element_grants(
    elements: &BTreeMap<String, ElementFileConfig>,
    mut grants: BTreeMap<String, BTreeSet<Grant>>,
) -> Result<BTreeMap<String, BTreeSet<Grant>>, ConfigError> {
    for (name, element) in elements {
        if let Some(list) = &element.grants {
            let parsed = list
                .iter()
                .map(|g| {
                    g.parse::<Grant>()
                        .map_err(|e| ConfigError::Invalid(format!("[elements.{name}] grants: {e}")))
                })
                .collect::<Result<BTreeSet<Grant>, ConfigError>>()?;
            grants.insert(name.clone(), parsed);
        }
    }
    Ok(grants)
}

/// The origin (`scheme://host[:port]`, lowercase, without a default port)
/// of an `http`/`https` URL, as browsers send it in `Origin`; none when it
/// isn't such a URL.
pub fn origin_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    // User info has no place in an origin (and would fool a comparison).
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn pick<T: Clone>(flag: &Option<T>, file: Option<T>, default: T) -> T {
    flag.clone().or(file).unwrap_or(default)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Limits on the connections of one listener (the file's `[connections]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Most connections open at once on each listener; one more is answered
    /// `503` and closed. Lowered at startup to what the process's file
    /// descriptor limit allows.
    pub max_connections: u32,
    /// Longest wait for a connection's first byte, and between the end of a
    /// response and the next request's first byte (keep-alive), in ms.
    pub idle_timeout_ms: u64,
    /// Longest time from a request's first byte to its complete head, in ms.
    pub header_read_timeout_ms: u64,
    /// Longest time to receive a whole request body once its head is read,
    /// in ms; a body still incomplete then is answered `408`.
    pub body_read_timeout_ms: u64,
    /// Longest a response write may wait on a client that reads nothing, in ms.
    pub write_timeout_ms: u64,
    /// Largest request head (request line and headers), in bytes; larger is
    /// answered `431`.
    pub max_header_bytes: usize,
    /// Most header fields in a request; more is answered `431`.
    pub max_headers: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 10_000,
            idle_timeout_ms: 60_000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            write_timeout_ms: 30_000,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
        }
    }
}

/// hyper's smallest read buffer; a head limit below it is not enforceable.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

impl ConnectionLimits {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("max_headers", self.max_headers as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("[connections] {name} must be positive"));
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(format!(
                "[connections] max_header_bytes must be at least {MIN_HEADER_BYTES}"
            ));
        }
        Ok(())
    }

    /// Longest wait for a first byte or between requests.
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// Longest time to read a request head.
    pub fn header(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// Longest time to read a request body.
    pub fn body(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// Longest wait on a response write.
    pub fn write(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elements.toml");
        std::fs::write(
            &path,
            r#"
            listen = "127.0.0.1:9000"
            data_dir = "/srv/data"
            metrics = false
            [limits]
            timeout_ms = 2000
            memory_mib = 32
            [attributes]
            "smtp.host" = "mail.example"
            [elements.hello.attributes]
            greeting = "Hi"
            "#,
        )
        .unwrap();
        let cli = Cli {
            config: Some(path),
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            memory_mib: Some(16),
            ..Cli::default()
        };
        let config = Config::load(&cli).unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.data_dir, PathBuf::from("/srv/data"));
        assert_eq!(config.cache_dir, PathBuf::from("/srv/data/cache"));
        assert_eq!(config.limits.timeout, Duration::from_secs(2));
        assert_eq!(config.limits.memory_bytes, 16 << 20);
        assert_eq!(config.attributes["smtp.host"], "mail.example");
        assert_eq!(config.element_attributes["hello"]["greeting"], "Hi");
        assert_eq!(config.deploy_dir, PathBuf::from("deploy"));
        assert!(!config.metrics);
        assert!(Config::default().metrics);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elements.toml");
        std::fs::write(&path, "listn = \"x\"\n").unwrap();
        let cli = Cli {
            config: Some(path.clone()),
            ..Cli::default()
        };
        let err = Config::load(&cli).unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");

        std::fs::write(&path, "[limits]\nmemory_mib = 0\n").unwrap();
        let err = Config::load(&cli).unwrap_err().to_string();
        assert!(err.contains("memory_mib"), "{err}");
    }

    #[test]
    fn login_limits_come_from_the_login_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elements.toml");
        let cli = Cli {
            config: Some(path.clone()),
            ..Cli::default()
        };
        std::fs::write(
            &path,
            "[login]\naccount_failures = 3\nlockout_secs = 60\nmax_lockout_secs = 600\npassword_threads = 1\npassword_queue = 0\n",
        )
        .unwrap();
        let identity = Config::load(&cli).unwrap().identity;
        assert_eq!(identity.login_throttle.account_failures, 3);
        assert_eq!(identity.login_throttle.address_failures, 20);
        assert_eq!(identity.login_throttle.base_lockout, Duration::from_secs(60));
        assert_eq!((identity.password_threads, identity.password_queue), (1, 0));
        for (bad, key) in [
            ("account_failures = 0", "account_failures"),
            ("lockout_secs = 10\nmax_lockout_secs = 5", "max_lockout_secs"),
            ("password_threads = 0", "password_threads"),
            ("max_tracked = 1", "max_tracked"),
            ("lockout = 1", "lockout"),
        ] {
            std::fs::write(&path, format!("[login]\n{bad}\n")).unwrap();
            let err = Config::load(&cli).unwrap_err().to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn max_concurrency_defaults_to_a_fair_share_of_the_pool() {
        let cli = Cli {
            max_instances: Some(40),
            ..Cli::default()
        };
        assert_eq!(Config::load(&cli).unwrap().limits.max_concurrency, 10);
        let cli = Cli {
            max_instances: Some(2),
            ..Cli::default()
        };
        assert_eq!(Config::load(&cli).unwrap().limits.max_concurrency, 1);
        let cli = Cli {
            max_instances: Some(40),
            max_concurrency: Some(3),
            ..Cli::default()
        };
        assert_eq!(Config::load(&cli).unwrap().limits.max_concurrency, 3);
        assert_eq!(Config::default().limits.max_concurrency, 64);
        assert_eq!(Config::default().limits.max_log_lines, 1000);
    }

    #[test]
    fn a_manifest_may_lower_caps_but_not_raise_them() {
        let operator = Limits::default();
        let lower: LimitsOverride =
            toml::from_str("timeout_ms = 500\nmemory_mib = 16\nmax_concurrency = 2\nisolation = \"reuse\"")
                .unwrap();
        assert!(operator.check_ceiling(&lower).is_ok());
        let higher: LimitsOverride =
            toml::from_str("timeout_ms = 60000\nmemory_mib = 64\nmax_concurrency = 65\nmax_log_lines = 5000")
                .unwrap();
        let err = operator.check_ceiling(&higher).unwrap_err();
        assert!(err.contains("timeout_ms = 60000"), "{err}");
        assert!(err.contains("max_concurrency = 65"), "{err}");
        assert!(err.contains("max_log_lines = 5000"), "{err}");
        assert!(
            !err.contains("memory_mib"),
            "equal to the operator's is allowed: {err}"
        );
    }

    #[test]
    fn outbound_http_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elements.toml");
        std::fs::write(
            &path,
            r#"
            [services.http]
            allow_networks = ["127.0.0.0/8", "10.1.2.3", "fd00::/8", "::1", "192.168.7.9/16"]
            connect_timeout_ms = 250
            timeout_ms = 1500
            max_response_bytes = 1024
            "#,
        )
        .unwrap();
        let cli = Cli {
            config: Some(path.clone()),
            ..Cli::default()
        };
        let http = Config::load(&cli).unwrap().services.http;
        assert_eq!(http.connect_timeout, Duration::from_millis(250));
        assert_eq!(http.timeout, Duration::from_millis(1500));
        assert_eq!(http.max_response_bytes, 1024);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let allowed = |s: &str| http.allow_networks.iter().any(|n| n.contains(ip(s)));
        for yes in [
            "127.0.0.1",
            "127.9.9.9",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "fd12::1",
            "::1",
            "192.168.200.1",
        ] {
            assert!(allowed(yes), "{yes}");
        }
        for no in ["10.1.2.4", "128.0.0.1", "fe80::1", "::2", "192.169.0.1"] {
            assert!(!allowed(no), "{no}");
        }

        // Flags (and ELEMENTS_* variables) win over the file.
        let cli = Cli {
            config: Some(path.clone()),
            http_allow_networks: Some(vec!["172.16.0.0/12".parse().unwrap()]),
            http_timeout_ms: Some(99),
            ..Cli::default()
        };
        let http = Config::load(&cli).unwrap().services.http;
        assert_eq!(http.allow_networks.len(), 1);
        assert!(http.allow_networks[0].contains(ip("172.20.0.1")));
        assert_eq!(http.timeout, Duration::from_millis(99));
        assert_eq!(http.connect_timeout, Duration::from_millis(250));
        let parsed = Cli::try_parse_from(["elements", "--http-allow-networks", "127.0.0.0/8,::1"]).unwrap();
        assert_eq!(parsed.http_allow_networks.unwrap().len(), 2);
        assert!(Cli::try_parse_from(["elements", "--http-allow-networks", "127.0.0.0/33"]).is_err());

        // Defaults: no exceptions, 5 s to connect, 30 s per exchange, 8 MiB.
        let defaults = Config::default().services.http;
        assert!(defaults.allow_networks.is_empty());
        assert_eq!(defaults.connect_timeout, Duration::from_secs(5));
        assert_eq!(defaults.timeout, Duration::from_secs(30));
        assert_eq!(defaults.max_response_bytes, 8 << 20);

        // A bad entry, an unknown key or a zero timeout is a configuration error naming it.
        for (text, needle) in [
            (
                "[services.http]\nallow_networks = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n",
                "10.0.0.0/40",
            ),
            ("[services.http]\nallow_networks = [\"intranet\"]\n", "intranet"),
            ("[services.http]\nallow = [\"x\"]\n", "allow"),
            ("[services.smtp]\n", "smtp"),
            ("[services.http]\ntimeout_ms = 0\n", "timeout_ms"),
        ] {
            std::fs::write(&path, text).unwrap();
            let cli = Cli {
                config: Some(path.clone()),
                ..Cli::default()
            };
            let err = Config::load(&cli).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn admin_listener_is_separate_and_configurable() {
        let defaults = Config::load(&Cli::default()).unwrap();
        assert_eq!(defaults.admin_listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(defaults.admin_public_url, None);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elements.toml");
        std::fs::write(
            &path,
            "admin_listen = \"127.0.0.1:9100\"\nadmin_public_url = \"https://ops.example/\"\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(path),
            ..Cli::default()
        };
        let config = Config::load(&cli).unwrap();
        assert_eq!(config.admin_listen.port(), 9100);
        assert_eq!(config.admin_public_url.as_deref(), Some("https://ops.example"));

        let same = Cli {
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            admin_listen: Some("127.0.0.1:9000".parse().unwrap()),
            ..Cli::default()
        };
        let err = Config::load(&same).unwrap_err().to_string();
        assert!(err.contains("admin_listen"), "{err}");
        let both_free = Cli {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Cli::default()
        };
        assert!(Config::load(&both_free).is_ok());
        let bad = Cli {
            admin_public_url: Some("ops.example".into()),
            ..Cli::default()
        };
        assert!(Config::load(&bad).is_err());
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            origin_of("HTTPS://Ops.Example:443/portal").as_deref(),
            Some("https://ops.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8081").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(origin_of("http://[::1]:80/").as_deref(), Some("http://[::1]"));
        assert_eq!(origin_of("ftp://x"), None);
        assert_eq!(origin_of("http://user@evil.example"), None);
        assert_eq!(origin_of("not a url"), None);
    }
}
