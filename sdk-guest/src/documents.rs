//! JSON documents in collections private to the Element.
//!
//! ```no_run
//! use elements_sdk::prelude::*;
//!
//! fn top_scores() -> Result<Vec<serde_json::Value>> {
//!     let scores = documents::collection("scores");
//!     scores.insert(&json!({"player": "ada", "score": 42}))?;
//!     scores.find(json!({"score": {"$gte": 10}})).sort_desc("score").limit(10).all()
//! }
//! ```
//!
//! # Documents
//!
//! A document is a JSON object. A stored document carries:
//!
//! * `_id`: a string, unique in its collection, generated when the inserted
//!   document has none. Immutable.
//! * `_version`: 1 on insert, +1 on every write. Use it for compare-and-set
//!   with [`Collection::update_if_version`] and
//!   [`Collection::delete_if_version`] (a mismatch is a 409), or filter on it.
//! * `_expiresAt` (optional): milliseconds since the Unix epoch after which
//!   the document is never returned, never matched by a write and never
//!   causes a unique-index conflict; the server deletes it some time later.
//!
//! Field names must not be empty, start with `$` or contain `.`; integers
//! must fit in `i64`.
//!
//! # Filters and updates
//!
//! Filters are a MongoDB-style subset: equality on (dotted) fields,
//! `$eq $ne $gt $gte $lt $lte $in $nin $exists`, `$and`, `$or`; `{}` matches
//! everything. Updates are `$set $unset $inc $push`, or a whole replacement
//! document. Both are anything that serializes to a JSON object, usually
//! [`json!`](crate::json).
//!
//! # Collections
//!
//! Collection names are 1 to 48 characters of letters, digits, `_` and `-`.
//! They are private to the Element: two Elements never see each other's
//! data or the server's own. A collection exists once something is written
//! to it.
//!
//! # Errors
//!
//! Every operation returns the SDK [`Error`]: a unique index or an expected
//! version that did not hold is 409 `CONFLICT`; an invalid collection name,
//! filter, update or document is 400 `BAD_REQUEST`; an unreachable database
//! is 503 `UNAVAILABLE` (try again later); anything else is 500 `INTERNAL`.
//!
//! These functions call the host, so the examples here are compiled but not
//! run.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::__private::bindings::elements::platform::documents as wit;
use crate::error::{Error, Result};

/// The collection named `name`. Making the handle is free; the name is
/// checked by the host on first use.
///
/// ```no_run
/// let users = elements_sdk::documents::collection("users");
/// let ada = users.get("ada")?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn collection(name: impl Into<String>) -> Collection {
    Collection { name: name.into() }
}

/// The `_id` of a stored document.
///
/// ```
/// use elements_sdk::{documents, json};
/// assert_eq!(documents::id(&json!({"_id": "a1", "_version": 3})), Some("a1"));
/// assert_eq!(documents::id(&json!({})), None);
/// ```
pub fn id(document: &Value) -> Option<&str> {
    document.get("_id").and_then(Value::as_str)
}

/// The `_version` of a stored document.
///
/// ```
/// use elements_sdk::{documents, json};
/// assert_eq!(documents::version(&json!({"_id": "a1", "_version": 3})), Some(3));
/// ```
pub fn version(document: &Value) -> Option<i64> {
    document.get("_version").and_then(Value::as_i64)
}

/// A sort order: fields, most significant first, each ascending or
/// descending. Fields may be dotted paths (`stats.wins`).
///
/// ```
/// use elements_sdk::documents::Sort;
///
/// let sort = Sort::desc("score").then_asc("_id");
/// assert_eq!(sort.fields(), [("score".to_owned(), true), ("_id".to_owned(), false)]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sort(Vec<(String, bool)>);

impl Sort {
    /// Ascending by `field`.
    ///
    /// ```
    /// let sort = elements_sdk::documents::Sort::asc("name");
    /// assert_eq!(sort.fields(), [("name".to_owned(), false)]);
    /// ```
    pub fn asc(field: impl Into<String>) -> Sort {
        Sort::default().then_asc(field)
    }

    /// Descending by `field`.
    ///
    /// ```
    /// let sort = elements_sdk::documents::Sort::desc("score");
    /// assert_eq!(sort.fields(), [("score".to_owned(), true)]);
    /// ```
    pub fn desc(field: impl Into<String>) -> Sort {
        Sort::default().then_desc(field)
    }

