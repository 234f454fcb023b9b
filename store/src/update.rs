//! Updates: `$set $unset $inc $push`, or a full replacement.

use serde_json::{Map, Number, Value};

use crate::document::{self, EXPIRES_AT, FieldPath, ID, VERSION};
use crate::error::{Result, StoreError};
use crate::filter::Filter;

/// One update operator applied to one field.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOp {
    /// Sets the field (creating intermediate objects).
    Set(FieldPath, Value),
    /// Removes the field (no-op if absent).
    Unset(FieldPath),
    /// Adds a number (a missing field counts as 0). Integer + integer stays an
    /// integer (overflow is an error); any float makes a float.
    Inc(FieldPath, Number),
    /// Appends a value to an array (a missing field becomes `[value]`).
    Push(FieldPath, Value),
}

/// A parsed update.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Operators; no two may touch overlapping paths.
    Ops(Vec<UpdateOp>),
    /// Replaces the whole document, keeping its `_id` (a replacement may repeat
    /// the same `_id`, not change it).
    Replace(Map<String, Value>),
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidUpdate(msg.into())
}

impl Update {
    /// `{$set: {path: value}}` for one field.
    pub fn set(path: &str, value: impl Into<Value>) -> Result<Update> {
        Update::parse(&serde_json::json!({ "$set": { path: value.into() } }))
    }

    /// Parses an update: an object whose keys are all operators (`$set`,
    /// `$unset`, `$inc`, `$push`), or a replacement document (no operator keys).
    /// `_id` and `_version` cannot be updated; `_expiresAt` only by `$set` /
    /// `$unset` (or in a replacement).
    pub fn parse(v: &Value) -> Result<Update> {
        let Value::Object(m) = v else {
            return Err(invalid("an update must be a JSON object"));
        };
        let n_ops = m.keys().filter(|k| k.starts_with('$')).count();
        if n_ops == 0 {
            if m.contains_key(VERSION) {
                return Err(invalid("`_version` is managed by the store"));
            }
            let mut probe = m.clone();
            probe
                .entry(ID.to_string())
                .or_insert_with(|| Value::String("x".into()));
            document::check_document(&probe).map_err(|e| invalid(e.to_string()))?;
            return Ok(Update::Replace(m.clone()));
        }
        if n_ops != m.len() {
            return Err(invalid("an update cannot mix operators and fields"));
        }
        let mut ops = Vec::new();
        for (op, args) in m {
            let Value::Object(args) = args else {
                return Err(invalid(format!("{op} takes an object of fields")));
            };
            for (path, arg) in args {
                let p = FieldPath::parse(path).map_err(|e| invalid(e.to_string()))?;
                if p.segments()[0] == ID || p.segments()[0] == VERSION {
                    return Err(invalid(format!("`{path}` cannot be updated")));
                }
                if op != "$unset" {
                    document::validate_value(arg, path).map_err(|e| invalid(e.to_string()))?;
                }
                let is_expiry = p.segments()[0] == EXPIRES_AT;
                ops.push(match op.as_str() {
                    "$set" => {
                        if is_expiry && !(arg.is_null() || arg.is_i64()) {
                            return Err(invalid("`_expiresAt` must be an integer (epoch millis) or null"));
                        }
                        UpdateOp::Set(p, arg.clone())
                    }
                    "$unset" => UpdateOp::Unset(p),
                    "$inc" => match arg {
                        Value::Number(n) if !is_expiry => UpdateOp::Inc(p, n.clone()),
                        _ => return Err(invalid(format!("$inc on `{path}` takes a number"))),
                    },
                    "$push" if !is_expiry => UpdateOp::Push(p, arg.clone()),
                    other => return Err(invalid(format!("unsupported update operator {other}"))),
                });
            }
        }
        if ops.is_empty() {
            return Err(invalid("an update needs at least one field"));
        }
        for (i, a) in ops.iter().enumerate() {
            for b in &ops[i + 1..] {
                if a.path().overlaps(b.path()) {
                    return Err(invalid(format!(
                        "conflicting updates of `{}` and `{}`",
                        a.path().dotted(),
                        b.path().dotted()
                    )));
                }
            }
        }
        Ok(Update::Ops(ops))
    }

    /// Applies the update to a stored document in place and bumps `_version`.
    pub fn apply(&self, doc: &mut Map<String, Value>) -> Result<()> {
        let id = doc.get(ID).cloned();
        let version = document::version_of(doc);
        match self {
            Update::Replace(new) => {
                if let (Some(old), Some(newid)) = (&id, new.get(ID))
                    && old != newid
                {
                    return Err(invalid("a replacement cannot change `_id`"));
                }
                *doc = new.clone();
            }
            Update::Ops(ops) => {
                for op in ops {
                    apply_op(doc, op)?;
                }
            }
        }
        if let Some(id) = id {
            doc.insert(ID.to_string(), id);
        }
        doc.insert(VERSION.to_string(), Value::from(version + 1));
        document::check_document(doc).map_err(|e| invalid(e.to_string()))?;
        Ok(())
    }

