//! `GET /v2/user`: other players, by id, username or Facebook id.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};

use elements_identity::{IdentityError, User};
use elements_wire as wire;

use super::Session;
use super::error::{NakamaError, NakamaStatus};
use elements_server::App;

/// Most ids, usernames and Facebook ids one request may ask for together, so
/// one call can't make the server read thousands of accounts.
pub const MAX_USERS: usize = 100;

/// Users by id, username or Facebook id, all together. Ids, names and
/// Facebook ids that match nobody are left out; each user appears once.
#[utoipa::path(get, path = "/v2/user", tag = "nakama",
    params(
        ("ids" = Option<Vec<String>>, Query, description = "User ids (repeat the parameter)"),
        ("usernames" = Option<Vec<String>>, Query, description = "Usernames"),
        ("facebook_ids" = Option<Vec<String>>, Query, description = "Facebook ids"),
    ),
    responses(
        (status = 200, description = "The users found", body = wire::nakama::Users),
        (status = 400, description = "An id is not a user id, or more than 100 asked for", body = NakamaStatus),
        (status = 401, description = "No valid session token", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn get_users(
    State(app): State<Arc<App>>,
    Session(_caller): Session,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::nakama::Users>, NakamaError> {
    let (mut ids, mut names, mut facebook_ids) = (Vec::new(), Vec::new(), Vec::new());
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "ids" => ids.push(value.into_owned()),
            "usernames" => names.push(value.into_owned()),
            "facebook_ids" => facebook_ids.push(value.into_owned()),
            _ => {}
        }
    }
    if ids.len() + names.len() + facebook_ids.len() > MAX_USERS {
        return Err(NakamaError::invalid(format!(
            "Too many users requested, at most {MAX_USERS} ids, usernames and Facebook ids together."
        )));
    }
    if let Some(bad) = ids.iter().find(|id| uuid::Uuid::parse_str(id).is_err()) {
        return Err(NakamaError::invalid(format!(
            "ID '{}' is not a valid system ID.",
            bad.chars().take(64).collect::<String>()
        )));
    }
    let service = &app.identity.service;
    let mut found: Vec<User> = Vec::new();
    for id in &ids {
        match service.user(id).await {
            Ok(user) => found.push(user),
            Err(IdentityError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for name in &names {
        found.extend(service.find_user_by_name(name).await?);
    }
    for id in &facebook_ids {
        found.extend(service.find_user_by_identity("facebook", id).await?);
    }
    let mut seen = HashSet::new();
    let users = found
        .into_iter()
        .filter(|u| seen.insert(u.id.clone()))
        .map(Into::into)
        .collect();
    Ok(Json(wire::nakama::Users { users }))
}
