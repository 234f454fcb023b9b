//! `elements:platform/documents`: an Element's private document collections
//! over the runtime's store. Every name an Element passes goes through the
//! Element's own [`Namespace`], so it can't reach another Element's data or
//! the server's.

use std::sync::Arc;

use elements_store::{
    DocumentStore, FieldPath, Filter, FindAndModify, IndexSpec, Namespace, Order, Query, ReturnDocument,
    SortKey, StoreError, Update,
};
use serde_json::Value;
use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::documents::{self as wit, Error, ModifyOptions, Query as WitQuery};
use super::{DeployContext, HostService, ServiceConfigError, ServiceDeps, ServicesError};
use crate::instance::{RequestInfo, RequestState};

/// Most documents one `find` returns, whatever limit the Element asks for
/// (also the limit when it sets none).
pub const MAX_FIND_DOCUMENTS: u64 = 1000;
/// Most bytes of JSON text one `find` returns; a larger result is an
/// `invalid` error naming the cap (never a silently shortened list).
/// One document is at most the store's `MAX_DOCUMENT_BYTES` (16 MiB).
pub const MAX_FIND_BYTES: usize = 8 << 20;

/// The documents service.
pub struct DocumentsService {
    store: Arc<dyn DocumentStore>,
}

impl DocumentsService {
    /// The service over `store`.
    pub fn new(store: Arc<dyn DocumentStore>) -> DocumentsService {
        DocumentsService { store }
    }
}

/// One Element's (or one instance's) view: the store and its namespace.
#[derive(Clone)]
pub struct Documents {
    store: Arc<dyn DocumentStore>,
    namespace: Namespace,
}

impl HostService for DocumentsService {
    type Deployed = Documents;
    type Instance = Documents;

    fn start(deps: &ServiceDeps) -> Result<DocumentsService, ServicesError> {
        Ok(DocumentsService::new(deps.store.clone()))
    }

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Documents>>(linker, |state| &mut state.services.documents)
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<Documents, ServiceConfigError> {
        let namespace =
            Namespace::element(element.name, element.application).map_err(|e| ServiceConfigError {
                service: "documents",
                message: e.to_string(),
            })?;
        Ok(Documents {
            store: self.store.clone(),
            namespace,
        })
    }

    fn prepare(&self, deployed: &Documents, _request: &RequestInfo) -> Documents {
        deployed.clone()
    }

    fn renew(&self, _deployed: &Documents, instance: &mut Documents, _request: &RequestInfo) {
        // The store and the Element's namespace: nothing of one request.
        let Documents {
            store: _,
            namespace: _,
        } = instance;
    }
}

