//! Embedded SQLite backend.
//!
//! One file; one table per collection (`id TEXT PRIMARY KEY, version, expires_at,
//! data TEXT` with the whole document as JSON in `data`). WAL journal with
//! `synchronous=FULL`: a write is acknowledged only after its commit reached the
//! WAL on disk, so acknowledged writes survive a process kill *and* a power
//! loss (NORMAL would survive a process kill but could lose the last commits on
//! power loss; the price of FULL is one fsync per commit). One writer
//! connection (SQLite serializes writers anyway) and a small pool of reader
//! connections.
//!
//! **Where the work runs.** Writes, scans and large documents run on
//! tokio's blocking pool. A read that finds at most one small document
//! (a `get`, or a `find_one` that pins the id or every field of a unique
//! index) runs on the calling task when a reader connection is free: the
//! pool's hand-off (a wake-up there, one back, and the pool's lock) costs
//! more CPU than such a read on a warm database, and a login makes several.
//! Nothing an Element chooses the cost of (a filter, a document's size)
//! can hold an async worker longer than one such lookup.
//!
//! **Group commit.** Writes queue for the writer, which takes every write
//! waiting (up to [`MAX_BATCH`]) into one `BEGIN IMMEDIATE` transaction,
//! each write inside its own savepoint, and commits them with one fsync.
//! A write that fails rolls back to its savepoint and leaves the others be,
//! so each write stays atomic on its own (what makes find-one-and-update,
//! upserts and batches atomic); none is acknowledged before the commit
//! that holds it is on disk, and a failed commit fails every write in it.
//! Under concurrency N writers pay for one fsync instead of N.
//!
//! Filters compile to SQL over `json_extract` / `json_type`; indexes are
//! expression indexes over the same `json_extract(data,'$."field"')`
//! expressions, so a find by an indexed field uses the index.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use serde_json::{Map, Value};

use crate::api::{
    DocumentStore, FindAndModify, IndexSpec, OpenOptions, ReturnDocument, SqliteConfig, WriteOp, WriteOutcome,
};
use crate::clock::Clock;
use crate::document::{self, FieldPath, ID};
use crate::error::{Conflict, Result, StoreError};
use crate::filter::{Cmp, Filter, Order, Query, SortKey};
use crate::namespace::CollectionName;
use crate::update::Update;

/// The document column when it is at most `INLINE_DOCUMENT_BYTES`, else
/// NULL. `octet_length` of a column is answered from the record header, so
/// a large document is not loaded only to be left out.
const SMALL_DATA: &str = "CASE WHEN octet_length(data) <= 65536 THEN data END";

/// A row read by `SMALL_DATA`: `None` when the document is too large to be
/// read on the calling task (the caller reads it again on the blocking pool).
fn small_document(row: rusqlite::Result<Option<String>>, c: &str) -> Option<Result<Option<Value>>> {
    match row {
        Ok(Some(d)) => Some(parse_doc(&d).map(|d| Some(Value::Object(d)))),
        Ok(None) => None,
        Err(rusqlite::Error::QueryReturnedNoRows) => Some(Ok(None)),
        Err(e) if no_such_table(&e) => Some(Ok(None)),
        Err(e) => Some(Err(map_err(e, c))),
    }
}

/// The SQLite store. Open it with [`crate::open`].
pub struct SqliteStore {
    inner: Arc<Inner>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

struct Inner {
    path: std::path::PathBuf,
    writer: Mutex<Writer>,
    queue: Mutex<WriteQueue>,
    readers: Mutex<Vec<Pooled>>,
    max_readers: usize,
    /// One permit per reader connection: a read waits for a pooled
    /// connection rather than opening (and parsing the schema of) one of
    /// its own, which under load costs far more than the read.
    reader_permits: Arc<tokio::sync::Semaphore>,
    /// The unique indexes of each table, as committed: a filter that pins
    /// every field of one finds at most one document through it, a read
    /// as bounded as a `get` (see [`SqliteStore::read_now`]).
    unique: std::sync::RwLock<UniqueIndexes>,
    clock: Arc<dyn Clock>,
}

/// Table → the fields of each of its unique indexes.
type UniqueIndexes = HashMap<String, Vec<Vec<FieldPath>>>;

/// What a write batch did to the tables' unique indexes, in order.
enum UniqueChange {
    Created(String, Vec<FieldPath>),
    Dropped(String),
}

/// A connection with when it was last used, so that one left unused for a
/// while can free its page cache.
struct Pooled {
    conn: Connection,
    used: Instant,
    released: bool,
}

impl Pooled {
    fn new(conn: Connection) -> Pooled {
        Pooled {
            conn,
            used: Instant::now(),
            released: false,
        }
    }

