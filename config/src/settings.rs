//! Every setting, declared once: its name in the configuration file, its
//! flag and `ELEMENTS_*` variable, its help text and its built-in default.
//!
//! A *layer* is one source's view of the settings, each value optional: the
//! file is a layer (serde reads it), the flags and the environment are one
//! (clap reads them, a flag winning over its variable), and the built-in
//! defaults are one ([`Layer::builtin`]). [`Layer::over`] stacks them, so the
//! precedence is the same for every setting: defaults < file < environment <
//! flags. The `--help` text shows each default from the same built-in layer
//! the server resolves ([`Cli`]'s `CommandFactory`), so the two can't drift.
//!
//! Why not figment or the `config` crate: clap already reads flags and the
//! environment, and serde the file; all that was missing is stacking layers
//! field by field, which the `layer!` macro below writes for each struct
//! in a few lines, without a second TOML parser or another value model.
//!
//! The layer structs are shaped like the file (`[limits]`, `[services.http]`
//! and so on are nested structs); clap flattens them into one flat set of
//! flags. An argument nested in a table has the table's path as its clap id
//! (`id = "services.http.timeout_ms"`), which is how `--help` finds its
//! default; a test checks every id names a setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Command};
use elements_identity::ThrottleConfig;
use elements_realtime::Limits as RealtimeLimits;
use serde::{Deserialize, Serialize};

use crate::providers::Providers;
use crate::{ConnectionLimits, Isolation, LogFormat, Network, Pooling};

/// One source's settings, each optional, stackable over another source's.
pub trait Layer: Sized {
    /// The built-in defaults, as a layer.
    fn builtin() -> Self;
    /// This layer's values where it has them, `lower`'s elsewhere.
    fn over(self, lower: Self) -> Self;
}

impl<T> Layer for Option<T> {
    fn builtin() -> Self {
        None
    }

    fn over(self, lower: Self) -> Self {
        self.or(lower)
    }
}

/// Maps (`[attributes]`, `[elements.*]`) combine: an upper layer's entry
/// replaces the lower one's of the same name, the others stay.
impl<K: Ord, V> Layer for BTreeMap<K, V> {
    fn builtin() -> Self {
        BTreeMap::new()
    }

    fn over(self, mut lower: Self) -> Self {
        lower.extend(self);
        lower
    }
}

/// Declares a layer struct: every field with its clap and serde attributes,
/// and after `=` its built-in default (a field without one is `None` or
/// empty by default, or, for a nested table, that table's defaults).
/// Generates the struct and its [`Layer`] implementation, so adding a
/// setting is adding one field here.
macro_rules! layer {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_attr:meta])*
                pub $field:ident : $ty:ty $(= $default:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $(
                $(#[$field_attr])*
                pub $field: $ty,
            )*
        }

        impl Layer for $name {
            fn builtin() -> Self {
                $name {
                    $($field: layer!(@builtin $ty $(, $default)?),)*
                }
            }

            fn over(self, lower: Self) -> Self {
                $name {
                    $($field: Layer::over(self.$field, lower.$field),)*
                }
            }
        }
    };
    (@builtin $ty:ty) => {
        <$ty as Layer>::builtin()
    };
    (@builtin $ty:ty, $default:expr) => {
        Some($default.into())
    };
}

