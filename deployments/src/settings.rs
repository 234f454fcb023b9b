//! The operator's settings of the host services (`[services.mail]`,
//! `[services.http]`), changed at run time through the admin API or the
//! portal: stored in the core collection `service_settings` (one document per
//! service, holding the whole effective settings), applied on this node at
//! once and by every other node within the poll interval (`[deploy] poll_ms`).
//! Without a stored document a service runs with the configuration file's
//! (and the environment's) settings. No Element reads any of this.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use elements_identity::Secret;
use elements_store::{
    CollectionName, DocumentStore, Filter, FindAndModify, Namespace, Query, StoreError, Update,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::persist::PersistError;
use elements_config::{HttpSettings, MailSettings, Network, ServicesConfig};
use elements_host::element::Host;

/// The two services an operator configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `[services.mail]`.
    Mail,
    /// `[services.http]`.
    Http,
}

impl Service {
    /// The service by its name in URLs (`mail`, `http`).
    pub fn parse(name: &str) -> Result<Service, PersistError> {
        match name {
            "mail" => Ok(Service::Mail),
            "http" => Ok(Service::Http),
            _ => Err(PersistError::NotFound(format!(
                "service {name} (there are mail and http)"
            ))),
        }
    }

    fn id(self) -> &'static str {
        match self {
            Service::Mail => "mail",
            Service::Http => "http",
        }
    }
}

/// The mail settings as operators see them: the password never leaves.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailView {
    /// SMTP host; none: mail is not configured.
    pub host: Option<String>,
    /// SMTP port.
    pub port: u16,
    /// STARTTLS required.
    pub starttls: bool,
    /// User name.
    pub user: Option<String>,
    /// Whether a password is set (it is write-only).
    pub password_set: bool,
    /// Default sender.
    pub from: Option<String>,
    /// Most messages per request.
    pub max_per_request: u32,
    /// `configuration` (file, environment, flags) or `operator` (admin API, portal).
    #[schema(value_type = String)]
    pub source: &'static str,
}

/// The outbound HTTP settings as operators see them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpView {
    /// Private networks Elements may reach.
    pub allow_networks: Vec<String>,
    /// Connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Whole-exchange timeout, milliseconds.
    pub timeout_ms: u64,
    /// Largest response body.
    pub max_response_bytes: u64,
    /// `configuration` or `operator`.
    #[schema(value_type = String)]
    pub source: &'static str,
}

/// Every service's settings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    /// `[services.mail]`.
    pub mail: MailView,
    /// `[services.http]`.
    pub http: HttpView,
}

/// Deserializes a present field (even `null`) as `Some`, so an absent field
/// (`None`) can mean "keep" and `null` "clear".
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A change to the mail settings: absent fields keep their value, `null`
/// clears an optional one (the password included).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailChange {
    // Fields: see [`MailSettings`]; `password` is write-only.
    #[serde(default, deserialize_with = "present")]
    pub host: Option<Option<String>>,
    pub port: Option<u16>,
    pub starttls: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub user: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub password: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub from: Option<Option<String>>,
    pub max_per_request: Option<u32>,
}

/// A change to the outbound HTTP settings: absent fields keep their value.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpChange {
    #[schema(value_type = Option<Vec<String>>)]
    pub allow_networks: Option<Vec<Network>>,
    pub connect_timeout_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub max_response_bytes: Option<u64>,
}

/// The stored and applied service settings of one node.
pub struct ServiceSettings {
    store: Arc<dyn DocumentStore>,
    host: Arc<Host>,
    collection: CollectionName,
    /// The configuration's settings (file, environment, flags).
    base: ServicesConfig,
    /// What this node applies now, and the stored documents it came from.
    applied: Mutex<(ServicesConfig, Option<Value>, Option<Value>)>,
}

