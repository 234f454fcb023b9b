//! Small helpers over the document store: (de)serialization and all-or-nothing
//! batches that also work where the backend has no transactions.

use std::sync::Arc;

use elements_store::{
    CollectionName, Conflict, DocumentStore, Filter, FindAndModify, ReturnDocument, StoreError, Update,
    WriteOp,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{IdentityError, Result};

/// A stored document as `T`; a document that doesn't fit is an internal error
/// (someone wrote a core collection by hand).
pub(crate) fn parse<T: DeserializeOwned>(doc: Value) -> Result<T> {
    serde_json::from_value(doc)
        .map_err(|e| IdentityError::internal(format!("malformed stored document: {e}")))
}

/// One page of `collection` matching `filter`, sorted ascending by `sort`:
/// the total count and at most `count` (capped at 100) items from `offset`.
pub(crate) async fn page<T: DeserializeOwned>(
    store: &dyn DocumentStore,
    collection: &CollectionName,
    filter: Filter,
    sort: &str,
    offset: u64,
    count: u64,
) -> Result<crate::model::Page<T>> {
    let total = store.count(collection, &filter).await?;
    let query = elements_store::Query::new(filter)
        .sort_asc(sort)?
        .skip(offset)
        .limit(count.min(100));
    let items = store
        .find(collection, &query)
        .await?
        .into_iter()
        .map(parse)
        .collect::<Result<Vec<T>>>()?;
    Ok(crate::model::Page { offset, total, items })
}

/// `value` as a store document.
pub(crate) fn to_doc<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| IdentityError::internal(format!("serializing a document: {e}")))
}

/// The physical collection of a duplicate-key conflict, if `e` is one.
pub(crate) fn duplicate_in(e: &StoreError) -> Option<&str> {
    match e {
        StoreError::Conflict(Conflict::DuplicateKey { collection, .. }) => Some(collection),
        _ => None,
    }
}

/// True if `e` is a failed precondition of a batch.
pub(crate) fn is_precondition(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict(Conflict::Precondition { .. }))
}

/// How to take back one applied operation of a sequential batch.
enum Undo {
    Delete(CollectionName, String),
    Restore(CollectionName, Value),
}

fn without_version(mut doc: Value) -> Value {
    if let Some(m) = doc.as_object_mut() {
        m.remove(elements_store::VERSION);
    }
    doc
}

/// Applies `ops` all-or-nothing: one store transaction; where the backend has
/// none (a standalone MongoDB), one by one, taking back the applied ones when
/// a later one fails. The fallback is atomic against failures of the batch
/// itself but not isolated from concurrent batches: the identity model puts
/// the deciding write (a unique identity `_id`) first, so races are still
/// decided by the store's keys.
pub(crate) async fn atomic(store: &Arc<dyn DocumentStore>, ops: Vec<WriteOp>) -> Result<(), StoreError> {
    match store.transaction(ops.clone()).await {
        Err(StoreError::Unsupported(_)) => sequential(store, ops).await,
        other => other.map(|_| ()),
    }
}

async fn sequential(store: &Arc<dyn DocumentStore>, ops: Vec<WriteOp>) -> Result<(), StoreError> {
    let mut undo = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        match apply_one(store, i, op).await {
            Ok(u) => undo.extend(u),
            Err(e) => {
                for u in undo.into_iter().rev() {
                    let taken_back = match u {
                        Undo::Delete(c, id) => store.delete_by_id(&c, &id, None).await.map(|_| ()),
                        Undo::Restore(c, doc) => {
                            let id = doc[elements_store::ID].as_str().unwrap_or_default().to_owned();
                            let _ = store.delete_by_id(&c, &id, None).await;
                            store.insert(&c, without_version(doc)).await.map(|_| ())
                        }
                    };
                    if let Err(undo_error) = taken_back {
                        tracing::error!("could not take back a partial identity write: {undo_error}");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

fn precondition(op_index: usize, detail: &str) -> StoreError {
    StoreError::Conflict(Conflict::Precondition {
        op_index,
        detail: detail.to_owned(),
    })
}

async fn apply_one(
    store: &Arc<dyn DocumentStore>,
    i: usize,
    op: WriteOp,
) -> Result<Option<Undo>, StoreError> {
    match op {
        WriteOp::Insert { collection, document } => {
            let doc = store.insert(&collection, document).await?;
            let id = doc[elements_store::ID].as_str().unwrap_or_default().to_owned();
            Ok(Some(Undo::Delete(collection, id)))
        }
        WriteOp::Update {
            collection,
            filter,
            update,
            upsert,
            require_match,
        } => {
            let options = FindAndModify {
                upsert,
                return_document: ReturnDocument::Before,
                ..FindAndModify::default()
            };
            match store
                .find_one_and_update(&collection, &filter, &update, &options)
                .await?
            {
                Some(before) => Ok(Some(Undo::Restore(collection, before))),
                None if require_match && !upsert => Err(precondition(i, "no document matched the update")),
                None => Ok(None),
            }
        }
        WriteOp::Delete {
            collection,
            filter,
            require_match,
        } => match store.find_one_and_delete(&collection, &filter, &[]).await? {
            Some(doc) => Ok(Some(Undo::Restore(collection, doc))),
            None if require_match => Err(precondition(i, "no document matched the delete")),
            None => Ok(None),
        },
        WriteOp::Require {
            collection,
            filter,
            exists,
        } => {
            let found = store.find_one(&collection, &filter).await?.is_some();
            if found == exists {
                Ok(None)
            } else {
                Err(precondition(i, "required condition did not hold"))
            }
        }
    }
}

/// `{_id: id}` then the update, as a batch step that must match.
pub(crate) fn update_by_id(collection: &CollectionName, id: &str, update: Update) -> WriteOp {
    WriteOp::Update {
        collection: collection.clone(),
        filter: Filter::by_id(id),
        update,
        upsert: false,
        require_match: true,
    }
}