layer! {
    /// Every setting of the server, shaped like the configuration file; as
    /// parsed from the command line, the flags and `ELEMENTS_*` variables.
    /// A flag wins over its variable, which wins over the file, which wins
    /// over the built-in defaults ([`crate::Config::load`]).
    #[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct Cli {
        /// TOML configuration file.
        #[arg(long, short = 'c', env = "ELEMENTS_CONFIG", value_name = "FILE")]
        #[serde(skip)]
        pub config: Option<PathBuf>,
        /// Address to listen on. Port 0 picks a free port.
        #[arg(long, env = "ELEMENTS_LISTEN", value_name = "ADDR")]
        pub listen: Option<SocketAddr> = SocketAddr::from(([127, 0, 0, 1], 8080)),
        /// Address of the operators' listener: the management portal, the
        /// deployment admin API and `/health`. Port 0 picks a free port. Must
        /// differ from `--listen`.
        #[arg(long, env = "ELEMENTS_ADMIN_LISTEN", value_name = "ADDR")]
        pub admin_listen: Option<SocketAddr> = SocketAddr::from(([127, 0, 0, 1], 8081)),
        /// The admin listener's public base URL when operators reach it through
        /// a proxy: the portal's origin for its cross-site checks, and `https://`
        /// makes its cookies `Secure` (unset: http:// and the admin address).
        #[arg(long, env = "ELEMENTS_ADMIN_PUBLIC_URL", value_name = "URL")]
        pub admin_public_url: Option<String>,
        /// Folder holding `NAME.wasm` Elements and their `NAME.toml` manifests.
        #[arg(long, env = "ELEMENTS_DEPLOY_DIR", value_name = "DIR")]
        pub deploy_dir: Option<PathBuf> = "deploy",
        /// Folder for the server's data.
        #[arg(long, env = "ELEMENTS_DATA_DIR", value_name = "DIR")]
        pub data_dir: Option<PathBuf> = "data",
        /// Folder for compiled Elements (unset: DATA_DIR/cache).
        #[arg(long, env = "ELEMENTS_CACHE_DIR", value_name = "DIR")]
        pub cache_dir: Option<PathBuf>,
        /// Log output format.
        #[arg(long, env = "ELEMENTS_LOG_FORMAT", value_enum)]
        pub log_format: Option<LogFormat> = LogFormat::Text,
        /// Log filter in `tracing` syntax, e.g. `info` or `info,elements_runtime=debug`.
        #[arg(long, env = "ELEMENTS_LOG", value_name = "FILTER")]
        pub log: Option<String> = "info",
        /// Instance allocation: `auto` tries the pooling allocator and falls back
        /// to on-demand allocation when the address space can't be reserved.
        #[arg(long, env = "ELEMENTS_POOLING", value_enum)]
        pub pooling: Option<Pooling> = Pooling::Auto,
        /// Most Element instances alive at once (bounds concurrency and reserved memory).
        #[arg(long, env = "ELEMENTS_MAX_INSTANCES", value_name = "N")]
        pub max_instances: Option<u32> = 256u32,
        /// The server's public base URL, used in links it sends (e.g. email
        /// verification) (unset: http:// and the address it listens on).
        #[arg(long, env = "ELEMENTS_PUBLIC_URL", value_name = "URL")]
        pub public_url: Option<String>,
        /// Shifts the wall clock the server, its store and its Elements see, in
        /// seconds (for tests of expiry; never needed in production).
        #[arg(
            long,
            env = "ELEMENTS_CLOCK_OFFSET_SECS",
            value_name = "SECS",
            allow_hyphen_values = true
        )]
        pub clock_offset_secs: Option<i64> = 0,
        /// MongoDB connection string; when set, MongoDB replaces the embedded SQLite store.
        #[arg(long, env = "ELEMENTS_MONGODB_URI", value_name = "URI")]
        pub mongodb_uri: Option<String>,
        /// MongoDB database name.
        #[arg(long, env = "ELEMENTS_MONGODB_DATABASE", value_name = "NAME")]
        pub mongodb_database: Option<String> = "elements",
        /// NATS server URL(s), comma-separated; when set, this node joins a
        /// cluster: events and deployment changes cross nodes over NATS
        /// (unset: a single node, nothing else needed).
        #[arg(long, env = "ELEMENTS_NATS_URL", value_name = "URL")]
        pub nats_url: Option<String>,
        /// First token(s) of every NATS subject and stream name the cluster
        /// uses, so clusters can share one NATS.
        #[arg(long, env = "ELEMENTS_NATS_PREFIX", value_name = "PREFIX")]
        pub nats_prefix: Option<String> = "elements",
        /// Most bytes the cluster's event stream keeps (JetStream reserves
        /// them when the stream is made; a node halves them, down to 1/64,
        /// while they don't fit its storage budget).
        #[arg(long, env = "ELEMENTS_NATS_EVENTS_MAX_BYTES", value_name = "BYTES")]
        pub nats_events_max_bytes: Option<i64> = 1i64 << 30,
        /// Serve Prometheus metrics at `/metrics`.
        #[arg(long, env = "ELEMENTS_METRICS", value_name = "BOOL")]
        pub metrics: Option<bool> = true,
        /// Server key Nakama clients send as the HTTP Basic user to authenticate.
        #[arg(long, env = "ELEMENTS_SERVER_KEY", value_name = "KEY", hide_env_values = true)]
        pub server_key: Option<String> = "defaultkey",
        /// Password of the `root` superuser created on first start (unset:
        /// random, printed once).
        #[arg(
            long,
            env = "ELEMENTS_ROOT_PASSWORD",
            value_name = "PASSWORD",
            hide_env_values = true
        )]
        pub root_password: Option<String>,
        /// Key that lets a game server call Nakama RPCs without a session
        /// (`POST /v2/rpc/ID?http_key=KEY`); unset: such calls are refused.
        #[arg(long, env = "ELEMENTS_HTTP_KEY", value_name = "KEY", hide_env_values = true)]
        pub http_key: Option<String>,
        /// HMAC key of session tokens (unset: generated once, kept in the store).
        #[arg(long, env = "ELEMENTS_TOKEN_KEY", value_name = "KEY", hide_env_values = true)]
        pub token_key: Option<String>,
        /// HMAC key of refresh tokens (unset: generated once, kept in the store).
        #[arg(
            long,
            env = "ELEMENTS_REFRESH_TOKEN_KEY",
            value_name = "KEY",
            hide_env_values = true
        )]
        pub refresh_token_key: Option<String>,
        /// Lifetime of a session token, in seconds.
        #[arg(long, env = "ELEMENTS_TOKEN_EXPIRY_SECS", value_name = "SECS")]
        pub token_expiry_secs: Option<u64> = 60u64,
        /// Lifetime of a refresh token, in seconds.
        #[arg(long, env = "ELEMENTS_REFRESH_TOKEN_EXPIRY_SECS", value_name = "SECS")]
        pub refresh_token_expiry_secs: Option<u64> = 3600u64,
        /// Lifetime of an `/api/rest` session, in seconds.
        #[arg(long, env = "ELEMENTS_SESSION_EXPIRY_SECS", value_name = "SECS")]
        pub session_expiry_secs: Option<u64> = 86_400u64,
        /// `[limits]`: per-request limits.
        #[command(flatten)]
        #[serde(default)]
        pub limits: LimitsOverride,
        /// `[services.*]`: settings of the host services.
        #[command(flatten)]
        #[serde(default)]
        pub services: ServicesLayer,
        /// `[deploy]`: bounds on deploys.
        #[command(flatten)]
        #[serde(default)]
        pub deploy: DeployLayer,
        /// `[login]`: limits on failed logins and password hashing.
        #[command(flatten)]
        #[serde(default)]
        pub login: LoginLayer,
        /// `[realtime]`: the limits of the realtime socket (`/ws`).
        #[command(flatten)]
        #[serde(default)]
        pub realtime: RealtimeLayer,
        /// `[connections]`: limits on client connections, per listener; the
        /// table is read whole, over [`ConnectionLimits`]'s defaults.
        #[arg(skip)]
        pub connections: Option<ConnectionLimits> = ConnectionLimits::default(),
        /// `[providers]`: social and platform logins; the table is read
        /// whole, over [`Providers`]'s defaults (none configured).
        #[arg(skip)]
        pub providers: Option<Providers> = Providers::default(),
        /// `[attributes]`: operator attributes given to every Element.
        #[arg(skip)]
        #[serde(default)]
        pub attributes: BTreeMap<String, String>,
        /// `[elements.NAME]`: one Element's attributes and approved grants.
        #[arg(skip)]
        #[serde(default)]
        pub elements: BTreeMap<String, ElementLayer>,
    }
}

