//! What an operator sees of the deployments and does with them, whatever the
//! front (the admin API, the portal): one [`DeploymentView`] per Element name,
//! joining the deployer's live status with the stored record, and the edits
//! that apply to either kind of Element (stored, or from the deploy folder).
//! Sensitive attribute values never leave this module unmasked.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Deployer;
use super::Status;
use super::persist::{Deployments, Edit, PersistError, Record, Upload};
use elements_config::grants::Grant;
use elements_host::element::ELEMENT_ROOT;
use elements_host::element::manifest::{AttributeKind, AttributeSpec, Manifest};

/// Shown instead of a sensitive attribute's value.
pub const MASK: &str = "********";

/// One deployment as operators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    /// The Element's name (the deployment's id).
    pub id: String,
    /// `api` (stored) or `folder` (the deploy folder).
    #[schema(value_type = String)]
    pub source: &'static str,
    /// `LOADED` (the latest deploy serves), `SERVING` (an older version
    /// serves because the latest deploy failed: see `lastFailure`),
    /// `FAILED` (the latest deploy failed and nothing serves) or `DISABLED`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// Successful deploys so far.
    pub version: u64,
    /// The version serving requests, if one does.
    pub serving_version: Option<u64>,
    /// The latest deploy's failure, until a deploy succeeds: with an older
    /// version serving, "serving version N; the deploy of N+1 failed".
    pub last_failure: Option<FailureView>,
    /// SHA-256 of the serving (or stored) component.
    pub hash: Option<String>,
    /// Where it serves.
    pub mount_path: Option<String>,
    /// When the serving version was loaded, epoch milliseconds.
    pub loaded_at: Option<u64>,
    /// The latest deploy's error, if it failed.
    pub last_error: Option<String>,
    /// When it failed, epoch milliseconds.
    pub last_error_at: Option<u64>,
    /// Whether it is switched on.
    pub enabled: bool,
    /// The application it is deployed for.
    pub application: Option<String>,
    /// Declared and set attributes; sensitive values masked.
    pub attributes: Vec<AttributeView>,
    /// Every grant the Element requests or an operator approved.
    pub grants: Vec<GrantView>,
}

/// A deploy that failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureView {
    /// The version it would have been (one past the last successful deploy).
    pub version: u64,
    /// What went wrong.
    pub error: String,
    /// When, epoch milliseconds.
    pub at: Option<u64>,
}

/// One grant, requested and approved side by side.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    /// The grant, e.g. `identity.session`.
    pub grant: String,
    /// What it allows.
    pub description: String,
    /// Reaches other users' accounts, reserved events, core routes or a
    /// private address: approve with care.
    pub powerful: bool,
    /// The manifest asks for it.
    pub requested: bool,
    /// Who approved it: `configuration` (the server's file, changed there
    /// only), `operator` (the admin API or the portal), or nobody (a deploy
    /// that requests it fails).
    #[schema(value_type = Option<String>)]
    pub approved_by: Option<&'static str>,
}

impl DeploymentView {
    /// Deployed from the deploy folder (its files are the folder's; only
    /// attribute values and the on/off switch are the operator's).
    pub fn from_folder(&self) -> bool {
        self.source == "folder"
    }
}

/// One attribute.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeView {
    /// Name.
    pub name: String,
    /// Effective value (masked when sensitive), if any.
    pub value: Option<String>,
    /// Declared default (masked when sensitive).
    pub default: Option<String>,
    /// Declared description.
    pub description: String,
    /// Deploys fail without a value.
    pub required: bool,
    /// Write-only.
    pub sensitive: bool,
    /// The value was set through the admin API or the portal (and can be
    /// removed there), not by the manifest or a default.
    pub overridden: bool,
    /// The declared kind of value.
    #[serde(rename = "type")]
    pub kind: AttributeKind,
    /// Smallest allowed value (integers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// Largest allowed value (integers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}

/// The operator's view of deployments over one node's deployer and store.
pub struct Catalog<'a> {
    deployer: &'a Deployer,
    deployments: &'a Deployments,
}