fn blank_to_none(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl ServiceSettings {
    /// Settings over `store`, applied to `host`'s services, starting from
    /// the configuration's `base`.
    pub fn new(
        store: Arc<dyn DocumentStore>,
        host: Arc<Host>,
        base: ServicesConfig,
    ) -> Result<Arc<ServiceSettings>, StoreError> {
        Ok(Arc::new(ServiceSettings {
            collection: Namespace::core().collection("service_settings")?,
            store,
            host,
            applied: Mutex::new((base.clone(), None, None)),
            base,
        }))
    }

    fn current(&self) -> ServicesConfig {
        self.applied.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// What operators see.
    pub fn view(&self) -> SettingsView {
        let guard = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let (settings, mail_doc, http_doc) = &*guard;
        let source = |doc: &Option<Value>| {
            if doc.is_some() {
                "operator"
            } else {
                "configuration"
            }
        };
        SettingsView {
            mail: MailView {
                host: settings.mail.host.clone(),
                port: settings.mail.port,
                starttls: settings.mail.starttls,
                user: settings.mail.user.clone(),
                password_set: settings.mail.password.is_some(),
                from: settings.mail.from.clone(),
                max_per_request: settings.mail.max_per_request,
                source: source(mail_doc),
            },
            http: HttpView {
                allow_networks: settings
                    .http
                    .allow_networks
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
                connect_timeout_ms: settings.http.connect_timeout.as_millis() as u64,
                timeout_ms: settings.http.timeout.as_millis() as u64,
                max_response_bytes: settings.http.max_response_bytes,
                source: source(http_doc),
            },
        }
    }

    /// Changes the mail settings for every node; bad settings change nothing.
    pub async fn change_mail(&self, change: MailChange) -> Result<SettingsView, PersistError> {
        let mut mail = self.current().mail;
        if let Some(host) = change.host {
            mail.host = blank_to_none(host);
        }
        if let Some(port) = change.port {
            mail.port = port;
        }
        if let Some(starttls) = change.starttls {
            mail.starttls = starttls;
        }
        if let Some(user) = change.user {
            mail.user = blank_to_none(user);
        }
        if let Some(password) = change.password {
            mail.password = password.filter(|p| !p.is_empty()).map(Secret::new);
        }
        if let Some(from) = change.from {
            mail.from = blank_to_none(from);
        }
        if let Some(max) = change.max_per_request {
            mail.max_per_request = max;
        }
        if mail.max_per_request == 0 {
            return Err(PersistError::Invalid("maxPerRequest must be at least 1".into()));
        }
        elements_host::services::mail::Relay::new(&mail).map_err(|e| PersistError::Invalid(e.to_string()))?;
        self.put(Service::Mail, mail_doc(&mail)).await?;
        Ok(self.view())
    }

    /// Changes the outbound HTTP settings for every node.
    pub async fn change_http(&self, change: HttpChange) -> Result<SettingsView, PersistError> {
        let mut http = self.current().http;
        if let Some(networks) = change.allow_networks {
            http.allow_networks = networks;
        }
        if let Some(ms) = change.connect_timeout_ms {
            http.connect_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = change.timeout_ms {
            http.timeout = Duration::from_millis(ms);
        }
        if let Some(bytes) = change.max_response_bytes {
            http.max_response_bytes = bytes;
        }
        if http.connect_timeout.is_zero() || http.timeout.is_zero() || http.max_response_bytes == 0 {
            return Err(PersistError::Invalid(
                "connectTimeoutMs, timeoutMs and maxResponseBytes must be at least 1".into(),
            ));
        }
        self.put(Service::Http, http_doc(&http)).await?;
        Ok(self.view())
    }

    /// Goes back to the configuration's settings of `service`, for every node.
    pub async fn reset(&self, service: Service) -> Result<SettingsView, PersistError> {
        self.store
            .delete_by_id(&self.collection, service.id(), None)
            .await?;
        self.apply().await?;
        Ok(self.view())
    }

    async fn put(&self, service: Service, doc: Value) -> Result<(), PersistError> {
        let upsert = FindAndModify {
            upsert: true,
            ..Default::default()
        };
        self.store
            .find_one_and_update(
                &self.collection,
                &Filter::by_id(service.id()),
                &Update::parse(&json!({ "$set": doc }))?,
                &upsert,
            )
            .await?;
        self.apply().await
    }

    /// Applies the stored settings (over the configuration's) when they changed.
    pub async fn apply(&self) -> Result<(), PersistError> {
        let docs = self
            .store
            .find(&self.collection, &Query::new(Filter::all()))
            .await?;
        let find = |id: &str| {
            docs.iter()
                .find(|d| d.get("_id").and_then(Value::as_str) == Some(id))
                .map(|d| {
                    let mut d = d.clone();
                    if let Some(map) = d.as_object_mut() {
                        map.remove("_version");
                    }
                    d
                })
        };
        let (mail_doc, http_doc) = (find("mail"), find("http"));
        {
            let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
            if applied.1 == mail_doc && applied.2 == http_doc {
                return Ok(());
            }
        }
        let mut settings = self.base.clone();
        if let Some(doc) = &mail_doc {
            settings.mail = mail_from(doc, &self.base.mail);
        }
        if let Some(doc) = &http_doc {
            settings.http = http_from(doc, &self.base.http);
        }
        self.host
            .services
            .reconfigure(&settings)
            .map_err(|e| PersistError::Invalid(e.to_string()))?;
        tracing::info!("service settings applied");
        *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = (settings, mail_doc, http_doc);
        Ok(())
    }

    /// Applies changes other nodes made, every poll interval.
    pub fn start_polling(self: &Arc<Self>) {
        let every = self.host.deploy.poll_interval;
        super::persist::poll(self, every, "stored service settings", |this| async move {
            this.apply().await
        });
    }
}

fn mail_doc(mail: &MailSettings) -> Value {
    json!({
        "host": mail.host,
        "port": mail.port,
        "starttls": mail.starttls,
        "user": mail.user,
        "password": mail.password.as_ref().map(|p| p.expose().to_owned()),
        "from": mail.from,
        "maxPerRequest": mail.max_per_request,
    })
}

fn mail_from(doc: &Value, base: &MailSettings) -> MailSettings {
    let text = |key: &str| doc.get(key).and_then(Value::as_str).map(str::to_owned);
    MailSettings {
        host: text("host"),
        port: doc
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(base.port),
        starttls: doc
            .get("starttls")
            .and_then(Value::as_bool)
            .unwrap_or(base.starttls),
        user: text("user"),
        password: text("password").map(Secret::new),
        from: text("from"),
        max_per_request: doc
            .get("maxPerRequest")
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(base.max_per_request),
    }
}

fn http_doc(http: &HttpSettings) -> Value {
    json!({
        "allowNetworks": http.allow_networks.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "connectTimeoutMs": http.connect_timeout.as_millis() as u64,
        "timeoutMs": http.timeout.as_millis() as u64,
        "maxResponseBytes": http.max_response_bytes,
    })
}

fn http_from(doc: &Value, base: &HttpSettings) -> HttpSettings {
    let millis = |key: &str, default: Duration| {
        doc.get(key)
            .and_then(Value::as_u64)
            .map(Duration::from_millis)
            .unwrap_or(default)
    };
    HttpSettings {
        allow_networks: doc
            .get("allowNetworks")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|n| n.as_str()?.parse().ok()).collect())
            .unwrap_or_else(|| base.allow_networks.clone()),
        connect_timeout: millis("connectTimeoutMs", base.connect_timeout),
        timeout: millis("timeoutMs", base.timeout),
        max_response_bytes: doc
            .get("maxResponseBytes")
            .and_then(Value::as_u64)
            .unwrap_or(base.max_response_bytes),
    }
}