layer! {
    /// Limits as written in the file's `[limits]`, by flags, or in a manifest
    /// (which may only lower the operator's caps: [`crate::Limits::check_ceiling`]).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct LimitsOverride {
        /// Default wall-clock deadline of one request, in milliseconds.
        #[arg(
            id = "limits.timeout_ms",
            long = "timeout-ms",
            env = "ELEMENTS_TIMEOUT_MS",
            value_name = "MS"
        )]
        pub timeout_ms: Option<u64> = 10_000u64,
        /// Default memory cap of one instance (all its memories and tables), in MiB.
        #[arg(
            id = "limits.memory_mib",
            long = "memory-mib",
            env = "ELEMENTS_MEMORY_MIB",
            value_name = "MIB"
        )]
        pub memory_mib: Option<u64> = 64u64,
        /// Default maximum request body, in bytes.
        #[arg(
            id = "limits.max_request_body",
            long = "max-request-body",
            env = "ELEMENTS_MAX_REQUEST_BODY",
            value_name = "BYTES"
        )]
        pub max_request_body: Option<usize> = 1usize << 20,
        /// Default maximum response body, in bytes.
        #[arg(
            id = "limits.max_response_body",
            long = "max-response-body",
            env = "ELEMENTS_MAX_RESPONSE_BODY",
            value_name = "BYTES"
        )]
        pub max_response_body: Option<usize> = 8usize << 20,
        /// How an Element's requests map to instances.
        #[arg(skip)]
        pub isolation: Option<Isolation> = Isolation::Fresh,
        /// With `isolation = "reuse"`, how many requests one instance serves.
        #[arg(skip)]
        pub reuse_max_requests: Option<u32> = 10_000u32,
        /// Most instances of one Element alive at once (unset: a quarter of
        /// max_instances, at least 1).
        #[arg(
            id = "limits.max_concurrency",
            long = "max-concurrency",
            env = "ELEMENTS_MAX_CONCURRENCY",
            value_name = "N"
        )]
        pub max_concurrency: Option<u32>,
        /// Most log lines one request may write.
        #[arg(skip)]
        pub max_log_lines: Option<u32> = 1000u32,
    }
}

