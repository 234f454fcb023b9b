//! Documents, reserved fields and field paths.

use serde_json::{Map, Value};

use crate::error::{Result, StoreError};

/// Field holding the document's id: a string, generated (UUID v4) if absent.
pub const ID: &str = "_id";
/// Field holding the document's version: 1 on insert, +1 on every write. The
/// store manages it; writes that set it are rejected.
pub const VERSION: &str = "_version";
/// Optional field holding the expiry time, as integer milliseconds since the
/// Unix epoch. A document with `_expiresAt <= now` is expired: no read returns
/// it and no write matches it; a sweep deletes it later.
pub const EXPIRES_AT: &str = "_expiresAt";

/// Upper bound on one document's serialized size (MongoDB's BSON limit).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// A dotted path to a (nested) field, e.g. `profile.name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses a dotted path. Segments are non-empty, don't start with `$`, and
    /// contain none of `"`, `'`, `\` or NUL (so they can be inlined in SQL JSON
    /// paths, which keeps SQLite expression indexes usable).
    pub fn parse(path: &str) -> Result<FieldPath> {
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        for s in &segments {
            if s.is_empty() || s.starts_with('$') || s.contains(['"', '\'', '\\', '\0']) || s.len() > 128 {
                return Err(StoreError::InvalidFilter(format!(
                    "invalid field path {path:?}: segments must be 1..=128 bytes, not start with '$' and not contain quotes, backslashes or NUL"
                )));
            }
        }
        Ok(FieldPath { segments })
    }

    /// A top-level field (for the crate's own reserved fields).
    pub(crate) fn top(name: &str) -> FieldPath {
        FieldPath {
            segments: vec![name.to_string()],
        }
    }

    /// The path's segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The dotted form.
    pub fn dotted(&self) -> String {
        self.segments.join(".")
    }

    /// True if this is the single top-level field `name`.
    pub fn is(&self, name: &str) -> bool {
        self.segments.len() == 1 && self.segments[0] == name
    }

    /// True if `self` equals `other` or one is a prefix of the other.
    pub fn overlaps(&self, other: &FieldPath) -> bool {
        let n = self.segments.len().min(other.segments.len());
        self.segments[..n] == other.segments[..n]
    }

    /// The value at this path, if present (no array traversal).
    pub fn get<'a>(&self, doc: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        let mut cur = doc.get(first)?;
        for s in rest {
            cur = cur.as_object()?.get(s)?;
        }
        Some(cur)
    }
}

/// Generates a new document id (UUID v4, hyphenated).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Validates the keys and numbers of a value (recursively): keys must not be
/// empty, start with `$`, or contain `.` or NUL; integers must fit in `i64`
/// (both backends store 64-bit integers; larger ones would silently become
/// doubles on one and fail on the other).
pub fn validate_value(v: &Value, at: &str) -> Result<()> {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k.is_empty() || k.starts_with('$') || k.contains(['.', '\0']) {
                    return Err(StoreError::InvalidDocument(format!(
                        "invalid field name {k:?} at {at:?}: names must be non-empty, not start with '$' and not contain '.' or NUL"
                    )));
                }
                validate_value(v, k)?;
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(|v| validate_value(v, at)),
        Value::Number(n) => {
            if n.is_i64() || n.is_f64() {
                Ok(())
            } else {
                Err(StoreError::InvalidDocument(format!(
                    "integer {n} at {at:?} does not fit in a signed 64-bit integer"
                )))
            }
        }
        _ => Ok(()),
    }
}

/// Checks the reserved fields of a stored document and its size; returns its
/// expiry (millis) if any.
pub fn check_document(doc: &Map<String, Value>) -> Result<Option<i64>> {
    match doc.get(ID) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 512 && !s.contains('\0') => {}
        _ => {
            return Err(StoreError::InvalidDocument(
                "`_id` must be a non-empty string of at most 512 bytes".into(),
            ));
        }
    }
    for (k, v) in doc {
        validate_value(v, k)?;
        if k.is_empty() || k.starts_with('$') || k.contains(['.', '\0']) {
            return Err(StoreError::InvalidDocument(format!(
                "invalid field name {k:?}: names must be non-empty, not start with '$' and not contain '.' or NUL"
            )));
        }
    }
    expires_of(doc)
}

/// The expiry of a document: `None` if `_expiresAt` is absent or null.
pub fn expires_of(doc: &Map<String, Value>) -> Result<Option<i64>> {
    match doc.get(EXPIRES_AT) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ms) => Ok(Some(ms)),
            None => Err(StoreError::InvalidDocument(
                "`_expiresAt` must be an integer (milliseconds since the Unix epoch)".into(),
            )),
        },
        Some(_) => Err(StoreError::InvalidDocument(
            "`_expiresAt` must be an integer (milliseconds since the Unix epoch) or null".into(),
        )),
    }
}

/// Turns a caller's document into a new stored document: checks it is an
/// object, assigns `_id` if absent and sets `_version` to 1.
pub fn prepare_insert(doc: Value) -> Result<Map<String, Value>> {
    let Value::Object(mut m) = doc else {
        return Err(StoreError::InvalidDocument(
            "a document must be a JSON object".into(),
        ));
    };
    if m.contains_key(VERSION) {
        return Err(StoreError::InvalidDocument(
            "`_version` is managed by the store and cannot be set".into(),
        ));
    }
    if !m.contains_key(ID) {
        m.insert(ID.to_string(), Value::String(new_id()));
    }
    m.insert(VERSION.to_string(), Value::from(1));
    check_document(&m)?;
    Ok(m)
}

/// The `_version` of a stored document (0 if missing, for foreign data).
pub fn version_of(doc: &Map<String, Value>) -> i64 {
    doc.get(VERSION).and_then(Value::as_i64).unwrap_or(0)
}

/// The `_id` of a stored document.
pub fn id_of(doc: &Map<String, Value>) -> &str {
    doc.get(ID).and_then(Value::as_str).unwrap_or("")
}
