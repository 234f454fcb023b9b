//! The filter language: a MongoDB-style subset parsed once into a typed AST.

use serde_json::{Map, Value};

use crate::document::FieldPath;
use crate::error::{Result, StoreError};

/// A comparison on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmp {
    /// `{f: v}` / `{f: {$eq: v}}`. `null` matches a null or missing field.
    Eq(Value),
    /// `{f: {$ne: v}}`: the negation of `Eq`.
    Ne(Value),
    /// `{f: {$gt: v}}` (v a number or a string).
    Gt(Value),
    /// `{f: {$gte: v}}`.
    Gte(Value),
    /// `{f: {$lt: v}}`.
    Lt(Value),
    /// `{f: {$lte: v}}`.
    Lte(Value),
    /// `{f: {$in: [..]}}`: equal to any.
    In(Vec<Value>),
    /// `{f: {$nin: [..]}}`: equal to none.
    Nin(Vec<Value>),
    /// `{f: {$exists: bool}}`: present (even if null) / absent.
    Exists(bool),
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All of (an empty `And` matches everything).
    And(Vec<Filter>),
    /// Any of (never empty).
    Or(Vec<Filter>),
    /// A condition on one field.
    Field(FieldPath, Cmp),
}

impl Filter {
    /// Matches every document.
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }

    /// `{_id: id}`.
    pub fn by_id(id: &str) -> Filter {
        Filter::Field(
            FieldPath::top(crate::document::ID),
            Cmp::Eq(Value::String(id.to_string())),
        )
    }

    /// `{path: value}`.
    pub fn eq(path: &str, value: impl Into<Value>) -> Result<Filter> {
        Ok(Filter::Field(FieldPath::parse(path)?, Cmp::Eq(value.into())))
    }

    /// Both.
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut v) => {
                v.push(other);
                Filter::And(v)
            }
            f => Filter::And(vec![f, other]),
        }
    }

    /// Parses a MongoDB-style filter object. Supported: field equality (dotted
    /// paths for nested fields), `$eq $ne $gt $gte $lt $lte $in $nin $exists`
    /// on fields and `$and $or` at any level. Anything else is
    /// [`StoreError::InvalidFilter`]; nothing is ignored.
    pub fn parse(v: &Value) -> Result<Filter> {
        let Value::Object(m) = v else {
            return Err(invalid("a filter must be a JSON object"));
        };
        let mut parts = Vec::new();
        for (k, v) in m {
            match k.as_str() {
                "$and" | "$or" => {
                    let Value::Array(items) = v else {
                        return Err(invalid(format!("{k} takes an array of filters")));
                    };
                    if items.is_empty() {
                        return Err(invalid(format!("{k} takes a non-empty array")));
                    }
                    let subs = items.iter().map(Filter::parse).collect::<Result<Vec<_>>>()?;
                    parts.push(if k == "$and" {
                        Filter::And(subs)
                    } else {
                        Filter::Or(subs)
                    });
                }
                op if op.starts_with('$') => {
                    return Err(invalid(format!("unsupported top-level operator {op}")));
                }
                path => {
                    let path = FieldPath::parse(path).map_err(|e| invalid(format!("{e}")))?;
                    parse_field(&path, v, &mut parts)?;
                }
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    /// Top-level equality conditions (through `$and`), as the fields an upsert
    /// seeds a new document with.
    pub fn equalities(&self) -> Vec<(&FieldPath, &Value)> {
        let mut out = Vec::new();
        fn walk<'a>(f: &'a Filter, out: &mut Vec<(&'a FieldPath, &'a Value)>) {
            match f {
                Filter::And(v) => v.iter().for_each(|f| walk(f, out)),
                Filter::Field(p, Cmp::Eq(v)) => out.push((p, v)),
                Filter::Field(p, Cmp::In(vs)) if vs.len() == 1 => out.push((p, &vs[0])),
                _ => {}
            }
        }
        walk(self, &mut out);
        out
    }
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidFilter(msg.into())
}

fn is_operator_object(m: &Map<String, Value>) -> bool {
    m.keys().next().is_some_and(|k| k.starts_with('$'))
}

fn check_value(v: &Value) -> Result<()> {
    crate::document::validate_value(v, "filter").map_err(|e| invalid(e.to_string()))
}

fn range_value(op: &str, v: &Value) -> Result<Value> {
    match v {
        Value::Number(_) | Value::String(_) => {
            check_value(v)?;
            Ok(v.clone())
        }
        _ => Err(invalid(format!(
            "{op} takes a number or a string (range comparisons on other types are not supported)"
        ))),
    }
}

fn parse_field(path: &FieldPath, v: &Value, parts: &mut Vec<Filter>) -> Result<()> {
    let ops = match v {
        Value::Object(m) if is_operator_object(m) => m,
        _ => {
            check_value(v)?;
            parts.push(Filter::Field(path.clone(), Cmp::Eq(v.clone())));
            return Ok(());
        }
    };
    for (op, arg) in ops {
        let cmp = match op.as_str() {
            "$eq" => {
                check_value(arg)?;
                Cmp::Eq(arg.clone())
            }
            "$ne" => {
                check_value(arg)?;
                Cmp::Ne(arg.clone())
            }
            "$gt" => Cmp::Gt(range_value(op, arg)?),
            "$gte" => Cmp::Gte(range_value(op, arg)?),
            "$lt" => Cmp::Lt(range_value(op, arg)?),
            "$lte" => Cmp::Lte(range_value(op, arg)?),
            "$in" | "$nin" => {
                let Value::Array(items) = arg else {
                    return Err(invalid(format!("{op} takes an array")));
                };
                items.iter().try_for_each(check_value)?;
                if op == "$in" {
                    Cmp::In(items.clone())
                } else {
                    Cmp::Nin(items.clone())
                }
            }
            "$exists" => match arg {
                Value::Bool(b) => Cmp::Exists(*b),
                _ => return Err(invalid("$exists takes true or false")),
            },
            other if other.starts_with('$') => {
                return Err(invalid(format!(
                    "unsupported operator {other} on field {}",
                    path.dotted()
                )));
            }
            other => {
                return Err(invalid(format!(
                    "cannot mix operators and field {other:?} in the condition on {}",
                    path.dotted()
                )));
            }
        };
        parts.push(Filter::Field(path.clone(), cmp));
    }
    Ok(())
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// Field to sort by.
    pub path: FieldPath,
    /// Direction.
    pub order: Order,
}

/// A find: filter, sort, skip, limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Which documents.
    pub filter: Filter,
    /// Sort keys, most significant first; ties are broken by `_id` ascending.
    pub sort: Vec<SortKey>,
    /// Documents to skip.
    pub skip: u64,
    /// At most this many (None: all).
    pub limit: Option<u64>,
}

impl Query {
    /// All documents matching `filter`, unsorted (in `_id` order).
    pub fn new(filter: Filter) -> Query {
        Query {
            filter,
            sort: Vec::new(),
            skip: 0,
            limit: None,
        }
    }
    /// Parses `filter` as by [`Filter::parse`].
    pub fn parse(filter: &Value) -> Result<Query> {
        Ok(Query::new(Filter::parse(filter)?))
    }
    /// Adds an ascending sort key.
    pub fn sort_asc(mut self, path: &str) -> Result<Query> {
        self.sort.push(SortKey {
            path: FieldPath::parse(path)?,
            order: Order::Asc,
        });
        Ok(self)
    }
    /// Adds a descending sort key.
    pub fn sort_desc(mut self, path: &str) -> Result<Query> {
        self.sort.push(SortKey {
            path: FieldPath::parse(path)?,
            order: Order::Desc,
        });
        Ok(self)
    }
    /// Sets the skip.
    pub fn skip(mut self, n: u64) -> Query {
        self.skip = n;
        self
    }
    /// Sets the limit.
    pub fn limit(mut self, n: u64) -> Query {
        self.limit = Some(n);
        self
    }
}