layer! {
    /// The file's `[services.*]` tables: settings of host services, the
    /// operator's alone (no Element reads them).
    #[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct ServicesLayer {
        /// `[services.mail]`.
        #[command(flatten)]
        #[serde(default)]
        pub mail: MailLayer,
        /// `[services.http]`.
        #[command(flatten)]
        #[serde(default)]
        pub http: HttpLayer,
    }
}

layer! {
    /// `[services.mail]`: the SMTP relay (flags `--smtp-*`).
    #[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct MailLayer {
        /// SMTP host for the mail service; unset means mail is not configured.
        #[arg(
            id = "services.mail.host",
            long = "smtp-host",
            env = "ELEMENTS_SMTP_HOST",
            value_name = "HOST"
        )]
        pub host: Option<String>,
        /// SMTP port.
        #[arg(
            id = "services.mail.port",
            long = "smtp-port",
            env = "ELEMENTS_SMTP_PORT",
            value_name = "PORT"
        )]
        pub port: Option<u16> = 587u16,
        /// Require STARTTLS.
        #[arg(
            id = "services.mail.starttls",
            long = "smtp-starttls",
            env = "ELEMENTS_SMTP_STARTTLS",
            value_name = "BOOL"
        )]
        pub starttls: Option<bool> = true,
        /// SMTP user name; unset means no authentication.
        #[arg(
            id = "services.mail.user",
            long = "smtp-user",
            env = "ELEMENTS_SMTP_USER",
            value_name = "USER"
        )]
        pub user: Option<String>,
        /// SMTP password.
        #[arg(
            id = "services.mail.password",
            long = "smtp-password",
            env = "ELEMENTS_SMTP_PASSWORD",
            value_name = "PASSWORD",
            hide_env_values = true
        )]
        pub password: Option<String>,
        /// Sender of messages that name none.
        #[arg(
            id = "services.mail.from",
            long = "smtp-from",
            env = "ELEMENTS_SMTP_FROM",
            value_name = "ADDRESS"
        )]
        pub from: Option<String>,
        /// Most messages one request may send.
        #[arg(skip)]
        pub max_per_request: Option<u32> = 10u32,
    }
}

