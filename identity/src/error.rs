//! Typed errors of the identity service.
//!
//! Each variant is a *kind* of failure that every API maps the same way (the
//! Nakama gateway to a gRPC code, `/api/rest` to an HTTP status); the message
//! is what the client reads. Messages of the Nakama-compatible rules are
//! Nakama's own, word for word, because client code matches on them.

use elements_store::StoreError;

/// Errors of every identity operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The request is malformed: a missing or badly formed field.
    #[error("{0}")]
    InvalidArgument(String),
    /// Missing, wrong or expired credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this (banned, insufficient level,
    /// unlinking the last identifier...).
    #[error("{0}")]
    PermissionDenied(String),
    /// The addressed account, profile, application or session does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique name or identifier is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// Too many failed attempts for this account or from this client
    /// address: refused without looking at the credential.
    #[error("{message}")]
    Throttled {
        /// What the client reads.
        message: String,
        /// Seconds until an attempt may succeed again.
        retry_after_secs: u64,
    },
    /// Password work is saturated (every password thread busy and the
    /// queue full): refused at once rather than queued without bound.
    #[error("the server is busy; retry in {retry_after_secs} s")]
    Busy {
        /// Seconds to wait before retrying.
        retry_after_secs: u64,
    },
    /// The server can't do this as configured (Nakama's
    /// `FAILED_PRECONDITION`), e.g. a login provider that is not set up.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A login provider (Apple, Google, Steam...) could not be reached or
    /// answered nonsense: nothing was decided about the credential. The
    /// detail is for the log.
    #[error("login provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// The document store cannot be reached; retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected store answer. The detail is for the log, not
    /// for clients.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of identity operations.
pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

impl IdentityError {
    /// `create=false` and no such account (Nakama's message).
    pub fn account_not_found() -> IdentityError {
        IdentityError::NotFound("User account not found.".into())
    }
    /// Wrong password or unknown login (Nakama's message).
    pub fn invalid_credentials() -> IdentityError {
        IdentityError::Unauthenticated("Invalid credentials.".into())
    }
    /// The account is banned (Nakama's message).
    pub fn banned() -> IdentityError {
        IdentityError::PermissionDenied("User account banned.".into())
    }
    /// The requested username belongs to another account (Nakama's message).
    pub fn username_in_use() -> IdentityError {
        IdentityError::AlreadyExists("Username is already in use.".into())
    }
    /// Unlinking would leave the account without a way to log in (Nakama's message).
    pub fn last_identifier() -> IdentityError {
        IdentityError::PermissionDenied(
            "Cannot unlink last account identifier. Check profile exists and is not last link.".into(),
        )
    }
    /// Login attempts refused for `retry_after_secs` seconds.
    pub fn throttled(retry_after_secs: u64) -> IdentityError {
        IdentityError::Throttled {
            message: "Too many failed attempts; retry later.".into(),
            retry_after_secs,
        }
    }
    /// Seconds the client should wait before retrying, for errors that say.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            IdentityError::Throttled { retry_after_secs, .. } | IdentityError::Busy { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }
    /// Shorthand for [`IdentityError::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> IdentityError {
        IdentityError::InvalidArgument(message.into())
    }
    /// Shorthand for [`IdentityError::NotFound`].
    pub fn not_found(message: impl Into<String>) -> IdentityError {
        IdentityError::NotFound(message.into())
    }
    /// Shorthand for [`IdentityError::Internal`].
    pub fn internal(message: impl Into<String>) -> IdentityError {
        IdentityError::Internal(message.into())
    }
}

impl From<StoreError> for IdentityError {
    fn from(e: StoreError) -> IdentityError {
        match e {
            StoreError::Unavailable(m) => IdentityError::Unavailable(m),
            // Conflicts the service expects are handled where they happen;
            // one reaching here is a race the caller may retry.
            StoreError::Conflict(c) => IdentityError::Internal(format!("unexpected store conflict: {c}")),
            other => IdentityError::Internal(other.to_string()),
        }
    }
}