    /// Then ascending by `field`.
    ///
    /// ```
    /// let sort = elements_sdk::documents::Sort::desc("score").then_asc("name");
    /// assert_eq!(sort.fields().len(), 2);
    /// ```
    pub fn then_asc(mut self, field: impl Into<String>) -> Sort {
        self.0.push((field.into(), false));
        self
    }

    /// Then descending by `field`.
    ///
    /// ```
    /// let sort = elements_sdk::documents::Sort::asc("level").then_desc("xp");
    /// assert_eq!(sort.fields()[1], ("xp".to_owned(), true));
    /// ```
    pub fn then_desc(mut self, field: impl Into<String>) -> Sort {
        self.0.push((field.into(), true));
        self
    }

    /// The `(field, descending)` pairs, most significant first.
    ///
    /// ```
    /// assert!(elements_sdk::documents::Sort::default().fields().is_empty());
    /// ```
    pub fn fields(&self) -> &[(String, bool)] {
        &self.0
    }
}

/// How [`Collection::find_one_and_update`] works: which match to change,
/// whether to insert when nothing matches, and which version to return.
///
/// ```
/// use elements_sdk::documents::{FindAndModify, Sort};
///
/// let options = FindAndModify::new().upsert().sort(Sort::desc("score"));
/// assert!(options.upsert && !options.return_before);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindAndModify {
    /// Which of several matches to change (default: any).
    pub sort: Sort,
    /// Insert when nothing matches: the filter's equalities plus the update.
    pub upsert: bool,
    /// Return the document as it was before the update (`None` when an upsert
    /// inserted) instead of after.
    pub return_before: bool,
}

impl FindAndModify {
    /// Change the first match in no particular order, no upsert, return the
    /// document after the update.
    ///
    /// ```
    /// let o = elements_sdk::documents::FindAndModify::new();
    /// assert!(!o.upsert && !o.return_before && o.sort.fields().is_empty());
    /// ```
    pub fn new() -> FindAndModify {
        FindAndModify::default()
    }

    /// Changes the first match in `sort` order.
    ///
    /// ```
    /// use elements_sdk::documents::{FindAndModify, Sort};
    /// let o = FindAndModify::new().sort(Sort::asc("queued_at"));
    /// assert_eq!(o.sort, Sort::asc("queued_at"));
    /// ```
    pub fn sort(mut self, sort: Sort) -> FindAndModify {
        self.sort = sort;
        self
    }

    /// Inserts when nothing matches: the filter's equality fields, then the
    /// update applied to them.
    ///
    /// ```
    /// assert!(elements_sdk::documents::FindAndModify::new().upsert().upsert);
    /// ```
    pub fn upsert(mut self) -> FindAndModify {
        self.upsert = true;
        self
    }

    /// Returns the document as it was before the update.
    ///
    /// ```
    /// assert!(elements_sdk::documents::FindAndModify::new().return_before().return_before);
    /// ```
    pub fn return_before(mut self) -> FindAndModify {
        self.return_before = true;
        self
    }
}

/// One of the Element's collections. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    name: String,
}

impl Collection {
    /// The collection's name.
    ///
    /// ```
    /// assert_eq!(elements_sdk::documents::collection("scores").name(), "scores");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Inserts a document (anything that serializes to a JSON object) and
    /// returns it as stored, with `_id` and `_version`. A document whose
    /// `_id` or unique-indexed fields are taken is a 409.
    ///
    /// ```no_run
    /// use elements_sdk::{documents, json};
    ///
    /// let stored = documents::collection("users").insert(&json!({"name": "ada"}))?;
    /// let id = documents::id(&stored).unwrap_or_default().to_owned();
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn insert<T: Serialize + ?Sized>(&self, document: &T) -> Result<Value> {
        let stored = wit::insert(&self.name, &to_json(document, "document")?).map_err(from_wit)?;
        parse(&stored)
    }

