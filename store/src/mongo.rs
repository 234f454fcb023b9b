//! MongoDB backend (official `mongodb` driver).
//!
//! All collections live in one database; documents are stored as BSON with a
//! string `_id`. JSON integers are stored as BSON `Int64`, other numbers as
//! `Double`; `_expiresAt` is stored as a BSON date (so the TTL index on it
//! works) and read back as epoch milliseconds. Every read adds
//! `{$or: [{_expiresAt: null}, {_expiresAt: {$gt: now}}]}` because TTL
//! deletion runs only periodically (every 60 s on MongoDB and SecantusDB).
//!
//! Operator updates run natively (`$inc` stays atomic under contention) with
//! an added `{$inc: {_version: 1}}`; replacements run as a compare-and-set loop
//! on `_version`. Transactions use a session when the deployment is a replica
//! set or sharded cluster; on a standalone server [`DocumentStore::transaction`]
//! returns [`StoreError::Unsupported`] (see the crate docs for the design that
//! needs no transaction).
//!
//! Driver errors map as: network / server selection / pool cleared →
//! `Unavailable` (the driver reconnects by itself once the server is back);
//! code 11000 → duplicate-key `Conflict`; update-shape errors → `InvalidUpdate`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument as MReturn};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use serde_json::{Map, Value};

use crate::api::{
    DocumentStore, FindAndModify, IndexSpec, MongoConfig, OpenOptions, ReturnDocument, WriteOp, WriteOutcome,
};
use crate::clock::Clock;
use crate::document::{self, EXPIRES_AT, FieldPath, ID, VERSION};
use crate::error::{Conflict, Result, StoreError};
use crate::filter::{Cmp, Filter, Order, Query, SortKey};
use crate::namespace::CollectionName;
use crate::update::{Update, UpdateOp};

/// The MongoDB store. Open it with [`crate::open`].
pub struct MongoStore {
    inner: Arc<Inner>,
    sweeper: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    client: Client,
    db: Database,
    clock: Arc<dyn Clock>,
    transactions: bool,
    ttl_ready: Mutex<HashSet<String>>,
}

impl Drop for MongoStore {
    fn drop(&mut self) {
        if let Some(h) = self.sweeper.take() {
            h.abort();
        }
    }
}

/// Attempts of compare-and-set loops and transient-transaction retries.
const MAX_ATTEMPTS: usize = 32;
/// How long a transaction is retried on transient write conflicts.
const TRANSACTION_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);
/// Message prefixes of retryable transaction errors (network errors are
/// mapped to "MongoDB is unreachable" first and are not retried).
const WRITE_CONFLICT: &str = "MongoDB write conflict (transient)";
const TRANSIENT: &str = "MongoDB transient transaction error";

// ---------------------------------------------------------------- conversion

fn json_to_bson(v: &Value) -> Result<Bson> {
    Ok(match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Bson::Int64(i),
            (None, Some(f)) if n.is_f64() => Bson::Double(f),
            _ => {
                return Err(StoreError::InvalidDocument(format!(
                    "integer {n} does not fit in a signed 64-bit integer"
                )));
            }
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect::<Result<_>>()?),
        Value::Object(m) => Bson::Document(map_to_doc(m)?),
    })
}

/// A top-level value of `_expiresAt`: epoch millis → BSON date.
fn expiry_to_bson(v: &Value) -> Result<Bson> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(ms) => Ok(Bson::DateTime(DateTime::from_millis(ms))),
            None => json_to_bson(v),
        },
        _ => json_to_bson(v),
    }
}

fn map_to_doc(m: &Map<String, Value>) -> Result<Document> {
    let mut d = Document::new();
    for (k, v) in m {
        d.insert(k.clone(), json_to_bson(v)?);
    }
    Ok(d)
}

fn stored_to_bson(m: &Map<String, Value>) -> Result<Document> {
    let mut d = map_to_doc(m)?;
    if let Some(v) = m.get(EXPIRES_AT) {
        d.insert(EXPIRES_AT, expiry_to_bson(v)?);
    }
    Ok(d)
}