layer! {
    /// `[services.http]`: outbound HTTP (flags `--http-*`).
    #[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct HttpLayer {
        /// Networks (CIDR) or addresses outbound HTTP may reach although they are
        /// loopback, private, link-local and so on; comma-separated.
        #[arg(
            id = "services.http.allow_networks",
            long = "http-allow-networks",
            env = "ELEMENTS_HTTP_ALLOW_NETWORKS",
            value_name = "CIDR,...",
            value_delimiter = ','
        )]
        pub allow_networks: Option<Vec<Network>> = Vec::<Network>::new(),
        /// Outbound HTTP: most time to connect (DNS, TCP, TLS), in milliseconds.
        #[arg(
            id = "services.http.connect_timeout_ms",
            long = "http-connect-timeout-ms",
            env = "ELEMENTS_HTTP_CONNECT_TIMEOUT_MS",
            value_name = "MS"
        )]
        pub connect_timeout_ms: Option<u64> = 5000u64,
        /// Outbound HTTP: most time for a whole exchange, response body included, in milliseconds.
        #[arg(
            id = "services.http.timeout_ms",
            long = "http-timeout-ms",
            env = "ELEMENTS_HTTP_TIMEOUT_MS",
            value_name = "MS"
        )]
        pub timeout_ms: Option<u64> = 30_000u64,
        /// Outbound HTTP: largest response body, in bytes.
        #[arg(
            id = "services.http.max_response_bytes",
            long = "http-max-response-bytes",
            env = "ELEMENTS_HTTP_MAX_RESPONSE_BYTES",
            value_name = "BYTES"
        )]
        pub max_response_bytes: Option<u64> = 8u64 << 20,
    }
}

layer! {
    /// `[deploy]`: bounds on deploys and the clean-up after them.
    #[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct DeployLayer {
        /// Longest a deploy may spend compiling and validating an Element, in
        /// milliseconds; a slower one fails.
        #[arg(
            id = "deploy.compile_timeout_ms",
            long = "compile-timeout-ms",
            env = "ELEMENTS_COMPILE_TIMEOUT_MS",
            value_name = "MS"
        )]
        pub compile_timeout_ms: Option<u64> = 60_000u64,
        /// Most deploys compiling at once; others wait for a turn, at most the
        /// compile timeout.
        #[arg(
            id = "deploy.max_compiles",
            long = "max-compiles",
            env = "ELEMENTS_MAX_COMPILES",
            value_name = "N"
        )]
        pub max_compiles: Option<u32> = 2u32,
        /// Largest component a deploy accepts, in bytes; at most 12533760 (a
        /// stored component is one document of at most 16 MiB, base64).
        #[arg(
            id = "deploy.max_component_bytes",
            long = "max-component-bytes",
            env = "ELEMENTS_MAX_COMPONENT_BYTES",
            value_name = "BYTES"
        )]
        pub max_component_bytes: Option<usize> = 11usize << 20,
        /// Largest function body a deploy compiles, in bytes.
        #[arg(
            id = "deploy.max_function_bytes",
            long = "max-function-bytes",
            env = "ELEMENTS_MAX_FUNCTION_BYTES",
            value_name = "BYTES"
        )]
        pub max_function_bytes: Option<usize> = 4usize << 20,
        /// How long a stored component or compiled-cache entry no deployment
        /// needs is kept before it is removed, in seconds.
        #[arg(
            id = "deploy.gc_grace_secs",
            long = "deploy-gc-grace-secs",
            env = "ELEMENTS_DEPLOY_GC_GRACE_SECS",
            value_name = "SECS"
        )]
        pub gc_grace_secs: Option<u64> = 3600u64,
        /// How often a node looks for deployment changes other nodes stored,
        /// in milliseconds; with NATS, changes are announced at once and this
        /// is the fallback.
        #[arg(
            id = "deploy.poll_ms",
            long = "deploy-poll-ms",
            env = "ELEMENTS_DEPLOY_POLL_MS",
            value_name = "MS"
        )]
        pub poll_ms: Option<u64> = 2000u64,
    }
}

