//! Putting Elements into service and taking them out: the [`registry`]
//! of the Elements serving, the deploy folder's [`watch`]er, the stored
//! deployments ([`persist`]) every node applies, the operator's service
//! [`settings`], the [`catalog`] the admin API and portal show, and the
//! [`dispatch`] of events to subscribing Elements. Above the wasmtime
//! layer (`elements-host`), below the HTTP APIs.
//!
//! The deploy folder holds `NAME.wasm` components with optional `NAME.toml`
//! manifests. At startup every Element there is deployed; afterwards
//! [`watch`] keeps the running set in step with the folder. A deploy compiles
//! and validates off the request path and then swaps the new version in
//! atomically: requests already running finish on the old version, new ones
//! get the new one. A deploy that fails leaves the previous version serving
//! and is recorded (status, error, time) and logged.
//!
//! Compiling is the slow part of a deploy, and is bounded: it runs on a
//! blocking thread, at most `max_compiles` at once, and a deploy that has not
//! finished compiling within `compile_timeout` fails (the thread can't be
//! stopped, but it keeps its compile slot until it ends, so a flood of slow
//! compiles can't pile up threads). No lock is held while compiling: deploys
//! of different Elements proceed side by side, and only the swap at the end
//! takes the deployer's lock. Every deploy of a name gets the next
//! *generation* of that name when it begins, and an undeploy takes one too;
//! a deploy whose generation is no longer the latest when it finishes is
//! discarded ([`DeployError::Superseded`]), so however compiles race, the
//! latest deploy begun is the one that serves.

pub mod catalog;
pub mod dispatch;
pub mod matches;
pub mod persist;
pub mod registry;
pub mod rpc;
pub mod settings;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::registry::Registry;
use elements_config::grants::Grant;
use elements_host::element::{DeployError, Element, ElementSource, Host};
use elements_host::events::{EventBus, names};
use elements_host::log_buffer::{Level, LogBuffer, Source};

/// A deploy that failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub error: String,
    /// When.
    pub at: SystemTime,
}

/// What the deployer knows of one Element name.
#[derive(Debug, Default)]
struct NameState {
    /// Successful deploys so far; the serving version's number.
    version: u64,
    /// The last deploy attempted, so an unchanged source is not redeployed.
    source: Option<ElementSource>,
    /// The last deploy's failure, until a deploy succeeds.
    failure: Option<Failure>,
    /// Deployed through the admin API (stored), not from the folder.
    managed: bool,
    /// A stored deployment switched off.
    disabled: bool,
    /// Taken by every deploy begun and every undeploy; only a deploy of the
    /// latest generation may commit.
    generation: u64,
    /// Deploys begun and not yet finished.
    in_flight: u32,
    /// Attribute values an operator set on a folder Element.
    folder_values: BTreeMap<String, String>,
    /// Grants an operator approved through the admin API or the portal.
    approved: BTreeSet<Grant>,
    log: Arc<LogBuffer>,
}

/// What the deployer can tell about one Element name.
#[derive(Debug, Clone)]
pub struct Status {
    /// The name.
    pub name: String,
    /// The serving version, if any.
    pub element: Option<Arc<Element>>,
    /// Successful deploys so far.
    pub version: u64,
    /// The latest deploy's failure, if it failed.
    pub failure: Option<Failure>,
    /// Deployed through the admin API (else from the deploy folder).
    pub managed: bool,
    /// Switched off through the admin API.
    pub disabled: bool,
    /// The source of the latest deploy, serving or not (what an operator
    /// fixes when it failed).
    pub attempted: Option<ElementSource>,
}

/// Deploys Elements into a [`Registry`].
pub struct Deployer {
    host: Arc<Host>,
    /// The deploy folder, once [`Deployer::load_dir`] has read it.
    folder: Mutex<Option<std::path::PathBuf>>,
    registry: Arc<Registry>,
    events: Arc<EventBus>,
    /// The lock of deploys: held for "is this source new?" when a deploy
    /// begins and for the swap when it ends, never while compiling.
    names: Mutex<BTreeMap<String, NameState>>,
    /// One permit per compile running.
    compiles: Arc<tokio::sync::Semaphore>,
    /// Woken whenever a deploy finishes.
    finished: tokio::sync::Notify,
}

