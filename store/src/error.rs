//! Typed errors of the store.

/// What a [`StoreError::Conflict`] conflicted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// A unique index (or the `_id`) already holds the key.
    DuplicateKey {
        /// Physical collection name.
        collection: String,
        /// Backend detail: which index / key, as far as the backend says.
        detail: String,
    },
    /// Compare-and-set failed: the document's `_version` is not the expected one.
    Version {
        /// Physical collection name.
        collection: String,
        /// Document id.
        id: String,
        /// The version the caller expected.
        expected: i64,
        /// The version the document has.
        actual: i64,
    },
    /// A precondition of a [`crate::WriteOp`] in a transaction did not hold.
    Precondition {
        /// Index of the failing operation in the batch.
        op_index: usize,
        /// What did not hold.
        detail: String,
    },
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conflict::DuplicateKey { collection, detail } => {
                write!(f, "duplicate key in collection `{collection}`: {detail}")
            }
            Conflict::Version {
                collection,
                id,
                expected,
                actual,
            } => write!(
                f,
                "version conflict on `{collection}`/`{id}`: expected version {expected}, found {actual}"
            ),
            Conflict::Precondition { op_index, detail } => {
                write!(f, "precondition of operation #{op_index} failed: {detail}")
            }
        }
    }
}

/// Errors of every store operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The addressed document does not exist (or has expired).
    #[error("not found: {0}")]
    NotFound(String),
    /// A unique key, version or precondition conflict: see [`Conflict`].
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The filter uses an unsupported operator or a malformed value.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// The update is malformed or cannot apply to the document.
    #[error("invalid update: {0}")]
    InvalidUpdate(String),
    /// The document is not a valid store document.
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    /// A collection, namespace or field name is invalid.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The backend cannot be reached (MongoDB down, disk error opening SQLite...).
    /// Retry later; the store recovers by itself when the backend returns.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend does not support this operation (e.g. transactions on a
    /// standalone MongoDB server).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Anything else: a bug or an unexpected backend answer.
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl StoreError {
    /// True for [`StoreError::Conflict`] of any kind.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict(_))
    }
    /// True for a unique-key conflict.
    pub fn is_duplicate_key(&self) -> bool {
        matches!(self, StoreError::Conflict(Conflict::DuplicateKey { .. }))
    }
    /// True for a compare-and-set version conflict.
    pub fn is_version_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict(Conflict::Version { .. }))
    }
    /// True for [`StoreError::Unavailable`].
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
