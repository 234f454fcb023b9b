//! The Elements server's composition root: [`Runtime::start`] builds the
//! services — the store, identity (bootstrapping `root`), the engine, the
//! host services, the deployer — and hands them down; its routers put the
//! core APIs and the portal on the HTTP front. Every layer is a crate of its
//! own (see `ARCHITECTURE.md`): `elements-config`, `elements-host`
//! (wasmtime: engine, instances, host services, Elements),
//! `elements-deployments` (registry, deploys, stored deployments),
//! `elements-server` (the HTTP front), `elements-api` (the core APIs) and
//! `elements-portal` (the management portal).

pub use elements_server::serve;

mod allocator;
pub mod check;
pub mod realtime_cluster;

use std::sync::Arc;

use anyhow::Context;

use config::Config;
use elements_config as config;
use elements_deployments::Deployer;
use elements_deployments::persist::Deployments;
use elements_deployments::registry::Registry;
use elements_host::element::Host;
use elements_host::element::compile::CompileCache;
use elements_host::engine::{self, Allocation, EpochTicker};
use elements_host::events::EventBus;
use elements_identity::{IdentityConfig, IdentityService};
use elements_server::portal::PortalSettings;
use elements_server::{App, AppParts, IdentityApi};
use elements_store::DocumentStore;

/// Everything the server needs to serve, before it listens.
pub struct Runtime {
    /// Shared state of the HTTP handlers.
    pub app: Arc<App>,
    /// Which instance allocator the engine uses.
    pub allocation: Allocation,
    /// The runtime's event bus.
    pub events: Arc<EventBus>,
    _ticker: EpochTicker,
    _watcher: elements_deployments::watch::Watcher,
}

/// What an embedder of the runtime adds to its configuration: the test
/// harness (`elements-test`) runs the real runtime in-process with these.
#[derive(Default, Clone)]
pub struct Embedding {
    /// Canned answers to the Elements' outbound HTTP requests in place of
    /// the network.
    pub outbound_stub: Option<Arc<dyn elements_host::services::http::OutboundStub>>,
}

impl Runtime {
    /// Builds the engine and host, and deploys the Elements in the deploy folder.
    pub async fn start(config: &Config) -> anyhow::Result<Runtime> {
        Runtime::start_with(config, Embedding::default()).await
    }