impl<'a> Catalog<'a> {
    /// The catalog of `deployer` and its stored `deployments`.
    pub fn new(deployer: &'a Deployer, deployments: &'a Deployments) -> Catalog<'a> {
        Catalog {
            deployer,
            deployments,
        }
    }

    /// Every deployment, by name: live ones and stored ones not (yet) live.
    pub async fn list(&self) -> Result<Vec<DeploymentView>, PersistError> {
        let records: BTreeMap<String, Record> = self
            .deployments
            .list()
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let mut views: BTreeMap<String, DeploymentView> = BTreeMap::new();
        for status in self.deployer.statuses() {
            let record = records.get(&status.name);
            if let Some(v) = self.view(Some(status), record).await? {
                views.insert(v.id.clone(), v);
            }
        }
        for (name, record) in &records {
            if !views.contains_key(name)
                && let Some(v) = self.view(self.deployer.status(name), Some(record)).await?
            {
                views.insert(name.clone(), v);
            }
        }
        Ok(views.into_values().collect())
    }

    /// The deployment `name`.
    pub async fn get(&self, name: &str) -> Result<DeploymentView, PersistError> {
        let record = self.deployments.get(name).await?;
        self.view(self.deployer.status(name), record.as_ref())
            .await?
            .ok_or_else(|| PersistError::NotFound(name.into()))
    }

    /// Stores and applies a new deployment or a new version; also says
    /// whether the name is new.
    pub async fn upload(&self, upload: Upload) -> Result<(DeploymentView, bool), PersistError> {
        let name = upload.name.clone();
        let created = self.deployments.get(&name).await?.is_none();
        let record = self.deployments.upload(upload).await?;
        let view = self
            .view(self.deployer.status(&name), Some(&record))
            .await?
            .ok_or(PersistError::NotFound(name))?;
        Ok((view, created))
    }

    /// Changes attribute values and the on/off switch; the Element is
    /// redeployed with the change before this returns.
    pub async fn edit(&self, name: &str, mut edit: Edit) -> Result<DeploymentView, PersistError> {
        if let Some(grants) = edit.grants.take() {
            if !self.exists(name).await? {
                return Err(PersistError::NotFound(name.into()));
            }
            let grants = super::persist::parse_grants(&grants)?;
            self.deployments.set_approvals(name, &grants).await?;
        }
        if self.deployer.is_from_folder(name) {
            // A folder Element keeps its files; an operator can still switch
            // it off and on and set attribute values (stored, over its
            // manifest's).
            if !edit.attributes.is_empty() {
                self.deployments.set_folder_values(name, edit.attributes).await?;
            }
            if let Some(enabled) = edit.enabled {
                self.deployments.set_folder_enabled(name, enabled).await?;
            }
            // Another node's change, or the settings poll, may have begun
            // this deploy first: the answer is its outcome, not the version
            // before it.
            self.deployer.settled(name).await;
            return self
                .view(self.deployer.status(name), None)
                .await?
                .ok_or_else(|| PersistError::NotFound(name.into()));
        }
        let record = if edit.attributes.is_empty() && edit.enabled.is_none() {
            self.deployments
                .get(name)
                .await?
                .ok_or_else(|| PersistError::NotFound(name.into()))?
        } else {
            self.deployments.edit(name, edit).await?
        };
        self.deployer.settled(name).await;
        self.view(self.deployer.status(name), Some(&record))
            .await?
            .ok_or_else(|| PersistError::NotFound(name.into()))
    }

    /// [`view`], with the grants the Element requests and operators approved.
    async fn view(
        &self,
        status: Option<Status>,
        record: Option<&Record>,
    ) -> Result<Option<DeploymentView>, PersistError> {
        let Some(mut v) = view(status.clone(), record) else {
            return Ok(None);
        };
        let manifest = record
            .map(|r| r.manifest.clone())
            .or(status.and_then(|s| s.attempted.map(|a| a.manifest)))
            .flatten()
            .and_then(|m| Manifest::parse(&m).ok())
            .unwrap_or_default();
        let requested = manifest.requested_grants(&v.id);
        let configured = self.deployer.configured_grants(&v.id);
        let stored = self
            .deployments
            .approvals()
            .await?
            .remove(&v.id)
            .unwrap_or_default();
        let all: BTreeSet<&Grant> = requested.iter().chain(&configured).chain(&stored).collect();
        v.grants = all
            .into_iter()
            .map(|g| GrantView {
                grant: g.to_string(),
                description: g.describe(),
                powerful: g.is_powerful(),
                requested: requested.contains(g),
                approved_by: if configured.contains(g) {
                    Some("configuration")
                } else if stored.contains(g) {
                    Some("operator")
                } else {
                    None
                },
            })
            .collect();
        Ok(Some(v))
    }

    /// Removes a stored deployment everywhere; a folder Element is removed by
    /// deleting its file.
    pub async fn remove(&self, name: &str) -> Result<(), PersistError> {
        if self.deployer.is_from_folder(name) {
            return Err(PersistError::Conflict(format!(
                "{name:?} is deployed from the deploy folder; remove its file there"
            )));
        }
        self.deployments.remove(name).await
    }

    /// Whether `name` is known at all (live, failed, or stored).
    pub async fn exists(&self, name: &str) -> Result<bool, PersistError> {
        Ok(self.deployer.status(name).is_some() || self.deployments.get(name).await?.is_some())
    }
}

fn millis(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

/// Undeclared attributes whose names say they hold a secret are masked too.
fn looks_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|w| name.ends_with(w))
}

