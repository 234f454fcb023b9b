//! The one place errors become HTTP responses: JSON `{code, message}` with a
//! fitting status, plus the Element and request id when there are any.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use elements_deployments::persist::PersistError;
use elements_host::element::invoke::InvokeError;
use elements_identity::IdentityError;

use crate::request::CHALLENGE;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `ELEMENT_TIMEOUT`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The Element involved, if any.
    pub element: Option<String>,
    /// The request's id, if known.
    pub request_id: Option<String>,
    /// The `WWW-Authenticate` challenge of a 401.
    pub www_authenticate: Option<&'static str>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    element: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ApiError {
    /// An error with no Element or request attached.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            element: None,
            request_id: None,
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// This error with a `Retry-After` of `secs` seconds.
    pub fn with_retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        self
    }

    /// 404 for a path nothing serves.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 401 for missing or invalid credentials, with a `WWW-Authenticate`
    /// challenge (e.g. `Bearer realm="elements"`).
    pub fn unauthorized(challenge: &'static str, message: impl Into<String>) -> ApiError {
        let mut error = ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
        error.www_authenticate = Some(challenge);
        error
    }

    /// 403 for a caller whose level or ownership does not allow the request.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 413 for a request body over `limit` bytes.
    pub fn request_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_TOO_LARGE",
            format!("the request body is larger than the {limit} bytes allowed"),
        )
    }

    /// The failure of a request to an Element.
    pub fn from_invoke(element: &str, error: &InvokeError) -> ApiError {
        let (status, code) = match error {
            InvokeError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "ELEMENT_TIMEOUT"),
            InvokeError::MemoryLimit { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "ELEMENT_MEMORY_LIMIT"),
            InvokeError::Trap(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ELEMENT_TRAP"),
            InvokeError::ResponseTooLarge(_) => (StatusCode::INTERNAL_SERVER_ERROR, "RESPONSE_TOO_LARGE"),
            InvokeError::BadResponse(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ELEMENT_BAD_RESPONSE"),
            InvokeError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED"),
        };
        // A trap's detail (backtrace, panic text) stays in the log: clients
        // get the class of failure and the request id to look it up.
        let message = match error {
            // The name is a checked URL segment, so the paths are usable as is.
            InvokeError::Trap(_) => format!(
                "Element {element:?} failed (it trapped); see its log: \
                 /api/rest/elements/deployment/{element}/logs (admin API) or /admin/elements/{element} (portal)"
            ),
            other => format!("Element {element:?} {other}"),
        };
        ApiError {
            status,
            code,
            message,
            element: Some(element.to_owned()),
            request_id: None,
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// This error tagged with a request id.
    pub fn with_request_id(mut self, id: &str) -> ApiError {
        self.request_id = Some(id.to_owned());
        self
    }
}

impl ApiError {
    fn body(&self) -> Body<'_> {
        Body {
            code: self.code,
            message: &self.message,
            element: self.element.as_deref(),
            request_id: self.request_id.as_deref(),
        }
    }
}

/// `response`, if an [`ApiError`] made it and named no request, with its
/// body naming request `id`. Handlers don't see the id; the middleware
/// every router ends with (`json_errors`) does, and calls this.
pub(crate) fn name_request(mut response: Response, id: &str) -> Response {
    // Only errors carry one: for every other response this is one failed
    // lookup in an empty map.
    let Some(error) = response.extensions_mut().remove::<ApiError>() else {
        return response;
    };
    if error.request_id.is_some() {
        return response;
    }
    let error = error.with_request_id(id);
    let Ok(body) = serde_json::to_vec(&error.body()) else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(challenge) = self.www_authenticate
            && let Ok(value) = http::HeaderValue::from_str(challenge)
        {
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        // Kept for `name_request`, which adds the request id.
        response.extensions_mut().insert(self);
        response
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> ApiError {
        match e {
            IdentityError::InvalidArgument(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", m)
            }
            IdentityError::Unauthenticated(m) => ApiError::unauthorized(CHALLENGE, m),
            IdentityError::PermissionDenied(m) => ApiError::forbidden(m),
            IdentityError::NotFound(m) => ApiError::not_found(m),
            IdentityError::AlreadyExists(m) => ApiError::new(StatusCode::CONFLICT, "DUPLICATE", m),
            IdentityError::Throttled {
                message,
                retry_after_secs,
            } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "THROTTLED", message)
                .with_retry_after(retry_after_secs),
            IdentityError::Busy { retry_after_secs } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "BUSY",
                "the server is busy checking passwords; retry later",
            )
            .with_retry_after(retry_after_secs),
            IdentityError::FailedPrecondition(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "FAILED_PRECONDITION", m)
            }
            IdentityError::ProviderUnavailable(m) => {
                tracing::warn!("identity request failed, login provider unavailable: {m}");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "PROVIDER_UNAVAILABLE",
                    "the login provider could not be reached; retry later",
                )
            }
            IdentityError::Unavailable(m) => {
                tracing::warn!("identity request failed, store unavailable: {m}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "storage is unavailable; retry later",
                )
            }
            IdentityError::Internal(m) => {
                // The detail is for operators, not clients.
                tracing::error!("identity request failed: {m}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")
            }
        }
    }
}

impl From<PersistError> for ApiError {
    fn from(e: PersistError) -> ApiError {
        match e {
            PersistError::Invalid(m) => crate::request::bad_request(m),
            PersistError::NotFound(_) => ApiError::not_found(e.to_string()),
            PersistError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "CONFLICT", m),
            PersistError::Store(s) if s.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("the store is unavailable: {s}"),
            ),
            PersistError::Store(s) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", s.to_string())
            }
        }
    }
}