fn bson_to_json(b: &Bson) -> Value {
    match b {
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Int32(i) => Value::from(*i),
        Bson::Int64(i) => Value::from(*i),
        Bson::Double(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(a) => Value::Array(a.iter().map(bson_to_json).collect()),
        Bson::Document(d) => Value::Object(doc_to_map(d)),
        Bson::DateTime(dt) => Value::from(dt.timestamp_millis()),
        Bson::ObjectId(o) => Value::String(o.to_hex()),
        Bson::Decimal128(d) => Value::String(d.to_string()),
        other => Value::String(other.to_string()),
    }
}

fn doc_to_map(d: &Document) -> Map<String, Value> {
    d.iter().map(|(k, v)| (k.clone(), bson_to_json(v))).collect()
}

fn doc_to_json(d: &Document) -> Value {
    Value::Object(doc_to_map(d))
}

fn filter_value(p: &FieldPath, v: &Value) -> Result<Bson> {
    if p.is(EXPIRES_AT) {
        expiry_to_bson(v)
    } else {
        json_to_bson(v)
    }
}

fn filter_to_bson(f: &Filter) -> Result<Document> {
    Ok(match f {
        Filter::And(v) if v.is_empty() => Document::new(),
        Filter::And(v) => doc! { "$and": v.iter().map(filter_to_bson).collect::<Result<Vec<_>>>()? },
        Filter::Or(v) => doc! { "$or": v.iter().map(filter_to_bson).collect::<Result<Vec<_>>>()? },
        Filter::Field(p, cmp) => {
            let cond = match cmp {
                Cmp::Eq(v) => doc! { "$eq": filter_value(p, v)? },
                Cmp::Ne(v) => doc! { "$ne": filter_value(p, v)? },
                Cmp::Gt(v) => doc! { "$gt": filter_value(p, v)? },
                Cmp::Gte(v) => doc! { "$gte": filter_value(p, v)? },
                Cmp::Lt(v) => doc! { "$lt": filter_value(p, v)? },
                Cmp::Lte(v) => doc! { "$lte": filter_value(p, v)? },
                Cmp::In(vs) => {
                    doc! { "$in": vs.iter().map(|v| filter_value(p, v)).collect::<Result<Vec<_>>>()? }
                }
                Cmp::Nin(vs) => {
                    doc! { "$nin": vs.iter().map(|v| filter_value(p, v)).collect::<Result<Vec<_>>>()? }
                }
                Cmp::Exists(b) => doc! { "$exists": *b },
            };
            let mut d = Document::new();
            d.insert(p.dotted(), cond);
            d
        }
    })
}

fn is_live(d: &Map<String, Value>, now: i64) -> bool {
    !matches!(d.get(EXPIRES_AT).and_then(Value::as_i64), Some(t) if t <= now)
}

fn alive(now: i64) -> Document {
    doc! { "$or": [ { EXPIRES_AT: Bson::Null }, { EXPIRES_AT: { "$gt": DateTime::from_millis(now) } } ] }
}

fn live_filter(f: &Filter, now: i64) -> Result<Document> {
    let user = filter_to_bson(f)?;
    Ok(if user.is_empty() {
        alive(now)
    } else {
        doc! { "$and": [ user, alive(now) ] }
    })
}

fn sort_doc(sort: &[SortKey]) -> Document {
    let mut d = Document::new();
    for k in sort {
        d.insert(k.path.dotted(), if k.order == Order::Asc { 1 } else { -1 });
    }
    if !d.contains_key(ID) {
        d.insert(ID, 1);
    }
    d
}

fn update_to_bson(ops: &[UpdateOp]) -> Result<Document> {
    let (mut set, mut unset, mut inc, mut push) =
        (Document::new(), Document::new(), Document::new(), Document::new());
    for op in ops {
        match op {
            UpdateOp::Set(p, v) => {
                set.insert(p.dotted(), filter_value(p, v)?);
            }
            UpdateOp::Unset(p) => {
                unset.insert(p.dotted(), "");
            }
            UpdateOp::Inc(p, n) => {
                inc.insert(p.dotted(), json_to_bson(&Value::Number(n.clone()))?);
            }
            UpdateOp::Push(p, v) => {
                push.insert(p.dotted(), json_to_bson(v)?);
            }
        }
    }
    inc.insert(VERSION, 1i64);
    let mut u = Document::new();
    for (k, d) in [("$set", set), ("$unset", unset), ("$inc", inc), ("$push", push)] {
        if !d.is_empty() {
            u.insert(k, d);
        }
    }
    Ok(u)
}

// ---------------------------------------------------------------- errors

fn error_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::InsertMany(i) => i.write_errors.as_ref().and_then(|w| w.first()).map(|w| w.code),
        _ => None,
    }
}