fn mask(sensitive: bool, value: Option<String>) -> Option<String> {
    if sensitive {
        value.map(|_| MASK.to_owned())
    } else {
        value
    }
}

/// The attribute table: declared ones first, then any other value set.
fn attributes(
    specs: &BTreeMap<String, AttributeSpec>,
    values: &BTreeMap<String, String>,
    set: Option<&BTreeMap<String, String>>,
) -> Vec<AttributeView> {
    let overridden = |name: &str| set.is_some_and(|s| s.contains_key(name));
    let mut out: Vec<AttributeView> = specs
        .iter()
        .map(|(name, spec)| AttributeView {
            name: name.clone(),
            value: mask(spec.sensitive, values.get(name).cloned()),
            default: mask(spec.sensitive, spec.default.clone()),
            description: spec.description.clone(),
            required: spec.required,
            sensitive: spec.sensitive,
            overridden: overridden(name),
            kind: spec.kind,
            min: spec.min,
            max: spec.max,
        })
        .collect();
    for (name, value) in values {
        if !specs.contains_key(name) {
            let sensitive = looks_sensitive(name);
            out.push(AttributeView {
                name: name.clone(),
                value: mask(sensitive, Some(value.clone())),
                default: None,
                description: String::new(),
                required: false,
                sensitive,
                overridden: overridden(name),
                kind: AttributeKind::Text,
                min: None,
                max: None,
            });
        }
    }
    out
}

/// Builds the view of `name` from the deployer's status and its stored record.
fn view(status: Option<Status>, record: Option<&Record>) -> Option<DeploymentView> {
    let name = status
        .as_ref()
        .map(|s| s.name.clone())
        .or(record.map(|r| r.name.clone()))?;
    let element = status.as_ref().and_then(|s| s.element.clone());
    let failure = status.as_ref().and_then(|s| s.failure.clone());
    let enabled = record
        .map(|r| r.enabled)
        .unwrap_or(!status.as_ref().is_some_and(|s| s.disabled));
    // An older version serving through a failed redeploy is not FAILED:
    // clients are still answered, and the operator needs to see both facts.
    let state = match (enabled, &element, &failure) {
        (false, _, _) => "DISABLED",
        (true, None, _) => "FAILED",
        (true, Some(_), Some(_)) => "SERVING",
        (true, Some(_), None) => "LOADED",
    };
    let version = status.as_ref().map(|s| s.version).unwrap_or(0);
    let attempted = status.as_ref().and_then(|s| s.attempted.as_ref());
    // Values set for this deployment (through the API, over the manifest's).
    let set = record.map(|r| &r.values).or(attempted.map(|a| &a.values));
    // Declared attributes: from the serving version, else from the manifest
    // stored or last attempted (so a failed Element can be fixed).
    let (specs, values) = match (
        &element,
        record.map(|r| &r.manifest).or(attempted.map(|a| &a.manifest)),
    ) {
        (Some(e), _) => (e.attribute_specs.clone(), (*e.attributes).clone()),
        (None, Some(manifest)) => {
            let manifest = manifest
                .as_deref()
                .and_then(|m| Manifest::parse(m).ok())
                .unwrap_or_default();
            let mut values = manifest.values.clone();
            values.extend(set.cloned().unwrap_or_default());
            (manifest.attributes, values)
        }
        (None, None) => Default::default(),
    };
    // Operator-wide attributes (SMTP settings, the public URL...) are the
    // operator's, not the deployment's: show only what the Element declares
    // or the deployment sets.
    let own: BTreeMap<String, String> = values
        .into_iter()
        .filter(|(k, _)| specs.contains_key(k) || set.is_some_and(|v| v.contains_key(k)))
        .collect();
    Some(DeploymentView {
        id: name,
        source: if status.as_ref().is_some_and(|s| s.managed) || record.is_some() {
            "api"
        } else {
            "folder"
        },
        status: state,
        version,
        serving_version: element.as_ref().map(|_| version),
        last_failure: failure.as_ref().map(|f| FailureView {
            version: version + 1,
            error: f.error.clone(),
            at: millis(f.at),
        }),
        hash: element
            .as_ref()
            .map(|e| e.hash.clone())
            .or(record.map(|r| r.hash.clone()))
            .or(attempted.map(|a| a.hash.clone())),
        mount_path: element.as_ref().map(|e| format!("{ELEMENT_ROOT}{}", e.prefix)),
        loaded_at: element.as_ref().and_then(|e| millis(e.loaded_at)),
        last_error: failure.as_ref().map(|f| f.error.clone()),
        last_error_at: failure.as_ref().and_then(|f| millis(f.at)),
        enabled,
        application: record
            .and_then(|r| r.application.clone())
            .or(element.and_then(|e| e.application.clone())),
        attributes: attributes(&specs, &own, set),
        grants: Vec::new(),
    })
}