    /// The document with `id`, or `None`.
    ///
    /// ```no_run
    /// use elements_sdk::{documents, Error};
    ///
    /// let user = documents::collection("users")
    ///     .get("ada")?
    ///     .ok_or_else(|| Error::not_found("no user ada"))?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn get(&self, id: &str) -> Result<Option<Value>> {
        wit::get(&self.name, id)
            .map_err(from_wit)?
            .as_deref()
            .map(parse)
            .transpose()
    }

    /// The document with `id` deserialized into `T`, or `None`. A stored
    /// document that does not fit `T` is a 500 error.
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize)]
    /// struct User { name: String }
    ///
    /// let user: Option<User> = elements_sdk::documents::collection("users").get_as("ada")?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn get_as<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>> {
        self.get(id)?.map(from_value).transpose()
    }

    /// Starts a query for the documents matching `filter`; finish it with
    /// [`Find::all`], [`Find::all_as`], [`Find::first`] or [`Find::first_as`].
    ///
    /// ```no_run
    /// use elements_sdk::{documents, json};
    ///
    /// let page = documents::collection("scores")
    ///     .find(json!({"level": 3}))
    ///     .sort_desc("score")
    ///     .skip(20)
    ///     .limit(10)
    ///     .all()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn find<F: Serialize>(&self, filter: F) -> Find {
        Find {
            collection: self.name.clone(),
            filter: to_json(&filter, "filter"),
            sort: Sort::default(),
            skip: None,
            limit: None,
        }
    }

    /// How many documents match `filter`.
    ///
    /// ```no_run
    /// use elements_sdk::{documents, json};
    ///
    /// let online = documents::collection("players").count(json!({"online": true}))?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn count<F: Serialize>(&self, filter: F) -> Result<u64> {
        wit::count(&self.name, &to_json(&filter, "filter")?).map_err(from_wit)
    }

    /// Applies `update` to the document with `id` and returns it after, or
    /// `None` when there is no such document.
    ///
    /// ```no_run
    /// use elements_sdk::{documents, json};
    ///
    /// let after = documents::collection("players").update("ada", json!({"$inc": {"wins": 1}}))?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn update<U: Serialize>(&self, id: &str, update: U) -> Result<Option<Value>> {
        self.update_with(id, update, None)
    }

    /// Like [`update`](Self::update), but only if the document's `_version`
    /// is `version` (compare-and-set); otherwise a 409 `CONFLICT`.
    ///
    /// ```no_run
    /// use elements_sdk::{documents, json, Error};
    ///
    /// let players = documents::collection("players");
    /// let ada = players.get("ada")?.ok_or_else(|| Error::not_found("no ada"))?;
    /// let version = documents::version(&ada).unwrap_or(0);
    /// players.update_if_version("ada", json!({"$set": {"title": "champion"}}), version)?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn update_if_version<U: Serialize>(
        &self,
        id: &str,
        update: U,
        version: i64,
    ) -> Result<Option<Value>> {
        self.update_with(id, update, Some(version))
    }

    fn update_with<U: Serialize>(&self, id: &str, update: U, version: Option<i64>) -> Result<Option<Value>> {
        wit::update(&self.name, id, &to_json(&update, "update")?, version)
            .map_err(from_wit)?
            .as_deref()
            .map(parse)
            .transpose()
    }

    /// Deletes the document with `id`; returns whether there was one.
    ///
    /// ```no_run
    /// let deleted = elements_sdk::documents::collection("sessions").delete("s-123")?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn delete(&self, id: &str) -> Result<bool> {
        wit::delete(&self.name, id, None).map_err(from_wit)
    }

    /// Deletes the document with `id` only if its `_version` is `version`
    /// (otherwise a 409 `CONFLICT`); returns whether there was one.
    ///
    /// ```no_run
    /// let deleted = elements_sdk::documents::collection("offers").delete_if_version("o-1", 4)?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn delete_if_version(&self, id: &str, version: i64) -> Result<bool> {
        wit::delete(&self.name, id, Some(version)).map_err(from_wit)
    }

    /// Atomically updates the first document matching `filter` (or, with
    /// [`FindAndModify::upsert`], inserts one when none matches) and returns
    /// it after the update, or before with [`FindAndModify::return_before`].
    /// `None` when nothing matched and nothing was inserted.
    ///
    /// ```no_run
    /// use elements_sdk::{documents, json, documents::FindAndModify};
    ///
    /// // A counter that starts at 1.
    /// let counter = documents::collection("counters").find_one_and_update(
    ///     json!({"_id": "visits"}),
    ///     json!({"$inc": {"n": 1}}),
    ///     FindAndModify::new().upsert(),
    /// )?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn find_one_and_update<F: Serialize, U: Serialize>(
        &self,
        filter: F,
        update: U,
        options: FindAndModify,
    ) -> Result<Option<Value>> {
        let options = wit::ModifyOptions {
            sort: options.sort.0,
            upsert: options.upsert,
            return_before: options.return_before,
        };
        wit::find_one_and_update(
            &self.name,
            &to_json(&filter, "filter")?,
            &to_json(&update, "update")?,
            &options,
        )
        .map_err(from_wit)?
        .as_deref()
        .map(parse)
        .transpose()
    }

    /// Atomically deletes a document matching `filter` and returns it, or
    /// `None` when nothing matches.
    ///
    /// ```no_run
    /// use elements_sdk::{documents, json};
    ///
    /// let claimed = documents::collection("invites").find_one_and_delete(json!({"code": "X7Q2"}))?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn find_one_and_delete<F: Serialize>(&self, filter: F) -> Result<Option<Value>> {
        self.find_one_and_delete_sorted(filter, Sort::default())
    }

    /// Atomically deletes the first document matching `filter` in `sort`
    /// order and returns it, or `None` when nothing matches: a queue.
    ///
    /// ```no_run
    /// use elements_sdk::{documents, documents::Sort, json};
    ///
    /// let next_job = documents::collection("jobs").find_one_and_delete_sorted(json!({}), Sort::asc("queued_at"))?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn find_one_and_delete_sorted<F: Serialize>(&self, filter: F, sort: Sort) -> Result<Option<Value>> {
        wit::find_one_and_delete(&self.name, &to_json(&filter, "filter")?, &sort.0)
            .map_err(from_wit)?
            .as_deref()
            .map(parse)
            .transpose()
    }

    /// Deletes every document matching `filter`; returns how many.
    ///
    /// ```no_run
    /// use elements_sdk::{documents, json};
    ///
    /// let purged = documents::collection("sessions").delete_many(json!({"user": "ada"}))?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn delete_many<F: Serialize>(&self, filter: F) -> Result<u64> {
        wit::delete_many(&self.name, &to_json(&filter, "filter")?).map_err(from_wit)
    }

    /// Creates an index on `fields` (one field, or several: compound) if it
    /// doesn't exist. Cheap when it does, so calling it before use is fine.
    ///
    /// ```no_run
    /// elements_sdk::documents::collection("scores").ensure_index(&["level", "score"])?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn ensure_index(&self, fields: &[&str]) -> Result<()> {
        self.index(fields, false)
    }

    /// Creates a unique index on `fields` if it doesn't exist: afterwards,
    /// writes that would make two documents share the values are a 409.
    ///
    /// ```no_run
    /// elements_sdk::documents::collection("users").ensure_unique_index(&["email"])?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn ensure_unique_index(&self, fields: &[&str]) -> Result<()> {
        self.index(fields, true)
    }

    fn index(&self, fields: &[&str], unique: bool) -> Result<()> {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        wit::ensure_index(&self.name, &fields, unique).map_err(from_wit)
    }
}

