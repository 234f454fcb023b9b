//! Deployments made through the admin API, kept in the store so they survive
//! restarts and, on MongoDB, reach every node of a cluster.
//!
//! Two core collections: `deployments` (one document per Element name: its
//! manifest, attribute values, application, enabled flag and component hash)
//! and `components` (component bytes by SHA-256, base64). Every node applies
//! the records to its own [`Deployer`] at startup, right after each change it
//! makes itself, and every poll interval (`[deploy] poll_ms`, 2 s by default)
//! for changes other nodes made. With NATS ([`Deployments::announce_over`]) a
//! node that changes a deployment announces it and the others apply it at
//! once; an announcement is at-most-once, and polling makes up for a lost one.
//!
//! Component versions are garbage-collected ([`Deployments::collect_garbage`],
//! after every deploy that succeeds and at startup): a record keeps its
//! component (`hash`) and the one it replaced (`previous`); a component no
//! record keeps is deleted once it is older than the grace period
//! (`gc_grace_secs`), which spares the upload another node is making between
//! storing its component and its record. The compiled-code cache is swept
//! likewise, also keeping what this node serves or deploys from its folder.
//!
//! A name belongs either to the deploy folder or to the store: the API
//! refuses names deployed from the folder, and the folder watcher ignores
//! names the store manages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use elements_store::{CollectionName, DocumentStore, Filter, Namespace, Query, StoreError, Update};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Deployer;
use elements_config::grants::Grant;
use elements_host::element::ElementSource;
use elements_host::element::manifest::{Manifest, validate_name};

/// The subject of deployment announcements (under the cluster's prefix).
const ANNOUNCEMENTS: &str = "deployments";
/// The header naming the node that announces.
const H_NODE: &str = "Elements-Node";

/// A stored deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The Element's name.
    #[serde(rename = "_id")]
    pub name: String,
    /// SHA-256 of the component (key into `components`).
    pub hash: String,
    /// SHA-256 of the component this version replaced, kept as well (for a
    /// rollback) until the next version replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Manifest text, if any.
    #[serde(default)]
    pub manifest: Option<String>,
    /// Attribute values set through the API (over the manifest's). Stored
    /// as `[name, value]` pairs: attribute names contain dots, which document
    /// field names may not.
    #[serde(default, with = "pairs")]
    pub values: BTreeMap<String, String>,
    /// The application the Element is deployed for.
    #[serde(default)]
    pub application: Option<String>,
    /// Whether it should serve.
    pub enabled: bool,
    /// Store version, so nodes apply each change once.
    #[serde(rename = "_version", default, skip_serializing)]
    pub version: i64,
}

/// A string map as a list of `[key, value]` pairs.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
        map.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        Ok(Vec::<(String, String)>::deserialize(d)?.into_iter().collect())
    }
}

/// What went wrong with a deployment request.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// No such deployment.
    #[error("no deployment named {0:?}")]
    NotFound(String),
    /// The name is taken by the deploy folder.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new deployment or a new version of one.
#[derive(Debug, Default)]
pub struct Upload {
    /// Element name.
    pub name: String,
    /// Component bytes.
    pub component: Vec<u8>,
    /// Manifest text.
    pub manifest: Option<String>,
    /// Attribute values.
    pub values: BTreeMap<String, String>,
    /// Application it is deployed for.
    pub application: Option<String>,
    /// Whether it serves (default true).
    pub enabled: Option<bool>,
}

/// A change to a deployment: attribute values (a `None` value removes the
/// deployment's value), the enabled flag and the grants the operator
/// approves.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct Edit {
    /// Values to set or (with null) remove.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, Option<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// The grants approved through the admin API or the portal (replacing
    /// the earlier ones; those of the configuration file stay).
    pub grants: Option<Vec<String>>,
}

/// Parses grants an operator approves; the error names the bad one.
pub fn parse_grants(list: &[String]) -> Result<BTreeSet<Grant>, PersistError> {
    list.iter()
        .map(|g| {
            g.trim()
                .parse::<Grant>()
                .map_err(|e| PersistError::Invalid(e.to_string()))
        })
        .collect()
}