    /// The document an upsert inserts: the filter's equality fields, then the
    /// update (for a replacement: the replacement, with the filter's `_id`).
    pub fn upsert_seed(&self, filter: &Filter) -> Result<Map<String, Value>> {
        let mut doc = Map::new();
        match self {
            Update::Replace(new) => {
                doc = new.clone();
                if !doc.contains_key(ID)
                    && let Some((_, v)) = filter.equalities().into_iter().find(|(p, _)| p.is(ID))
                {
                    doc.insert(ID.to_string(), v.clone());
                }
            }
            Update::Ops(_) => {
                for (p, v) in filter.equalities() {
                    set_path(&mut doc, p, v.clone())?;
                }
                doc.remove(VERSION);
                if !doc.contains_key(ID) {
                    doc.insert(ID.to_string(), Value::String(document::new_id()));
                }
                // The update bumps the version from 0 to 1.
                self.apply(&mut doc)?;
            }
        }
        if !doc.contains_key(ID) {
            doc.insert(ID.to_string(), Value::String(document::new_id()));
        }
        doc.insert(VERSION.to_string(), Value::from(1));
        document::check_document(&doc)?;
        Ok(doc)
    }
}

impl UpdateOp {
    /// The field this operator touches.
    pub fn path(&self) -> &FieldPath {
        match self {
            UpdateOp::Set(p, _) | UpdateOp::Unset(p) | UpdateOp::Inc(p, _) | UpdateOp::Push(p, _) => p,
        }
    }
}

fn parent_mut<'a>(
    doc: &'a mut Map<String, Value>,
    path: &FieldPath,
    create: bool,
) -> Result<Option<&'a mut Map<String, Value>>> {
    let segs = path.segments();
    let mut cur = doc;
    for s in &segs[..segs.len() - 1] {
        if !cur.contains_key(s) {
            if !create {
                return Ok(None);
            }
            cur.insert(s.clone(), Value::Object(Map::new()));
        }
        match cur.get_mut(s) {
            Some(Value::Object(m)) => cur = m,
            _ => {
                if create {
                    return Err(invalid(format!(
                        "cannot update `{}`: `{s}` is not an object",
                        path.dotted()
                    )));
                }
                return Ok(None);
            }
        }
    }
    Ok(Some(cur))
}

fn last(path: &FieldPath) -> &str {
    path.segments().last().map(String::as_str).unwrap_or("")
}

fn set_path(doc: &mut Map<String, Value>, path: &FieldPath, v: Value) -> Result<()> {
    if let Some(parent) = parent_mut(doc, path, true)? {
        parent.insert(last(path).to_string(), v);
    }
    Ok(())
}

fn apply_op(doc: &mut Map<String, Value>, op: &UpdateOp) -> Result<()> {
    match op {
        UpdateOp::Set(p, v) => set_path(doc, p, v.clone()),
        UpdateOp::Unset(p) => {
            if let Some(parent) = parent_mut(doc, p, false)? {
                parent.remove(last(p));
            }
            Ok(())
        }
        UpdateOp::Inc(p, n) => {
            let Some(parent) = parent_mut(doc, p, true)? else {
                return Ok(());
            };
            let key = last(p).to_string();
            let new = match parent.get(&key) {
                None => Value::Number(n.clone()),
                Some(Value::Number(cur)) => add(cur, n, p)?,
                Some(_) => {
                    return Err(invalid(format!("cannot $inc `{}`: not a number", p.dotted())));
                }
            };
            parent.insert(key, new);
            Ok(())
        }
        UpdateOp::Push(p, v) => {
            let Some(parent) = parent_mut(doc, p, true)? else {
                return Ok(());
            };
            let key = last(p).to_string();
            match parent.get_mut(&key) {
                None => {
                    parent.insert(key, Value::Array(vec![v.clone()]));
                }
                Some(Value::Array(a)) => a.push(v.clone()),
                Some(_) => {
                    return Err(invalid(format!("cannot $push to `{}`: not an array", p.dotted())));
                }
            }
            Ok(())
        }
    }
}

fn add(a: &Number, b: &Number, p: &FieldPath) -> Result<Value> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x
            .checked_add(y)
            .map(Value::from)
            .ok_or_else(|| invalid(format!("$inc on `{}` overflows", p.dotted())));
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return Err(invalid(format!("cannot $inc `{}`", p.dotted())));
    };
    Number::from_f64(x + y)
        .map(Value::Number)
        .ok_or_else(|| invalid(format!("$inc on `{}` is not finite", p.dotted())))
}