/// A query being built by [`Collection::find`].
///
/// The host returns at most 1000 documents, whatever the
/// [`limit`](Find::limit) (page with [`skip`](Find::skip)), and at most
/// 8 MiB of JSON in all (a larger result is an error).
#[derive(Debug)]
#[must_use = "a query does nothing until `all`, `first` or their `_as` variants run it"]
pub struct Find {
    collection: String,
    filter: Result<String>,
    sort: Sort,
    skip: Option<u64>,
    limit: Option<u64>,
}

impl Find {
    /// Then ascending by `field`.
    ///
    /// ```no_run
    /// # use elements_sdk::{documents, json};
    /// let by_name = documents::collection("users").find(json!({})).sort_asc("name").all()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn sort_asc(mut self, field: impl Into<String>) -> Self {
        self.sort = self.sort.then_asc(field);
        self
    }

    /// Then descending by `field`.
    ///
    /// ```no_run
    /// # use elements_sdk::{documents, json};
    /// let best = documents::collection("scores").find(json!({})).sort_desc("score").first()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn sort_desc(mut self, field: impl Into<String>) -> Self {
        self.sort = self.sort.then_desc(field);
        self
    }

    /// Replaces the sort order.
    ///
    /// ```no_run
    /// # use elements_sdk::{documents, documents::Sort, json};
    /// let q = documents::collection("scores").find(json!({})).sort(Sort::desc("score").then_asc("_id"));
    /// # let _ = q.all()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn sort(mut self, sort: Sort) -> Self {
        self.sort = sort;
        self
    }

    /// Skips the first `n` matches.
    ///
    /// ```no_run
    /// # use elements_sdk::{documents, json};
    /// let page_3 = documents::collection("scores").find(json!({})).skip(20).limit(10).all()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn skip(mut self, n: u64) -> Self {
        self.skip = Some(n);
        self
    }

    /// Returns at most `n` documents.
    ///
    /// ```no_run
    /// # use elements_sdk::{documents, json};
    /// let ten = documents::collection("scores").find(json!({})).limit(10).all()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Runs the query.
    ///
    /// ```no_run
    /// # use elements_sdk::{documents, json};
    /// for doc in documents::collection("scores").find(json!({"player": "ada"})).all()? {
    ///     elements_sdk::info!("{doc}");
    /// }
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn all(self) -> Result<Vec<Value>> {
        let query = wit::Query {
            filter: self.filter?,
            sort: self.sort.0,
            skip: self.skip,
            limit: self.limit,
        };
        let found = wit::find(&self.collection, &query).map_err(from_wit)?;
        found.iter().map(|d| parse(d)).collect()
    }

    /// Runs the query and deserializes each document into `T`; a document
    /// that does not fit is a 500 error.
    ///
    /// ```no_run
    /// # use elements_sdk::{documents, json};
    /// #[derive(serde::Deserialize)]
    /// struct Score { player: String, score: i64 }
    ///
    /// let scores: Vec<Score> = documents::collection("scores").find(json!({})).all_as()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn all_as<T: DeserializeOwned>(self) -> Result<Vec<T>> {
        self.all()?.into_iter().map(from_value).collect()
    }

    /// Runs the query for its first document (ignores [`limit`](Find::limit)).
    ///
    /// ```no_run
    /// # use elements_sdk::{documents, json};
    /// let ada = documents::collection("players").find(json!({"name": "ada"})).first()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn first(self) -> Result<Option<Value>> {
        Ok(self.limit(1).all()?.into_iter().next())
    }

    /// Runs the query for its first document, deserialized into `T`.
    ///
    /// ```no_run
    /// # use elements_sdk::{documents, json};
    /// #[derive(serde::Deserialize)]
    /// struct Score { player: String, score: i64 }
    ///
    /// let best: Option<Score> = documents::collection("scores").find(json!({})).sort_desc("score").first_as()?;
    /// # Ok::<(), elements_sdk::Error>(())
    /// ```
    pub fn first_as<T: DeserializeOwned>(self) -> Result<Option<T>> {
        self.first()?.map(from_value).transpose()
    }
}

