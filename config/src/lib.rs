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
pub mod providers;
mod settings;

pub use settings::{
    Cli, DeployLayer, ElementLayer, HttpLayer, Layer, LimitsOverride, LoginLayer, MailLayer, ServicesLayer,
};

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use elements_identity::{Secret, ThrottleConfig};
use serde::{Deserialize, Serialize};

use crate::grants::Grant;

/// How the server writes its log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Instance allocation strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
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

// The defaults are declared once, in the settings layers ([`Cli`]).
impl Default for Limits {
    fn default() -> Self {
        Config::default().limits
    }
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

// The defaults are declared once, in the settings layers ([`HttpLayer`]).
impl Default for HttpSettings {
    fn default() -> Self {
        Config::default().services.http
    }
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

// The defaults are declared once, in the settings layers ([`MailLayer`]).
impl Default for MailSettings {
    fn default() -> Self {
        Config::default().services.mail
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
    /// How often a node looks for deployment changes other nodes stored.
    pub poll_interval: Duration,
}

/// The cluster this node joins over NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// NATS server URL(s), comma-separated.
    pub url: String,
    /// First token(s) of every subject.
    pub prefix: String,
    /// Most bytes the event stream keeps (JetStream's type for it).
    pub events_max_bytes: i64,
}

// The defaults are declared once, in the settings layers ([`DeployLayer`]).
impl Default for DeploySettings {
    fn default() -> Self {
        Config::default().deploy
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
    /// Key for Nakama RPC calls without a session (`?http_key=`); none:
    /// refused.
    pub http_key: Option<Secret>,
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

// The defaults are declared once, in the settings layers ([`Cli`], [`LoginLayer`]).
impl Default for IdentitySettings {
    fn default() -> Self {
        Config::default().identity
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
    /// Social and platform logins.
    pub providers: providers::Providers,
    /// Limits of the realtime socket.
    pub realtime: elements_realtime::Limits,
    /// The cluster to join over NATS; none for a single node.
    pub nats: Option<NatsSettings>,
}

impl Default for Config {
    /// The built-in defaults ([`Layer::builtin`]), resolved.
    fn default() -> Self {
        // The built-in layer sets every setting the resolution needs and
        // names no Element; `builtin_defaults_resolve` tests exactly that.
        Config::resolve(Cli::builtin()).expect("the built-in defaults resolve")
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
    /// over the built-in defaults, and checks the result.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => Cli::default(),
        };
        let config = Config::resolve(cli.clone().over(file))?;
        config.validate()?;
        Ok(config)
    }

    /// The operator's settings over the built-in defaults, typed; not yet
    /// validated.
    fn resolve(mut settings: Cli) -> Result<Config, ConfigError> {
        // A value every layer under the operator's has: the built-in one sets
        // each setting this reads with it, so a missing one is a setting
        // declared without a default (`builtin_defaults_resolve` catches it).
        macro_rules! value {
            ($($path:ident).+) => {
                $($path).+.ok_or_else(|| {
                    ConfigError::Invalid(concat!(stringify!($($path).+), " has no value").into())
                })?
            };
        }
        // An empty value stands for "unset" (so `ELEMENTS_MONGODB_URI=` keeps
        // SQLite) and falls back to the default; names and addresses of the
        // mail relay count as empty when only blanks.
        let empty: fn(&str) -> bool = str::is_empty;
        let blank: fn(&str) -> bool = |s| s.trim().is_empty();
        for (value, unset) in [
            (&mut settings.admin_public_url, empty),
            (&mut settings.mongodb_uri, empty),
            (&mut settings.mongodb_database, empty),
            (&mut settings.nats_url, blank),
            (&mut settings.nats_prefix, blank),
            (&mut settings.server_key, empty),
            (&mut settings.root_password, empty),
            (&mut settings.http_key, empty),
            (&mut settings.token_key, empty),
            (&mut settings.refresh_token_key, empty),
            (&mut settings.services.mail.host, blank),
            (&mut settings.services.mail.user, blank),
            (&mut settings.services.mail.password, empty),
            (&mut settings.services.mail.from, blank),
        ] {
            if value.as_deref().is_some_and(unset) {
                *value = None;
            }
        }
        refuse_moved_attributes("[attributes]", settings.attributes.keys())?;
        for (name, element) in &settings.elements {
            refuse_moved_attributes(
                &format!("[elements.{name}.attributes]"),
                element.attributes.keys(),
            )?;
        }
        let s = settings.over(Cli::builtin());
        let millis = Duration::from_millis;
        let secs = Duration::from_secs;
        let secret = |v: Option<String>| v.map(Secret::new);
        let max_instances = value!(s.max_instances);
        let l = s.limits;
        let limits = Limits {
            timeout: millis(value!(l.timeout_ms)),
            memory_bytes: value!(l.memory_mib) << 20,
            max_request_body: value!(l.max_request_body),
            max_response_body: value!(l.max_response_body),
            isolation: value!(l.isolation),
            reuse_max_requests: value!(l.reuse_max_requests),
            // The fair share follows the configured pool unless set explicitly.
            max_concurrency: l
                .max_concurrency
                .unwrap_or_else(|| fair_concurrency(max_instances)),
            max_log_lines: value!(l.max_log_lines),
        };
        let (mail, http) = (s.services.mail, s.services.http);
        let services = ServicesConfig {
            mail: MailSettings {
                host: mail.host,
                port: value!(mail.port),
                starttls: value!(mail.starttls),
                user: mail.user,
                password: secret(mail.password),
                from: mail.from,
                max_per_request: value!(mail.max_per_request),
            },
            http: HttpSettings {
                allow_networks: value!(http.allow_networks),
                connect_timeout: millis(value!(http.connect_timeout_ms)),
                timeout: millis(value!(http.timeout_ms)),
                max_response_bytes: value!(http.max_response_bytes),
            },
        };
        let d = s.deploy;
        let deploy = DeploySettings {
            compile_timeout: millis(value!(d.compile_timeout_ms)),
            max_compiles: value!(d.max_compiles),
            max_component_bytes: value!(d.max_component_bytes),
            max_function_bytes: value!(d.max_function_bytes),
            gc_grace: secs(value!(d.gc_grace_secs)),
            poll_interval: millis(value!(d.poll_ms)),
        };
        let r = s.realtime;
        let realtime = elements_realtime::Limits {
            max_message_bytes: value!(r.max_message_bytes),
            send_queue: value!(r.send_queue),
            max_sockets_per_user: value!(r.max_sockets_per_user),
            max_sockets: value!(r.max_sockets),
            messages_per_sec: value!(r.messages_per_sec),
            message_burst: value!(r.message_burst),
            max_channel_name_bytes: value!(r.max_channel_name_bytes),
            max_match_data_bytes: value!(r.max_match_data_bytes),
            max_joins: value!(r.max_joins),
            max_follows: value!(r.max_follows),
            session_check: secs(value!(r.session_check_secs)),
            write_timeout: secs(value!(r.write_timeout_secs)),
        };
        let login = s.login;
        let identity = IdentitySettings {
            server_key: Secret::new(value!(s.server_key)),
            root_password: secret(s.root_password),
            http_key: secret(s.http_key),
            token_key: secret(s.token_key),
            refresh_token_key: secret(s.refresh_token_key),
            token_expiry: secs(value!(s.token_expiry_secs)),
            refresh_token_expiry: secs(value!(s.refresh_token_expiry_secs)),
            session_expiry: secs(value!(s.session_expiry_secs)),
            login_throttle: ThrottleConfig {
                account_failures: value!(login.account_failures),
                address_failures: value!(login.address_failures),
                base_lockout: secs(value!(login.lockout_secs)),
                max_lockout: secs(value!(login.max_lockout_secs)),
                forget_after: secs(value!(login.forget_after_secs)),
                max_keys: value!(login.max_tracked),
            },
            password_threads: value!(login.password_threads),
            password_queue: value!(login.password_queue),
        };
        let data_dir = value!(s.data_dir);
        let trim_slash = |u: String| u.trim_end_matches('/').to_owned();
        Ok(Config {
            listen: value!(s.listen),
            admin_listen: value!(s.admin_listen),
            admin_public_url: s.admin_public_url.map(trim_slash),
            deploy_dir: value!(s.deploy_dir),
            cache_dir: s.cache_dir.unwrap_or_else(|| data_dir.join("cache")),
            data_dir,
            log_format: value!(s.log_format),
            log: value!(s.log),
            pooling: value!(s.pooling),
            max_instances,
            limits,
            store: match s.mongodb_uri {
                Some(uri) => StoreChoice::Mongo {
                    uri,
                    database: value!(s.mongodb_database),
                },
                None => StoreChoice::Sqlite,
            },
            element_grants: element_grants(&s.elements, bundled_grants())?,
            element_attributes: s
                .elements
                .into_iter()
                .map(|(name, e)| (name, e.attributes))
                .collect(),
            attributes: s.attributes,
            identity,
            public_url: s.public_url.map(trim_slash),
            clock_offset_secs: value!(s.clock_offset_secs),
            metrics: value!(s.metrics),
            services,
            connections: value!(s.connections),
            providers: value!(s.providers),
            nats: match s.nats_url {
                Some(url) => Some(NatsSettings {
                    url: url.trim().to_owned(),
                    prefix: value!(s.nats_prefix).trim().to_owned(),
                    events_max_bytes: value!(s.nats_events_max_bytes),
                }),
                None => None,
            },
            deploy,
            realtime,
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.deploy.poll_interval.is_zero() {
            return Err(ConfigError::Invalid("deploy.poll_ms must be at least 1".into()));
        }
        // Under 1 MiB a stream holds next to nothing.
        if let Some(nats) = &self.nats
            && nats.events_max_bytes < 1 << 20
        {
            return Err(ConfigError::Invalid(
                "nats_events_max_bytes must be at least 1048576 (1 MiB)".into(),
            ));
        }
        self.connections.validate().map_err(ConfigError::Invalid)?;
        self.providers.validate().map_err(ConfigError::Invalid)?;
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
        let rt = &self.realtime;
        if rt.max_message_bytes < 256
            || rt.send_queue == 0
            || rt.max_sockets_per_user == 0
            || rt.max_sockets == 0
            || rt.messages_per_sec == 0
            || rt.message_burst == 0
            || rt.max_channel_name_bytes == 0
            || rt.max_joins == 0
            || rt.session_check.is_zero()
            || rt.write_timeout.is_zero()
        {
            return Err(ConfigError::Invalid(
                "realtime: max_message_bytes must be at least 256, and send_queue, max_sockets_per_user, max_sockets, \
                 messages_per_sec, message_burst, max_channel_name_bytes, max_joins, session_check_secs \
                 and write_timeout_secs at least 1"
                    .into(),
            ));
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
/// Elements and the examples request, under their usual names.
pub fn bundled_grants() -> BTreeMap<String, BTreeSet<Grant>> {
    let parse = |list: &[&str]| -> BTreeSet<Grant> { list.iter().filter_map(|g| g.parse().ok()).collect() };
    BTreeMap::from([
        (
            "roblox-kit".to_owned(),
            parse(&[
                "identity.scheme:dev.getelements.robloxkit.player.id",
                "identity.session",
                "http.outbound:users.roblox.com",
                "http.outbound:thumbnails.roblox.com",
            ]),
        ),
        (
            "email-verification".to_owned(),
            parse(&[
                "identity.verify:email",
                "mail.send",
                "events.publish:dev.getelements.email_verification.*",
                "events.subscribe:dev.getelements.verification.email_requested",
                "route.core:/api/rest/user/me/email/verify",
                "route.core:/api/rest/verify",
            ]),
        ),
        (
            "turn-relay".to_owned(),
            parse(&[
                "rpc:turn_relay_create",
                "realtime.match",
                "realtime.notify",
                "realtime.rooms",
            ]),
        ),
    ])
}

/// The file's `[elements.NAME] grants` over the defaults (a name the file
/// gives grants for gets exactly those).
fn element_grants(
    elements: &BTreeMap<String, ElementLayer>,
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

fn read_file(path: &Path) -> Result<Cli, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Limits on the connections of one listener (the file's `[connections]`,
/// read whole over these defaults: no flag sets them).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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
    use clap::Parser;

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
            limits: LimitsOverride {
                memory_mib: Some(16),
                ..LimitsOverride::default()
            },
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
            limits: LimitsOverride {
                max_concurrency: Some(3),
                ..LimitsOverride::default()
            },
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
            services: ServicesLayer {
                http: HttpLayer {
                    allow_networks: Some(vec!["172.16.0.0/12".parse().unwrap()]),
                    timeout_ms: Some(99),
                    ..HttpLayer::default()
                },
                ..ServicesLayer::default()
            },
            ..Cli::default()
        };
        let http = Config::load(&cli).unwrap().services.http;
        assert_eq!(http.allow_networks.len(), 1);
        assert!(http.allow_networks[0].contains(ip("172.20.0.1")));
        assert_eq!(http.timeout, Duration::from_millis(99));
        assert_eq!(http.connect_timeout, Duration::from_millis(250));
        let parsed = Cli::try_parse_from(["elements", "--http-allow-networks", "127.0.0.0/8,::1"]).unwrap();
        assert_eq!(parsed.services.http.allow_networks.unwrap().len(), 2);
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
    fn builtin_defaults_resolve() {
        let d = Config::default();
        assert_eq!(
            format!("{:?}", Config::load(&Cli::default()).unwrap()),
            format!("{d:?}")
        );
        // The defaults the server had before its settings were declared once.
        assert_eq!(d.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(d.admin_listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(
            (d.deploy_dir.clone(), d.data_dir.clone(), d.cache_dir.clone()),
            (
                "deploy".into(),
                "data".into(),
                PathBuf::from("data").join("cache")
            )
        );
        assert_eq!(
            (d.log_format, d.log.as_str(), d.pooling),
            (LogFormat::Text, "info", Pooling::Auto)
        );
        assert_eq!((d.max_instances, d.clock_offset_secs, d.metrics), (256, 0, true));
        assert_eq!((d.public_url.clone(), d.admin_public_url.clone()), (None, None));
        assert_eq!(d.store, StoreChoice::Sqlite);
        assert_eq!(
            d.limits,
            Limits {
                timeout: Duration::from_secs(10),
                memory_bytes: 64 << 20,
                max_request_body: 1 << 20,
                max_response_body: 8 << 20,
                isolation: Isolation::Fresh,
                reuse_max_requests: 10_000,
                max_concurrency: 64,
                max_log_lines: 1000,
            }
        );
        let mail = &d.services.mail;
        assert_eq!((mail.host.clone(), mail.port, mail.starttls), (None, 587, true));
        assert_eq!((mail.user.clone(), mail.from.clone()), (None, None));
        assert!(mail.password.is_none());
        assert_eq!(mail.max_per_request, 10);
        assert_eq!(
            d.deploy,
            DeploySettings {
                compile_timeout: Duration::from_secs(60),
                max_compiles: 2,
                max_component_bytes: 11 << 20,
                max_function_bytes: 4 << 20,
                gc_grace: Duration::from_secs(3600),
                poll_interval: Duration::from_secs(2),
            }
        );
        assert_eq!(d.nats, None);
        let identity = &d.identity;
        assert_eq!(
            (
                identity.token_expiry,
                identity.refresh_token_expiry,
                identity.session_expiry
            ),
            (
                Duration::from_secs(60),
                Duration::from_secs(3600),
                Duration::from_secs(86_400)
            )
        );
        assert!(identity.root_password.is_none() && identity.token_key.is_none());
        assert_eq!(
            format!("{:?}", identity.login_throttle),
            format!("{:?}", ThrottleConfig::default())
        );
        assert_eq!(
            (identity.password_threads, identity.password_queue),
            (
                elements_identity::password::default_workers(),
                elements_identity::password::DEFAULT_QUEUE
            )
        );
        assert_eq!(d.connections, ConnectionLimits::default());
        assert_eq!(d.element_grants, bundled_grants());
        // The settings types' own defaults are the same values.
        assert_eq!(Limits::default(), d.limits);
        assert_eq!(HttpSettings::default(), d.services.http);
        assert_eq!(DeploySettings::default(), d.deploy);
    }

    /// The text `--help` shows as the default of `flag`, if any.
    fn help_default(help: &str, flag: &str) -> Option<String> {
        let start = help.find(&format!("{flag} <"))?;
        let rest = &help[start + flag.len()..];
        let entry = &rest[..rest.find("\n      --").unwrap_or(rest.len())];
        let value = &entry[entry.find("[default: ")? + "[default: ".len()..];
        Some(value[..value.find(']')?].to_owned())
    }

    #[test]
    fn help_shows_the_defaults_the_server_uses() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        let d = Config::default();
        for (flag, expected) in [
            ("--listen", d.listen.to_string()),
            ("--admin-listen", d.admin_listen.to_string()),
            ("--data-dir", d.data_dir.display().to_string()),
            ("--deploy-dir", d.deploy_dir.display().to_string()),
            ("--log", d.log.clone()),
            ("--max-instances", d.max_instances.to_string()),
            ("--metrics", d.metrics.to_string()),
            ("--clock-offset-secs", d.clock_offset_secs.to_string()),
            ("--timeout-ms", d.limits.timeout.as_millis().to_string()),
            ("--memory-mib", (d.limits.memory_bytes >> 20).to_string()),
            ("--max-request-body", d.limits.max_request_body.to_string()),
            ("--max-response-body", d.limits.max_response_body.to_string()),
            (
                "--token-expiry-secs",
                d.identity.token_expiry.as_secs().to_string(),
            ),
            (
                "--session-expiry-secs",
                d.identity.session_expiry.as_secs().to_string(),
            ),
            ("--smtp-port", d.services.mail.port.to_string()),
            ("--smtp-starttls", d.services.mail.starttls.to_string()),
            (
                "--http-connect-timeout-ms",
                d.services.http.connect_timeout.as_millis().to_string(),
            ),
            (
                "--http-timeout-ms",
                d.services.http.timeout.as_millis().to_string(),
            ),
            (
                "--http-max-response-bytes",
                d.services.http.max_response_bytes.to_string(),
            ),
            (
                "--compile-timeout-ms",
                d.deploy.compile_timeout.as_millis().to_string(),
            ),
            ("--max-compiles", d.deploy.max_compiles.to_string()),
            ("--max-component-bytes", d.deploy.max_component_bytes.to_string()),
            ("--deploy-gc-grace-secs", d.deploy.gc_grace.as_secs().to_string()),
            ("--deploy-poll-ms", d.deploy.poll_interval.as_millis().to_string()),
            ("--nats-prefix", "elements".to_owned()),
            ("--nats-events-max-bytes", (1u64 << 30).to_string()),
        ] {
            assert_eq!(help_default(&help, flag), Some(expected), "{flag}");
        }
        // Defaults that follow other settings are described, not given a value.
        assert_eq!(help_default(&help, "--cache-dir"), None);
        assert_eq!(help_default(&help, "--max-concurrency"), None);
        assert!(help.contains("[file: [services.http] timeout_ms]"), "{help}");
        assert!(help.contains("[login] account_failures"), "{help}");
    }

    #[test]
    fn every_flag_sets_the_file_key_it_names() {
        use clap::CommandFactory;
        use serde::Deserialize;
        let builtin = toml::Table::try_from(Cli::builtin()).unwrap();
        let mut checked = 0;
        for arg in Cli::command().get_arguments() {
            let id = arg.get_id().as_str();
            let Some(long) = arg.get_long() else {
                continue;
            };
            let Some(value) = settings::lookup(&builtin, id) else {
                // Without a default to compare, at least the key must exist.
                if id != "config" {
                    let (table, key) = id.rsplit_once('.').unwrap_or(("", id));
                    let text = format!(
                        "{}\n{key} = []\n",
                        if table.is_empty() {
                            String::new()
                        } else {
                            format!("[{table}]")
                        }
                    );
                    let err = toml::from_str::<Cli>(&text).err().map(|e| e.to_string());
                    assert!(
                        !err.unwrap_or_default().contains("unknown field"),
                        "--{long}: {id}"
                    );
                    checked += 1;
                }
                continue;
            };
            // The one list, allow_networks, defaults to empty: try one network.
            let (value, text) = match value {
                toml::Value::Array(_) => (toml::Value::Array(vec!["10.0.0.0/8".into()]), "10.0.0.0/8".into()),
                toml::Value::String(s) => (value.clone(), s.clone()),
                _ => (value.clone(), value.to_string()),
            };
            let from_flag = Cli::try_parse_from(["elements", &format!("--{long}"), &text]).unwrap();
            let mut table = toml::Table::new();
            let mut at = &mut table;
            let (path, key) = id.rsplit_once('.').map_or((None, id), |(p, k)| (Some(p), k));
            for part in path.into_iter().flat_map(|p| p.split('.')) {
                at = at
                    .entry(part)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .unwrap();
            }
            at.insert(key.into(), value);
            let from_file = Cli::deserialize(table).unwrap();
            assert_eq!(
                toml::Table::try_from(from_flag).unwrap(),
                toml::Table::try_from(from_file).unwrap(),
                "--{long} and {id}"
            );
            checked += 1;
        }
        assert_eq!(checked, Cli::command().get_arguments().count() - 1);
    }

    #[test]
    fn precedence_is_defaults_file_environment_flags() {
        // The environment is the whole process's, and other tests parse flags
        // (so read it) at the same time: set it only in a child process,
        // which runs `precedence_in_this_environment`.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elements.toml");
        std::fs::write(&path, "log = \"file\"\nmax_instances = 10\nmetrics = false\n").unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tests::precedence_in_this_environment", "--ignored"])
            .env("ELEMENTS_LOG", "env")
            .env("ELEMENTS_MAX_INSTANCES", "20")
            .env("ELEMENTS_CONFIG", &path)
            .env("PRECEDENCE_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    #[ignore = "run by precedence_is_defaults_file_environment_flags, in the environment it sets"]
    fn precedence_in_this_environment() {
        if std::env::var_os("PRECEDENCE_CHILD").is_none() {
            return; // `--include-ignored` without the parent's environment
        }
        let cli = Cli::try_parse_from(["elements", "--max-instances", "30"]).unwrap();
        assert!(cli.config.is_some(), "ELEMENTS_CONFIG names the file");
        let config = Config::load(&cli).unwrap();
        // The variable wins over the file, the flag over the variable, the
        // file over the default, and the default stands where none is set.
        assert_eq!(config.log, "env");
        assert_eq!(config.max_instances, 30);
        assert!(!config.metrics);
        assert_eq!(config.limits.timeout, Config::default().limits.timeout);
    }

    #[test]
    fn nats_url_joins_a_cluster_and_blank_keeps_one_node() {
        let parsed = Cli::try_parse_from([
            "elements",
            "--nats-url",
            "nats://127.0.0.1:4222",
            "--deploy-poll-ms",
            "60000",
        ])
        .unwrap();
        let config = Config::load(&parsed).unwrap();
        assert_eq!(
            config.nats,
            Some(NatsSettings {
                url: "nats://127.0.0.1:4222".into(),
                prefix: "elements".into(),
                events_max_bytes: 1 << 30,
            })
        );
        assert_eq!(config.deploy.poll_interval, Duration::from_secs(60));
        let blank = Cli::try_parse_from(["elements", "--nats-url", " "]).unwrap();
        assert_eq!(Config::load(&blank).unwrap().nats, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elements.toml");
        std::fs::write(
            &path,
            "nats_url = \"nats://10.0.0.5:4222\"\nnats_prefix = \"prod\"\nnats_events_max_bytes = 268435456\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(path),
            ..Cli::default()
        };
        let nats = Config::load(&cli).unwrap().nats.unwrap();
        assert_eq!(
            (nats.url.as_str(), nats.prefix.as_str(), nats.events_max_bytes),
            ("nats://10.0.0.5:4222", "prod", 256 << 20)
        );
        for small in ["-1", "0", "1048575"] {
            let cli = Cli::try_parse_from([
                "elements",
                "--nats-url",
                "nats://n:4222",
                &format!("--nats-events-max-bytes={small}"),
            ])
            .unwrap();
            let error = Config::load(&cli).unwrap_err().to_string();
            assert!(error.contains("nats_events_max_bytes"), "{small}: {error}");
        }
        // Without a cluster the setting has nothing to check.
        let single = Cli::try_parse_from(["elements", "--nats-events-max-bytes", "0"]).unwrap();
        assert_eq!(Config::load(&single).unwrap().nats, None);
        let zero = Cli::try_parse_from(["elements", "--deploy-poll-ms", "0"]).unwrap();
        assert!(Config::load(&zero).unwrap_err().to_string().contains("poll_ms"));
    }

    #[test]
    fn providers_are_read_from_the_file_and_their_secrets_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elements.toml");
        let cli = Cli {
            config: Some(path.clone()),
            ..Cli::default()
        };
        std::fs::write(&path, "").unwrap();
        assert!(
            Config::load(&cli).unwrap().providers.apple.is_none(),
            "none by default"
        );
        std::fs::write(
            &path,
            "[providers.facebook]\napp_id = \"1\"\napp_secret = \"fb-secret-value\"\n\
             [providers.game_center]\nbundle_ids = [\"com.example\"]\n",
        )
        .unwrap();
        let config = Config::load(&cli).unwrap();
        let facebook = config.providers.facebook.clone().unwrap();
        assert_eq!(facebook.app_secret.expose(), "fb-secret-value");
        assert_eq!(facebook.graph_url, "https://graph.facebook.com/v19.0");
        let gc = config.providers.game_center.clone().unwrap();
        assert_eq!(gc.key_url_prefix, "https://static.gc.apple.com/");
        assert!(!format!("{config:?}").contains("fb-secret-value"));
        for (text, needle) in [
            ("[providers.apple]\nbundle_ids = []\n", "bundle_ids"),
            (
                "[providers.facebook]\napp_id = \"1\"\napp_secret = \"\"\n",
                "empty",
            ),
            ("[providers.steam]\napp_id = 1\n", "publisher_key"),
            ("[providers]\ntimeout_ms = 0\n", "timeout_ms"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(&cli).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn an_unknown_key_in_any_table_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elements.toml");
        let cli = Cli {
            config: Some(path.clone()),
            ..Cli::default()
        };
        for table in [
            "",
            "[limits]",
            "[services.mail]",
            "[services.http]",
            "[deploy]",
            "[login]",
            "[connections]",
            "[elements.hello]",
            "[providers]",
            "[providers.apple]\nbundle_ids = [\"a\"]",
            "[providers.steam]\napp_id = 1\npublisher_key = \"k\"",
        ] {
            std::fs::write(&path, format!("{table}\nbogus_key = 1\n")).unwrap();
            let err = Config::load(&cli).unwrap_err().to_string();
            assert!(err.contains("bogus_key"), "{table}: {err}");
        }
        for (text, key) in [("config = \"x.toml\"\n", "config"), ("[services.smtp]\n", "smtp")] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(&cli).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        // Attributes are free-form: any name is a key.
        std::fs::write(&path, "[attributes]\nbogus_key = \"1\"\n").unwrap();
        assert_eq!(Config::load(&cli).unwrap().attributes["bogus_key"], "1");
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
