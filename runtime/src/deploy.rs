//! Putting Elements into service. At startup every `NAME.wasm` in the deploy
//! folder is loaded with its optional `NAME.toml` manifest; a file that can't
//! be deployed is refused with a log line naming it and why, and the others
//! still load.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::element::log_buffer::{Level, LogBuffer, Source};
use crate::element::{DeployError, Element, Host};
use crate::registry::Registry;

/// A deploy that failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub error: String,
    /// When.
    pub at: SystemTime,
}

/// Deploys Elements into a [`Registry`].
pub struct Deployer {
    host: Arc<Host>,
    registry: Arc<Registry>,
    logs: Mutex<BTreeMap<String, Arc<LogBuffer>>>,
    failures: Mutex<BTreeMap<String, Failure>>,
}

/// A folder load's result.
#[derive(Debug, Default)]
pub struct LoadSummary {
    /// Names of the Elements now serving.
    pub loaded: Vec<String>,
    /// Names of the files refused, with why.
    pub failed: Vec<(String, String)>,
}

impl Deployer {
    /// A deployer for `registry`.
    pub fn new(host: Arc<Host>, registry: Arc<Registry>) -> Deployer {
        Deployer {
            host,
            registry,
            logs: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// The host Elements run on.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// The log of the Element named `name` (kept across its versions).
    pub fn log(&self, name: &str) -> Arc<LogBuffer> {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.entry(name.to_owned()).or_default().clone()
    }

    /// The last failed deploy of `name`, if its latest deploy failed.
    pub fn failure(&self, name: &str) -> Option<Failure> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Compiles, validates and mounts one Element, replacing its previous
    /// version atomically. On failure the previous version keeps serving.
    pub async fn deploy(
        &self,
        name: &str,
        component: Vec<u8>,
        manifest: Option<String>,
    ) -> Result<Arc<Element>, DeployError> {
        let log = self.log(name);
        let host = self.host.clone();
        let owned_name = name.to_owned();
        let log_for_task = log.clone();
        let result = tokio::task::spawn_blocking(move || {
            Element::deploy(&host, &owned_name, &component, manifest.as_deref(), log_for_task)
        })
        .await
        .unwrap_or_else(|e| Err(DeployError::Compile(format!("deploy task failed: {e}"))));
        let result = result.and_then(|element| {
            let element = Arc::new(element);
            self.registry
                .mount(element.clone())
                .map_err(|e| DeployError::Mount(e.to_string()))?;
            Ok(element)
        });
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(element) => {
                failures.remove(name);
                tracing::info!(
                    element = name,
                    prefix = %element.prefix,
                    hash = %&element.hash[..12],
                    compile = ?element.compile,
                    "Element deployed at /app/rest/{}",
                    element.prefix
                );
            }
            Err(e) => {
                tracing::error!(element = name, error = %e, "Element {name:?} refused: {e}");
                log.push(Level::Error, Source::Host, None, &format!("deploy failed: {e}"));
                failures.insert(
                    name.to_owned(),
                    Failure {
                        error: e.to_string(),
                        at: SystemTime::now(),
                    },
                );
            }
        }
        result
    }

    /// Deploys every `NAME.wasm` in `dir` with its `NAME.toml`, if any.
    pub async fn load_dir(&self, dir: &Path) -> std::io::Result<LoadSummary> {
        let mut summary = LoadSummary::default();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                names.push(stem.to_owned());
            }
        }
        names.sort();
        for name in names {
            let wasm = dir.join(format!("{name}.wasm"));
            let manifest_path = dir.join(format!("{name}.toml"));
            let component = match std::fs::read(&wasm) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!(element = %name, error = %e, "cannot read {}", wasm.display());
                    summary.failed.push((name, e.to_string()));
                    continue;
                }
            };
            let manifest = match std::fs::read_to_string(&manifest_path) {
                Ok(text) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::error!(element = %name, error = %e, "cannot read {}", manifest_path.display());
                    summary.failed.push((name, e.to_string()));
                    continue;
                }
            };
            match self.deploy(&name, component, manifest).await {
                Ok(_) => summary.loaded.push(name),
                Err(e) => summary.failed.push((name, e.to_string())),
            }
        }
        Ok(summary)
    }
}