/// Maps the host's error to the SDK's.
fn from_wit(error: wit::Error) -> Error {
    match error {
        wit::Error::Conflict(m) => Error::conflict(m),
        wit::Error::Invalid(m) => Error::bad_request(m),
        wit::Error::Unavailable(m) => Error::new(503, "UNAVAILABLE", m),
        wit::Error::Internal(m) => Error::internal(m),
    }
}

/// Serializes a document, filter or update; failing to is the Element's bug.
fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(format!("cannot serialize the {what}: {e}")))
}

/// Parses a document the host returned.
fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::internal(format!("the host returned invalid JSON: {e}")))
}

fn from_value<T: DeserializeOwned>(document: Value) -> Result<T> {
    T::deserialize(&document).map_err(|e| {
        let id = id(&document).unwrap_or("?");
        Error::internal(format!("document {id} does not fit the expected type: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_statuses() {
        let cases = [
            (wit::Error::Conflict("dup".into()), 409, "CONFLICT"),
            (wit::Error::Invalid("bad".into()), 400, "BAD_REQUEST"),
            (wit::Error::Unavailable("down".into()), 503, "UNAVAILABLE"),
            (wit::Error::Internal("oops".into()), 500, "INTERNAL"),
        ];
        for (wit, status, code) in cases {
            let e = from_wit(wit);
            assert_eq!((e.status(), e.code()), (status, code));
        }
    }

    #[test]
    fn typed_documents() {
        #[derive(Debug, serde::Deserialize)]
        struct Score {
            score: i64,
        }
        let doc = serde_json::json!({"_id": "x", "score": 3});
        assert_eq!(from_value::<Score>(doc).unwrap().score, 3);
        let e = from_value::<Score>(serde_json::json!({"_id": "y"})).unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(e.message().contains("document y"), "{}", e.message());
    }
}
