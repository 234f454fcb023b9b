//! The manifest an Element ships beside its component (`NAME.toml`): where
//! it mounts, its limits, the attributes it declares and the deployment's
//! attribute values.
//!
//! ```toml
//! prefix = "hello"               # mount at /app/rest/hello (default: NAME)
//!
//! [limits]                       # any of the server's [limits] keys; caps only lowered
//! timeout_ms = 2000
//! isolation = "reuse"
//!
//! [attributes.greeting]          # a declared attribute
//! default = "Hello"
//! description = "How the Element greets"
//! required = false
//! sensitive = false
//!
//! [attributes.max_score]         # typed: "text" (default), "integer",
//! type = "integer"               # "boolean" or "url"; a value of another
//! min = 0                        # kind or out of range fails the deploy
//! max = 1000000
//! default = 280                  # TOML integers, floats and booleans are
//!                                # taken as their text ("280"), like "280"
//!
//! [values]                       # this deployment's attribute values
//! greeting = "Hi"
//!
//! [events]                       # events delivered to the event-handler export
//! subscribe = ["game.match.ended", "dev.getelements.*"]
//! ```
//!
//! A top-level `grants = ["mail.send", "http.outbound:api.example.com"]`
//! requests capabilities beyond the Element's own log, attributes and
//! documents ([`elements_config::grants`]); the operator approves them.
//!
//! A top-level `core_routes = ["/api/rest/verify"]` mounts the Element at
//! core API extension points too ([`EXTENSION_ROUTES`]); each route implies
//! the grant `route.core:PATH`.
//!
//! A top-level `rpcs = ["roll_dice"]` has the Element serve those Nakama RPCs
//! (`POST /v2/rpc/ID` and the socket's `rpc`): the host calls its HTTP
//! handler with `POST /.elements/rpc/ID` (a path no client can reach), the
//! payload as the body and the caller's session token as its credential;
//! each id implies the grant `rpc:ID`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use elements_config::LimitsOverride;
use elements_config::grants::{self, Grant};

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
    /// The deployment's attribute values by name (strings, or TOML
    /// numbers and booleans taken as their text).
    #[serde(default, deserialize_with = "scalar::map")]
    pub values: BTreeMap<String, String>,
    /// Events the Element receives.
    #[serde(default)]
    pub events: EventsSpec,
    /// Core API paths the Element serves (each must be one of
    /// [`EXTENSION_ROUTES`]; each implies the grant `route.core:PATH`).
    #[serde(default)]
    pub core_routes: Vec<String>,
    /// Nakama RPC ids the Element serves (each implies the grant `rpc:ID`).
    #[serde(default)]
    pub rpcs: Vec<String>,
    /// Grants the Element requests (see [`elements_config::grants`]); the
    /// operator must approve each before it deploys.
    #[serde(default)]
    pub grants: Vec<String>,
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
    /// Value used when nobody sets one (a string, or a TOML number or
    /// boolean taken as its text).
    #[serde(default, deserialize_with = "scalar::option")]
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
    /// The kind of value (`type` in the manifest); a value of another kind
    /// fails the deploy.
    #[serde(default, rename = "type")]
    pub kind: AttributeKind,
    /// Smallest value of an `integer` attribute.
    pub min: Option<i64>,
    /// Largest value of an `integer` attribute.
    pub max: Option<i64>,
}

/// What an attribute's value must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttributeKind {
    /// Any text.
    #[default]
    Text,
    /// A whole number (within `min`..=`max` when given).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An absolute `http://` or `https://` URL.
    Url,
}