    /// [`Runtime::start`] with what an embedder adds.
    pub async fn start_with(config: &Config, embedding: Embedding) -> anyhow::Result<Runtime> {
        let store = open_store(config).await?;
        let identity = start_identity(store.clone(), config).await?;
        for verifier in
            elements_providers::verifiers(&config.providers).context("setting up the login providers")?
        {
            tracing::info!(scheme = verifier.scheme(), "login provider configured");
            identity.service.register_verifier(verifier);
        }
        let events = Arc::new(EventBus::default());
        // Joining a cluster never waits for NATS: the connection is made,
        // and remade, in the background; until then events stay on this node.
        let cluster = match &config.nats {
            Some(nats) => Some(
                elements_cluster::Cluster::connect(&elements_cluster::ClusterConfig {
                    url: nats.url.clone(),
                    prefix: nats.prefix.clone(),
                })
                .await
                .context("joining the cluster over NATS")?,
            ),
            None => None,
        };
        // A node name per process: match ids carry it, so they stay unique
        // when several nodes share one store.
        let node = format!("elements-{:08x}", uuid_suffix());
        let hub = elements_realtime::Hub::new(node, config.realtime.clone(), store.clone())
            .await
            .context("opening the realtime hub")?;
        // In a cluster, sockets on every node reach each other through NATS.
        let realtime = match &cluster {
            Some(cluster) => {
                let link = realtime_cluster::NatsRealtime::new(cluster, hub.local().clone());
                let hub = Arc::new(hub.with_fabric(link.clone()).with_replicator(link.clone()));
                link.start(cluster.clone(), hub.clone());
                hub
            }
            None => Arc::new(hub),
        };
        let (host, allocation, ticker) = build_host(
            config,
            HostParts {
                store: store.clone(),
                identity: identity.service.clone(),
                events: events.clone(),
                realtime: realtime.clone(),
                outbound_stub: embedding.outbound_stub,
            },
        )?;
        let registry = Arc::new(Registry::default());
        let deployer = Arc::new(Deployer::new(host.clone(), registry.clone(), events.clone()));
        // Stored service settings (admin API, portal) over the configuration's.
        let settings = elements_deployments::settings::ServiceSettings::new(
            store.clone(),
            host.clone(),
            config.services.clone(),
        )
        .context("opening the service settings")?;
        settings
            .apply()
            .await
            .context("applying the stored service settings")?;
        settings.start_polling();
        elements_deployments::dispatch::start(events.clone(), registry.clone(), host.clone());
        if let (Some(cluster), Some(nats)) = (&cluster, &config.nats) {
            elements_deployments::dispatch::start_cluster(
                cluster.clone(),
                events.clone(),
                registry.clone(),
                host,
                nats.events_max_bytes,
            );
        }
        // Stored deployments first: a name the store manages is not taken
        // from the folder.
        let deployments =
            Deployments::new(store.clone(), deployer.clone()).context("opening stored deployments")?;
        if let Some(cluster) = &cluster {
            deployments.announce_over(cluster.clone());
        }
        let started = std::time::Instant::now();
        deployments
            .apply_all()
            .await
            .context("loading stored deployments")?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded stored deployments"
        );
        deployments.start_polling();
        std::fs::create_dir_all(&config.deploy_dir)
            .with_context(|| format!("creating the deploy folder {}", config.deploy_dir.display()))?;
        let summary = deployer
            .load_dir(&config.deploy_dir)
            .await
            .with_context(|| format!("reading the deploy folder {}", config.deploy_dir.display()))?;
        tracing::info!(
            loaded = summary.loaded.len(),
            failed = summary.failed.len(),
            "loaded Elements from {}",
            config.deploy_dir.display()
        );
        deployments.start_collecting().await;
        realtime.serve_rpcs(Arc::new(elements_deployments::rpc::ElementRpcs::new(
            registry.clone(),
            deployer.clone(),
        )));
        realtime.run_matches(Arc::new(elements_deployments::matches::ElementMatches::new(
            registry.clone(),
            deployer.clone(),
        )));
        let watcher = elements_deployments::watch::watch(deployer.clone(), config.deploy_dir.clone())
            .with_context(|| format!("watching the deploy folder {}", config.deploy_dir.display()))?;
        Ok(Runtime {
            app: Arc::new(App::new(AppParts {
                registry,
                deployer,
                store,
                identity,
                deployments,
                settings,
                portal: portal_settings(config),
                metrics: config.metrics,
                realtime,
            })),
            allocation,
            events,
            _ticker: ticker,
            _watcher: watcher,
        })
    }

    /// The public listener's routes: Element content, the client APIs,
    /// the API documentation, metrics and `/health`.
    pub fn public_service(&self) -> elements_server::PublicService {
        elements_server::public_service(self.app.clone(), elements_api::public_router())
    }

    /// The admin listener's routes: the management portal, the deployment
    /// admin API and `/health`. Served on an origin of their own, so no
    /// page an Element serves can reach them with an operator's cookies.
    pub fn admin_router(&self) -> axum::Router {
        let admin = elements_api::admin_router().merge(elements_portal::router());
        elements_server::admin_router(self.app.clone(), admin)
    }
}

/// The engine, the host services and what every deploy needs: one
/// construction for the server and for `elements check`, so the checker
/// runs the deploy's own checks against the same host.
/// What the host services are built over.
struct HostParts {
    store: Arc<dyn DocumentStore>,
    identity: Arc<IdentityService>,
    events: Arc<EventBus>,
    realtime: Arc<elements_realtime::Hub>,
    outbound_stub: Option<Arc<dyn elements_host::services::http::OutboundStub>>,
}

fn build_host(config: &Config, parts: HostParts) -> anyhow::Result<(Arc<Host>, Allocation, EpochTicker)> {
    let HostParts {
        store,
        identity,
        events,
        realtime,
        outbound_stub,
    } = parts;
    let (engine, allocation) = engine::build(config)?;
    tracing::info!(
        ?allocation,
        max_instances = config.max_instances,
        "wasmtime engine ready"
    );
    let ticker = EpochTicker::start(engine.clone()).context("starting the epoch ticker")?;
    let host = Arc::new(Host {
        linker: elements_host::instance::linker(&engine)?,
        services: elements_host::services::Services::new(elements_host::services::ServiceDeps {
            store,
            events,
            identity,
            realtime,
            settings: config.services.clone(),
            outbound_stub,
        })?,
        cache: CompileCache::open(&engine, &config.cache_dir)
            .with_context(|| format!("opening the compiled-code cache {}", config.cache_dir.display()))?,
        engine,
        limits: config.limits.clone(),
        attributes: operator_attributes(config),
        clock: elements_host::clock::OffsetClock::seconds(config.clock_offset_secs),
        element_grants: config.element_grants.clone(),
        deploy: config.deploy.clone(),
        element_attributes: config.element_attributes.clone(),
    });
    Ok((host, allocation, ticker))
}