    /// Frees the page cache if unused for `after` by `now` (and not
    /// already freed).
    fn release_if_idle(&mut self, after: Duration, now: Instant) {
        if !self.released && now.saturating_duration_since(self.used) >= after {
            self.released = true;
            // Failing to free a cache only costs memory: nothing to report.
            let _ = self.conn.release_memory();
        }
    }
}

struct Writer {
    conn: Pooled,
    tables: HashSet<String>,
}

struct Tx<'a, 'b> {
    tx: rusqlite::Transaction<'a>,
    /// Tables that existed when the batch began.
    tables: &'b HashSet<String>,
    /// Tables this batch created, and dropped (disjoint).
    created: Vec<String>,
    dropped: Vec<String>,
    /// Unique indexes this batch created, tables it dropped.
    unique: Vec<UniqueChange>,
    now: i64,
}

/// Most writes committed together: bounds how long one batch holds the writer.
const MAX_BATCH: usize = 64;

/// Writes waiting for the writer, and whether a blocking task is draining them.
#[derive(Default)]
struct WriteQueue {
    jobs: Vec<Job>,
    draining: bool,
}

/// One queued write. `run` gets the batch's transaction (or why there is
/// none), says whether the write succeeded, and returns what delivers its
/// result once the commit's outcome is known.
struct Job {
    now: i64,
    run: RunJob,
}

type RunJob = Box<dyn FnOnce(std::result::Result<&mut Tx<'_, '_>, StoreError>) -> (bool, Deliver) + Send>;

type Deliver = Box<dyn FnOnce(std::result::Result<(), &StoreError>) + Send>;

impl Writer {
    /// Runs `jobs` in one transaction, each in a savepoint, commits once,
    /// then delivers every result. Never panics: a panicking job counts as
    /// a failed one (its caller hears the write was dropped).
    fn commit_batch(&mut self, jobs: Vec<Job>, unique: &std::sync::RwLock<UniqueIndexes>) {
        let Writer { conn, tables } = self;
        (conn.used, conn.released) = (Instant::now(), false);
        let tx = match conn
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                let e = map_err(e, "BEGIN");
                for job in jobs {
                    let (_, deliver) = (job.run)(Err(e.clone()));
                    deliver(Err(&e));
                }
                return;
            }
        };
        let mut t = Tx {
            tx,
            tables: &*tables,
            created: Vec::new(),
            dropped: Vec::new(),
            unique: Vec::new(),
            now: 0,
        };
        let mut done: Vec<Deliver> = Vec::with_capacity(jobs.len());
        let mut jobs = jobs.into_iter();
        let mut broken = None;
        for job in jobs.by_ref() {
            t.now = job.now;
            let before = (t.created.clone(), t.dropped.clone(), t.unique.len());
            if let Err(e) = cached_execute(&t.tx, "SAVEPOINT job", []) {
                let e = map_err(e, "SAVEPOINT");
                let (_, deliver) = (job.run)(Err(e.clone()));
                deliver(Err(&e));
                broken = Some(e);
                break;
            }
            let run = job.run;
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(Ok(&mut t))));
            let ok = match ran {
                Ok((ok, deliver)) => {
                    done.push(deliver);
                    ok
                }
                Err(_) => false,
            };
            if !ok {
                (t.created, t.dropped) = (before.0, before.1);
                t.unique.truncate(before.2);
            }
            // Compiled once per connection, like the writes themselves.
            let ended = if ok {
                cached_execute(&t.tx, "RELEASE job", [])
            } else {
                cached_execute(&t.tx, "ROLLBACK TO job", [])
                    .and_then(|_| cached_execute(&t.tx, "RELEASE job", []))
            };
            // A failure SQLite answers by rolling the whole transaction
            // back (a full disk, an I/O error) takes every earlier write
            // of the batch with it.
            if let Err(e) = ended {
                broken = Some(map_err(e, "SAVEPOINT"));
                break;
            }
            if t.tx.is_autocommit() {
                broken = Some(StoreError::Unavailable(
                    "SQLite rolled the write batch back".into(),
                ));
                break;
            }
        }
        let Tx {
            tx,
            created,
            dropped,
            unique: changes,
            ..
        } = t;
        let outcome = match broken {
            Some(e) => Err(e),
            None => tx.commit().map_err(|e| map_err(e, "COMMIT")),
        };
        if outcome.is_ok() {
            for table in dropped {
                tables.remove(&table);
            }
            tables.extend(created);
            if !changes.is_empty() {
                let mut unique = unique.write().unwrap_or_else(|p| p.into_inner());
                for change in changes {
                    match change {
                        UniqueChange::Created(table, fields) => {
                            let known = unique.entry(table).or_default();
                            if !known.contains(&fields) {
                                known.push(fields);
                            }
                        }
                        UniqueChange::Dropped(table) => {
                            unique.remove(&table);
                        }
                    }
                }
            }
        }
        for deliver in done {
            deliver(outcome.as_ref().map(|_| ()));
        }
        if let Err(e) = &outcome {
            // Writes the broken batch never reached fail the same way.
            for job in jobs {
                let (_, deliver) = (job.run)(Err(e.clone()));
                deliver(Err(e));
            }
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        for task in self.background.drain(..) {
            task.abort();
        }
    }
}

fn map_err(e: rusqlite::Error, collection: &str) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let detail = msg.clone().unwrap_or_else(|| f.to_string());
        return match f.code {
            ErrorCode::ConstraintViolation => StoreError::Conflict(Conflict::DuplicateKey {
                collection: collection.to_string(),
                detail,
            }),
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::NotADatabase
            | ErrorCode::DatabaseCorrupt => StoreError::Unavailable(format!("SQLite database: {detail}")),
            _ => StoreError::Internal(format!("SQLite: {detail}")),
        };
    }
    StoreError::Internal(format!("SQLite: {e}"))
}

/// Statements each connection keeps compiled (a few per collection in use).
const STATEMENT_CACHE: usize = 256;

/// One row of `sql`, compiled once per connection: SQLite parses and plans
/// a statement in about the time it takes to run a lookup by id, so the
/// hot statements go through the connection's cache.
fn cached_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, row)
}

/// Executes `sql` through the connection's statement cache (see [`cached_row`]).
fn cached_execute(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

fn no_such_table(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(_, Some(m)) if m.starts_with("no such table"))
}

/// A table or index name as SQL: encoded (see [`encode_name`]) and quoted.
fn qi(name: &str) -> String {
    // Names are validated (no quotes), quoting is for the `.` they contain.
    format!("\"{}\"", encode_name(name).replace('"', "\"\""))
}