fn map_err(e: mongodb::error::Error, collection: &str) -> StoreError {
    match e.kind.as_ref() {
        ErrorKind::Io(_) | ErrorKind::ServerSelection { .. } | ErrorKind::ConnectionPoolCleared { .. } => {
            return StoreError::Unavailable(format!("MongoDB is unreachable: {e}"));
        }
        ErrorKind::Authentication { .. } => {
            return StoreError::Unavailable(format!("MongoDB authentication failed: {e}"));
        }
        _ => {}
    }
    match error_code(&e) {
        Some(11000) | Some(11001) => StoreError::Conflict(Conflict::DuplicateKey {
            collection: collection.to_string(),
            detail: e.to_string(),
        }),
        // BadValue, FailedToParse, TypeMismatch, PathNotViable,
        // ConflictingUpdateOperators, ImmutableField, DollarPrefixedFieldName...
        Some(2 | 9 | 14 | 28 | 40 | 52 | 56 | 66) => StoreError::InvalidUpdate(e.to_string()),
        // NotWritablePrimary, NotPrimaryNoSecondaryOk, InterruptedAtShutdown,
        // ShutdownInProgress, HostUnreachable...
        Some(6 | 7 | 89 | 91 | 189 | 10107 | 11600 | 11602 | 13435 | 13436) => {
            StoreError::Unavailable(format!("MongoDB is not available: {e}"))
        }
        Some(112) => StoreError::Unavailable(format!("{WRITE_CONFLICT}: {e}")),
        _ if e.contains_label("TransientTransactionError") => {
            StoreError::Unavailable(format!("{TRANSIENT}: {e}"))
        }
        _ if e.contains_label("RetryableWriteError") => {
            StoreError::Unavailable(format!("MongoDB is not available: {e}"))
        }
        _ => StoreError::Internal(format!("MongoDB: {e}")),
    }
}

fn is_transient(e: &mongodb::error::Error) -> bool {
    e.contains_label("TransientTransactionError") || error_code(e) == Some(112)
}

type Sess<'a> = Option<&'a mut ClientSession>;

macro_rules! run {
    ($action:expr, $sess:expr) => {
        match $sess.as_deref_mut() {
            Some(s) => $action.session(s).await,
            None => $action.await,
        }
    };
}

// ---------------------------------------------------------------- store

