//! The one mapping of identity errors to Nakama's REST gateway errors: a
//! gRPC status as JSON `{"code": <gRPC code>, "message": "...", "details": []}`
//! with grpc-gateway's HTTP status for the code.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use elements_identity::IdentityError;

/// gRPC status codes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    /// 3.
    InvalidArgument = 3,
    /// 5.
    NotFound = 5,
    /// 6.
    AlreadyExists = 6,
    /// 7.
    PermissionDenied = 7,
    /// 8.
    ResourceExhausted = 8,
    /// 9.
    FailedPrecondition = 9,
    /// 12.
    Unimplemented = 12,
    /// 13.
    Internal = 13,
    /// 14.
    Unavailable = 14,
    /// 16.
    Unauthenticated = 16,
}

impl Code {
    /// grpc-gateway's HTTP status for the code.
    pub fn http_status(self) -> StatusCode {
        match self {
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }
}

/// An error answered on `/v2`.
#[derive(Debug, Clone)]
pub struct NakamaError {
    /// gRPC code.
    pub code: Code,
    /// Message (Nakama's wording where Nakama has one).
    pub message: String,
    /// The `WWW-Authenticate` challenge of an unauthenticated error.
    pub challenge: &'static str,
    /// Seconds for `Retry-After` (throttled, busy).
    pub retry_after: Option<u64>,
    /// The HTTP status when it is not the gateway's for `code`: 502 for a
    /// login provider that could not be reached (gRPC has no such code).
    pub status: Option<StatusCode>,
}

/// The gateway's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct NakamaStatus {
    /// gRPC status code (3 invalid argument, 5 not found, 6 already exists,
    /// 7 permission denied, 8 resource exhausted, 9 failed precondition, 13 internal, 14 unavailable, 16 unauthenticated).
    pub code: i32,
    /// Message.
    pub message: String,
    /// Always empty.
    #[schema(value_type = Vec<Object>)]
    pub details: Vec<serde_json::Value>,
}

/// Challenge for calls authenticated with a bearer session token.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"nakama\"";
/// Challenge for calls authenticated with the server key.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"nakama\"";

impl NakamaError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> NakamaError {
        NakamaError {
            code,
            message: message.into(),
            challenge: BEARER_CHALLENGE,
            retry_after: None,
            status: None,
        }
    }

    /// Invalid argument.
    pub fn invalid(message: impl Into<String>) -> NakamaError {
        NakamaError::new(Code::InvalidArgument, message)
    }

    /// Unauthenticated, with the challenge to send.
    pub fn unauthenticated(challenge: &'static str, message: impl Into<String>) -> NakamaError {
        NakamaError {
            code: Code::Unauthenticated,
            message: message.into(),
            challenge,
            retry_after: None,
            status: None,
        }
    }
}

impl From<IdentityError> for NakamaError {
    fn from(e: IdentityError) -> NakamaError {
        match e {
            IdentityError::InvalidArgument(m) => NakamaError::new(Code::InvalidArgument, m),
            IdentityError::Unauthenticated(m) => NakamaError::new(Code::Unauthenticated, m),
            IdentityError::PermissionDenied(m) => NakamaError::new(Code::PermissionDenied, m),
            IdentityError::NotFound(m) => NakamaError::new(Code::NotFound, m),
            IdentityError::AlreadyExists(m) => NakamaError::new(Code::AlreadyExists, m),
            // grpc-gateway answers RESOURCE_EXHAUSTED with 429.
            IdentityError::Throttled {
                message,
                retry_after_secs,
            } => NakamaError {
                retry_after: Some(retry_after_secs),
                ..NakamaError::new(Code::ResourceExhausted, message)
            },
            IdentityError::Busy { retry_after_secs } => NakamaError {
                retry_after: Some(retry_after_secs),
                ..NakamaError::new(Code::Unavailable, "Server busy, retry later.")
            },
            IdentityError::FailedPrecondition(m) => NakamaError::new(Code::FailedPrecondition, m),
            IdentityError::ProviderUnavailable(m) => {
                tracing::warn!("Nakama API request failed, login provider unavailable: {m}");
                NakamaError {
                    status: Some(StatusCode::BAD_GATEWAY),
                    ..NakamaError::new(
                        Code::Unavailable,
                        "The login provider could not be reached; retry later.",
                    )
                }
            }
            IdentityError::Unavailable(m) => {
                tracing::warn!("Nakama API request failed, store unavailable: {m}");
                NakamaError::new(Code::Unavailable, "Storage unavailable, retry later.")
            }
            IdentityError::Internal(m) => {
                tracing::error!("Nakama API request failed: {m}");
                NakamaError::new(Code::Internal, "Internal server error.")
            }
        }
    }
}

impl IntoResponse for NakamaError {
    fn into_response(self) -> Response {
        let body = NakamaStatus {
            code: self.code as i32,
            message: self.message,
            details: Vec::new(),
        };
        let status = self.status.unwrap_or(self.code.http_status());
        let mut response = (status, Json(body)).into_response();
        if self.code == Code::Unauthenticated {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(self.challenge),
            );
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_gateways_statuses() {
        let cases = [
            (IdentityError::invalid("x"), 3, 400),
            (IdentityError::invalid_credentials(), 16, 401),
            (IdentityError::banned(), 7, 403),
            (IdentityError::account_not_found(), 5, 404),
            (IdentityError::username_in_use(), 6, 409),
            (IdentityError::Unavailable("x".into()), 14, 503),
            (IdentityError::FailedPrecondition("x".into()), 9, 400),
            (IdentityError::ProviderUnavailable("x".into()), 14, 502),
            (IdentityError::throttled(3), 8, 429),
            (IdentityError::Busy { retry_after_secs: 1 }, 14, 503),
            (IdentityError::internal("secret detail"), 13, 500),
        ];
        for (error, code, status) in cases {
            let e = NakamaError::from(error);
            assert!(!e.message.contains("secret detail"));
            assert_eq!(e.code as i32, code);
            assert_eq!(e.into_response().status().as_u16(), status);
        }
    }
}