/// SQLite compares table names case-insensitively, MongoDB collection names
/// exactly: an upper-case letter becomes `^` and its lower-case form (`^`
/// is never in a valid name), so `el.Game.x` and `el.game.x` stay apart,
/// as they do on MongoDB.
fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('^');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The physical name a table was created for (the inverse of [`encode_name`]).
fn decode_name(table: &str) -> String {
    let mut out = String::with_capacity(table.len());
    let mut chars = table.chars();
    while let Some(c) = chars.next() {
        match (c, c == '^') {
            (_, true) => match chars.next() {
                Some(next) => out.push(next.to_ascii_uppercase()),
                None => out.push(c),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

fn json_path(p: &FieldPath) -> String {
    let mut s = String::from("'$");
    for seg in p.segments() {
        s.push_str(".\"");
        s.push_str(seg);
        s.push('"');
    }
    s.push('\'');
    s
}

fn x(p: &FieldPath) -> String {
    format!("json_extract(data,{})", json_path(p))
}

fn t(p: &FieldPath) -> String {
    format!("json_type(data,{})", json_path(p))
}

fn num_param(n: &serde_json::Number) -> SqlValue {
    match n.as_i64() {
        Some(i) => SqlValue::Integer(i),
        None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
    }
}

struct Sql {
    sql: String,
    params: Vec<SqlValue>,
}

impl Sql {
    fn new() -> Sql {
        Sql {
            sql: String::new(),
            params: Vec::new(),
        }
    }
    fn push(&mut self, s: &str) {
        self.sql.push_str(s);
    }
    fn param(&mut self, v: SqlValue) {
        self.params.push(v);
        self.sql.push('?');
    }
}

fn eq_sql(p: &FieldPath, v: &Value, out: &mut Sql) {
    let is_id = p.is(ID);
    match v {
        Value::Null => out.push(&format!("({t} IS NULL OR {t} = 'null')", t = t(p))),
        Value::Bool(b) => out.push(&format!("({} = '{}')", t(p), b)),
        Value::Number(n) => {
            if is_id {
                out.push("0");
                return;
            }
            out.push(&format!("({} = ", x(p)));
            out.param(num_param(n));
            out.push(&format!(" AND {} IN ('integer','real'))", t(p)));
        }
        Value::String(s) => {
            if is_id {
                out.push("id = ");
                out.param(SqlValue::Text(s.clone()));
                return;
            }
            out.push(&format!("({} = ", x(p)));
            out.param(SqlValue::Text(s.clone()));
            out.push(&format!(" AND {} = 'text')", t(p)));
        }
        Value::Array(_) | Value::Object(_) => {
            let kind = if v.is_array() { "array" } else { "object" };
            out.push(&format!("({} = '{kind}' AND {} = ", t(p), x(p)));
            out.param(SqlValue::Text(v.to_string()));
            out.push(")");
        }
    }
}

fn range_sql(p: &FieldPath, op: &str, v: &Value, out: &mut Sql) {
    match v {
        Value::Number(n) => {
            out.push(&format!("({} IN ('integer','real') AND {} {op} ", t(p), x(p)));
            out.param(num_param(n));
            out.push(")");
        }
        Value::String(s) => {
            if p.is(ID) {
                out.push(&format!("(id {op} "));
            } else {
                out.push(&format!("({} = 'text' AND {} {op} ", t(p), x(p)));
            }
            out.param(SqlValue::Text(s.clone()));
            out.push(")");
        }
        // The parser only admits numbers and strings.
        _ => out.push("0"),
    }
}

fn filter_sql(f: &Filter, out: &mut Sql) {
    match f {
        Filter::And(v) | Filter::Or(v) => {
            if v.is_empty() {
                out.push(if matches!(f, Filter::And(_)) { "1" } else { "0" });
                return;
            }
            let sep = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            out.push("(");
            for (i, sub) in v.iter().enumerate() {
                if i > 0 {
                    out.push(sep);
                }
                filter_sql(sub, out);
            }
            out.push(")");
        }
        Filter::Field(p, cmp) => match cmp {
            Cmp::Eq(v) => eq_sql(p, v, out),
            Cmp::Ne(v) => {
                out.push("NOT COALESCE(");
                eq_sql(p, v, out);
                out.push(", 0)");
            }
            Cmp::Gt(v) => range_sql(p, ">", v, out),
            Cmp::Gte(v) => range_sql(p, ">=", v, out),
            Cmp::Lt(v) => range_sql(p, "<", v, out),
            Cmp::Lte(v) => range_sql(p, "<=", v, out),
            Cmp::In(vs) | Cmp::Nin(vs) => {
                let neg = matches!(cmp, Cmp::Nin(_));
                if neg {
                    out.push("NOT COALESCE(");
                }
                if vs.is_empty() {
                    out.push("0");
                } else {
                    out.push("(");
                    for (i, v) in vs.iter().enumerate() {
                        if i > 0 {
                            out.push(" OR ");
                        }
                        eq_sql(p, v, out);
                    }
                    out.push(")");
                }
                if neg {
                    out.push(", 0)");
                }
            }
            Cmp::Exists(b) => {
                if p.is(ID) {
                    out.push(if *b { "1" } else { "0" });
                } else {
                    out.push(&format!("({} IS {}NULL)", t(p), if *b { "NOT " } else { "" }));
                }
            }
        },
    }
}

fn order_sql(sort: &[SortKey]) -> String {
    let mut parts = Vec::new();
    for k in sort {
        let dir = match k.order {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        if k.path.is(ID) {
            parts.push(format!("id {dir}"));
            continue;
        }
        let (t, x) = (t(&k.path), x(&k.path));
        // MongoDB's cross-type order: null/missing < numbers < strings <
        // objects < arrays < booleans.
        parts.push(format!(
            "CASE WHEN {t} IS NULL OR {t} = 'null' THEN 1 WHEN {t} IN ('integer','real') THEN 2 \
             WHEN {t} = 'text' THEN 3 WHEN {t} = 'object' THEN 4 WHEN {t} = 'array' THEN 5 \
             ELSE 6 END {dir}, {x} {dir}"
        ));
    }
    parts.push("id ASC".to_string());
    parts.join(", ")
}

/// `WHERE` clause (filter and liveness) with its parameters.
fn where_sql(filter: &Filter, now: i64) -> Sql {
    let mut s = Sql::new();
    s.push(" WHERE (expires_at IS NULL OR expires_at > ");
    s.param(SqlValue::Integer(now));
    s.push(") AND ");
    filter_sql(filter, &mut s);
    s
}

fn parse_doc(data: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(data) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(StoreError::Internal("stored document is not an object".into())),
        Err(e) => Err(StoreError::Internal(format!("stored document is not JSON: {e}"))),
    }
}

fn open_conn(path: &std::path::Path, write: bool) -> Result<Connection> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        StoreError::Unavailable(format!("cannot open SQLite database {}: {e}", path.display()))
    })?;
    let db = path.display().to_string();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| map_err(e, &db))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Without the query planner stability guarantee, SQLite plans with the
    // values bound to some parameters (a find's `LIMIT ?` and `OFFSET ?`)
    // and so throws the compiled statement away each time they are bound:
    // every cached `find` was parsed and planned again (measured: 6% of a
    // Roblox Kit login's CPU in `sqlite3Reprepare`).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| map_err(e, &db))?;
    if write {
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;")
            .map_err(|e| map_err(e, &db))?;
    }
    Ok(conn)
}