layer! {
    /// `[login]`: limits on failed password logins (per node) and on password
    /// hashing. File only; the defaults are the identity crate's.
    #[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct LoginLayer {
        /// Failed logins of one account before it is locked out.
        #[arg(skip)]
        pub account_failures: Option<u32> = ThrottleConfig::default().account_failures,
        /// Failed logins from one client address before it is locked out.
        #[arg(skip)]
        pub address_failures: Option<u32> = ThrottleConfig::default().address_failures,
        /// The first lockout, in seconds; each further failure doubles it.
        #[arg(skip)]
        pub lockout_secs: Option<u64> = ThrottleConfig::default().base_lockout.as_secs(),
        /// The longest lockout, in seconds.
        #[arg(skip)]
        pub max_lockout_secs: Option<u64> = ThrottleConfig::default().max_lockout.as_secs(),
        /// Failures older than this many seconds are forgotten.
        #[arg(skip)]
        pub forget_after_secs: Option<u64> = ThrottleConfig::default().forget_after.as_secs(),
        /// Most keys remembered per kind (accounts, addresses).
        #[arg(skip)]
        pub max_tracked: Option<usize> = ThrottleConfig::default().max_keys,
        /// Threads hashing passwords.
        #[arg(skip)]
        pub password_threads: Option<usize> = elements_identity::password::default_workers(),
        /// Password jobs that may wait; beyond, logins get 503.
        #[arg(skip)]
        pub password_queue: Option<usize> = elements_identity::password::DEFAULT_QUEUE,
    }
}

layer! {
    /// `[realtime]`: the bounds of the Nakama-compatible socket (`/ws`): what
    /// one socket and one user can make the server hold or do. File only;
    /// the defaults are `elements_realtime::Limits::default()`.
    #[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct RealtimeLayer {
        /// Largest text frame a client may send, in bytes; a larger one
        /// closes the socket with code 1009.
        #[arg(skip)]
        pub max_message_bytes: Option<usize> = RealtimeLimits::default().max_message_bytes,
        /// Envelopes that may wait to be written to one socket; a client
        /// that falls this far behind is disconnected.
        #[arg(skip)]
        pub send_queue: Option<usize> = RealtimeLimits::default().send_queue,
        /// Sockets one user may hold at once (per node); one more is
        /// refused with 429.
        #[arg(skip)]
        pub max_sockets_per_user: Option<usize> = RealtimeLimits::default().max_sockets_per_user,
        /// Sockets one node holds at once, all users together; one more is
        /// refused with 429.
        #[arg(skip)]
        pub max_sockets: Option<usize> = RealtimeLimits::default().max_sockets,
        /// Envelopes one socket may send per second, sustained; beyond, each
        /// gets an error envelope and is not served.
        #[arg(skip)]
        pub messages_per_sec: Option<u32> = RealtimeLimits::default().messages_per_sec,
        /// Envelopes one socket may send at once above the sustained rate.
        #[arg(skip)]
        pub message_burst: Option<u32> = RealtimeLimits::default().message_burst,
        /// Longest room name, in bytes.
        #[arg(skip)]
        pub max_channel_name_bytes: Option<usize> = RealtimeLimits::default().max_channel_name_bytes,
        /// Largest match data payload (decoded), in bytes.
        #[arg(skip)]
        pub max_match_data_bytes: Option<usize> = RealtimeLimits::default().max_match_data_bytes,
        /// Channels and matches one socket may be in at once.
        #[arg(skip)]
        pub max_joins: Option<usize> = RealtimeLimits::default().max_joins,
        /// Users one socket may follow.
        #[arg(skip)]
        pub max_follows: Option<usize> = RealtimeLimits::default().max_follows,
        /// Seconds between checks of a socket's session token: a socket
        /// closes at most this long after its session expires, logs out or
        /// is banned.
        #[arg(skip)]
        pub session_check_secs: Option<u64> = RealtimeLimits::default().session_check.as_secs(),
        /// Seconds a client may take to accept one frame before the server
        /// drops the connection.
        #[arg(skip)]
        pub write_timeout_secs: Option<u64> = RealtimeLimits::default().write_timeout.as_secs(),
    }
}