/// How the portal knows its own origin and whether it is reached over HTTPS
/// (the admin public URL, else the admin listener's address).
fn portal_settings(config: &Config) -> PortalSettings {
    let origin = match &config.admin_public_url {
        Some(url) => config::origin_of(url),
        // An unspecified address (0.0.0.0) names no origin a browser sends;
        // the request's Host stands in for it then.
        None => {
            (!config.admin_listen.ip().is_unspecified()).then(|| format!("http://{}", config.admin_listen))
        }
    };
    PortalSettings {
        secure_cookies: config
            .admin_public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
        origin,
        behind_proxy: config.admin_public_url.is_some(),
        public_url: public_url(config),
    }
}

/// The public listener's base URL: configured, or `http://` and its address.
fn public_url(config: &Config) -> String {
    config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
}

/// The operator attributes every Element gets: the configured ones, plus
/// the server's public URL under [`PUBLIC_URL_ATTRIBUTE`] unless configured.
fn operator_attributes(config: &Config) -> std::collections::BTreeMap<String, String> {
    let mut attributes = config.attributes.clone();
    attributes
        .entry(PUBLIC_URL_ATTRIBUTE.to_owned())
        .or_insert_with(|| public_url(config));
    attributes
}

/// The attribute holding the server's public base URL.
pub const PUBLIC_URL_ATTRIBUTE: &str = "dev.getelements.elements.public_url";

/// Opens the configured document store.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn elements_store::DocumentStore>> {
    use elements_store::{MongoConfig, SqliteConfig, StoreConfig};
    let choice = match &config.store {
        config::StoreChoice::Sqlite => StoreConfig::Sqlite(SqliteConfig::in_data_dir(&config.data_dir)),
        config::StoreChoice::Mongo { uri, database } => StoreConfig::Mongo(MongoConfig::new(uri, database)),
    };
    let options = elements_store::OpenOptions {
        clock: Arc::new(elements_host::clock::OffsetClock::seconds(
            config.clock_offset_secs,
        )),
        ..Default::default()
    };
    let store = elements_store::open_with(choice, options)
        .await
        .context("opening the document store")?;
    tracing::info!(backend = store.backend(), "document store ready");
    Ok(store)
}

/// Opens the identity service over `store` and bootstraps the `root`
/// superuser on first start (printing a generated password once).
async fn start_identity(store: Arc<dyn DocumentStore>, config: &Config) -> anyhow::Result<Arc<IdentityApi>> {
    let settings = &config.identity;
    let schemes =
        elements_providers::auth_schemes(&config.providers).context("setting up the auth schemes")?;
    let config = IdentityConfig {
        token_key: settings.token_key.clone(),
        refresh_token_key: settings.refresh_token_key.clone(),
        token_expiry: settings.token_expiry,
        refresh_token_expiry: settings.refresh_token_expiry,
        session_expiry: settings.session_expiry,
        root_password: settings.root_password.clone(),
        login_throttle: settings.login_throttle.clone(),
        password_workers: settings.password_threads,
        password_queue: settings.password_queue,
        clock_offset_secs: config.clock_offset_secs,
        ..IdentityConfig::default()
    };
    let service = IdentityService::new(store, config)
        .await
        .context("starting the identity service")?;
    if let Some(bootstrap) = service
        .bootstrap()
        .await
        .context("creating the superuser `root`")?
    {
        match bootstrap.generated_password {
            // The one time this password exists outside the hash: the
            // operator needs it to log in (issue: "printed once").
            Some(password) => tracing::warn!(
                "created the superuser `root` with the generated password {} (shown only now; \
                 set ELEMENTS_ROOT_PASSWORD before the first start to choose it)",
                password.expose()
            ),
            None => tracing::info!("created the superuser `root` with the configured password"),
        }
    }
    Ok(Arc::new(IdentityApi {
        service: Arc::new(service),
        server_key: settings.server_key.clone(),
        http_key: settings.http_key.clone(),
        schemes: Arc::new(schemes),
    }))
}

/// 32 random bits, for the node name: std's per-process random hash keys,
/// without another dependency for randomness.
fn uuid_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}