/// A deploy begun by [`Deployer::begin`], running on a task of its own.
#[derive(Debug)]
pub struct Deploying(tokio::task::JoinHandle<Result<Arc<Element>, DeployError>>);

impl Deploying {
    /// Waits for the deploy's outcome.
    pub async fn wait(self) -> Result<Arc<Element>, DeployError> {
        self.0
            .await
            .unwrap_or_else(|e| Err(DeployError::Compile(format!("deploy task failed: {e}"))))
    }
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
    /// A deployer for `registry`, announcing changes on `events`.
    pub fn new(host: Arc<Host>, registry: Arc<Registry>, events: Arc<EventBus>) -> Deployer {
        Deployer {
            folder: Mutex::default(),
            registry,
            events,
            names: Mutex::default(),
            compiles: Arc::new(tokio::sync::Semaphore::new(host.deploy.max_compiles as usize)),
            finished: tokio::sync::Notify::new(),
            host,
        }
    }

    /// The host Elements run on.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    fn with_state<R>(&self, name: &str, f: impl FnOnce(&mut NameState) -> R) -> R {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        f(names.entry(name.to_owned()).or_default())
    }

    /// The log of the Element named `name` (kept across its versions).
    pub fn log(&self, name: &str) -> Arc<LogBuffer> {
        self.with_state(name, |s| s.log.clone())
    }

    /// The last failed deploy of `name`, if its latest deploy failed.
    pub fn failure(&self, name: &str) -> Option<Failure> {
        self.with_state(name, |s| s.failure.clone())
    }

    /// Marks `name` as managed by the store (the folder watcher leaves it alone).
    pub fn set_managed(&self, name: &str, managed: bool) {
        self.with_state(name, |s| s.managed = managed);
    }

    /// Records whether the stored deployment `name` is switched off.
    pub fn set_disabled(&self, name: &str, disabled: bool) {
        self.with_state(name, |s| s.disabled = disabled);
    }

    /// Applies the set of deploy-folder Elements an operator switched off:
    /// newly disabled ones stop serving, re-enabled ones are deployed from
    /// the folder again.
    pub async fn set_folder_disabled(self: &Arc<Self>, disabled: &std::collections::BTreeSet<String>) {
        let (to_disable, to_enable): (Vec<String>, Vec<String>) = {
            let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            let off = disabled
                .iter()
                .filter(|n| names.get(*n).is_none_or(|s| !s.managed && !s.disabled))
                .cloned()
                .collect();
            let on = names
                .iter()
                .filter(|(n, s)| !s.managed && s.disabled && !disabled.contains(*n))
                .map(|(n, _)| n.clone())
                .collect();
            (off, on)
        };
        for name in to_disable {
            self.undeploy(&name);
            self.with_state(&name, |s| s.disabled = true);
        }
        let folder = self.folder.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for name in to_enable {
            self.with_state(&name, |s| s.disabled = false);
            if let Some(dir) = &folder {
                self.sync(dir, &name).await;
            }
        }
    }

    /// Applies operator attribute values of folder Elements: an Element
    /// whose values changed is redeployed from the folder with them.
    pub async fn set_folder_values(self: &Arc<Self>, overrides: BTreeMap<String, BTreeMap<String, String>>) {
        let changed: Vec<String> = {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            let mut changed = Vec::new();
            let all: std::collections::BTreeSet<String> =
                names.keys().chain(overrides.keys()).cloned().collect();
            for name in all {
                let state = names.entry(name.clone()).or_default();
                if state.managed {
                    continue;
                }
                let wanted = overrides.get(&name).cloned().unwrap_or_default();
                if state.folder_values != wanted {
                    state.folder_values = wanted;
                    changed.push(name);
                }
            }
            changed
        };
        let folder = self.folder.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(dir) = folder {
            for name in changed {
                self.sync(&dir, &name).await;
            }
        }
    }

    /// Applies the grants operators approved through the admin API or the
    /// portal: a folder Element whose approvals changed is redeployed from
    /// the folder with them (stored deployments get theirs from
    /// [`persist::Deployments`]).
    pub async fn set_approvals(self: &Arc<Self>, approvals: BTreeMap<String, BTreeSet<Grant>>) {
        let changed: Vec<String> = {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            let all: BTreeSet<String> = names.keys().chain(approvals.keys()).cloned().collect();
            let mut changed = Vec::new();
            for name in all {
                let state = names.entry(name.clone()).or_default();
                let wanted = approvals.get(&name).cloned().unwrap_or_default();
                if state.approved != wanted {
                    state.approved = wanted;
                    if !state.managed {
                        changed.push(name);
                    }
                }
            }
            changed
        };
        let folder = self.folder.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(dir) = folder {
            for name in changed {
                self.sync(&dir, &name).await;
            }
        }
    }

    /// The grants the configuration approves for `name`.
    pub fn configured_grants(&self, name: &str) -> BTreeSet<Grant> {
        self.host.element_grants.get(name).cloned().unwrap_or_default()
    }

    /// Whether `name` is currently deployed (or refused) from the folder.
    pub fn is_from_folder(&self, name: &str) -> bool {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names
            .get(name)
            .is_some_and(|s| !s.managed && (s.source.is_some() || s.disabled))
    }

    /// The status of every name the deployer knows (serving, failed or disabled).
    pub fn statuses(&self) -> Vec<Status> {
        let names: Vec<String> = {
            let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            names
                .iter()
                .filter(|(_, s)| s.source.is_some() || s.disabled || s.failure.is_some())
                .map(|(n, _)| n.clone())
                .collect()
        };
        names.iter().filter_map(|n| self.status(n)).collect()
    }

    /// Content hashes of the components this node serves, deploys or last
    /// tried to deploy: their compiled code stays in the cache.
    pub fn hashes_in_use(&self) -> BTreeSet<String> {
        let mut hashes: BTreeSet<String> = {
            let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            names
                .values()
                .filter_map(|s| s.source.as_ref().map(|src| src.hash.clone()))
                .collect()
        };
        hashes.extend(self.registry.all().iter().map(|e| e.hash.clone()));
        hashes
    }

    /// The status of `name`, if the deployer knows it.
    pub fn status(&self, name: &str) -> Option<Status> {
        let element = self.registry.by_name(name);
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let state = names.get(name)?;
        if state.source.is_none() && !state.disabled && state.failure.is_none() && element.is_none() {
            return None;
        }
        Some(Status {
            name: name.to_owned(),
            element,
            version: state.version,
            failure: state.failure.clone(),
            managed: state.managed,
            disabled: state.disabled,
            attempted: state.source.clone(),
        })
    }

    /// Begins deploying `source` as `name` unless it is what `name` last
    /// deployed or is deploying (or last failed to deploy: the same bad
    /// source is not retried on every event, but any change to it is). The
    /// deploy runs on a task of its own, so it completes and commits even if
    /// whoever began it stops waiting.
    pub fn begin(self: &Arc<Self>, name: &str, source: ElementSource) -> Option<Deploying> {
        let generation = self.with_state(name, |s| {
            if s.source.as_ref() == Some(&source) {
                return None;
            }
            s.generation += 1;
            s.in_flight += 1;
            s.source = Some(source.clone());
            Some(s.generation)
        })?;
        let this = self.clone();
        let name = name.to_owned();
        Some(Deploying(tokio::spawn(async move {
            let result = this.compile(&name, &source).await;
            let result = this.commit(&name, generation, result);
            this.with_state(&name, |s| s.in_flight -= 1);
            this.finished.notify_waiters();
            result
        })))
    }

    /// Waits until no deploy of `name` is in flight.
    pub async fn settled(&self, name: &str) {
        loop {
            let finished = self.finished.notified();
            tokio::pin!(finished);
            // Registered before the check, so a deploy finishing in between
            // is not missed.
            finished.as_mut().enable();
            if self.with_state(name, |s| s.in_flight == 0) {
                return;
            }
            finished.await;
        }
    }

    /// Compiles and validates `source` within the deploy's bounds: a compile
    /// slot, then the time limit.
    async fn compile(&self, name: &str, source: &ElementSource) -> Result<Element, DeployError> {
        let limit = self.host.deploy.compile_timeout;
        let permit = match tokio::time::timeout(limit, self.compiles.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Err(DeployError::Busy(limit)),
        };
        tracing::info!(
            element = name,
            hash = %&source.hash[..12],
            "compiling Element {name} (or loading it from the cache)"
        );
        let host = self.host.clone();
        let owned_name = name.to_owned();
        let log = self.log(name);
        let source = source.clone();
        let task = tokio::task::spawn_blocking(move || {
            // The slot is the thread's until the compile ends, timed out or not.
            let _permit = permit;
            Element::deploy(&host, &owned_name, &source, log)
        });
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(DeployError::Compile(format!("deploy task failed: {e}"))),
            Err(_) => Err(DeployError::CompileTimeout(limit)),
        }
    }

    /// Swaps a compiled Element in (or records why it failed), unless a newer
    /// deploy or an undeploy of `name` began since `generation`.
    fn commit(
        &self,
        name: &str,
        generation: u64,
        result: Result<Element, DeployError>,
    ) -> Result<Arc<Element>, DeployError> {
        let log = self.log(name);
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let state = names.entry(name.to_owned()).or_default();
        if state.generation != generation {
            tracing::info!(element = name, "deploy superseded by a newer one; discarded");
            return Err(DeployError::Superseded);
        }
        let result = result.and_then(|mut element| {
            element.version = state.version + 1;
            let element = Arc::new(element);
            self.registry
                .mount(element.clone())
                .map_err(|e| DeployError::Mount(e.to_string()))?;
            Ok(element)
        });
        match &result {
            Ok(element) => {
                state.version = element.version;
                state.failure = None;
                tracing::info!(
                    element = name,
                    version = element.version,
                    hash = %&element.hash[..12],
                    compile = ?element.compile,
                    "Element deployed at /app/rest/{}",
                    element.prefix
                );
                self.events.publish(
                    names::ELEMENT_LOADED,
                    json!({"name": name, "version": element.version, "hash": element.hash, "prefix": element.prefix}),
                );
            }
            Err(e) => {
                // A version whose grants are no longer all approved must not
                // keep serving with them: revoking a grant takes effect now.
                if matches!(e, DeployError::GrantsNotApproved(_)) && self.registry.unmount(name).is_some() {
                    tracing::warn!(
                        element = name,
                        "Element stopped: its grants are no longer approved"
                    );
                }
                let failure = Failure {
                    error: e.to_string(),
                    at: SystemTime::now(),
                };
                state.failure = Some(failure);
                tracing::error!(element = name, "Element {name:?} refused: {e}");
                log.push(Level::Error, Source::Host, None, &format!("deploy failed: {e}"));
                self.events.publish(
                    names::ELEMENT_FAILED,
                    json!({"name": name, "error": e.to_string()}),
                );
            }
        }
        result
    }

    /// Takes the Element named `name` out of service; requests it is serving
    /// finish first. Returns whether it was serving.
    pub fn undeploy(&self, name: &str) -> bool {
        // A deploy of `name` still compiling must not mount it afterwards.
        let removed = self.with_state(name, |s| {
            s.generation += 1;
            s.source = None;
            s.failure = None;
            self.registry.unmount(name).is_some()
        });
        if removed {
            tracing::info!(element = name, "Element undeployed");
            self.log(name).push(Level::Info, Source::Host, None, "undeployed");
            self.events
                .publish(names::ELEMENT_UNLOADED, json!({"name": name}));
        }
        removed
    }

    /// Brings Element `name` in line with the files in `dir`: deploys a new
    /// or changed `NAME.wasm`/`NAME.toml`, undeploys when `NAME.wasm` is gone,
    /// does nothing when nothing changed. Returns the deploy's outcome, if one ran.
    pub async fn sync(self: &Arc<Self>, dir: &Path, name: &str) -> Option<Result<Arc<Element>, DeployError>> {
        self.sync_settled(dir, name, SETTLE).await
    }

    async fn sync_settled(
        self: &Arc<Self>,
        dir: &Path,
        name: &str,
        settle: Duration,
    ) -> Option<Result<Arc<Element>, DeployError>> {
        if self.with_state(name, |s| s.managed) {
            tracing::warn!(
                element = name,
                "ignoring deploy-folder files: the admin API manages this Element"
            );
            return None;
        }
        if self.with_state(name, |s| s.disabled) {
            tracing::info!(
                element = name,
                "not deploying: an operator switched this Element off"
            );
            return None;
        }
        let files = match read_settled(dir, name, settle).await {
            Ok(files) => files,
            Err(e) => {
                tracing::error!(
                    element = name,
                    "cannot read Element files in {}: {e}",
                    dir.display()
                );
                return None;
            }
        };
        let Some((component, manifest)) = files else {
            self.undeploy(name);
            return None;
        };
        let mut source = ElementSource::new(component, manifest);
        source.values = self.with_state(name, |s| s.folder_values.clone());
        source.grants = self.with_state(name, |s| s.approved.clone());
        self.deploy_if_changed(name, source).await
    }

    /// Deploys `source` unless it is what `name` last deployed (or last
    /// failed to deploy: the same bad source is not retried on every event,
    /// but any change to it is).
    pub async fn deploy_if_changed(
        self: &Arc<Self>,
        name: &str,
        source: ElementSource,
    ) -> Option<Result<Arc<Element>, DeployError>> {
        Some(self.begin(name, source)?.wait().await)
    }

    /// Deploys every `NAME.wasm` in `dir` with its `NAME.toml`, if any.
    pub async fn load_dir(self: &Arc<Self>, dir: &Path) -> std::io::Result<LoadSummary> {
        *self.folder.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.to_owned());
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm")
                && let Some(name) = watch::element_name(&path)
            {
                names.push(name);
            }
        }
        names.sort();
        // One settle wait for the whole folder, not one per Element.
        let mut before = folder_fingerprint(dir)?;
        loop {
            tokio::time::sleep(SETTLE).await;
            let after = folder_fingerprint(dir)?;
            if after == before {
                break;
            }
            before = after;
        }
        let mut summary = LoadSummary::default();
        for name in names {
            match self.sync_settled(dir, &name, Duration::ZERO).await {
                Some(Ok(_)) => summary.loaded.push(name),
                Some(Err(e)) => summary.failed.push((name, e.to_string())),
                None => {}
            }
        }
        Ok(summary)
    }
}

