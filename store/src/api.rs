//! The store trait and its option types.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::clock::{Clock, SystemClock};
use crate::document::FieldPath;
use crate::error::{Result, StoreError};
use crate::filter::{Filter, Query, SortKey};
use crate::namespace::CollectionName;
use crate::update::Update;

/// An index: one or more fields (a compound index if more), unique or not.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    /// Indexed fields, in order.
    pub fields: Vec<FieldPath>,
    /// Reject a second document with the same key. Unique indexes are *sparse*:
    /// a document missing any of the fields is not constrained.
    pub unique: bool,
}

impl IndexSpec {
    /// A unique index on the given dotted paths (compound if more than one).
    pub fn unique(fields: &[&str]) -> Result<IndexSpec> {
        Self::new(fields, true)
    }
    /// A non-unique index on the given dotted paths.
    pub fn non_unique(fields: &[&str]) -> Result<IndexSpec> {
        Self::new(fields, false)
    }
    fn new(fields: &[&str], unique: bool) -> Result<IndexSpec> {
        if fields.is_empty() || fields.len() > 8 {
            return Err(StoreError::InvalidName("an index has 1 to 8 fields".into()));
        }
        let fields = fields
            .iter()
            .map(|f| FieldPath::parse(f).map_err(|e| StoreError::InvalidName(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        Ok(IndexSpec { fields, unique })
    }
    /// A stable name for the index, derived from its fields and uniqueness.
    pub fn name(&self) -> String {
        let fields: Vec<String> = self.fields.iter().map(FieldPath::dotted).collect();
        format!("{}_{}", if self.unique { "u" } else { "i" }, fields.join("__"))
    }
}

/// Which version of the document find-one-and-update returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnDocument {
    /// The document as it was before the update (None if an upsert inserted).
    Before,
    /// The document after the update.
    #[default]
    After,
}

/// Options of [`DocumentStore::find_one_and_update`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindAndModify {
    /// Which of several matches to take (default: lowest `_id`).
    pub sort: Vec<SortKey>,
    /// Insert if nothing matches (see [`Update::upsert_seed`]).
    pub upsert: bool,
    /// Before or after.
    pub return_document: ReturnDocument,
}

/// One operation of an atomic [`DocumentStore::transaction`].
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Insert a document; a duplicate key aborts the transaction.
    Insert {
        /// Target collection.
        collection: CollectionName,
        /// The document (`_id` generated if absent).
        document: Value,
    },
    /// Update the first document matching `filter` (like find-one-and-update,
    /// returning the document after).
    Update {
        /// Target collection.
        collection: CollectionName,
        /// Which document.
        filter: Filter,
        /// How.
        update: Update,
        /// Insert if none matches.
        upsert: bool,
        /// Abort with a precondition conflict if none matches (and no upsert).
        require_match: bool,
    },
    /// Delete the first document matching `filter`.
    Delete {
        /// Target collection.
        collection: CollectionName,
        /// Which document.
        filter: Filter,
        /// Abort with a precondition conflict if none matches.
        require_match: bool,
    },
    /// Abort unless a document matching `filter` exists (`exists: true`) or
    /// none does (`exists: false`).
    Require {
        /// Target collection.
        collection: CollectionName,
        /// Which document.
        filter: Filter,
        /// Whether one must exist.
        exists: bool,
    },
}

/// Outcome of one [`WriteOp`], in the same position.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// The inserted document.
    Inserted(Value),
    /// The document after the update, None if nothing matched.
    Updated(Option<Value>),
    /// The deleted document, None if nothing matched.
    Deleted(Option<Value>),
    /// A `Require` held.
    Checked,
}

