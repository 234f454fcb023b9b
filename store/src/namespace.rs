//! Collection namespacing: core collections and per-Element collections live in
//! disjoint physical name spaces by construction.
//!
//! A [`CollectionName`] can only be made through a [`Namespace`], and every
//! store method takes a `CollectionName`, so no caller can address a physical
//! collection by a raw string. Physical names are built from validated parts
//! joined with `.`, which valid parts cannot contain, and the number of parts
//! and the leading tag tell the kinds apart:
//!
//! | namespace | physical name |
//! | --- | --- |
//! | `Namespace::core()` | `core.<name>` |
//! | `Namespace::element("chess", None)` | `el.chess.<name>` |
//! | `Namespace::element("chess", Some("app1"))` | `app.app1.chess.<name>` |
//!
//! Since parts never contain `.`, a physical name splits back into exactly one
//! (namespace, name) pair: the mapping is injective, so an Element-supplied name
//! can never reach a core collection, another Element's, or the same Element's
//! collections of another application.

use std::sync::Arc;

use crate::error::{Result, StoreError};

/// Longest valid name part (collection, Element or application name), in bytes.
pub const MAX_NAME_LEN: usize = 48;

/// Checks one name part: 1..=48 ASCII letters, digits, `_` or `-`, starting with
/// a letter or digit.
pub fn validate_name_part(kind: &str, part: &str) -> Result<()> {
    let ok_len = !part.is_empty() && part.len() <= MAX_NAME_LEN;
    let ok_chars = part
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let ok_first = part.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_first {
        Ok(())
    } else {
        Err(StoreError::InvalidName(format!(
            "{kind} name {part:?} must be 1..={MAX_NAME_LEN} ASCII letters, digits, '_' or '-', starting with a letter or digit"
        )))
    }
}

/// Which name space a collection belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    // Shared: every instance of an Element holds its namespace.
    prefix: Arc<str>,
}

impl Namespace {
    /// The runtime's own collections (users, sessions, deployments...).
    pub fn core() -> Namespace {
        Namespace {
            prefix: "core".into(),
        }
    }

    /// The private collections of one Element, optionally of one application
    /// the Element is deployed for.
    pub fn element(element: &str, application: Option<&str>) -> Result<Namespace> {
        validate_name_part("element", element)?;
        let prefix = match application {
            None => format!("el.{element}"),
            Some(app) => {
                validate_name_part("application", app)?;
                format!("app.{app}.{element}")
            }
        };
        Ok(Namespace {
            prefix: prefix.into(),
        })
    }

    /// A collection in this namespace; `name` is validated like every name part.
    pub fn collection(&self, name: &str) -> Result<CollectionName> {
        validate_name_part("collection", name)?;
        Ok(CollectionName {
            physical: format!("{}.{name}", self.prefix),
        })
    }

    /// Prefix of the physical names in this namespace, including the final `.`.
    pub fn physical_prefix(&self) -> String {
        format!("{}.", self.prefix)
    }
}

/// A validated collection name, made by [`Namespace::collection`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollectionName {
    physical: String,
}

impl CollectionName {
    /// The backend's name for this collection (SQLite table / MongoDB collection).
    pub fn physical(&self) -> &str {
        &self.physical
    }
}

impl std::fmt::Display for CollectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.physical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn names_are_validated() {
        for bad in [
            "",
            ".",
            "a.b",
            "a b",
            "-a",
            "_a",
            "a/b",
            "é",
            "a\"b",
            "a$b",
            &"x".repeat(49),
        ] {
            assert!(Namespace::core().collection(bad).is_err(), "{bad:?}");
            assert!(Namespace::element(bad, None).is_err(), "{bad:?}");
            assert!(Namespace::element("ok", Some(bad)).is_err(), "{bad:?}");
        }
        for good in ["a", "A9", "users", "my-coll_2", &"x".repeat(48)] {
            assert!(Namespace::core().collection(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn physical_names() {
        let c = |ns: Namespace, n: &str| ns.collection(n).map(|c| c.physical().to_string());
        assert_eq!(c(Namespace::core(), "users").ok().as_deref(), Some("core.users"));
        let el = Namespace::element("chess", None).ok();
        assert_eq!(
            el.and_then(|n| c(n, "games").ok()).as_deref(),
            Some("el.chess.games")
        );
        let app = Namespace::element("chess", Some("app1")).ok();
        assert_eq!(
            app.and_then(|n| c(n, "games").ok()).as_deref(),
            Some("app.app1.chess.games")
        );
    }

    /// No two distinct (namespace, name) pairs map to the same physical name,
    /// and no Element namespace yields a core name, over a grid of tricky parts.
    #[test]
    fn mapping_is_injective() {
        let parts = [
            "core", "el", "app", "a", "b", "a-b", "a_b", "users", "el-core", "x1", "1",
        ];
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut add = |phys: String, who: String| {
            if let Some(prev) = seen.insert(phys.clone(), who.clone()) {
                panic!("{phys} from both {prev} and {who}");
            }
        };
        for name in parts {
            let core = Namespace::core()
                .collection(name)
                .map(|c| c.physical().to_string());
            if let Ok(p) = core {
                assert!(p.starts_with("core."));
                add(p, format!("core/{name}"));
            }
            for el in parts {
                if let Ok(p) = Namespace::element(el, None).and_then(|n| n.collection(name)) {
                    assert!(!p.physical().starts_with("core."));
                    add(p.physical().to_string(), format!("{el}/{name}"));
                }
                for app in parts {
                    if let Ok(p) = Namespace::element(el, Some(app)).and_then(|n| n.collection(name)) {
                        assert!(!p.physical().starts_with("core."));
                        add(p.physical().to_string(), format!("{el}@{app}/{name}"));
                    }
                }
            }
        }
        assert_eq!(
            seen.len(),
            parts.len() * (1 + parts.len() + parts.len() * parts.len())
        );
    }
}
