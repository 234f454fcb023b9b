//! The Elements runtime: a hyper/tokio server that hosts WebAssembly
//! component "Elements" and serves their HTTP routes under `/app/rest/`.
//!
//! The pieces, in dependency order:
//! - [`config`]: what the server runs with (file, environment, flags);
//! - [`engine`]: the wasmtime engine and the epoch ticker that bounds guests;
//! - [`host`]: what an instance can reach: WASI, `wasi:http`, host services;
//! - [`element`]: a compiled, validated Element and how it serves a request;
//! - [`registry`] and [`deploy`]: which Elements serve, and putting them there;
//! - [`server`] and [`error`]: the HTTP front and its one error mapping.

pub mod config;
pub mod deploy;
pub mod element;
pub mod engine;
pub mod error;
pub mod events;
pub mod host;
pub mod registry;
pub mod server;

use std::sync::Arc;

use anyhow::Context;

use config::Config;
use deploy::Deployer;
use element::Host;
use element::compile::CompileCache;
use engine::{Allocation, EpochTicker};
use events::EventBus;
use registry::Registry;
use server::App;

/// Everything the server needs to serve, before it listens.
pub struct Runtime {
    /// Shared state of the HTTP handlers.
    pub app: Arc<App>,
    /// Which instance allocator the engine uses.
    pub allocation: Allocation,
    /// The runtime's event bus.
    pub events: Arc<EventBus>,
    _ticker: EpochTicker,
    _watcher: deploy::watch::Watcher,
}

impl Runtime {
    /// Builds the engine and host, and deploys the Elements in the deploy folder.
    pub async fn start(config: &Config) -> anyhow::Result<Runtime> {
        let (engine, allocation) = engine::build(config)?;
        tracing::info!(
            ?allocation,
            max_instances = config.max_instances,
            "wasmtime engine ready"
        );
        let ticker = EpochTicker::start(engine.clone()).context("starting the epoch ticker")?;
        let host = Arc::new(Host {
            linker: host::linker(&engine)?,
            services: Default::default(),
            cache: CompileCache::new(&engine, &config.cache_dir),
            engine,
            limits: config.limits.clone(),
            attributes: config.attributes.clone(),
            element_attributes: config.element_attributes.clone(),
        });
        let registry = Arc::new(Registry::default());
        let events = Arc::new(EventBus::default());
        let deployer = Arc::new(Deployer::new(host, registry.clone(), events.clone()));
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
        let watcher = deploy::watch::watch(deployer.clone(), config.deploy_dir.clone())
            .with_context(|| format!("watching the deploy folder {}", config.deploy_dir.display()))?;
        Ok(Runtime {
            app: Arc::new(App::new(registry, deployer)),
            allocation,
            events,
            _ticker: ticker,
            _watcher: watcher,
        })
    }

    /// The server's routes.
    pub fn router(&self) -> axum::Router {
        server::router(self.app.clone())
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