/// How long a file must stay unchanged before it is read.
const SETTLE: Duration = Duration::from_millis(40);
/// Longest wait for a file that keeps changing.
const SETTLE_MAX: Duration = Duration::from_secs(30);

/// `(size, modified)` of a file, or `None` when it doesn't exist.
type Fingerprint = Option<(u64, SystemTime)>;

fn fingerprint(path: &Path) -> std::io::Result<Fingerprint> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some((meta.len(), meta.modified()?))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every file's name and fingerprint in `dir`.
fn folder_fingerprint(dir: &Path) -> std::io::Result<Vec<(std::ffi::OsString, Fingerprint)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        files.push((entry.file_name(), fingerprint(&entry.path())?));
    }
    files.sort();
    Ok(files)
}

/// Reads `NAME.wasm` and `NAME.toml` once neither has changed for `settle`;
/// `None` when `NAME.wasm` doesn't exist.
async fn read_settled(
    dir: &Path,
    name: &str,
    settle: Duration,
) -> std::io::Result<Option<(Vec<u8>, Option<String>)>> {
    let wasm = dir.join(format!("{name}.wasm"));
    let toml = dir.join(format!("{name}.toml"));
    let started = std::time::Instant::now();
    loop {
        let before = (fingerprint(&wasm)?, fingerprint(&toml)?);
        if before.0.is_none() {
            return Ok(None);
        }
        if !settle.is_zero() {
            tokio::time::sleep(settle).await;
        }
        let after = (fingerprint(&wasm)?, fingerprint(&toml)?);
        if before != after && started.elapsed() < SETTLE_MAX {
            continue;
        }
        let component = match std::fs::read(&wasm) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let manifest = match std::fs::read_to_string(&toml) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        // Changed while we read: go round again.
        if (fingerprint(&wasm)?, fingerprint(&toml)?) != after && started.elapsed() < SETTLE_MAX {
            continue;
        }
        return Ok(Some((component, manifest)));
    }
}