impl MongoStore {
    /// Connects and pings once. Prefer [`crate::open`].
    pub async fn open(config: MongoConfig, options: OpenOptions) -> Result<MongoStore> {
        let mut opts = ClientOptions::parse(&config.uri)
            .await
            .map_err(|e| StoreError::Unavailable(format!("invalid MongoDB URI or DNS failure: {e}")))?;
        if opts.server_selection_timeout.is_none() {
            opts.server_selection_timeout = Some(config.server_selection_timeout);
        }
        if opts.connect_timeout.is_none() {
            opts.connect_timeout = Some(config.connect_timeout);
        }
        if opts.app_name.is_none() {
            opts.app_name = Some("elements".to_string());
        }
        let client = Client::with_options(opts).map_err(|e| map_err(e, ""))?;
        let db = client.database(&config.database);
        let hello = db
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(|e| map_err(e, ""))?;
        let transactions = hello.get_str("setName").is_ok() || hello.get_str("msg") == Ok("isdbgrid");
        let inner = Arc::new(Inner {
            client,
            db,
            clock: options.clock,
            transactions,
            ttl_ready: Mutex::new(HashSet::new()),
        });
        let sweeper = options.background_sweep.then(|| {
            let weak: Weak<Inner> = Arc::downgrade(&inner);
            let every = config.sweep_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    let store = MongoStore { inner, sweeper: None };
                    let _ = store.sweep_expired().await;
                }
            })
        });
        Ok(MongoStore { inner, sweeper })
    }

    /// Whether [`DocumentStore::transaction`] is available (replica set or
    /// sharded cluster).
    pub fn supports_transactions(&self) -> bool {
        self.inner.transactions
    }

    /// Drops the whole database (for tests).
    pub async fn drop_database(&self) -> Result<()> {
        self.inner.db.drop().await.map_err(|e| map_err(e, ""))
    }

    fn coll(&self, c: &str) -> Collection<Document> {
        self.inner.db.collection::<Document>(c)
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_millis()
    }

    async fn ensure_ttl(&self, c: &str) -> Result<()> {
        if self
            .inner
            .ttl_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(c)
        {
            return Ok(());
        }
        let model = IndexModel::builder()
            .keys(doc! { EXPIRES_AT: 1 })
            .options(
                IndexOptions::builder()
                    .name("ttl__expiresAt".to_string())
                    .expire_after(std::time::Duration::from_secs(0))
                    .build(),
            )
            .build();
        self.coll(c)
            .create_index(model)
            .await
            .map_err(|e| map_err(e, c))?;
        self.inner
            .ttl_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.to_string());
        Ok(())
    }

    async fn purge_expired(&self, c: &str, sess: &mut Sess<'_>) -> Result<u64> {
        let f = doc! { EXPIRES_AT: { "$lte": DateTime::from_millis(self.now()) } };
        let r = run!(self.coll(c).delete_many(f), sess).map_err(|e| map_err(e, c))?;
        Ok(r.deleted_count)
    }

    async fn insert_doc(&self, c: &str, doc: &Map<String, Value>, sess: &mut Sess<'_>) -> Result<()> {
        let b = stored_to_bson(doc)?;
        match run!(self.coll(c).insert_one(b.clone()), sess) {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = map_err(e, c);
                // Expired documents never cause conflicts: purge and retry once.
                // (In a transaction the failed write aborted it: `transaction`
                // purges and retries the whole batch instead.)
                if err.is_duplicate_key() && sess.is_none() && self.purge_expired(c, sess).await? > 0 {
                    run!(self.coll(c).insert_one(b), sess).map_err(|e| map_err(e, c))?;
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn find_one_doc(
        &self,
        c: &str,
        filter: &Filter,
        sort: &[SortKey],
        sess: &mut Sess<'_>,
    ) -> Result<Option<Map<String, Value>>> {
        let f = live_filter(filter, self.now())?;
        let r = run!(self.coll(c).find_one(f).sort(sort_doc(sort)), sess).map_err(|e| map_err(e, c))?;
        Ok(r.as_ref().map(doc_to_map))
    }

    /// Compare-and-set replacement of a fetched document.
    async fn cas_replace(
        &self,
        c: &str,
        before: &Map<String, Value>,
        update: &Update,
        sess: &mut Sess<'_>,
    ) -> Result<Option<Map<String, Value>>> {
        let mut after = before.clone();
        update.apply(&mut after)?;
        let f = doc! { ID: document::id_of(before), VERSION: document::version_of(before) };
        let r =
            run!(self.coll(c).replace_one(f, stored_to_bson(&after)?), sess).map_err(|e| map_err(e, c))?;
        Ok((r.matched_count == 1).then_some(after))
    }

    async fn fam(
        &self,
        c: &str,
        filter: &Filter,
        update: &Update,
        opts: &FindAndModify,
        sess: &mut Sess<'_>,
    ) -> Result<Option<Map<String, Value>>> {
        if sess.is_none() {
            self.ensure_ttl(c).await?;
        }
        match update {
            Update::Ops(ops) => {
                let mut u = update_to_bson(ops)?;
                if opts.upsert && !filter.equalities().iter().any(|(p, _)| p.is(ID)) {
                    u.insert("$setOnInsert", doc! { ID: document::new_id() });
                }
                let ret = match opts.return_document {
                    ReturnDocument::Before => MReturn::Before,
                    ReturnDocument::After => MReturn::After,
                };
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let f = live_filter(filter, self.now())?;
                    let coll = self.coll(c);
                    let action = coll
                        .find_one_and_update(f, u.clone())
                        .sort(sort_doc(&opts.sort))
                        .upsert(opts.upsert)
                        .return_document(ret.clone());
                    match run!(action, sess) {
                        Ok(d) => return Ok(d.as_ref().map(doc_to_map)),
                        Err(e) => {
                            let err = map_err(e, c);
                            // Two racing upserts: the loser retries and now matches.
                            // An expired document holding the key: purge, retry.
                            if err.is_duplicate_key()
                                && attempt < 3
                                && sess.is_none()
                                && (opts.upsert || self.purge_expired(c, sess).await? > 0)
                            {
                                continue;
                            }
                            return Err(err);
                        }
                    }
                }
            }
            Update::Replace(_) => {
                for _ in 0..MAX_ATTEMPTS {
                    match self.find_one_doc(c, filter, &opts.sort, sess).await? {
                        Some(before) => {
                            if let Some(after) = self.cas_replace(c, &before, update, sess).await? {
                                return Ok(Some(match opts.return_document {
                                    ReturnDocument::Before => before,
                                    ReturnDocument::After => after,
                                }));
                            }
                        }
                        None if opts.upsert => {
                            let seed = update.upsert_seed(filter)?;
                            match self.insert_doc(c, &seed, sess).await {
                                Ok(()) => {
                                    return Ok(match opts.return_document {
                                        ReturnDocument::Before => None,
                                        ReturnDocument::After => Some(seed),
                                    });
                                }
                                Err(e) if e.is_duplicate_key() && sess.is_none() => continue,
                                Err(e) => return Err(e),
                            }
                        }
                        None => return Ok(None),
                    }
                }
                Err(StoreError::Unavailable(format!(
                    "replacement in `{c}` kept losing to concurrent writes"
                )))
            }
        }
    }

    async fn run_op(&self, i: usize, op: &WriteOp, sess: &mut Sess<'_>) -> Result<WriteOutcome> {
        let precondition =
            |detail: String| StoreError::Conflict(Conflict::Precondition { op_index: i, detail });
        match op {
            WriteOp::Insert { collection, document } => {
                let doc = document::prepare_insert(document.clone())?;
                self.insert_doc(collection.physical(), &doc, sess).await?;
                Ok(WriteOutcome::Inserted(Value::Object(doc)))
            }
            WriteOp::Update {
                collection,
                filter,
                update,
                upsert,
                require_match,
            } => {
                let opts = FindAndModify {
                    upsert: *upsert,
                    ..Default::default()
                };
                let r = self
                    .fam(collection.physical(), filter, update, &opts, sess)
                    .await?;
                if r.is_none() && *require_match {
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
                let f = live_filter(filter, self.now())?;
                let r = run!(self.coll(c).find_one_and_delete(f).sort(sort_doc(&[])), sess)
                    .map_err(|e| map_err(e, c))?;
                if r.is_none() && *require_match {
                    return Err(precondition(format!(
                        "no document in `{collection}` matched the delete"
                    )));
                }
                Ok(WriteOutcome::Deleted(r.as_ref().map(doc_to_json)))
            }
            WriteOp::Require {
                collection,
                filter,
                exists,
            } => {
                let found = self
                    .find_one_doc(collection.physical(), filter, &[], sess)
                    .await?
                    .is_some();
                if found != *exists {
                    return Err(precondition(format!(
                        "a matching document in `{collection}` {}",
                        if *exists { "does not exist" } else { "exists" }
                    )));
                }
                Ok(WriteOutcome::Checked)
            }
        }
    }

    async fn version_conflict_or_not_found(
        &self,
        c: &str,
        id: &str,
        expected: Option<i64>,
    ) -> Result<StoreError> {
        match (
            expected,
            self.find_one_doc(c, &Filter::by_id(id), &[], &mut None).await?,
        ) {
            (Some(expected), Some(d)) => Ok(StoreError::Conflict(Conflict::Version {
                collection: c.to_string(),
                id: id.to_string(),
                expected,
                actual: document::version_of(&d),
            })),
            _ => Ok(StoreError::NotFound(format!("document `{id}` in `{c}`"))),
        }
    }
}

fn id_version_filter(id: &str, expected: Option<i64>) -> Filter {
    let f = Filter::by_id(id);
    match expected {
        Some(v) => f.and(Filter::Field(FieldPath::top(VERSION), Cmp::Eq(Value::from(v)))),
        None => f,
    }
}

#[async_trait]
impl DocumentStore for MongoStore {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> Result<()> {
        self.inner
            .db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| map_err(e, ""))
    }

    async fn ensure_index(&self, collection: &CollectionName, index: &IndexSpec) -> Result<()> {
        let c = collection.physical();
        self.ensure_ttl(c).await?;
        let mut keys = Document::new();
        let mut partial = Document::new();
        for f in &index.fields {
            keys.insert(f.dotted(), 1);
            partial.insert(f.dotted(), doc! { "$exists": true });
        }
        let mut o = IndexOptions::builder().name(index.name()).build();
        if index.unique {
            o.unique = Some(true);
            // Same semantics both ways (documents missing the field are not
            // indexed); a single-field *sparse* index is one SecantusDB's query
            // planner uses, a partial one it never does.
            if index.fields.len() == 1 {
                o.sparse = Some(true);
            } else {
                o.partial_filter_expression = Some(partial);
            }
        }
        let model = IndexModel::builder().keys(keys).options(o).build();
        match self.coll(c).create_index(model.clone()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = map_err(e, c);
                if err.is_duplicate_key() && self.purge_expired(c, &mut None).await? > 0 {
                    self.coll(c)
                        .create_index(model)
                        .await
                        .map_err(|e| map_err(e, c))?;
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn insert(&self, collection: &CollectionName, document: Value) -> Result<Value> {
        let c = collection.physical();
        let doc = document::prepare_insert(document)?;
        self.ensure_ttl(c).await?;
        self.insert_doc(c, &doc, &mut None).await?;
        Ok(Value::Object(doc))
    }

    async fn get(&self, collection: &CollectionName, id: &str) -> Result<Option<Value>> {
        // `{_id: id}` alone, liveness checked here: SecantusDB uses an index only
        // for single-predicate filters (see the crate docs).
        let c = collection.physical();
        let r = self
            .coll(c)
            .find_one(doc! { ID: id })
            .await
            .map_err(|e| map_err(e, c))?;
        let now = self.now();
        Ok(r.map(|d| doc_to_map(&d))
            .filter(|d| is_live(d, now))
            .map(Value::Object))
    }

    async fn find(&self, collection: &CollectionName, query: &Query) -> Result<Vec<Value>> {
        // The user's filter goes to the server alone (so SecantusDB can use an
        // index for a single-field filter); expired documents are dropped here,
        // and skip/limit applied after that, so they count only live documents.
        let c = collection.physical();
        let want = match query.limit {
            Some(0) => return Ok(Vec::new()),
            Some(l) => Some(query.skip.saturating_add(l)),
            None => None,
        };
        let coll = self.coll(c);
        let mut action = coll
            .find(filter_to_bson(&query.filter)?)
            .sort(sort_doc(&query.sort));
        if let Some(w) = want {
            action = action.batch_size(u32::try_from(w.saturating_add(16).min(1000)).unwrap_or(1000));
        }
        let mut cursor = action.await.map_err(|e| map_err(e, c))?;
        let now = self.now();
        let (mut out, mut skipped) = (Vec::new(), 0u64);
        while let Some(d) = cursor.try_next().await.map_err(|e| map_err(e, c))? {
            let d = doc_to_map(&d);
            if !is_live(&d, now) {
                continue;
            }
            if skipped < query.skip {
                skipped += 1;
                continue;
            }
            out.push(Value::Object(d));
            if query.limit.is_some_and(|l| out.len() as u64 >= l) {
                break;
            }
        }
        Ok(out)
    }

    async fn count(&self, collection: &CollectionName, filter: &Filter) -> Result<u64> {
        let c = collection.physical();
        let f = live_filter(filter, self.now())?;
        self.coll(c).count_documents(f).await.map_err(|e| map_err(e, c))
    }

    async fn update_by_id(
        &self,
        collection: &CollectionName,
        id: &str,
        update: &Update,
        expected_version: Option<i64>,
    ) -> Result<Value> {
        let c = collection.physical();
        let filter = id_version_filter(id, expected_version);
        let opts = FindAndModify::default();
        match self.fam(c, &filter, update, &opts, &mut None).await? {
            Some(d) => Ok(Value::Object(d)),
            None => Err(self
                .version_conflict_or_not_found(c, id, expected_version)
                .await?),
        }
    }

    async fn find_one_and_update(
        &self,
        collection: &CollectionName,
        filter: &Filter,
        update: &Update,
        options: &FindAndModify,
    ) -> Result<Option<Value>> {
        Ok(self
            .fam(collection.physical(), filter, update, options, &mut None)
            .await?
            .map(Value::Object))
    }

    async fn find_one_and_delete(
        &self,
        collection: &CollectionName,
        filter: &Filter,
        sort: &[SortKey],
    ) -> Result<Option<Value>> {
        let c = collection.physical();
        let f = live_filter(filter, self.now())?;
        let r = self
            .coll(c)
            .find_one_and_delete(f)
            .sort(sort_doc(sort))
            .await
            .map_err(|e| map_err(e, c))?;
        Ok(r.as_ref().map(doc_to_json))
    }

    async fn delete_by_id(
        &self,
        collection: &CollectionName,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<bool> {
        let c = collection.physical();
        let f = live_filter(&id_version_filter(id, expected_version), self.now())?;
        let r = self
            .coll(c)
            .find_one_and_delete(f)
            .await
            .map_err(|e| map_err(e, c))?;
        if r.is_some() {
            return Ok(true);
        }
        match self
            .version_conflict_or_not_found(c, id, expected_version)
            .await?
        {
            StoreError::NotFound(_) => Ok(false),
            e => Err(e),
        }
    }

    async fn delete_many(&self, collection: &CollectionName, filter: &Filter) -> Result<u64> {
        let c = collection.physical();
        let f = live_filter(filter, self.now())?;
        let r = self.coll(c).delete_many(f).await.map_err(|e| map_err(e, c))?;
        Ok(r.deleted_count)
    }

    async fn transaction(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        if !self.inner.transactions {
            return Err(StoreError::Unsupported(
                "transactions need a MongoDB replica set or sharded cluster; this server is standalone"
                    .into(),
            ));
        }
        // Indexes can't be created inside a transaction: make the TTL index first.
        let mut touched: Vec<&str> = Vec::new();
        for op in &ops {
            let c = match op {
                WriteOp::Insert { collection, .. }
                | WriteOp::Update { collection, .. }
                | WriteOp::Delete { collection, .. }
                | WriteOp::Require { collection, .. } => collection.physical(),
            };
            if !touched.contains(&c) {
                self.ensure_ttl(c).await?;
                touched.push(c);
            }
        }
        let mut purged = false;
        let started = std::time::Instant::now();
        let mut session = self
            .inner
            .client
            .start_session()
            .await
            .map_err(|e| map_err(e, ""))?;
        let mut last_err = None;
        for _ in 0..MAX_ATTEMPTS {
            session.start_transaction().await.map_err(|e| map_err(e, ""))?;
            let mut out = Vec::with_capacity(ops.len());
            let mut failed = None;
            {
                let mut sess: Sess<'_> = Some(&mut session);
                for (i, op) in ops.iter().enumerate() {
                    match self.run_op(i, op, &mut sess).await {
                        Ok(o) => out.push(o),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            if let Some(e) = failed {
                let _ = session.abort_transaction().await;
                // Write conflicts with a concurrent transaction are transient:
                // retry the whole batch. Everything else is the answer.
                let transient = matches!(&e, StoreError::Unavailable(m)
                    if m.starts_with(WRITE_CONFLICT) || m.starts_with(TRANSIENT));
                if transient && started.elapsed() < TRANSACTION_RETRY_BUDGET {
                    last_err = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                }
                // A duplicate key may be held by an expired document: purge
                // expired documents (outside the aborted transaction), retry once.
                if e.is_duplicate_key() && !purged {
                    purged = true;
                    let mut n = 0;
                    for c in &touched {
                        n += self.purge_expired(c, &mut None).await?;
                    }
                    if n > 0 {
                        continue;
                    }
                }
                return Err(e);
            }
            match session.commit_transaction().await {
                Ok(()) => return Ok(out),
                Err(e) if is_transient(&e) && started.elapsed() < TRANSACTION_RETRY_BUDGET => {
                    last_err = Some(map_err(e, ""));
                    continue;
                }
                Err(e) if e.contains_label("UnknownTransactionCommitResult") => {
                    // Retrying the commit itself is safe.
                    session.commit_transaction().await.map_err(|e| map_err(e, ""))?;
                    return Ok(out);
                }
                Err(e) => return Err(map_err(e, "")),
            }
        }
        Err(last_err.unwrap_or_else(|| StoreError::Unavailable("transaction kept conflicting".into())))
    }

    async fn sweep_expired(&self) -> Result<u64> {
        let names = self
            .inner
            .db
            .list_collection_names()
            .await
            .map_err(|e| map_err(e, ""))?;
        let mut n = 0;
        for c in names.iter().filter(|c| !c.starts_with("system.")) {
            n += self.purge_expired(c, &mut None).await?;
        }
        Ok(n)
    }

    async fn drop_collection(&self, collection: &CollectionName) -> Result<()> {
        let c = collection.physical();
        self.coll(c).drop().await.map_err(|e| map_err(e, c))?;
        self.inner
            .ttl_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(c);
        Ok(())
    }
}