fn to_wit(error: StoreError) -> Error {
    match error {
        StoreError::Conflict(c) => Error::Conflict(c.to_string()),
        // The detail names servers and topology: keep it in the server log.
        StoreError::Unavailable(m) => {
            tracing::warn!(detail = %m, "document store unavailable");
            Error::Unavailable("the document store is unavailable; retry later".into())
        }
        StoreError::NotFound(m) => Error::Invalid(format!("not found: {m}")),
        e @ (StoreError::InvalidFilter(_)
        | StoreError::InvalidUpdate(_)
        | StoreError::InvalidDocument(_)
        | StoreError::InvalidName(_)) => Error::Invalid(e.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

fn json(text: &str, what: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::Invalid(format!("{what} is not valid JSON: {e}")))
}

fn sort_keys(sort: &[(String, bool)]) -> Result<Vec<SortKey>, Error> {
    sort.iter()
        .map(|(path, descending)| {
            Ok(SortKey {
                path: FieldPath::parse(path)
                    .map_err(|e| Error::Invalid(format!("sort field {path:?}: {e}")))?,
                order: if *descending { Order::Desc } else { Order::Asc },
            })
        })
        .collect()
}

impl Documents {
    fn collection(&self, name: &str) -> Result<elements_store::CollectionName, Error> {
        self.namespace.collection(name).map_err(to_wit)
    }
}

impl wit::Host for Documents {
    async fn insert(&mut self, collection: String, document: String) -> Result<String, Error> {
        let collection = self.collection(&collection)?;
        let stored = self
            .store
            .insert(&collection, json(&document, "the document")?)
            .await
            .map_err(to_wit)?;
        Ok(stored.to_string())
    }

    async fn get(&mut self, collection: String, id: String) -> Result<Option<String>, Error> {
        let collection = self.collection(&collection)?;
        let found = self.store.get(&collection, &id).await.map_err(to_wit)?;
        Ok(found.map(|d| d.to_string()))
    }

    async fn find(&mut self, collection: String, query: WitQuery) -> Result<Vec<String>, Error> {
        let collection = self.collection(&collection)?;
        let filter = Filter::parse(&json(&query.filter, "the filter")?).map_err(to_wit)?;
        let mut q = Query::new(filter);
        q.sort = sort_keys(&query.sort)?;
        q.skip = query.skip.unwrap_or(0);
        q.limit = Some(query.limit.unwrap_or(MAX_FIND_DOCUMENTS).min(MAX_FIND_DOCUMENTS));
        let found = self.store.find(&collection, &q).await.map_err(to_wit)?;
        let mut total = 0usize;
        let mut out = Vec::with_capacity(found.len());
        for doc in found {
            let text = doc.to_string();
            total += text.len();
            if total > MAX_FIND_BYTES {
                return Err(Error::Invalid(format!(
                    "the result of find is larger than {} MiB of JSON; ask for fewer documents \
                     (limit and skip) or narrow the filter",
                    MAX_FIND_BYTES >> 20
                )));
            }
            out.push(text);
        }
        Ok(out)
    }

    async fn count(&mut self, collection: String, filter: String) -> Result<u64, Error> {
        let collection = self.collection(&collection)?;
        let filter = Filter::parse(&json(&filter, "the filter")?).map_err(to_wit)?;
        self.store.count(&collection, &filter).await.map_err(to_wit)
    }

    async fn update(
        &mut self,
        collection: String,
        id: String,
        update: String,
        expected_version: Option<i64>,
    ) -> Result<Option<String>, Error> {
        let collection = self.collection(&collection)?;
        let update = Update::parse(&json(&update, "the update")?).map_err(to_wit)?;
        match self
            .store
            .update_by_id(&collection, &id, &update, expected_version)
            .await
        {
            Ok(doc) => Ok(Some(doc.to_string())),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(to_wit(e)),
        }
    }

    async fn delete(
        &mut self,
        collection: String,
        id: String,
        expected_version: Option<i64>,
    ) -> Result<bool, Error> {
        let collection = self.collection(&collection)?;
        self.store
            .delete_by_id(&collection, &id, expected_version)
            .await
            .map_err(to_wit)
    }

    async fn find_one_and_update(
        &mut self,
        collection: String,
        filter: String,
        update: String,
        options: ModifyOptions,
    ) -> Result<Option<String>, Error> {
        let collection = self.collection(&collection)?;
        let filter = Filter::parse(&json(&filter, "the filter")?).map_err(to_wit)?;
        let update = Update::parse(&json(&update, "the update")?).map_err(to_wit)?;
        let options = FindAndModify {
            sort: sort_keys(&options.sort)?,
            upsert: options.upsert,
            return_document: if options.return_before {
                ReturnDocument::Before
            } else {
                ReturnDocument::After
            },
        };
        let found = self
            .store
            .find_one_and_update(&collection, &filter, &update, &options)
            .await
            .map_err(to_wit)?;
        Ok(found.map(|d| d.to_string()))
    }

    async fn find_one_and_delete(
        &mut self,
        collection: String,
        filter: String,
        sort: Vec<(String, bool)>,
    ) -> Result<Option<String>, Error> {
        let collection = self.collection(&collection)?;
        let filter = Filter::parse(&json(&filter, "the filter")?).map_err(to_wit)?;
        let found = self
            .store
            .find_one_and_delete(&collection, &filter, &sort_keys(&sort)?)
            .await
            .map_err(to_wit)?;
        Ok(found.map(|d| d.to_string()))
    }

    async fn delete_many(&mut self, collection: String, filter: String) -> Result<u64, Error> {
        let collection = self.collection(&collection)?;
        let filter = Filter::parse(&json(&filter, "the filter")?).map_err(to_wit)?;
        self.store.delete_many(&collection, &filter).await.map_err(to_wit)
    }

    async fn ensure_index(
        &mut self,
        collection: String,
        fields: Vec<String>,
        unique: bool,
    ) -> Result<(), Error> {
        let collection = self.collection(&collection)?;
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let index = if unique {
            IndexSpec::unique(&fields)
        } else {
            IndexSpec::non_unique(&fields)
        }
        .map_err(to_wit)?;
        self.store.ensure_index(&collection, &index).await.map_err(to_wit)
    }
}