impl Tx<'_, '_> {
    fn ensure_table(&mut self, c: &str) -> Result<()> {
        let exists = self.tables.contains(c) && !self.dropped.iter().any(|t| t == c);
        if exists || self.created.iter().any(|t| t == c) {
            return Ok(());
        }
        let q = qi(c);
        let ix = qi(&format!("{c}|_expiresAt"));
        self.tx
            .execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {q} (id TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, \
                 expires_at INTEGER, data TEXT NOT NULL);
                 CREATE INDEX IF NOT EXISTS {ix} ON {q}(expires_at) WHERE expires_at IS NOT NULL;"
            ))
            .map_err(|e| map_err(e, c))?;
        self.dropped.retain(|t| t != c);
        self.created.push(c.to_string());
        Ok(())
    }

    /// Tables this batch treats as existing.
    fn live_tables(&self) -> Vec<String> {
        let mut live: Vec<String> = self
            .tables
            .iter()
            .filter(|t| !self.dropped.contains(t))
            .cloned()
            .collect();
        live.extend(self.created.iter().cloned());
        live
    }

    fn purge_expired(&mut self, c: &str) -> Result<usize> {
        match self.tx.execute(
            &format!("DELETE FROM {} WHERE expires_at <= ?1", qi(c)),
            [self.now],
        ) {
            Ok(n) => Ok(n),
            Err(e) if no_such_table(&e) => Ok(0),
            Err(e) => Err(map_err(e, c)),
        }
    }

    fn insert(&mut self, c: &str, doc: Map<String, Value>) -> Result<Map<String, Value>> {
        self.ensure_table(c)?;
        let expires = document::check_document(&doc)?;
        let data = Value::Object(doc).to_string();
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&data) else {
            return Err(StoreError::Internal("document did not round-trip".into()));
        };
        if data.len() > document::MAX_DOCUMENT_BYTES {
            return Err(StoreError::InvalidDocument("document larger than 16 MiB".into()));
        }
        let sql = format!(
            "INSERT INTO {} (id, version, expires_at, data) VALUES (?1, ?2, ?3, ?4)",
            qi(c)
        );
        let params = rusqlite::params![document::id_of(&doc), document::version_of(&doc), expires, data];
        match cached_execute(&self.tx, &sql, params) {
            Ok(_) => Ok(doc),
            Err(e) => {
                let err = map_err(e, c);
                // Expired documents never cause conflicts: purge and retry once.
                if err.is_duplicate_key() && self.purge_expired(c)? > 0 {
                    cached_execute(&self.tx, &sql, params).map_err(|e| map_err(e, c))?;
                    Ok(doc)
                } else {
                    Err(err)
                }
            }
        }
    }

    fn replace(&mut self, c: &str, doc: Map<String, Value>) -> Result<Map<String, Value>> {
        let expires = document::check_document(&doc)?;
        let data = Value::Object(doc).to_string();
        if data.len() > document::MAX_DOCUMENT_BYTES {
            return Err(StoreError::InvalidDocument("document larger than 16 MiB".into()));
        }
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&data) else {
            return Err(StoreError::Internal("document did not round-trip".into()));
        };
        let sql = format!(
            "UPDATE {} SET version = ?2, expires_at = ?3, data = ?4 WHERE id = ?1",
            qi(c)
        );
        let params = rusqlite::params![document::id_of(&doc), document::version_of(&doc), expires, data];
        match cached_execute(&self.tx, &sql, params) {
            Ok(_) => Ok(doc),
            Err(e) => {
                let err = map_err(e, c);
                if err.is_duplicate_key() && self.purge_expired(c)? > 0 {
                    cached_execute(&self.tx, &sql, params).map_err(|e| map_err(e, c))?;
                    Ok(doc)
                } else {
                    Err(err)
                }
            }
        }
    }

    fn select_one(&self, c: &str, filter: &Filter, sort: &[SortKey]) -> Result<Option<Map<String, Value>>> {
        let w = where_sql(filter, self.now);
        let sql = format!(
            "SELECT data FROM {}{} ORDER BY {} LIMIT 1",
            qi(c),
            w.sql,
            order_sql(sort)
        );
        let res = cached_row(&self.tx, &sql, rusqlite::params_from_iter(w.params.iter()), |r| {
            r.get::<_, String>(0)
        });
        match res {
            Ok(data) => Ok(Some(parse_doc(&data)?)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) if no_such_table(&e) => Ok(None),
            Err(e) => Err(map_err(e, c)),
        }
    }

    fn delete_id(&self, c: &str, id: &str) -> Result<()> {
        cached_execute(&self.tx, &format!("DELETE FROM {} WHERE id = ?1", qi(c)), [id])
            .map_err(|e| map_err(e, c))?;
        Ok(())
    }

    fn find_one_and_update(
        &mut self,
        c: &str,
        filter: &Filter,
        update: &Update,
        opts: &FindAndModify,
    ) -> Result<Option<Map<String, Value>>> {
        match self.select_one(c, filter, &opts.sort)? {
            Some(before) => {
                let mut after = before.clone();
                update.apply(&mut after)?;
                let after = self.replace(c, after)?;
                Ok(Some(match opts.return_document {
                    ReturnDocument::Before => before,
                    ReturnDocument::After => after,
                }))
            }
            None if opts.upsert => {
                let doc = update.upsert_seed(filter)?;
                // An expired document with the same id is gone for good.
                self.purge_expired(c)?;
                let doc = self.insert(c, doc)?;
                Ok(match opts.return_document {
                    ReturnDocument::Before => None,
                    ReturnDocument::After => Some(doc),
                })
            }
            None => Ok(None),
        }
    }

    fn run_op(&mut self, i: usize, op: WriteOp) -> Result<WriteOutcome> {
        let precondition =
            |detail: String| StoreError::Conflict(Conflict::Precondition { op_index: i, detail });
        match op {
            WriteOp::Insert { collection, document } => {
                let doc = document::prepare_insert(document)?;
                Ok(WriteOutcome::Inserted(Value::Object(
                    self.insert(collection.physical(), doc)?,
                )))
            }
            WriteOp::Update {
                collection,
                filter,
                update,
                upsert,
                require_match,
            } => {
                let opts = FindAndModify {
                    upsert,
                    ..Default::default()
                };
                let r = self.find_one_and_update(collection.physical(), &filter, &update, &opts)?;
                if r.is_none() && require_match {
                    return Err(precondition(format!(
                        "no document in `{collection}` matched the update"
                    )));
                }
                Ok(WriteOutcome::Updated(r.map(Value::Object)))
            }
            WriteOp::Delete {
                collection,
                filter,
                require_match,
            } => {
                let c = collection.physical();
                let found = self.select_one(c, &filter, &[])?;
                if let Some(d) = &found {
                    self.delete_id(c, document::id_of(d))?;
                } else if require_match {
                    return Err(precondition(format!(
                        "no document in `{collection}` matched the delete"
                    )));
                }
                Ok(WriteOutcome::Deleted(found.map(Value::Object)))
            }
            WriteOp::Require {
                collection,
                filter,
                exists,
            } => {
                let found = self.select_one(collection.physical(), &filter, &[])?.is_some();
                if found != exists {
                    return Err(precondition(format!(
                        "a matching document in `{collection}` {}",
                        if exists { "does not exist" } else { "exists" }
                    )));
                }
                Ok(WriteOutcome::Checked)
            }
        }
    }
}

/// Creates `dir` (and its parents) readable by the owner only (`0700`);
/// an existing folder keeps its mode.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the file `path` when missing, readable by the owner only (`0600`).
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// Deletes expired documents every `every`, until the store is dropped.
fn spawn_sweeper(weak: Weak<Inner>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            let store = SqliteStore {
                inner,
                background: Vec::new(),
            };
            // Errors are retried at the next tick.
            let _ = store.sweep_expired().await;
        }
    })
}

/// Frees SQLite's page cache once a connection has gone unused for
/// `after` (each connection caches up to 2 MiB of pages, which a burst of
/// load fills and an idle server would otherwise keep). Decided per
/// connection, since a little steady work (the deployment poll) keeps one
/// reader busy while the rest sit idle. The bundled SQLite is built with
/// memory management, so its page caches share one LRU: freeing drops
/// every page no statement holds, and busy connections read theirs again
/// from the OS's file cache. It happens once per connection going idle.
fn spawn_idle_release(weak: Weak<Inner>, after: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval((after / 2).max(Duration::from_millis(10)));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            let _ = tokio::task::spawn_blocking(move || inner.release_idle(after, Instant::now())).await;
        }
    })
}

