//! # elements-store: the Elements document store
//!
//! One storage layer for everything Elements persists (identity data,
//! deployments, one-time tokens, and the per-Element document database), with
//! two backends chosen by configuration:
//!
//! * **SQLite** (default, zero setup): one file `<data_dir>/elements.db`, WAL,
//!   `synchronous=FULL` (acknowledged = committed and on disk).
//! * **MongoDB** (`ELEMENTS_MONGODB_URI`, `ELEMENTS_MONGODB_DATABASE`): for
//!   several stateless runtime nodes sharing one deployment.
//!
//! Both implement [`DocumentStore`], used as `Arc<dyn DocumentStore>`, and both
//! pass the same conformance suite (`tests/conformance.rs`).
//!
//! ```no_run
//! # async fn demo() -> elements_store::Result<()> {
//! use elements_store::*;
//! use serde_json::json;
//!
//! let store = open(StoreConfig::Sqlite(SqliteConfig::in_data_dir("data"))).await?;
//! let users = Namespace::core().collection("users")?;
//! store.ensure_index(&users, &IndexSpec::unique(&["email"])?).await?;
//! let u = store.insert(&users, json!({"email": "a@example.com", "coins": 0})).await?;
//! let id = u["_id"].as_str().unwrap_or_default();
//! // Compare-and-set on the version:
//! store.update_by_id(&users, id, &Update::parse(&json!({"$inc": {"coins": 5}}))?, Some(1)).await?;
//! let found = store
//!     .find(&users, &Query::parse(&json!({"coins": {"$gte": 5}}))?.sort_desc("coins")?.limit(10))
//!     .await?;
//! # let _ = found; Ok(()) }
//! ```
//!
//! ## Document model
//!
//! A document is a JSON object. Reserved top-level fields:
//!
//! * `_id`: a string, unique in its collection; generated (UUID v4) on insert
//!   if absent. Immutable.
//! * `_version`: integer, 1 on insert, +1 on every write (update, replace,
//!   upsert). Managed by the store: inserts and updates that set it are
//!   rejected. Compare-and-set: [`DocumentStore::update_by_id`] /
//!   [`DocumentStore::delete_by_id`] with `expected_version`, which fail with
//!   [`Conflict::Version`] on mismatch; or a filter on `_version`.
//! * `_expiresAt`: optional expiry, integer milliseconds since the Unix epoch
//!   (null/absent: never). A document with `_expiresAt <= now` is *expired*:
//!   no read returns it, no write matches it, and it never causes a
//!   duplicate-key conflict, even before the sweep (SQLite: a periodic task;
//!   MongoDB: a TTL index plus the same sweep) deletes it. "now" comes from the
//!   injectable [`Clock`].
//!
//! Field names must not be empty, start with `$` or contain `.` (dots are path
//! separators). Integers must fit in `i64`; they stay integers (BSON `Int64` on
//! MongoDB), other numbers are doubles; `1` and `1.0` compare equal.
//!
//! ## Collections and namespaces
//!
//! Every method takes a [`CollectionName`], which only a [`Namespace`] makes:
//! [`Namespace::core()`] for the runtime's own collections, and
//! [`Namespace::element`]`(element, Option<application>)` for an Element's
//! private ones. Physical names are `core.<c>`, `el.<element>.<c>` and
//! `app.<application>.<element>.<c>`; parts are validated (`[A-Za-z0-9_-]`,
//! 1..=48 bytes, no `.`), so no Element-supplied name can reach another
//! namespace. See [`namespace`].
//!
//! ## Filters
//!
//! A MongoDB-style subset parsed once by [`Filter::parse`] into a typed AST;
//! anything unsupported is [`StoreError::InvalidFilter`], never ignored:
//! equality `{ "a.b": v }` on (nested, dotted) fields, `$eq $ne $gt $gte $lt
//! $lte $in $nin $exists`, and `$and` / `$or`. Semantics (same on both
//! backends, checked by the conformance suite):
//!
//! * Equality is type-strict except between numbers: `1 == 1.0`, `"1" != 1`,
//!   `true != 1`. `{a: null}` matches a null *or missing* field; `$ne` is its
//!   negation (so `{a: {$ne: 1}}` matches documents without `a`).
//!   Objects and arrays compare whole (object key order matters, as in MongoDB).
//! * `$gt/$gte/$lt/$lte` take a number or a string. Numbers compare
//!   numerically, strings by their UTF-8 bytes; a field of another type never
//!   matches (MongoDB's type bracketing).
//! * `$exists: true` matches a present field, even if null.
//! * Not part of the contract: implicit matching of array *elements*
//!   (`{tags: "x"}` against `tags: ["x","y"]` matches on MongoDB but not on
//!   SQLite) and positional paths (`a.0`). Model such data as separate
//!   documents or objects.
//!
//! Sorting ([`Query::sort_asc`] / [`Query::sort_desc`], several keys) uses
//! MongoDB's cross-type order for the types above: missing/null < numbers <
//! strings < objects < arrays < booleans; ties are broken by `_id` ascending,
//! so results are deterministic. Then `skip`, then `limit`.
//!
//! ## Updates
//!
//! [`Update::parse`]: `$set` (creates intermediate objects), `$unset`, `$inc`
//! (missing counts as 0; int+int stays int, overflow is an error), `$push`
//! (missing becomes a one-element array); or a full replacement (keeps `_id`).
//! Two operators on overlapping paths are rejected. Upsert (in
//! [`FindAndModify`]) inserts the filter's top-level equalities plus the
//! update. [`DocumentStore::find_one_and_update`] (returning the document
//! before or after) and [`DocumentStore::find_one_and_delete`] are atomic.
//!
//! ## Indexes
//!
//! [`DocumentStore::ensure_index`] (idempotent) with [`IndexSpec`]: single or
//! compound, unique or not. Unique indexes are sparse: a document missing an
//! indexed field is not constrained (on SQLite a `null` value is not
//! constrained either; on MongoDB it is: don't rely on nulls in unique fields).
//! On SQLite they are expression indexes on the same `json_extract`
//! expressions the filters compile to, so a find by an indexed field is an
//! index lookup.
//!
//! ## Atomic multi-step writes
//!
//! Two tools, usable together:
//!
//! 1. **Unique keys + deterministic ids + upserts** (works everywhere, also on a
//!    standalone MongoDB): make the thing that must exist once a *key*, and let
//!    the store's uniqueness decide the race. A duplicate-key [`Conflict`] means
//!    "someone else won": read the winner's document.
//! 2. **[`DocumentStore::transaction`]**: a batch of [`WriteOp`]s (insert,
//!    update/upsert, delete, `Require` precondition) applied all-or-nothing.
//!    SQLite: one `BEGIN IMMEDIATE` transaction. MongoDB: a session transaction
//!    (replica set or sharded cluster; retried on transient write conflicts);
//!    on a standalone server it returns [`StoreError::Unsupported`], and callers
//!    use tool 1 alone.
//!
//! "Find or create user + identity + profile" for a device id, race-free with
//! any number of concurrent first logins:
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn elements_store::DocumentStore>) -> elements_store::Result<String> {
//! use elements_store::*;
//! use serde_json::json;
//!
//! let core = Namespace::core();
//! let (users, identities, profiles) =
//!     (core.collection("users")?, core.collection("identities")?, core.collection("profiles")?);
//! // The identity's _id is derived from the device id: at most one can exist.
//! let identity_id = format!("device:{}", "device-123");
//! loop {
//!     if let Some(identity) = store.get(&identities, &identity_id).await? {
//!         return Ok(identity["user_id"].as_str().unwrap_or_default().to_string());
//!     }
//!     let user_id = uuid_like();
//!     let created = store
//!         .transaction(vec![
//!             WriteOp::Insert { collection: identities.clone(),
//!                 document: json!({"_id": identity_id, "user_id": user_id}) },
//!             WriteOp::Insert { collection: users.clone(), document: json!({"_id": user_id}) },
//!             WriteOp::Insert { collection: profiles.clone(),
//!                 document: json!({"_id": user_id, "display_name": null}) },
//!         ])
//!         .await;
//!     match created {
//!         Ok(_) => return Ok(user_id),
//!         // Another login created the identity first: loop and read it.
//!         Err(e) if e.is_duplicate_key() => continue,
//!         Err(e) => return Err(e),
//!     }
//! }
//! # fn uuid_like() -> String { String::new() }
//! # }
//! ```
//!
//! Without transactions (standalone MongoDB), insert the identity *first* (its
//! unique `_id` elects the winner and fixes `user_id`), then upsert the user
//! and profile by that `user_id`: losers read the identity and upsert the same
//! documents, which is idempotent, and a crash between the steps is repaired by
//! the next login.
//!
//! ## Errors and availability
//!
//! [`StoreError`]: `NotFound`, `Conflict` ([`Conflict::DuplicateKey`],
//! [`Conflict::Version`], [`Conflict::Precondition`]), `InvalidFilter`,
//! `InvalidUpdate`, `InvalidDocument`, `InvalidName`, `Unavailable` (backend
//! down: MongoDB unreachable within the server selection timeout, which is
//! short and configurable in [`MongoConfig`]; the driver reconnects by itself
//! when the server is back, no restart needed), `Unsupported`, `Internal`.
//!
//! ## MongoDB-compatible test server (SecantusDB 0.7.0b3)
//!
//! CI runs the suite against SecantusDB (`scripts/mongodb-test-server`). It
//! reports itself as a one-member replica set (`setName: "secantus"`),
//! advertising `127.0.0.1:<port>`; connect with `directConnection=true`.
//! Sessions/transactions, unique (sparse and partial) indexes, TTL indexes
//! and find-and-modify with sort/upsert behave as on MongoDB in the suite.
//! Quirks found (theirs, not ours; checked with `explain()` from pymongo):
//!
//! * Its query planner uses an index only for a filter with a single
//!   predicate (`{_id: x}`, `{email: x}`, or an exact compound-index match
//!   like `{a: 1, b: 2}`). Anything with `$and`/`$or` or an extra field is a
//!   collection scan. So this backend sends a find's user filter alone and
//!   drops expired documents client-side (skip/limit applied after), and `get`
//!   asks for `{_id}` only. Writes (find-and-modify, counts) still carry the
//!   liveness condition server-side and scan on SecantusDB (fine on MongoDB).
//! * It never uses a *partial* index for queries, so single-field unique
//!   indexes are created `sparse` (same semantics); compound unique indexes
//!   stay partial (`$exists` on every field) and are not used for lookups.
//! * After a failed write inside a transaction, the transaction is aborted on
//!   the server (as on MongoDB): no further command may run in it. The store
//!   aborts and, for a duplicate key, purges expired documents and retries
//!   the whole batch once.
//! * Acknowledged writes survived a SIGKILL of the server in `tests/mongo_fault.rs`.

#![warn(missing_docs)]

mod api;
mod clock;
pub mod document;
mod error;
pub mod filter;
pub mod mongo;
pub mod namespace;
pub mod sqlite;
pub mod update;

pub use api::{
    DocumentStore, FindAndModify, IndexSpec, MongoConfig, OpenOptions, ReturnDocument, SqliteConfig,
    StoreConfig, WriteOp, WriteOutcome, open, open_with,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use document::{EXPIRES_AT, FieldPath, ID, VERSION};
pub use error::{Conflict, Result, StoreError};
pub use filter::{Cmp, Filter, Order, Query, SortKey};
pub use namespace::{CollectionName, Namespace};
pub use update::{Update, UpdateOp};