/// The document store: named collections of JSON documents.
///
/// Every read filters out expired documents, and every write ignores them.
/// See the crate documentation for the document model and semantics.
#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// `"sqlite"` or `"mongodb"`.
    fn backend(&self) -> &'static str;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<()>;

    /// Creates the index if it does not exist (idempotent). Fails with
    /// a duplicate-key conflict if existing documents violate a unique index.
    async fn ensure_index(&self, collection: &CollectionName, index: &IndexSpec) -> Result<()>;

    /// Inserts a document and returns it as stored (with `_id`, `_version: 1`).
    async fn insert(&self, collection: &CollectionName, document: Value) -> Result<Value>;

    /// The live document with this id.
    async fn get(&self, collection: &CollectionName, id: &str) -> Result<Option<Value>>;

    /// The live documents matching the query.
    async fn find(&self, collection: &CollectionName, query: &Query) -> Result<Vec<Value>>;

    /// The first live document matching `filter` (lowest `_id`).
    async fn find_one(&self, collection: &CollectionName, filter: &Filter) -> Result<Option<Value>> {
        let mut q = Query::new(filter.clone());
        q.limit = Some(1);
        Ok(self.find(collection, &q).await?.into_iter().next())
    }

    /// Number of live documents matching `filter`.
    async fn count(&self, collection: &CollectionName, filter: &Filter) -> Result<u64>;

    /// Updates the document with this id; with `expected_version`, only if its
    /// `_version` is that (compare-and-set). Returns the document after.
    /// Errors: `NotFound`, `Conflict(Version)`.
    async fn update_by_id(
        &self,
        collection: &CollectionName,
        id: &str,
        update: &Update,
        expected_version: Option<i64>,
    ) -> Result<Value>;

    /// Atomically updates the first document matching `filter` (or inserts,
    /// with `upsert`) and returns it before or after; None if nothing matched
    /// (or, with `Before`, if an upsert inserted).
    async fn find_one_and_update(
        &self,
        collection: &CollectionName,
        filter: &Filter,
        update: &Update,
        options: &FindAndModify,
    ) -> Result<Option<Value>>;

    /// Atomically deletes the first document matching `filter` (by `sort`)
    /// and returns it.
    async fn find_one_and_delete(
        &self,
        collection: &CollectionName,
        filter: &Filter,
        sort: &[SortKey],
    ) -> Result<Option<Value>>;

    /// Deletes the document with this id; with `expected_version`, only if its
    /// `_version` is that. Returns whether a document was deleted (a version
    /// mismatch is `Conflict(Version)`).
    async fn delete_by_id(
        &self,
        collection: &CollectionName,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<bool>;

    /// Deletes all live documents matching `filter`; returns how many.
    async fn delete_many(&self, collection: &CollectionName, filter: &Filter) -> Result<u64>;

    /// Runs the operations atomically: all apply, or none does and the first
    /// failure is returned. See the crate docs ("Atomic multi-step writes").
    async fn transaction(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>>;

    /// Deletes expired documents now (the background sweep calls this);
    /// returns how many.
    async fn sweep_expired(&self) -> Result<u64>;

    /// Drops a collection and its indexes.
    async fn drop_collection(&self, collection: &CollectionName) -> Result<()>;
}

/// Configuration of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// Database file, e.g. `<data_dir>/elements.db` (parent created if missing).
    pub path: std::path::PathBuf,
    /// How often the background task deletes expired documents.
    pub sweep_interval: Duration,
    /// Read connections kept open, and so the most reads running at once
    /// (more wait for a free connection).
    pub readers: usize,
    /// After this long with no read or write, the connections' page
    /// caches are freed (the OS still caches the file), so a server that
    /// went idle after a burst of load hands that memory back.
    pub idle_release: Duration,
}

impl SqliteConfig {
    /// `<data_dir>/elements.db` with default settings.
    pub fn in_data_dir(data_dir: impl AsRef<std::path::Path>) -> SqliteConfig {
        SqliteConfig {
            path: data_dir.as_ref().join("elements.db"),
            sweep_interval: Duration::from_secs(60),
            // Reads are CPU work on this side: about two per core keeps the
            // cores busy while some wait on the disk.
            readers: std::thread::available_parallelism()
                .map_or(4, |n| n.get() * 2)
                .clamp(4, 32),
            idle_release: Duration::from_secs(10),
        }
    }
}

/// Configuration of the MongoDB backend.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// Connection string (`ELEMENTS_MONGODB_URI`).
    pub uri: String,
    /// Database holding all collections (`ELEMENTS_MONGODB_DATABASE`).
    pub database: String,
    /// How long an operation waits for a reachable server before failing with
    /// `Unavailable` (unless the URI sets `serverSelectionTimeoutMS`).
    pub server_selection_timeout: Duration,
    /// TCP connect timeout (unless the URI sets `connectTimeoutMS`).
    pub connect_timeout: Duration,
    /// How often the background task deletes expired documents (the TTL index
    /// does it too, on the server's own schedule).
    pub sweep_interval: Duration,
}

impl MongoConfig {
    /// Config with default timeouts (5 s server selection, 3 s connect).
    pub fn new(uri: impl Into<String>, database: impl Into<String>) -> MongoConfig {
        MongoConfig {
            uri: uri.into(),
            database: database.into(),
            server_selection_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            sweep_interval: Duration::from_secs(60),
        }
    }

    /// From `ELEMENTS_MONGODB_URI` / `ELEMENTS_MONGODB_DATABASE` (default
    /// database `elements`); None if the URI is not set.
    pub fn from_env() -> Option<MongoConfig> {
        let uri = std::env::var("ELEMENTS_MONGODB_URI")
            .ok()
            .filter(|u| !u.is_empty())?;
        let db = std::env::var("ELEMENTS_MONGODB_DATABASE")
            .ok()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "elements".to_string());
        Some(MongoConfig::new(uri, db))
    }
}

/// Which backend to open.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// Embedded SQLite.
    Sqlite(SqliteConfig),
    /// MongoDB.
    Mongo(MongoConfig),
}

/// Options shared by the backends.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Time source for expiry (tests inject a [`crate::ManualClock`]).
    pub clock: Arc<dyn Clock>,
    /// Start the background tasks: the periodic expiry sweep and, on
    /// SQLite, freeing caches when idle (needs a tokio runtime).
    pub background_sweep: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            clock: Arc::new(SystemClock),
            background_sweep: true,
        }
    }
}

/// Opens the configured store with default options. Must be called inside a
/// tokio runtime.
pub async fn open(config: StoreConfig) -> Result<Arc<dyn DocumentStore>> {
    open_with(config, OpenOptions::default()).await
}

/// Opens the configured store. Must be called inside a tokio runtime.
///
/// MongoDB: connecting is lazy in the driver; `open` pings once and fails with
/// `Unavailable` if the server can't be reached within the server selection
/// timeout.
pub async fn open_with(config: StoreConfig, options: OpenOptions) -> Result<Arc<dyn DocumentStore>> {
    match config {
        StoreConfig::Sqlite(c) => Ok(Arc::new(crate::sqlite::SqliteStore::open(c, options).await?)),
        StoreConfig::Mongo(c) => Ok(Arc::new(crate::mongo::MongoStore::open(c, options).await?)),
    }
}
