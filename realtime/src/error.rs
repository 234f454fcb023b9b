//! The errors of the realtime hub: those a socket client gets as Nakama's
//! `error` envelope ([`ErrorCode`] is `nakama.realtime.Error.Code`), and
//! those of the HTTP routes over the same state.

/// `nakama.realtime.Error.Code` (rtapi/realtime.proto), the numbers a
/// client compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ErrorCode {
    /// An unexpected server error.
    RuntimeException = 0,
    /// An envelope the server doesn't know, or that isn't JSON.
    UnrecognizedPayload = 1,
    /// An envelope with no message in it.
    MissingPayload = 2,
    /// A message with a bad field.
    BadInput = 3,
    /// No such match.
    MatchNotFound = 4,
    /// The match refused the join.
    MatchJoinRejected = 5,
    /// No RPC with that id.
    RuntimeFunctionNotFound = 6,
    /// The RPC failed.
    RuntimeFunctionException = 7,
}

/// What went wrong with a request to the hub.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RealtimeError {
    /// Answered to the socket as an `error` envelope.
    #[error("{message}")]
    Socket {
        /// The code.
        code: ErrorCode,
        /// Nakama's wording where it has one.
        message: String,
    },
    /// An HTTP request's argument is bad.
    #[error("{0}")]
    InvalidArgument(String),
    /// Not there, or not the caller's to see.
    #[error("{0}")]
    NotFound(String),
    /// The user has as many sockets as allowed.
    #[error("{0}")]
    TooManySockets(String),
    /// The store failed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl RealtimeError {
    /// A socket error.
    pub fn socket(code: ErrorCode, message: impl Into<String>) -> RealtimeError {
        RealtimeError::Socket {
            code,
            message: message.into(),
        }
    }

    /// `BAD_INPUT` with `message`.
    pub fn bad_input(message: impl Into<String>) -> RealtimeError {
        RealtimeError::socket(ErrorCode::BadInput, message)
    }

    /// The code and message a socket client gets for this error.
    pub fn envelope_parts(&self) -> (ErrorCode, String) {
        match self {
            RealtimeError::Socket { code, message } => (*code, message.clone()),
            RealtimeError::InvalidArgument(m)
            | RealtimeError::NotFound(m)
            | RealtimeError::TooManySockets(m) => (ErrorCode::BadInput, m.clone()),
            RealtimeError::Unavailable(m) => {
                tracing::warn!("realtime request failed, store unavailable: {m}");
                (
                    ErrorCode::RuntimeException,
                    "Storage unavailable, retry later.".into(),
                )
            }
        }
    }
}

impl From<elements_store::StoreError> for RealtimeError {
    fn from(e: elements_store::StoreError) -> RealtimeError {
        RealtimeError::Unavailable(e.to_string())
    }
}

/// An RPC's failure, as the handler reports it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// No RPC with that id (`RUNTIME_FUNCTION_NOT_FOUND`).
    #[error("RPC function not found")]
    NotFound,
    /// The RPC ran and failed (`RUNTIME_FUNCTION_EXCEPTION`).
    #[error("{0}")]
    Failed(String),
}
