//! The manifest an Element ships beside its component (`NAME.toml`): where
//! it mounts, its limits, the attributes it declares and the deployment's
//! attribute values.
//!
//! ```toml
//! prefix = "hello"               # mount at /app/rest/hello (default: NAME)
//!
//! [limits]                       # any of the server's [limits] keys
//! timeout_ms = 2000
//! isolation = "reuse"
//!
//! [attributes.greeting]          # a declared attribute
//! default = "Hello"
//! description = "How the Element greets"
//! required = false
//! sensitive = false
//!
//! [values]                       # this deployment's attribute values
//! greeting = "Hi"
//!
//! [events]                       # events delivered to the event-handler export
//! subscribe = ["game.match.ended", "dev.getelements.*"]
//! ```
//!
//! A top-level `core_routes = ["/api/rest/verify"]` mounts the Element at
//! core API extension points too ([`EXTENSION_ROUTES`]), if the operator
//! allows that Element (`core_route_elements` in the server configuration).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::LimitsOverride;

/// A parsed, validated manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Mount prefix below `/app/rest/`; the Element's name when absent.
    pub prefix: Option<String>,
    /// Limit overrides.
    #[serde(default)]
    pub limits: LimitsOverride,
    /// Declared attributes by name.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeSpec>,
    /// The deployment's attribute values by name.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Events the Element receives.
    #[serde(default)]
    pub events: EventsSpec,
    /// Core API paths the Element serves (each must be one of
    /// [`EXTENSION_ROUTES`], and the operator must allow the Element).
    #[serde(default)]
    pub core_routes: Vec<String>,
}

/// The core API paths an Element may serve, by declaring them in
/// `core_routes`: explicit extension points, so no Element can shadow a core
/// route by accident. The bundled Email Verification Element serves these.
pub const EXTENSION_ROUTES: &[&str] = &["/api/rest/user/me/email/verify", "/api/rest/verify"];

/// The `[events]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSpec {
    /// Event names, or prefixes ending in `*`, delivered to the Element's
    /// `elements:platform/event-handler` export.
    #[serde(default)]
    pub subscribe: Vec<String>,
}

/// An attribute an Element declares.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    /// Value used when nobody sets one.
    pub default: Option<String>,
    /// What the attribute means, for operators.
    #[serde(default)]
    pub description: String,
    /// The Element can't run without a (non-blank) value: deploys fail without one.
    #[serde(default)]
    pub required: bool,
    /// A secret: never shown by the API or written to the log.
    #[serde(default)]
    pub sensitive: bool,
}

/// A manifest that can't be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML of the manifest's shape.
    #[error("invalid manifest: {0}")]
    Parse(String),
    /// A value is not allowed.
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl Manifest {
    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        if let Some(prefix) = &manifest.prefix {
            validate_name("prefix", prefix).map_err(ManifestError::Invalid)?;
        }
        for route in &manifest.core_routes {
            if !EXTENSION_ROUTES.contains(&route.as_str()) {
                return Err(ManifestError::Invalid(format!(
                    "core route {route:?} is not an extension point of the core API (those are {})",
                    EXTENSION_ROUTES.join(", ")
                )));
            }
        }
        for pattern in &manifest.events.subscribe {
            let name = pattern
                .strip_suffix(".*")
                .or(pattern.strip_suffix('*'))
                .unwrap_or(pattern);
            if !(pattern == "*" || crate::host::services::events::validate_event_name(name).is_ok()) {
                return Err(ManifestError::Invalid(format!(
                    "[events] subscribe: {pattern:?} is not an event name or a prefix ending in '*'"
                )));
            }
        }
        Ok(manifest)
    }
}

/// Checks an Element name or mount prefix: 1 to 48 characters of ASCII
/// letters, digits, `_` and `-`, starting with a letter or digit. Such a name
/// is one URL path segment, a safe file name and a valid part of the
/// Element's document namespace.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} must be 1 to 48 characters of letters, digits, '_' or '-', \
             starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let m = Manifest::parse(
            r#"
            prefix = "hello"
            [limits]
            timeout_ms = 2000
            isolation = "reuse"
            [attributes.greeting]
            default = "Hello"
            description = "How the Element greets"
            [values]
            greeting = "Hi"
            "#,
        )
        .unwrap();
        assert_eq!(m.prefix.as_deref(), Some("hello"));
        assert_eq!(m.limits.timeout_ms, Some(2000));
        assert_eq!(m.attributes["greeting"].default.as_deref(), Some("Hello"));
        assert_eq!(m.values["greeting"], "Hi");
    }

    #[test]
    fn refuses_bad_prefixes_and_unknown_keys() {
        assert!(Manifest::parse("prefix = \"../admin\"").is_err());
        assert!(Manifest::parse("prefix = \"a/b\"").is_err());
        assert!(Manifest::parse("prefix = \"a.b\"").is_err());
        assert!(Manifest::parse("prefx = \"a\"").is_err());
        assert!(Manifest::parse("[limits]\nisolation = \"sometimes\"").is_err());
    }
}