impl Inner {
    /// Commits queued writes, batch after batch, until the queue is empty.
    fn drain(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let jobs = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if queue.jobs.is_empty() {
                    queue.draining = false;
                    return;
                }
                let n = queue.jobs.len().min(MAX_BATCH);
                queue.jobs.drain(..n).collect::<Vec<_>>()
            };
            writer.commit_batch(jobs, &self.unique);
        }
    }

    /// Whether `filter` pins the id or every field of one of the table's
    /// unique indexes to a value its index can look up: SQLite then finds
    /// at most one row, through that index (its planner takes a one-row
    /// lookup on a unique index whenever one applies).
    fn pins_one_row(&self, table: &str, filter: &Filter) -> bool {
        let pinned: Vec<&FieldPath> = filter
            .equalities()
            .into_iter()
            .filter(|(_, v)| v.is_string() || v.is_number())
            .map(|(p, _)| p)
            .collect();
        if pinned.iter().any(|p| p.is(ID)) {
            return true;
        }
        let unique = self.unique.read().unwrap_or_else(|p| p.into_inner());
        unique.get(table).is_some_and(|indexes| {
            indexes
                .iter()
                .any(|fields| fields.iter().all(|f| pinned.contains(&f)))
        })
    }

    fn release_idle(&self, after: Duration, now: Instant) {
        // A writer busy now is not idle: don't wait for it.
        if let Ok(mut writer) = self.writer.try_lock() {
            writer.conn.release_if_idle(after, now);
        }
        for pooled in self.readers.lock().unwrap_or_else(|p| p.into_inner()).iter_mut() {
            pooled.release_if_idle(after, now);
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file. Prefer [`crate::open`].
    pub async fn open(config: SqliteConfig, options: OpenOptions) -> Result<SqliteStore> {
        let path = config.path.clone();
        let writer = tokio::task::spawn_blocking(move || -> Result<Writer> {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                private_dir(dir).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create data directory {}: {e}", dir.display()))
                })?;
            }
            // The database holds password hashes and signing keys: owner
            // only. SQLite gives its -wal and -shm files the same mode.
            private_file(&path).map_err(|e| {
                StoreError::Unavailable(format!("cannot create database file {}: {e}", path.display()))
            })?;
            let conn = open_conn(&path, true)?;
            let mut tables = HashSet::new();
            {
                let mut stmt = conn
                    .prepare(
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                    )
                    .map_err(|e| map_err(e, "sqlite_master"))?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(|e| map_err(e, "sqlite_master"))?;
                for r in rows {
                    tables.insert(r.map_err(|e| map_err(e, "sqlite_master"))?);
                }
            }
            // Tables made before names were encoded keep their upper-case
            // letters: give them their encoded names, keeping their data.
            let legacy: Vec<String> = tables
                .iter()
                .filter(|t| !t.contains('^') && t.chars().any(|c| c.is_ascii_uppercase()))
                .cloned()
                .collect();
            for table in legacy {
                conn.execute_batch(&format!(
                    "ALTER TABLE \"{}\" RENAME TO {}",
                    table.replace('"', "\"\""),
                    qi(&table)
                ))
                .map_err(|e| map_err(e, &table))?;
                tables.remove(&table);
                tables.insert(encode_name(&table));
            }
            let tables = tables.iter().map(|t| decode_name(t)).collect();
            Ok(Writer {
                conn: Pooled::new(conn),
                tables,
            })
        })
        .await
        .map_err(|e| StoreError::Internal(format!("open task failed: {e}")))??;
        let inner = Arc::new(Inner {
            path: config.path,
            writer: Mutex::new(writer),
            queue: Mutex::new(WriteQueue::default()),
            readers: Mutex::new(Vec::new()),
            max_readers: config.readers.max(1),
            reader_permits: Arc::new(tokio::sync::Semaphore::new(config.readers.max(1))),
            unique: Default::default(),
            clock: options.clock,
        });
        let mut background = Vec::new();
        if options.background_sweep {
            background.push(spawn_sweeper(Arc::downgrade(&inner), config.sweep_interval));
            background.push(spawn_idle_release(Arc::downgrade(&inner), config.idle_release));
        }
        Ok(SqliteStore { inner, background })
    }

    /// Queues a write for the writer and waits for the commit that holds it.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (send, receive) = tokio::sync::oneshot::channel();
        let job = Job {
            now: self.inner.clock.now_millis(),
            run: Box::new(move |tx| {
                let out = tx.and_then(f);
                let ok = out.is_ok();
                let deliver: Deliver = Box::new(move |commit| {
                    let result = match (out, commit) {
                        (Ok(value), Ok(())) => Ok(value),
                        (Ok(_), Err(e)) => Err(e.clone()),
                        (Err(e), _) => Err(e),
                    };
                    // The caller may have given up waiting: nothing to tell.
                    let _ = send.send(result);
                });
                (ok, deliver)
            }),
        };
        let start_draining = {
            let mut queue = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.draining, true)
        };
        if start_draining {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || inner.drain());
        }
        receive
            .await
            .map_err(|_| StoreError::Internal("the write was dropped (a panic in the writer)".into()))?
    }

    /// Runs `f` on the calling task when a reader connection is free, or
    /// returns `None` (the caller then goes through [`Self::read`]). The
    /// blocking pool's hand-off (a wake-up there, one back, and the pool's
    /// lock between them) costs more CPU than a point read on a warm
    /// database, so bounded reads skip it; anything whose cost a caller
    /// (an Element) chooses, like a filtered scan or a large document,
    /// stays off the async workers.
    fn read_now<T>(&self, f: impl FnOnce(&Connection, i64) -> T) -> Option<T> {
        let inner = &self.inner;
        let _permit = inner.reader_permits.try_acquire().ok()?;
        let pooled = inner.readers.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
        let out = f(&pooled.conn, inner.clock.now_millis());
        let mut pool = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < inner.max_readers {
            pool.push(Pooled::new(pooled.conn));
        }
        Some(out)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, i64) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        let permit = inner
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Internal("the reader pool is closed".into()))?;
        let now = inner.clock.now_millis();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = inner.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(c) => c.conn,
                None => open_conn(&inner.path, false)?,
            };
            let out = f(&conn, now);
            let mut pool = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < inner.max_readers {
                pool.push(Pooled::new(conn));
            }
            out
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}

fn check_expected(c: &str, doc: &Map<String, Value>, expected: Option<i64>) -> Result<()> {
    if let Some(expected) = expected {
        let actual = document::version_of(doc);
        if actual != expected {
            return Err(StoreError::Conflict(Conflict::Version {
                collection: c.to_string(),
                id: document::id_of(doc).to_string(),
                expected,
                actual,
            }));
        }
    }
    Ok(())
}