/// Whether `bytes` can be a component: the binary format's header with the
/// component layer, or the text format. Anything else is refused before it is
/// stored (compiling tells the rest).
fn looks_like_component(bytes: &[u8]) -> bool {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT_LAYER: &[u8] = &[0x01, 0x00];
    if bytes.starts_with(MAGIC) {
        return bytes.len() >= 8 && &bytes[6..8] == COMPONENT_LAYER;
    }
    std::str::from_utf8(bytes).is_ok_and(|text| {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with(";;"))
            .is_some_and(|l| l.starts_with("(component"))
    })
}

/// The `values` pairs of a folder-values document.
fn values_of(doc: &Value) -> BTreeMap<String, String> {
    doc.get("values")
        .and_then(Value::as_array)
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| Some((p.get(0)?.as_str()?.to_owned(), p.get(1)?.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// A whole-document replacement of a record (the store keeps `_id`).
fn replacement(mut doc: Value) -> Result<Update, PersistError> {
    if let Some(map) = doc.as_object_mut() {
        map.remove("_id");
    }
    Ok(Update::parse(&doc)?)
}

/// The store-backed deployments of one node.
pub struct Deployments {
    store: Arc<dyn DocumentStore>,
    deployer: Arc<Deployer>,
    records: CollectionName,
    components: CollectionName,
    /// Names of folder Elements an operator switched off (`{_id: name}`).
    folder_disabled: CollectionName,
    /// Attribute values an operator set on folder Elements
    /// (`{_id: name, values: [[name, value]...]}`).
    folder_values: CollectionName,
    /// Grants an operator approved through the admin API or the portal, for
    /// any Element name (`{_id: name, grants: [...]}`).
    approvals: CollectionName,
    /// The record versions (and approvals) this node has applied, by name.
    applied: Mutex<BTreeMap<String, (i64, BTreeSet<Grant>)>>,
    /// Serializes applying, so a poll and an API change never interleave.
    /// Held while deciding what to deploy, not while it compiles.
    applying: tokio::sync::Mutex<()>,
    /// Components this node is uploading (stored, their record not yet):
    /// never collected, whatever the grace period.
    uploading: Mutex<BTreeMap<String, usize>>,
    /// Set once the deploy folder is loaded too ([`Deployments::start_collecting`]):
    /// until then the cache sweep can't tell what the folder needs.
    collecting: std::sync::atomic::AtomicBool,
    /// Where changes are announced, when nodes form a cluster.
    cluster: OnceLock<Arc<elements_cluster::Cluster>>,
}

impl Deployments {
    /// Deployments over `store`, applied to `deployer`.
    pub fn new(
        store: Arc<dyn DocumentStore>,
        deployer: Arc<Deployer>,
    ) -> Result<Arc<Deployments>, StoreError> {
        let core = Namespace::core();
        Ok(Arc::new(Deployments {
            records: core.collection("deployments")?,
            components: core.collection("components")?,
            folder_disabled: core.collection("folder_disabled")?,
            folder_values: core.collection("folder_values")?,
            approvals: core.collection("grant_approvals")?,
            store,
            deployer,
            applied: Mutex::default(),
            applying: tokio::sync::Mutex::new(()),
            uploading: Mutex::default(),
            collecting: Default::default(),
            cluster: OnceLock::new(),
        }))
    }

    /// Every stored record, by name.
    pub async fn list(&self) -> Result<Vec<Record>, PersistError> {
        let docs = self.store.find(&self.records, &Query::new(Filter::all())).await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| serde_json::from_value(d).ok())
            .collect())
    }

    /// One record.
    pub async fn get(&self, name: &str) -> Result<Option<Record>, PersistError> {
        let doc = self.store.get(&self.records, name).await?;
        Ok(doc.and_then(|d| serde_json::from_value(d).ok()))
    }

    /// Stores a deployment (a new one, or a new version of a stored one) and
    /// applies it on this node.
    pub async fn upload(&self, upload: Upload) -> Result<Record, PersistError> {
        validate_name("name", &upload.name).map_err(PersistError::Invalid)?;
        if upload.component.is_empty() {
            return Err(PersistError::Invalid("the component is missing".into()));
        }
        let max = self.deployer.host().deploy.max_component_bytes;
        if upload.component.len() > max {
            return Err(PersistError::Invalid(format!(
                "the component is {} bytes, over the limit of {max} (max_component_bytes)",
                upload.component.len()
            )));
        }
        if !looks_like_component(&upload.component) {
            return Err(PersistError::Invalid(
                "the upload is not a WebAssembly component (a core module, or not WebAssembly at all); \
                 build it for wasm32-wasip2"
                    .into(),
            ));
        }
        if let Some(text) = &upload.manifest {
            Manifest::parse(text).map_err(|e| PersistError::Invalid(e.to_string()))?;
        }
        if let Some(app) = &upload.application {
            validate_name("application", app).map_err(PersistError::Invalid)?;
        }
        if self.deployer.is_from_folder(&upload.name) {
            return Err(PersistError::Conflict(format!(
                "{:?} is deployed from the deploy folder; remove the file first",
                upload.name
            )));
        }
        let source = ElementSource::new(upload.component, upload.manifest.clone());
        let _uploading = Uploading::new(&self.uploading, &source.hash);
        let data = base64::engine::general_purpose::STANDARD.encode(&source.component);
        let stored_at = now_millis();
        match self
            .store
            .insert(
                &self.components,
                json!({"_id": source.hash, "data": data, "storedAt": stored_at}),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_duplicate_key() => {
                // Stored already, perhaps unneeded and about to be collected
                // by another node: fresh again.
                self.store
                    .update_by_id(
                        &self.components,
                        &source.hash,
                        &Update::parse(&json!({"$set": {"storedAt": stored_at}}))?,
                        None,
                    )
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        let previous = self.get(&upload.name).await?;
        let record = Record {
            name: upload.name.clone(),
            hash: source.hash.clone(),
            previous: match &previous {
                Some(p) if p.hash != source.hash => Some(p.hash.clone()),
                Some(p) => p.previous.clone(),
                None => None,
            },
            manifest: upload.manifest,
            values: upload.values,
            application: upload.application,
            enabled: upload
                .enabled
                .or(previous.as_ref().map(|p| p.enabled))
                .unwrap_or(true),
            version: 0,
        };
        let doc = serde_json::to_value(&record).map_err(|e| PersistError::Invalid(e.to_string()))?;
        if previous.is_some() {
            self.store
                .update_by_id(&self.records, &record.name, &replacement(doc)?, None)
                .await?;
        } else {
            self.store.insert(&self.records, doc).await?;
        }
        self.announce();
        self.apply_all().await?;
        // A poll may have begun this deploy first: the answer reflects it.
        self.deployer.settled(&record.name).await;
        self.get(&record.name)
            .await?
            .ok_or(PersistError::NotFound(record.name))
    }

    /// Changes a stored deployment's attributes or enabled flag; applies it.
    pub async fn edit(&self, name: &str, edit: Edit) -> Result<Record, PersistError> {
        let mut record = self
            .get(name)
            .await?
            .ok_or_else(|| PersistError::NotFound(name.to_owned()))?;
        for (key, value) in edit.attributes {
            match value {
                Some(v) => record.values.insert(key, v),
                None => record.values.remove(&key),
            };
        }
        if let Some(enabled) = edit.enabled {
            record.enabled = enabled;
        }
        let doc = serde_json::to_value(&record).map_err(|e| PersistError::Invalid(e.to_string()))?;
        self.store
            .update_by_id(&self.records, name, &replacement(doc)?, None)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => PersistError::NotFound(name.to_owned()),
                e => e.into(),
            })?;
        self.announce();
        self.apply_all().await?;
        self.deployer.settled(name).await;
        self.get(name)
            .await?
            .ok_or_else(|| PersistError::NotFound(name.to_owned()))
    }

    /// Removes a stored deployment everywhere.
    pub async fn remove(&self, name: &str) -> Result<(), PersistError> {
        if !self.store.delete_by_id(&self.records, name, None).await? {
            return Err(PersistError::NotFound(name.to_owned()));
        }
        self.announce();
        self.apply_all().await?;
        Ok(())
    }

    /// Switches a deploy-folder Element off or on, for every node. Off, it
    /// stops serving and the folder's files are ignored; on, it is deployed
    /// from the folder again.
    pub async fn set_folder_enabled(&self, name: &str, enabled: bool) -> Result<(), PersistError> {
        if enabled {
            self.store.delete_by_id(&self.folder_disabled, name, None).await?;
        } else {
            match self
                .store
                .insert(&self.folder_disabled, json!({"_id": name}))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_duplicate_key() => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.announce();
        self.apply_all().await
    }

    /// Sets (or, with `None`, removes) attribute values of the deploy-folder
    /// Element `name`, for every node; they apply over its manifest's values
    /// and the Element is redeployed with them.
    pub async fn set_folder_values(
        &self,
        name: &str,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<(), PersistError> {
        let mut values = self.folder_values_of(name).await?;
        for (key, value) in changes {
            match value {
                Some(v) => values.insert(key, v),
                None => values.remove(&key),
            };
        }
        let doc = json!({ "values": values.iter().collect::<Vec<_>>() });
        let upsert = elements_store::FindAndModify {
            upsert: true,
            ..Default::default()
        };
        self.store
            .find_one_and_update(
                &self.folder_values,
                &Filter::by_id(name),
                &Update::parse(&json!({ "$set": doc }))?,
                &upsert,
            )
            .await?;
        self.announce();
        self.apply_all().await
    }

    async fn folder_values_of(&self, name: &str) -> Result<BTreeMap<String, String>, PersistError> {
        Ok(self
            .store
            .get(&self.folder_values, name)
            .await?
            .map(|d| values_of(&d))
            .unwrap_or_default())
    }

    /// Replaces the grants approved through the admin API or the portal for
    /// the Element `name` (any source), for every node; it is redeployed with them.
    pub async fn set_approvals(&self, name: &str, grants: &BTreeSet<Grant>) -> Result<(), PersistError> {
        let list: Vec<String> = grants.iter().map(Grant::to_string).collect();
        let upsert = elements_store::FindAndModify {
            upsert: true,
            ..Default::default()
        };
        self.store
            .find_one_and_update(
                &self.approvals,
                &Filter::by_id(name),
                &Update::parse(&json!({ "$set": { "grants": list } }))?,
                &upsert,
            )
            .await?;
        self.announce();
        self.apply_all().await
    }

    /// Grants approved through the admin API or the portal, by name.
    pub async fn approvals(&self) -> Result<BTreeMap<String, BTreeSet<Grant>>, PersistError> {
        Ok(self
            .store
            .find(&self.approvals, &Query::new(Filter::all()))
            .await?
            .into_iter()
            .filter_map(|d| {
                let name = d.get("_id")?.as_str()?.to_owned();
                let grants = d
                    .get("grants")?
                    .as_array()?
                    .iter()
                    .filter_map(|g| g.as_str()?.parse::<Grant>().ok())
                    .collect();
                Some((name, grants))
            })
            .collect())
    }

    /// Whether the deploy-folder Element `name` is switched off.
    pub async fn folder_disabled(&self, name: &str) -> Result<bool, PersistError> {
        Ok(self.store.get(&self.folder_disabled, name).await?.is_some())
    }

    /// Brings this node's Elements in line with the stored records.
    pub async fn apply_all(&self) -> Result<(), PersistError> {
        // Deploys are begun under the lock and waited for after it: one
        // Element compiling doesn't hold up another's deploy.
        let deploying = self.begin_all().await?;
        let mut loaded = false;
        for deploy in deploying {
            loaded |= deploy.wait().await.is_ok();
        }
        if loaded
            && self.collecting.load(std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = self.collect_garbage().await
        {
            tracing::warn!(error = %e, "could not collect unneeded components; will retry");
        }
        Ok(())
    }

    /// Applies what is quick and begins the deploys of changed records.
    async fn begin_all(&self) -> Result<Vec<super::Deploying>, PersistError> {
        let _one_at_a_time = self.applying.lock().await;
        let mut deploying = Vec::new();
        let disabled: std::collections::BTreeSet<String> = self
            .store
            .find(&self.folder_disabled, &Query::new(Filter::all()))
            .await?
            .into_iter()
            .filter_map(|d| d.get("_id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let overrides: BTreeMap<String, BTreeMap<String, String>> = self
            .store
            .find(&self.folder_values, &Query::new(Filter::all()))
            .await?
            .into_iter()
            .filter_map(|d| Some((d.get("_id")?.as_str()?.to_owned(), values_of(&d))))
            .collect();
        let approvals = self.approvals().await?;
        self.deployer.set_approvals(approvals.clone()).await;
        self.deployer.set_folder_values(overrides).await;
        self.deployer.set_folder_disabled(&disabled).await;
        let records = self.list().await?;
        let names: std::collections::BTreeSet<String> = records.iter().map(|r| r.name.clone()).collect();
        let stale: Vec<String> = {
            let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
            applied.keys().filter(|n| !names.contains(*n)).cloned().collect()
        };
        for name in stale {
            self.deployer.set_managed(&name, false);
            self.deployer.undeploy(&name);
            self.applied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
        }
        for record in records {
            let approved = approvals.get(&record.name).cloned().unwrap_or_default();
            let wanted = (record.version, approved.clone());
            let seen = self
                .applied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&record.name)
                .cloned();
            if seen.as_ref() == Some(&wanted) {
                continue;
            }
            self.deployer.set_managed(&record.name, true);
            if record.enabled {
                let Some(component) = self.component(&record.hash).await? else {
                    tracing::error!(element = %record.name, "stored component {} is missing", record.hash);
                    continue;
                };
                let mut source = ElementSource::new(component, record.manifest.clone());
                source.values = record.values.clone();
                source.application = record.application.clone();
                source.grants = approved;
                self.deployer.set_disabled(&record.name, false);
                deploying.extend(self.deployer.begin(&record.name, source));
            } else {
                self.deployer.set_disabled(&record.name, true);
                self.deployer.undeploy(&record.name);
            }
            self.applied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(record.name.clone(), wanted);
        }
        Ok(deploying)
    }

    /// Collects garbage now and after every deploy that succeeds from now
    /// on; called at startup once the deploy folder is loaded.
    pub async fn start_collecting(&self) {
        self.collecting.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self.collect_garbage().await {
            tracing::warn!(error = %e, "could not collect unneeded components; will retry");
        }
    }

    /// Deletes stored components no record keeps (as its version or the
    /// previous one) and older than the grace period, then sweeps the
    /// compiled-code cache of entries for components neither kept nor
    /// deployed on this node. Safe with many nodes on one store: a record's
    /// two versions are never deleted, whichever node stored them.
    pub async fn collect_garbage(&self) -> Result<(), PersistError> {
        let grace = self.deployer.host().deploy.gc_grace;
        let mut keep: BTreeSet<String> = self
            .list()
            .await?
            .into_iter()
            .flat_map(|r| std::iter::once(r.hash).chain(r.previous))
            .collect();
        keep.extend(
            self.uploading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned(),
        );
        let cutoff = now_millis().saturating_sub(grace.as_millis() as u64);
        let filter = Filter::parse(&json!({
            "_id": {"$nin": keep.iter().collect::<Vec<_>>()},
            "$or": [{"storedAt": {"$lt": cutoff}}, {"storedAt": {"$exists": false}}],
        }))?;
        let doomed: Vec<String> = self
            .store
            .find(&self.components, &Query::new(filter.clone()))
            .await?
            .iter()
            .filter_map(|d| d.get("_id")?.as_str().map(str::to_owned))
            .collect();
        for hash in &doomed {
            // One by one with the same filter, so a component made fresh
            // again meanwhile (re-uploaded) stays.
            let one = Filter::by_id(hash).and(filter.clone());
            if self.store.delete_many(&self.components, &one).await? > 0 {
                tracing::info!(hash = %hash, "removed unneeded stored component");
            }
        }
        keep.extend(self.deployer.hashes_in_use());
        let cache = self.deployer.host().clone();
        let swept = tokio::task::spawn_blocking(move || cache.cache.retain(&keep, grace))
            .await
            .map_err(|e| PersistError::Invalid(format!("cache sweep failed: {e}")))?;
        match swept {
            Ok(swept) if swept.entries > 0 => tracing::info!(
                entries = swept.entries,
                bytes = swept.bytes,
                "removed unneeded compiled-code cache entries"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not sweep the compiled-code cache"),
        }
        Ok(())
    }

    async fn component(&self, hash: &str) -> Result<Option<Vec<u8>>, PersistError> {
        let Some(doc) = self.store.get(&self.components, hash).await? else {
            return Ok(None);
        };
        let data = doc.get("data").and_then(Value::as_str).unwrap_or_default();
        Ok(base64::engine::general_purpose::STANDARD.decode(data).ok())
    }

    /// Applies the records now and then every poll interval, for changes
    /// made by other nodes. Store outages are logged and retried.
    pub fn start_polling(self: &Arc<Self>) {
        let every = self.deployer.host().deploy.poll_interval;
        poll(self, every, "stored deployments", |this| async move {
            this.apply_all().await
        });
    }

    /// Announces this node's changes on `cluster` from now on, and applies
    /// the changes other nodes announce there as they come (polling stays,
    /// for announcements lost while NATS was away).
    pub fn announce_over(self: &Arc<Self>, cluster: Arc<elements_cluster::Cluster>) {
        if self.cluster.set(cluster.clone()).is_err() {
            return;
        }
        let this = Arc::downgrade(self);
        let wake = Arc::new(tokio::sync::Notify::new());
        // One applier: announcements that arrive while it applies make one
        // more round, not one each.
        let applier = {
            let (this, wake) = (this.clone(), wake.clone());
            async move {
                loop {
                    wake.notified().await;
                    let Some(this) = this.upgrade() else { return };
                    if let Err(e) = this.apply_all().await {
                        tracing::warn!(error = %e, "could not apply an announced deployment change; polling will retry");
                    }
                }
            }
        };
        tokio::spawn(applier);
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(200);
            let mut subscription = loop {
                match cluster.subscribe(ANNOUNCEMENTS).await {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::debug!(error = %e, "deployment announcements not subscribed yet");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            };
            while let Some(message) = futures_util::StreamExt::next(&mut subscription).await {
                if this.strong_count() == 0 {
                    return;
                }
                let from = elements_cluster::header(message.headers.as_ref(), H_NODE);
                if from == Some(cluster.node()) {
                    continue;
                }
                tracing::info!(
                    from = from.unwrap_or("?"),
                    "deployment change announced; applying"
                );
                wake.notify_one();
            }
        });
    }

    /// Tells the other nodes that the stored deployments changed.
    fn announce(&self) {
        let Some(cluster) = self.cluster.get().cloned() else {
            return;
        };
        tokio::spawn(async move {
            let mut headers = elements_cluster::HeaderMap::new();
            headers.insert(H_NODE, cluster.node());
            if let Err(e) = cluster
                .publish(ANNOUNCEMENTS, headers, elements_cluster::Bytes::new())
                .await
            {
                tracing::info!(error = %e, "could not announce a deployment change; other nodes will find it by polling");
            }
        });
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Marks a component as being uploaded by this node while it lives.
struct Uploading<'a> {
    set: &'a Mutex<BTreeMap<String, usize>>,
    hash: String,
}

impl<'a> Uploading<'a> {
    fn new(set: &'a Mutex<BTreeMap<String, usize>>, hash: &str) -> Uploading<'a> {
        *set.lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(hash.to_owned())
            .or_default() += 1;
        Uploading {
            set,
            hash: hash.to_owned(),
        }
    }
}

impl Drop for Uploading<'_> {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = set.get_mut(&self.hash) {
            *n -= 1;
            if *n == 0 {
                set.remove(&self.hash);
            }
        }
    }
}

/// Calls `apply` on `target` `every` so often while it lives, for changes
/// other nodes stored; a failure (a store outage) is logged and retried at
/// the next tick.
pub(crate) fn poll<T, F, Fut>(target: &Arc<T>, every: Duration, what: &'static str, apply: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), PersistError>> + Send,
{
    let target = Arc::downgrade(target);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(target) = target.upgrade() else { return };
            if let Err(e) = apply(target).await {
                tracing::warn!(error = %e, "could not apply {what}; will retry");
            }
        }
    });
}
