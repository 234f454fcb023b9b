//! The core API's extension points ([`EXTENSION_ROUTES`]), as documented:
//! the server routes them to the Element that claims them (`core_routes`,
//! grant `route.core:PATH`), so no handler here serves them. The operations
//! below describe the bundled Email Verification Element, the one that
//! claims them; without it they answer 404 `NOT_FOUND`.
//!
//! [`EXTENSION_ROUTES`]: elements_host::element::manifest::EXTENSION_ROUTES

#![allow(dead_code)] // Documentation only: the functions and types are never called or built.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::rest::ErrorDto;
use elements_wire as wire;

/// Ask for a verification email.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EmailVerifyRequest {
    /// An address linked to the caller's account.
    pub email: String,
}

/// Email a single-use verification link to an address linked to the
/// caller's account (served by the Email Verification Element).
#[utoipa::path(post, path = "/api/rest/user/me/email/verify", tag = "extensions",
    request_body = EmailVerifyRequest,
    responses(
        (status = 200, description = "Sent (identity PENDING), or already VERIFIED", body = wire::Identity),
        (status = 400, description = "Malformed body, or mail is not configured", body = ErrorDto),
        (status = 401, description = "No session, or invalid or expired credentials", body = ErrorDto),
        (status = 403, description = "Another user's address", body = ErrorDto),
        (status = 404, description = "Not linked to the caller, or no Element serves this route", body = ErrorDto),
        (status = 405, description = "Method not allowed", body = ErrorDto),
        (status = 413, description = "Body over the limit", body = ErrorDto),
        (status = 429, description = "Too many verification emails for this address or account; see `Retry-After`", body = ErrorDto,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ), security((), ("session" = [])))]
pub fn request_email_verification() {}

/// Consume a verification token: the address becomes VERIFIED (served by
/// the Email Verification Element).
#[utoipa::path(get, path = "/api/rest/verify", tag = "extensions",
    params(("token" = String, Query, description = "The token from the email")),
    responses(
        (status = 200, description = "Verified", body = wire::Identity),
        (status = 404, description = "Unknown, used or expired token, or no Element serves this route", body = ErrorDto),
        (status = 405, description = "Method not allowed", body = ErrorDto),
    ))]
pub fn complete_email_verification() {}