#[async_trait]
impl DocumentStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        self.read(|conn, _| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| map_err(e, "ping"))
        })
        .await
    }

    async fn ensure_index(&self, collection: &CollectionName, index: &IndexSpec) -> Result<()> {
        let c = collection.physical().to_string();
        let index = index.clone();
        self.write(move |tx| {
            tx.ensure_table(&c)?;
            let exprs: Vec<String> = index
                .fields
                .iter()
                .map(|f| if f.is(ID) { "id".into() } else { x(f) })
                .collect();
            let sql = format!(
                "CREATE {}INDEX IF NOT EXISTS {} ON {}({})",
                if index.unique { "UNIQUE " } else { "" },
                qi(&format!("{c}|{}", index.name())),
                qi(&c),
                exprs.join(", ")
            );
            if let Err(e) = tx.tx.execute_batch(&sql) {
                let err = map_err(e, &c);
                if err.is_duplicate_key() && tx.purge_expired(&c)? > 0 {
                    tx.tx.execute_batch(&sql).map_err(|e| map_err(e, &c))?;
                } else {
                    return Err(err);
                }
            }
            // Recorded only when the index under that name is this one:
            // `IF NOT EXISTS` keeps an older index whose name matches.
            if index.unique {
                let defined: Option<String> = cached_row(
                    &tx.tx,
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
                    [format!("{c}|{}", index.name())],
                    |r| r.get(0),
                )
                .map_err(|e| map_err(e, &c))?;
                if defined.is_some_and(|d| {
                    d.starts_with("CREATE UNIQUE") && d.ends_with(&format!("({})", exprs.join(", ")))
                }) {
                    tx.unique.push(UniqueChange::Created(c, index.fields));
                }
            }
            Ok(())
        })
        .await
    }

    async fn insert(&self, collection: &CollectionName, document: Value) -> Result<Value> {
        let doc = document::prepare_insert(document)?;
        let c = collection.physical().to_string();
        self.write(move |tx| tx.insert(&c, doc)).await.map(Value::Object)
    }

    async fn get(&self, collection: &CollectionName, id: &str) -> Result<Option<Value>> {
        let c = collection.physical().to_string();
        // One primary-key lookup: read on the calling task unless the
        // document is large.
        let inline = self.read_now(|conn, now| {
            let sql = format!(
                "SELECT {SMALL_DATA} FROM {} WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                qi(&c)
            );
            small_document(
                cached_row(conn, &sql, rusqlite::params![id, now], |r| r.get(0)),
                &c,
            )
        });
        if let Some(Some(read)) = inline {
            return read;
        }
        let id = id.to_string();
        self.read(move |conn, now| {
            let sql = format!(
                "SELECT data FROM {} WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                qi(&c)
            );
            match cached_row(conn, &sql, rusqlite::params![id, now], |r| r.get::<_, String>(0)) {
                Ok(d) => Ok(Some(Value::Object(parse_doc(&d)?))),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) if no_such_table(&e) => Ok(None),
                Err(e) => Err(map_err(e, &c)),
            }
        })
        .await
    }

    async fn find_one(&self, collection: &CollectionName, filter: &Filter) -> Result<Option<Value>> {
        let c = collection.physical().to_string();
        if self.inner.pins_one_row(&c, filter) {
            let inline = self.read_now(|conn, now| {
                let w = where_sql(filter, now);
                let sql = format!(
                    "SELECT {SMALL_DATA} FROM {}{} ORDER BY {} LIMIT 1",
                    qi(&c),
                    w.sql,
                    order_sql(&[])
                );
                let row = conn.prepare_cached(&sql).and_then(|mut stmt| {
                    stmt.query_row(rusqlite::params_from_iter(w.params.iter()), |r| r.get(0))
                });
                small_document(row, &c)
            });
            if let Some(Some(found)) = inline {
                return found;
            }
        }
        let mut query = Query::new(filter.clone());
        query.limit = Some(1);
        Ok(self.find(collection, &query).await?.into_iter().next())
    }

    async fn find(&self, collection: &CollectionName, query: &Query) -> Result<Vec<Value>> {
        let c = collection.physical().to_string();
        let query = query.clone();
        self.read(move |conn, now| {
            let mut w = where_sql(&query.filter, now);
            let mut sql = format!(
                "SELECT data FROM {}{} ORDER BY {} LIMIT ",
                qi(&c),
                w.sql,
                order_sql(&query.sort)
            );
            w.sql.clear();
            w.param(SqlValue::Integer(
                query.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
            ));
            w.push(" OFFSET ");
            w.param(SqlValue::Integer(i64::try_from(query.skip).unwrap_or(i64::MAX)));
            sql.push_str(&w.sql);
            let mut stmt = match conn.prepare_cached(&sql) {
                Ok(s) => s,
                Err(e) if no_such_table(&e) => return Ok(Vec::new()),
                Err(e) => return Err(map_err(e, &c)),
            };
            let rows = stmt
                .query_map(rusqlite::params_from_iter(w.params.iter()), |r| {
                    r.get::<_, String>(0)
                })
                .map_err(|e| map_err(e, &c))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(Value::Object(parse_doc(&r.map_err(|e| map_err(e, &c))?)?));
            }
            Ok(out)
        })
        .await
    }

    async fn count(&self, collection: &CollectionName, filter: &Filter) -> Result<u64> {
        let c = collection.physical().to_string();
        let filter = filter.clone();
        self.read(move |conn, now| {
            let w = where_sql(&filter, now);
            let sql = format!("SELECT COUNT(*) FROM {}{}", qi(&c), w.sql);
            match cached_row(conn, &sql, rusqlite::params_from_iter(w.params.iter()), |r| {
                r.get::<_, i64>(0)
            }) {
                Ok(n) => Ok(u64::try_from(n).unwrap_or(0)),
                Err(e) if no_such_table(&e) => Ok(0),
                Err(e) => Err(map_err(e, &c)),
            }
        })
        .await
    }

    async fn update_by_id(
        &self,
        collection: &CollectionName,
        id: &str,
        update: &Update,
        expected_version: Option<i64>,
    ) -> Result<Value> {
        let c = collection.physical().to_string();
        let id = id.to_string();
        let update = update.clone();
        self.write(move |tx| {
            let Some(mut doc) = tx.select_one(&c, &Filter::by_id(&id), &[])? else {
                return Err(StoreError::NotFound(format!("document `{id}` in `{c}`")));
            };
            check_expected(&c, &doc, expected_version)?;
            update.apply(&mut doc)?;
            tx.replace(&c, doc)
        })
        .await
        .map(Value::Object)
    }

    async fn find_one_and_update(
        &self,
        collection: &CollectionName,
        filter: &Filter,
        update: &Update,
        options: &FindAndModify,
    ) -> Result<Option<Value>> {
        let c = collection.physical().to_string();
        let (filter, update, options) = (filter.clone(), update.clone(), options.clone());
        self.write(move |tx| tx.find_one_and_update(&c, &filter, &update, &options))
            .await
            .map(|d| d.map(Value::Object))
    }

    async fn find_one_and_delete(
        &self,
        collection: &CollectionName,
        filter: &Filter,
        sort: &[SortKey],
    ) -> Result<Option<Value>> {
        let c = collection.physical().to_string();
        let (filter, sort) = (filter.clone(), sort.to_vec());
        self.write(move |tx| {
            let found = tx.select_one(&c, &filter, &sort)?;
            if let Some(d) = &found {
                tx.delete_id(&c, document::id_of(d))?;
            }
            Ok(found.map(Value::Object))
        })
        .await
    }

    async fn delete_by_id(
        &self,
        collection: &CollectionName,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<bool> {
        let c = collection.physical().to_string();
        let id = id.to_string();
        self.write(move |tx| {
            let Some(doc) = tx.select_one(&c, &Filter::by_id(&id), &[])? else {
                return Ok(false);
            };
            check_expected(&c, &doc, expected_version)?;
            tx.delete_id(&c, &id)?;
            Ok(true)
        })
        .await
    }

    async fn delete_many(&self, collection: &CollectionName, filter: &Filter) -> Result<u64> {
        let c = collection.physical().to_string();
        let filter = filter.clone();
        self.write(move |tx| {
            let w = where_sql(&filter, tx.now);
            match tx.tx.execute(
                &format!("DELETE FROM {}{}", qi(&c), w.sql),
                rusqlite::params_from_iter(w.params.iter()),
            ) {
                Ok(n) => Ok(n as u64),
                Err(e) if no_such_table(&e) => Ok(0),
                Err(e) => Err(map_err(e, &c)),
            }
        })
        .await
    }

    async fn transaction(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        self.write(move |tx| {
            let mut out = Vec::with_capacity(ops.len());
            for (i, op) in ops.into_iter().enumerate() {
                out.push(tx.run_op(i, op)?);
            }
            Ok(out)
        })
        .await
    }

    async fn sweep_expired(&self) -> Result<u64> {
        self.write(move |tx| {
            let tables = tx.live_tables();
            let mut n = 0;
            for t in tables {
                n += tx.purge_expired(&t)? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn drop_collection(&self, collection: &CollectionName) -> Result<()> {
        let c = collection.physical().to_string();
        self.write(move |tx| {
            tx.tx
                .execute_batch(&format!("DROP TABLE IF EXISTS {}", qi(&c)))
                .map_err(|e| map_err(e, &c))?;
            tx.created.retain(|t| t != &c);
            tx.unique.push(UniqueChange::Dropped(c.clone()));
            tx.dropped.push(c);
            Ok(())
        })
        .await
    }
}

/// The SQL `find` runs for a filter (for tests and `EXPLAIN QUERY PLAN`).
#[doc(hidden)]
pub fn debug_find_sql(collection: &CollectionName, filter: &Filter) -> (String, usize) {
    let w = where_sql(filter, 0);
    (
        format!("SELECT data FROM {}{}", qi(collection.physical()), w.sql),
        w.params.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DocumentStore, OpenOptions, SqliteConfig};
    use crate::namespace::Namespace;

    /// A cached statement with a bound `LIMIT` runs again with other values
    /// without being compiled again (see `open_conn`).
    #[test]
    fn cached_statements_are_not_prepared_again_for_new_limits() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.sqlite");
        let conn = open_conn(&path, true).expect("open");
        conn.execute_batch(
            "CREATE TABLE t (id TEXT PRIMARY KEY, data TEXT); \
             INSERT INTO t VALUES ('a', '1'), ('b', '2'), ('c', '3');",
        )
        .expect("schema");
        let sql = "SELECT data FROM t WHERE id > ?1 ORDER BY id LIMIT ?2 OFFSET ?3";
        for (limit, expected) in [(1, 1), (2, 2), (-1, 3), (1, 1)] {
            let mut stmt = conn.prepare_cached(sql).expect("prepare");
            let rows: Vec<String> = stmt
                .query_map(rusqlite::params!["", limit, 0], |r| r.get(0))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            assert_eq!(rows.len(), expected);
        }
        let stmt = conn.prepare_cached(sql).expect("prepare");
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    /// Which filters the store reads on the calling task: those that pin
    /// the id or a unique index it committed, until the table is dropped.
    #[tokio::test]
    async fn filters_that_pin_a_unique_index_find_one_row() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path()), OpenOptions::default())
            .await
            .expect("open");
        let c = Namespace::core().collection("pinned").expect("name");
        let table = c.physical().to_string();
        let pins = |filter: serde_json::Value| {
            store
                .inner
                .pins_one_row(&table, &Filter::parse(&filter).expect("filter"))
        };
        assert!(pins(serde_json::json!({"_id": "a"})));
        assert!(!pins(serde_json::json!({"p": "dev", "s": "1"})), "no index yet");
        store
            .ensure_index(&c, &IndexSpec::unique(&["p", "s"]).expect("spec"))
            .await
            .expect("index");
        store
            .ensure_index(&c, &IndexSpec::non_unique(&["n"]).expect("spec"))
            .await
            .expect("index");
        assert!(pins(serde_json::json!({"p": "dev", "s": "1"})));
        assert!(pins(serde_json::json!({"s": 1, "p": "dev", "other": {"$gt": 3}})));
        assert!(pins(
            serde_json::json!({"$and": [{"p": "dev"}, {"s": {"$in": ["1"]}}]})
        ));
        assert!(!pins(serde_json::json!({"p": "dev"})), "one field of two");
        assert!(
            !pins(serde_json::json!({"p": "dev", "s": {"$gt": "1"}})),
            "a range"
        );
        assert!(
            !pins(serde_json::json!({"p": "dev", "s": null})),
            "null matches many"
        );
        assert!(!pins(
            serde_json::json!({"$or": [{"p": "dev", "s": "1"}, {"n": 2}]})
        ));
        assert!(!pins(serde_json::json!({"n": 2})), "not unique");

        // Found inline or not, the answer is the same.
        for i in 0..3 {
            let doc = serde_json::json!({"p": "dev", "s": i.to_string(), "body": "x".repeat(i * 40_000)});
            store.insert(&c, doc).await.expect("insert");
        }
        for i in 0..3 {
            let filter = Filter::parse(&serde_json::json!({"p": "dev", "s": i.to_string()})).expect("filter");
            let found = store.find_one(&c, &filter).await.expect("find").expect("found");
            assert_eq!(found["body"].as_str().map(str::len), Some(i * 40_000));
        }

        // Dropped, the table forgets its indexes, even when it comes back.
        store.drop_collection(&c).await.expect("drop");
        assert!(!pins(serde_json::json!({"p": "dev", "s": "1"})));
        store
            .insert(&c, serde_json::json!({"p": "dev"}))
            .await
            .expect("insert");
        assert!(!pins(serde_json::json!({"p": "dev", "s": "1"})));

        // An older index with the same name but other fields is not taken
        // for this one: `p__s` names both a field and the pair (p, s).
        let d = Namespace::core().collection("named").expect("name");
        store
            .ensure_index(&d, &IndexSpec::unique(&["p__s"]).expect("spec"))
            .await
            .expect("index");
        store
            .ensure_index(&d, &IndexSpec::unique(&["p", "s"]).expect("spec"))
            .await
            .expect("index");
        let named = d.physical().to_string();
        let filter = Filter::parse(&serde_json::json!({"p": "dev", "s": "1"})).expect("filter");
        assert!(!store.inner.pins_one_row(&named, &filter));
        assert!(store.inner.pins_one_row(
            &named,
            &Filter::parse(&serde_json::json!({"p__s": "x"})).expect("filter")
        ));

        // A unique index that could not be built is not known either.
        let e = Namespace::core().collection("dupes").expect("name");
        for _ in 0..2 {
            store
                .insert(&e, serde_json::json!({"k": "same"}))
                .await
                .expect("insert");
        }
        store
            .ensure_index(&e, &IndexSpec::unique(&["k"]).expect("spec"))
            .await
            .expect_err("duplicates");
        let filter = Filter::parse(&serde_json::json!({"k": "same"})).expect("filter");
        assert!(!store.inner.pins_one_row(e.physical(), &filter));
    }

    /// Bounded reads do not wait for the blocking pool: with its only
    /// thread taken, a small document is found by id and by a unique
    /// index, while a large one waits for the thread.
    #[test]
    fn bounded_reads_run_on_the_calling_task() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path()), OpenOptions::default())
                .await
                .expect("open");
            let c = Namespace::core().collection("inline").expect("name");
            store
                .ensure_index(&c, &IndexSpec::unique(&["k"]).expect("spec"))
                .await
                .expect("index");
            for (id, size) in [("small", 10), ("large", 100_000)] {
                let doc = serde_json::json!({"_id": id, "k": id, "body": "x".repeat(size)});
                store.insert(&c, doc).await.expect("insert");
            }
            // A read through the pool leaves a connection in it.
            assert_eq!(store.count(&c, &Filter::all()).await.expect("count"), 2);

            let (release, held) = std::sync::mpsc::channel::<()>();
            let blocker = tokio::task::spawn_blocking(move || held.recv());
            let soon = Duration::from_secs(2);
            let small = tokio::time::timeout(soon, store.get(&c, "small")).await;
            assert!(matches!(small, Ok(Ok(Some(_)))), "{small:?}");
            let by_key = Filter::eq("k", "small").expect("filter");
            let found = tokio::time::timeout(soon, store.find_one(&c, &by_key)).await;
            assert!(matches!(found, Ok(Ok(Some(_)))), "{found:?}");
            let missing = tokio::time::timeout(soon, store.get(&c, "none")).await;
            assert!(matches!(missing, Ok(Ok(None))), "{missing:?}");

            let large = store.get(&c, "large");
            tokio::pin!(large);
            assert!(
                tokio::time::timeout(Duration::from_millis(200), &mut large)
                    .await
                    .is_err(),
                "a large document waits for the blocking pool"
            );
            release.send(()).expect("release");
            blocker.await.expect("blocker").expect("released");
            let large = large.await.expect("get").expect("found");
            assert_eq!(large["body"].as_str().map(str::len), Some(100_000));
        });
    }

    /// Bytes the connection's page cache holds now.
    fn cache_used(conn: &Connection) -> i64 {
        let (mut current, mut highest) = (0, 0);
        // SAFETY: the handle is live for the borrow and the out-pointers are
        // valid; sqlite3_db_status only reads the connection's counters.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_db_status(
                conn.handle(),
                libsqlite3_sys::SQLITE_DBSTATUS_CACHE_USED,
                &mut current,
                &mut highest,
                0,
            )
        };
        assert_eq!(rc, libsqlite3_sys::SQLITE_OK);
        i64::from(current)
    }

    fn caches(store: &SqliteStore) -> i64 {
        let inner = &store.inner;
        let writer = cache_used(&inner.writer.lock().expect("writer").conn.conn);
        let readers: i64 = inner
            .readers
            .lock()
            .expect("readers")
            .iter()
            .map(|p| cache_used(&p.conn))
            .sum();
        writer + readers
    }

    /// A store whose connections all hold pages: 1500 documents of 1 KB,
    /// written, then read by as many scans as there are readers.
    async fn warmed(
        background: bool,
        idle_release: Duration,
    ) -> (tempfile::TempDir, SqliteStore, CollectionName) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = SqliteConfig::in_data_dir(dir.path());
        config.idle_release = idle_release;
        let options = OpenOptions {
            background_sweep: background,
            ..OpenOptions::default()
        };
        let store = SqliteStore::open(config, options).await.expect("open");
        let c = Namespace::core().collection("cached").expect("name");
        let filler = "x".repeat(1000);
        for i in 0..1500 {
            store
                .insert(&c, serde_json::json!({ "n": i, "filler": filler }))
                .await
                .expect("insert");
        }
        // Parallel scans take distinct connections.
        let all = everything();
        let scans = (0..4).map(|_| store.find(&c, &all));
        for found in futures_util::future::join_all(scans).await {
            assert_eq!(found.expect("find").len(), 1500);
        }
        (dir, store, c)
    }

    fn everything() -> Query {
        Query::new(Filter::parse(&serde_json::json!({})).expect("filter"))
    }

    // One test: SQLite's page caches share one LRU in the process, so a
    // release in a concurrent test would empty this one's caches too.
    #[tokio::test]
    async fn connections_unused_for_a_while_free_the_page_cache() {
        let (_dir, store, c) = warmed(false, Duration::from_secs(1)).await;
        let busy = caches(&store);
        assert!(busy > 4 << 20, "the load filled the caches: {busy} bytes");
        let inner = &store.inner;
        let warmed_at = Instant::now();
        inner.release_idle(Duration::from_secs(1), warmed_at);
        assert_eq!(caches(&store), busy, "nothing is freed before the idle time");

        // One connection used after the others: a second later, the others
        // are idle and free the cache; it is not idle yet.
        let every = Filter::parse(&serde_json::json!({})).expect("filter");
        assert_eq!(store.count(&c, &every).await.expect("count"), 1500);
        inner.release_idle(Duration::from_secs(1), warmed_at + Duration::from_secs(1));
        let freed = caches(&store);
        assert!(
            freed < busy / 2,
            "after the release {freed} of {busy} bytes are cached"
        );
        let released = |store: &SqliteStore| {
            let inner = &store.inner;
            let mut flags = vec![inner.writer.lock().expect("writer").conn.released];
            flags.extend(inner.readers.lock().expect("readers").iter().map(|p| p.released));
            flags
        };
        assert_eq!(
            released(&store).iter().filter(|r| !**r).count(),
            1,
            "only the connection just used is not released yet: {:?}",
            released(&store)
        );

        // Later, it is idle too; the data is all there.
        inner.release_idle(Duration::from_secs(1), Instant::now() + Duration::from_secs(1));
        assert!(released(&store).iter().all(|r| *r));
        let idle = caches(&store);
        assert!(idle < busy / 10, "idle caches: {idle} bytes, busy: {busy}");
        assert_eq!(store.find(&c, &everything()).await.expect("find").len(), 1500);
        drop(store);

        // The background task does the same on its own.
        let (_dir, store, _c) = warmed(true, Duration::from_millis(50)).await;
        let started = Instant::now();
        let mut idle = caches(&store);
        while idle > 1 << 20 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still {idle} bytes cached after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            idle = caches(&store);
        }
    }
}
