//! Server configuration: defaults, overridden by an optional TOML file,
//! overridden by `ELEMENTS_*` environment variables, overridden by flags.
//!
//! Nothing is required: `elements` with no configuration listens on
//! `127.0.0.1:8080`, loads Elements from `./deploy` and keeps its data in
//! `./data`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use elements_identity::Secret;
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
max_request_body, max_response_body, isolation, reuse_max_requests). Operator attributes: \
[attributes] for every Element and [elements.NAME.attributes] for one. Identity: server_key, \
root_password, token_key, refresh_token_key, token_expiry_secs, refresh_token_expiry_secs, \
session_expiry_secs."
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
    /// Default linear-memory cap of one instance, in MiB [default: 64].
    #[arg(long, env = "ELEMENTS_MEMORY_MIB", value_name = "MIB")]
    pub memory_mib: Option<u64>,
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

/// Per-request limits. Server-wide defaults; a manifest may override each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline of one request.
    pub timeout: Duration,
    /// Linear-memory cap of one instance, in bytes.
    pub memory_bytes: u64,
    /// Largest accepted request body, in bytes.
    pub max_request_body: usize,
    /// Largest response body an Element may produce, in bytes.
    pub max_response_body: usize,
    /// Instance policy.
    pub isolation: Isolation,
    /// With [`Isolation::Reuse`], how many requests one instance serves.
    pub reuse_max_requests: u32,
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
        }
    }
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
    core_route_elements: Option<Vec<String>>,
    #[serde(default)]
    limits: LimitsOverride,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    elements: BTreeMap<String, ElementFileConfig>,
    server_key: Option<String>,
    root_password: Option<String>,
    token_key: Option<String>,
    refresh_token_key: Option<String>,
    token_expiry_secs: Option<u64>,
    refresh_token_expiry_secs: Option<u64>,
    session_expiry_secs: Option<u64>,
    reserved_event_publishers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ElementFileConfig {
    #[serde(default)]
    attributes: BTreeMap<String, String>,
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
    /// Elements allowed to publish events under `dev.getelements.` (the
    /// bundled ones by default).
    pub reserved_event_publishers: BTreeSet<String>,
    /// Elements allowed to serve the core API's extension routes (see
    /// `server::CORE_EXTENSION_ROUTES`; the bundled Email Verification by default).
    pub core_route_elements: BTreeSet<String>,
    /// The server's public base URL, without a trailing slash; when not
    /// configured, `http://` and the address the server listens on.
    pub public_url: Option<String>,
    /// Seconds added to the wall clock (tests only).
    pub clock_offset_secs: i64,
    /// Serve Prometheus metrics at `/metrics`.
    pub metrics: bool,
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
            max_instances: 256,
            limits: Limits::default(),
            store: StoreChoice::Sqlite,
            attributes: BTreeMap::new(),
            element_attributes: BTreeMap::new(),
            identity: IdentitySettings::default(),
            reserved_event_publishers: ["email-verification", "roblox-kit"].map(String::from).into(),
            core_route_elements: ["email-verification"].map(String::from).into(),
            public_url: None,
            clock_offset_secs: 0,
            metrics: true,
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
        };
        let secret = |flag: &Option<String>, file: Option<String>| {
            flag.clone().or(file).filter(|s| !s.is_empty()).map(Secret::new)
        };
        let secs = |flag: &Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).map(Duration::from_secs).unwrap_or(default)
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
            max_instances: pick(&cli.max_instances, file.max_instances, defaults.max_instances),
            limits: defaults.limits.with(&file.limits).with(&flag_limits),
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
            element_attributes: file
                .elements
                .into_iter()
                .map(|(name, e)| (name, e.attributes))
                .collect(),
            reserved_event_publishers: file
                .reserved_event_publishers
                .map(|names| names.into_iter().collect())
                .unwrap_or(defaults.reserved_event_publishers),
            core_route_elements: file
                .core_route_elements
                .map(|names| names.into_iter().collect())
                .unwrap_or(defaults.core_route_elements),
            public_url: cli
                .public_url
                .clone()
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_owned()),
            clock_offset_secs: pick(&cli.clock_offset_secs, file.clock_offset_secs, 0),
            metrics: pick(&cli.metrics, file.metrics, defaults.metrics),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
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
    Ok(())
}

/// The largest linear memory any Element may have. The pooling allocator
/// reserves this much address space per instance slot.
pub const MAX_MEMORY_BYTES: u64 = 1 << 30;

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