/// `[elements.NAME]`: what the operator gives one Element.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ElementLayer {
    /// `[elements.NAME.attributes]`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Approved grants; replaces the default approvals of that name.
    pub grants: Option<Vec<String>>,
}

/// The program as clap sees it: the flags of [`Cli`], each help line ending
/// in the default from [`Layer::builtin`] and, for a setting in a table, its
/// place in the file.
fn program(args: Command) -> Command {
    // Serializing the built-in layer can't fail (every value is a string,
    // number, boolean or list of those); an empty table would only drop the
    // defaults from the help, which the tests would see.
    let builtin = toml::Table::try_from(Cli::builtin()).unwrap_or_default();
    let file_only = file_only_keys(&args, &builtin);
    args.mut_args(|arg| {
        let id = arg.get_id().as_str();
        let mut notes = String::new();
        if let Some(default) = lookup(&builtin, id).and_then(default_text) {
            notes.push_str(&format!(" [default: {default}]"));
        }
        if let Some((table, key)) = id.rsplit_once('.') {
            notes.push_str(&format!(" [file: [{table}] {key}]"));
        }
        if notes.is_empty() {
            return arg;
        }
        let with_notes = |help: Option<&clap::builder::StyledStr>| {
            format!("{}{notes}", help.map(ToString::to_string).unwrap_or_default())
        };
        let long_help = arg.get_long_help().map(|h| with_notes(Some(h)));
        let help = with_notes(arg.get_help());
        let arg = arg.help(help);
        match long_help {
            Some(long) => arg.long_help(long),
            None => arg,
        }
    })
    .name("elements")
    .version(env!("CARGO_PKG_VERSION"))
    .about("The Elements server: hosts WebAssembly component Elements behind HTTP.")
    .after_help(format!(
        "The configuration file (TOML) takes the same settings: a top-level flag's under its name \
in snake_case (--max-instances: max_instances), the others where their [file: ...] says. \
File only: {file_only}; operator attributes: [attributes] for every Element and \
[elements.NAME.attributes] for one; approved grants: [elements.NAME] grants = [...]. \
A flag wins over its ELEMENTS_* variable, which wins over the file, which wins over the defaults."
    ))
}

/// The settings no flag sets, by table: `[login] account_failures, ...`.
fn file_only_keys(args: &Command, builtin: &toml::Table) -> String {
    let flags: Vec<&str> = args.get_arguments().map(|a| a.get_id().as_str()).collect();
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut visit = |path: String| {
        if !flags.contains(&path.as_str())
            && let Some((table, key)) = path.rsplit_once('.')
        {
            tables.entry(table.to_owned()).or_default().push(key.to_owned());
        }
    };
    for (name, value) in builtin {
        let toml::Value::Table(keys) = value else { continue };
        for (key, value) in keys {
            match value {
                toml::Value::Table(sub) => {
                    for sub_key in sub.keys() {
                        visit(format!("{name}.{key}.{sub_key}"));
                    }
                }
                _ => visit(format!("{name}.{key}")),
            }
        }
    }
    tables
        .into_iter()
        .map(|(table, keys)| format!("[{table}] {}", keys.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The value at a dotted path (`services.http.timeout_ms`).
pub(crate) fn lookup<'a>(table: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut keys = path.split('.');
    let mut value = table.get(keys.next()?)?;
    for key in keys {
        value = value.as_table()?.get(key)?;
    }
    Some(value)
}

/// A default as a flag would take it.
fn default_text(value: &toml::Value) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) if items.is_empty() => "none".into(),
        toml::Value::Array(items) => items
            .iter()
            .map(default_text)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        toml::Value::Table(_) => return None,
        other => other.to_string(),
    })
}

// `Cli` derives `Args`, not `Parser`, so that the program can be assembled
// here with the defaults added to the help.
impl clap::CommandFactory for Cli {
    fn command() -> Command {
        program(Cli::augment_args(Command::new("elements")))
    }

    fn command_for_update() -> Command {
        program(Cli::augment_args_for_update(Command::new("elements")))
    }
}

impl clap::Parser for Cli {}
