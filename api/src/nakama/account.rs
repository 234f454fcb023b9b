//! `GET /v2/account`, `POST /v2/account/link/{...}`, `POST /v2/account/unlink/{...}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use elements_identity::time::rfc3339;
use elements_identity::{Credential, IdentityError, VerificationStatus, scheme};

use super::error::{Code, NakamaError, NakamaStatus};
use super::{AccountEmail, AccountId, Empty, Session};
use elements_server::App;
use elements_server::request::parse_body;

/// Nakama's `User` (fields it leaves out when empty are left out here too).
#[derive(Debug, Serialize, ToSchema)]
pub struct NakamaUser {
    /// User id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Avatar URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Language tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang_tag: Option<String>,
    /// Metadata, a JSON object encoded as a string.
    pub metadata: String,
    /// Creation time (RFC 3339).
    pub create_time: String,
    /// Last update (RFC 3339).
    pub update_time: String,
}

/// A device linked to the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDevice {
    /// Device id.
    pub id: String,
}

/// Nakama's `Account`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    /// The user.
    pub user: NakamaUser,
    /// Wallet, a JSON object encoded as a string.
    pub wallet: String,
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Linked devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<AccountDevice>,
    /// Linked custom id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    /// When the email was verified (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_time: Option<String>,
    /// When the account was banned (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_time: Option<String>,
}

/// The caller's account.
#[utoipa::path(get, path = "/v2/account", tag = "nakama",
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 401, description = "No valid session token", body = NakamaStatus),
        (status = 404, description = "Account gone", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn get_account(
    State(app): State<Arc<App>>,
    Session(caller): Session,
) -> Result<Json<Account>, NakamaError> {
    let service = &app.identity.service;
    let user = match service.user(&caller.user_id).await {
        Ok(user) => user,
        Err(IdentityError::NotFound(_)) => {
            return Err(NakamaError::new(Code::NotFound, "Account not found."));
        }
        Err(e) => return Err(e.into()),
    };
    let identities = service.identities_of(&user.id).await?;
    let devices = identities
        .iter()
        .filter(|i| i.scheme == scheme::DEVICE)
        .map(|i| AccountDevice { id: i.id.clone() })
        .collect();
    let custom_id = identities
        .iter()
        .find(|i| i.scheme == scheme::CUSTOM)
        .map(|i| i.id.clone());
    let verify_time = identities
        .iter()
        .find(|i| i.scheme == scheme::EMAIL && i.status == VerificationStatus::Verified)
        .map(|i| rfc3339(i.updated));
    Ok(Json(Account {
        user: NakamaUser {
            id: user.id,
            username: user.name,
            display_name: user.display_name,
            avatar_url: user.avatar_url,
            lang_tag: user.lang_tag,
            metadata: user.metadata.to_string(),
            create_time: rfc3339(user.created),
            update_time: rfc3339(user.updated),
        },
        wallet: "{}".into(),
        email: user.email,
        devices,
        custom_id,
        verify_time,
        disable_time: user.banned_at.map(rfc3339),
    }))
}

/// The credential in a link/unlink body of `scheme`.
fn credential(scheme_name: &str, body: &Bytes) -> Result<Credential, NakamaError> {
    match scheme_name {
        scheme::DEVICE | scheme::CUSTOM => {
            let account: AccountId = parse_body(body).map_err(NakamaError::invalid)?;
            Ok(Credential::id(account.id))
        }
        scheme::EMAIL => {
            let account: AccountEmail = parse_body(body).map_err(NakamaError::invalid)?;
            Ok(Credential {
                id: account.email,
                password: Some(account.password),
                token: None,
            })
        }
        // A scheme this server has no route for: 404, not a server error
        // (a 501 would read as the server failing).
        other => Err(NakamaError::new(
            Code::NotFound,
            format!("Linking {other:?} is not supported."),
        )),
    }
}

/// Link a device id, an email and password, or a custom id to the caller's
/// account. Re-linking one of the caller's own is a no-op.
#[utoipa::path(post, path = "/v2/account/link/{scheme}", tag = "nakama",
    params(("scheme" = String, Path, description = "`device`, `email` or `custom`")),
    request_body(content = AccountId, description = "AccountDevice / AccountCustom; AccountEmail for email"),
    responses(
        (status = 200, description = "Linked", body = Empty),
        (status = 400, description = "Invalid id, email or password", body = NakamaStatus),
        (status = 401, description = "No valid session token", body = NakamaStatus),
        (status = 404, description = "Scheme not supported", body = NakamaStatus),
        (status = 409, description = "Used by another account", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn link(
    State(app): State<Arc<App>>,
    Path(scheme_name): Path<String>,
    Session(caller): Session,
    body: Bytes,
) -> Result<Json<Empty>, NakamaError> {
    let credential = credential(&scheme_name, &body)?;
    app.identity
        .service
        .link(&caller.user_id, &scheme_name, &credential)
        .await?;
    Ok(Json(Empty {}))
}

/// Unlink a device id, an email or a custom id from the caller's account;
/// the account's last identifier can't be unlinked.
#[utoipa::path(post, path = "/v2/account/unlink/{scheme}", tag = "nakama",
    params(("scheme" = String, Path, description = "`device`, `email` or `custom`")),
    request_body(content = AccountId, description = "AccountDevice / AccountCustom; AccountEmail for email"),
    responses(
        (status = 200, description = "Unlinked", body = Empty),
        (status = 400, description = "Invalid id or email", body = NakamaStatus),
        (status = 401, description = "No valid session token", body = NakamaStatus),
        (status = 403, description = "Not linked to the caller, or the last identifier", body = NakamaStatus),
        (status = 404, description = "Scheme not supported", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn unlink(
    State(app): State<Arc<App>>,
    Path(scheme_name): Path<String>,
    Session(caller): Session,
    body: Bytes,
) -> Result<Json<Empty>, NakamaError> {
    let credential = credential(&scheme_name, &body)?;
    app.identity
        .service
        .unlink(&caller.user_id, &scheme_name, &credential)
        .await?;
    Ok(Json(Empty {}))
}