impl AttributeSpec {
    /// Checks a (non-blank) value against the declared kind and range. The
    /// reason never repeats the value: it may be a secret.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let value = value.trim();
        match self.kind {
            AttributeKind::Text => Ok(()),
            AttributeKind::Boolean => match value {
                "true" | "false" => Ok(()),
                _ => Err("must be true or false".into()),
            },
            AttributeKind::Url => {
                let rest = value
                    .strip_prefix("https://")
                    .or_else(|| value.strip_prefix("http://"))
                    .ok_or("must be an http:// or https:// URL")?;
                let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
                if host.is_empty() || value.chars().any(char::is_whitespace) {
                    return Err("must be an http:// or https:// URL with a host".into());
                }
                Ok(())
            }
            AttributeKind::Integer => {
                let n: i64 = value.parse().map_err(|_| "must be a whole number".to_owned())?;
                match (self.min, self.max) {
                    (Some(min), _) if n < min => Err(format!("must be at least {min}")),
                    (_, Some(max)) if n > max => Err(format!("must be at most {max}")),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The declaration itself is sound: a range only on integers, not
    /// inverted, and a default of the declared kind.
    fn validate(&self, name: &str) -> Result<(), String> {
        if (self.min.is_some() || self.max.is_some()) && self.kind != AttributeKind::Integer {
            return Err(format!("attribute {name:?}: min and max need type = \"integer\""));
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return Err(format!("attribute {name:?}: min is greater than max"));
        }
        if let Some(default) = self.default.as_deref().filter(|d| !d.trim().is_empty()) {
            self.check(default)
                .map_err(|why| format!("attribute {name:?}: the default {why}"))?;
        }
        Ok(())
    }
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
        for (name, spec) in &manifest.attributes {
            spec.validate(name).map_err(ManifestError::Invalid)?;
        }
        for route in &manifest.core_routes {
            if !EXTENSION_ROUTES.contains(&route.as_str()) {
                return Err(ManifestError::Invalid(format!(
                    "core route {route:?} is not an extension point of the core API (those are {})",
                    EXTENSION_ROUTES.join(", ")
                )));
            }
        }
        for id in &manifest.rpcs {
            grants::rpc_id(id).map_err(|why| ManifestError::Invalid(format!("rpcs: {id:?}: {why}")))?;
        }
        for grant in &manifest.grants {
            grant
                .parse::<Grant>()
                .map_err(|e| ManifestError::Invalid(e.to_string()))?;
        }
        for pattern in &manifest.events.subscribe {
            let name = pattern
                .strip_suffix(".*")
                .or(pattern.strip_suffix('*'))
                .unwrap_or(pattern);
            if !(pattern == "*" || grants::validate_event_name(name).is_ok()) {
                return Err(ManifestError::Invalid(format!(
                    "[events] subscribe: {pattern:?} is not an event name or a prefix ending in '*'"
                )));
            }
        }
        Ok(manifest)
    }

    /// Every grant the Element named `element` requests: those listed under
    /// `grants`, plus those its subscriptions and core routes imply.
    pub fn requested_grants(&self, element: &str) -> BTreeSet<Grant> {
        let listed = self.grants.iter().filter_map(|g| g.parse::<Grant>().ok());
        let subscribed = self
            .events
            .subscribe
            .iter()
            .filter_map(|p| grants::implied_by_subscription(element, p));
        let routes = self.core_routes.iter().map(|r| Grant::CoreRoute(r.clone()));
        let rpcs = self
            .rpcs
            .iter()
            .filter_map(|id| grants::rpc_id(id).ok().map(Grant::Rpc));
        listed.chain(subscribed).chain(routes).chain(rpcs).collect()
    }
}

/// Attribute values as text, whether the manifest quotes them or writes them
/// as TOML numbers or booleans: the declared kind and range are checked on
/// the text at deploy, so `default = 280` and `default = "280"` are the same
/// value and pass or fail the same checks.
mod scalar {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};

    struct Scalar(String);

    impl<'de> serde::Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ScalarVisitor).map(Scalar)
        }
    }

    struct ScalarVisitor;

    impl Visitor<'_> for ScalarVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, number or boolean")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        // Debug keeps the fraction (`280.0`, not `280`): a float is not a
        // whole number, so an integer attribute refuses it as it would "280.0".
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(format!("{v:?}"))
        }
    }

    pub(super) fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(ScalarVisitor).map(Some)
    }

    pub(super) fn map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        let map: BTreeMap<String, Scalar> = serde::Deserialize::deserialize(d)?;
        Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
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
    fn typed_attributes() {
        let m = Manifest::parse(
            r#"
            [attributes.expiry]
            type = "integer"
            min = 1
            max = 7776000
            default = "86400"
            [attributes.url]
            type = "url"
            [attributes.flag]
            type = "boolean"
            "#,
        )
        .unwrap();
        let expiry = &m.attributes["expiry"];
        assert_eq!(expiry.kind, AttributeKind::Integer);
        assert!(expiry.check("3600").is_ok());
        assert_eq!(expiry.check("0").unwrap_err(), "must be at least 1");
        assert_eq!(expiry.check("7776001").unwrap_err(), "must be at most 7776000");
        assert_eq!(expiry.check("forever").unwrap_err(), "must be a whole number");
        let url = &m.attributes["url"];
        assert!(url.check("https://users.roblox.com/v1").is_ok());
        assert!(url.check("http://127.0.0.1:8080").is_ok());
        for bad in ["users.roblox.com", "ftp://x", "https://", "https://a b"] {
            assert!(url.check(bad).is_err(), "{bad}");
        }
        let flag = &m.attributes["flag"];
        assert!(flag.check("true").is_ok() && flag.check("false").is_ok());
        assert!(flag.check("yes").is_err());
        assert_eq!(m.attributes["flag"].min, None);

        // The declarations themselves are checked.
        for bad in [
            "[attributes.a]\ntype = \"number\"",
            "[attributes.a]\nmin = 1",
            "[attributes.a]\ntype = \"integer\"\nmin = 5\nmax = 1",
            "[attributes.a]\ntype = \"integer\"\ndefault = \"soon\"",
        ] {
            assert!(Manifest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn typed_values_may_be_toml_numbers_and_booleans() {
        let m = Manifest::parse(
            r#"
            [attributes.size]
            type = "integer"
            min = 1
            max = 1000
            default = 280
            [attributes.flag]
            type = "boolean"
            default = true
            [attributes.ratio]
            default = 0.5
            [attributes.quoted]
            type = "integer"
            default = "12"
            [values]
            size = 300
            flag = false
            "#,
        )
        .unwrap();
        assert_eq!(m.attributes["size"].default.as_deref(), Some("280"));
        assert_eq!(m.attributes["flag"].default.as_deref(), Some("true"));
        assert_eq!(m.attributes["ratio"].default.as_deref(), Some("0.5"));
        assert_eq!(m.attributes["quoted"].default.as_deref(), Some("12"));
        assert_eq!(m.values["size"], "300");
        assert_eq!(m.values["flag"], "false");

        // The type and range are still checked, naming the attribute.
        for (bad, why) in [
            (
                "[attributes.a]\ntype = \"integer\"\nmax = 10\ndefault = 280",
                "must be at most 10",
            ),
            (
                "[attributes.a]\ntype = \"integer\"\ndefault = true",
                "must be a whole number",
            ),
            (
                "[attributes.a]\ntype = \"integer\"\ndefault = 280.0",
                "must be a whole number",
            ),
            (
                "[attributes.a]\ntype = \"boolean\"\ndefault = 1",
                "must be true or false",
            ),
        ] {
            let e = Manifest::parse(bad).unwrap_err().to_string();
            assert!(e.contains("attribute \"a\"") && e.contains(why), "{bad}: {e}");
        }
        // Arrays and tables are not attribute values.
        let e = Manifest::parse("[attributes.a]\ndefault = [1]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a string, number or boolean"), "{e}");
        assert!(Manifest::parse("[values]\na = { b = 1 }").is_err());
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
