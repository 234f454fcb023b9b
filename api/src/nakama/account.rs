//! `GET/PUT/DELETE /v2/account`, `POST /v2/account/link/{...}`, `POST /v2/account/unlink/{...}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;

use elements_identity::{Credential, IdentityError, UserUpdate, scheme};
use elements_wire as wire;

use super::error::{Code, NakamaError, NakamaStatus};
use super::{AccountEmail, AccountId, Empty, Session};
use elements_server::App;
use elements_server::request::parse_body;

/// The caller's account.
#[utoipa::path(get, path = "/v2/account", tag = "nakama",
    responses(
        (status = 200, description = "The account", body = wire::nakama::Account),
        (status = 401, description = "No valid session token", body = NakamaStatus),
        (status = 404, description = "Account gone", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn get_account(
    State(app): State<Arc<App>>,
    Session(caller): Session,
) -> Result<Json<wire::nakama::Account>, NakamaError> {
    // The token check read the user: no second read.
    let identities = app.identity.service.identities_of(&caller.user.id).await?;
    Ok(Json(elements_identity::wire::nakama_account(
        caller.user,
        &identities,
    )))
}

/// An identity error about the caller's own account: its absence (deleted
/// while the token was still live) is Nakama's "Account not found.".
fn account_error(e: IdentityError) -> NakamaError {
    match e {
        IdentityError::NotFound(_) => NakamaError::new(Code::NotFound, "Account not found."),
        other => other.into(),
    }
}

/// Delete the caller's account: its identities (a device, custom id or
/// email of it then makes a fresh account), its profiles, the user, and
/// every session and token of it. The last superuser can't be deleted.
#[utoipa::path(delete, path = "/v2/account", tag = "nakama",
    responses(
        (status = 200, description = "Deleted", body = Empty),
        (status = 401, description = "No valid session token (one of a deleted account included)", body = NakamaStatus),
        (status = 403, description = "The caller is the last superuser", body = NakamaStatus),
        (status = 404, description = "Account already gone", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn delete_account(
    State(app): State<Arc<App>>,
    Session(caller): Session,
) -> Result<Json<Empty>, NakamaError> {
    let service = &app.identity.service;
    let user = service.user(&caller.user_id).await.map_err(account_error)?;
    service
        .delete_user(&user, &user.id)
        .await
        .map_err(account_error)?;
    Ok(Json(Empty {}))
}

/// Change the caller's username, display name, avatar, language, location
/// or time zone. An absent field stays as it is; an empty one is cleared
/// (the username can't be).
#[utoipa::path(put, path = "/v2/account", tag = "nakama", request_body = wire::nakama::UpdateAccount,
    responses(
        (status = 200, description = "Changed", body = Empty),
        (status = 400, description = "Invalid username or field", body = NakamaStatus),
        (status = 401, description = "No valid session token", body = NakamaStatus),
        (status = 404, description = "Account gone", body = NakamaStatus),
        (status = 409, description = "Username taken", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn update_account(
    State(app): State<Arc<App>>,
    Session(caller): Session,
    body: Bytes,
) -> Result<Json<Empty>, NakamaError> {
    let change: wire::nakama::UpdateAccount = parse_body(&body).map_err(NakamaError::invalid)?;
    let service = &app.identity.service;
    let user = service.user(&caller.user_id).await?;
    let update = UserUpdate {
        name: change.username,
        display_name: change.display_name,
        avatar_url: change.avatar_url,
        lang_tag: change.lang_tag,
        location: change.location,
        timezone: change.timezone,
        ..UserUpdate::default()
    };
    service.update_user(&user, &user.id, update).await?;
    Ok(Json(Empty {}))
}

/// The credential in a link/unlink body of `scheme`.
fn credential(app: &App, scheme_name: &str, body: &Bytes) -> Result<Credential, NakamaError> {
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
                ..Credential::default()
            })
        }
        other => match super::proof::provider(&app.identity.service, other, body) {
            Some(parsed) => parsed.map(|(credential, _)| credential),
            // A scheme this server has no route for: 404, not a server
            // error (a 501 would read as the server failing).
            None => Err(NakamaError::new(
                Code::NotFound,
                format!("Linking {other:?} is not supported."),
            )),
        },
    }
}

/// Link a device id, an email and password, or a custom id to the caller's
/// account. Re-linking one of the caller's own is a no-op; an account has one
/// email and one custom id, so linking another replaces it (the old one no
/// longer logs in).
#[utoipa::path(post, path = "/v2/account/link/{scheme}", tag = "nakama",
    params(("scheme" = String, Path, description = "`device`, `email`, `custom`, or a provider: `apple`, `google`, `facebook`, `facebookinstantgame`, `gamecenter`, `steam`")),
    request_body(content = AccountId, description = "AccountDevice / AccountCustom; AccountEmail for email; \
        for a provider, `{\"token\"}` (AccountApple, AccountGoogle, AccountFacebook, AccountSteam), \
        `{\"signed_player_info\"}` (AccountFacebookInstantGame) or AccountGameCenter's fields"),
    responses(
        (status = 200, description = "Linked", body = Empty),
        (status = 400, description = "Invalid id, email or password; a provider not configured (code 9)", body = NakamaStatus),
        (status = 401, description = "No valid session token; a provider's proof not genuine", body = NakamaStatus),
        (status = 404, description = "Scheme not supported", body = NakamaStatus),
        (status = 409, description = "Used by another account", body = NakamaStatus),
        (status = 502, description = "The login provider could not be reached", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn link(
    State(app): State<Arc<App>>,
    Path(scheme_name): Path<String>,
    Session(caller): Session,
    body: Bytes,
) -> Result<Json<Empty>, NakamaError> {
    let credential = credential(&app, &scheme_name, &body)?;
    app.identity
        .service
        .link(&caller.user_id, &scheme_name, &credential)
        .await?;
    Ok(Json(Empty {}))
}

/// Unlink a device id, an email or a custom id from the caller's account;
/// the account's last identifier can't be unlinked.
#[utoipa::path(post, path = "/v2/account/unlink/{scheme}", tag = "nakama",
    params(("scheme" = String, Path, description = "`device`, `email`, `custom`, or a provider: `apple`, `google`, `facebook`, `facebookinstantgame`, `gamecenter`, `steam`")),
    request_body(content = AccountId, description = "AccountDevice / AccountCustom; AccountEmail for email; \
        for a provider, `{\"token\"}` (AccountApple, AccountGoogle, AccountFacebook, AccountSteam), \
        `{\"signed_player_info\"}` (AccountFacebookInstantGame) or AccountGameCenter's fields"),
    responses(
        (status = 200, description = "Unlinked", body = Empty),
        (status = 400, description = "Invalid id or email; a provider not configured (code 9)", body = NakamaStatus),
        (status = 401, description = "No valid session token; a provider's proof not genuine", body = NakamaStatus),
        (status = 403, description = "Not linked to the caller, or the last identifier", body = NakamaStatus),
        (status = 404, description = "Scheme not supported", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn unlink(
    State(app): State<Arc<App>>,
    Path(scheme_name): Path<String>,
    Session(caller): Session,
    body: Bytes,
) -> Result<Json<Empty>, NakamaError> {
    let credential = credential(&app, &scheme_name, &body)?;
    app.identity
        .service
        .unlink(&caller.user_id, &scheme_name, &credential)
        .await?;
    Ok(Json(Empty {}))
}
