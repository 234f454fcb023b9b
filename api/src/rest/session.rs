//! `POST /session`, `DELETE /session/{secret}`, `POST /signup/session`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use elements_identity::{Application, IdentityError, Level, NewUser, Profile, ProfileQuery, User};

use super::{ErrorDto, bad_request};
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::{ClientAddr, parse_body};
use elements_wire as wire;

/// Log in.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionRequest {
    /// The user's name or email.
    pub user_id: String,
    /// Password.
    pub password: String,
    /// Open the session for this profile (must be the user's).
    pub profile_id: Option<String>,
    /// Namazu Elements' profile selector: a query choosing one of the
    /// user's profiles (used when `profileId` is absent). Terms joined by
    /// ` AND `: `.ref.application:<id or name>`, `.name.application:<name>`,
    /// `displayName:<name>` (exact; quote it when it has spaces). Unknown
    /// terms are a 400; no matching profile a 404.
    pub profile_selector: Option<String>,
    /// Namazu Elements' `applicationNameOrId`: open the session with the
    /// user's profile in this application (id or name), when neither
    /// `profileId` nor `profileSelector` is given. An unknown application,
    /// or none of the user's profiles in it, opens the session without a
    /// profile, as Namazu does.
    pub application_name_or_id: Option<String>,
    /// Open the session for this application (id or name): the user's
    /// profile in it is found or created (when none of the above is given).
    pub application: Option<String>,
}

/// Longest profile selector read.
const MAX_SELECTOR: usize = 512;

/// One term of a profile selector.
#[derive(Debug, PartialEq)]
enum SelectorTerm {
    /// `.ref.application:<id or name>`.
    Application(String),
    /// `.name.application:<name>`.
    ApplicationName(String),
    /// `displayName:<exact display name>`.
    DisplayName(String),
}

/// Parses a profile selector; `Err` says what is not understood (a 400).
fn parse_selector(selector: &str) -> Result<Vec<SelectorTerm>, String> {
    let selector = selector.trim();
    if selector.is_empty() || selector.len() > MAX_SELECTOR {
        return Err(format!("`profileSelector` must be 1 to {MAX_SELECTOR} bytes"));
    }
    selector
        .split(" AND ")
        .map(|term| {
            let term = term.trim();
            let (field, value) = term
                .split_once(':')
                .ok_or_else(|| format!("`profileSelector`: {term:?} is not a `field:value` term"))?;
            let value = value.trim();
            let (value, quoted) = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(inner) => (inner, true),
                None => (value, false),
            };
            if !quoted && value.contains(char::is_whitespace) {
                return Err(format!(
                    "`profileSelector`: {term:?}: quote a value with spaces; terms are joined by ` AND ` only"
                ));
            }
            if value.is_empty() || value.contains('"') {
                return Err(format!(
                    "`profileSelector`: {term:?} needs a value (quote it as a whole)"
                ));
            }
            match field.trim() {
                ".ref.application" => Ok(SelectorTerm::Application(value.to_owned())),
                ".name.application" => Ok(SelectorTerm::ApplicationName(value.to_owned())),
                "displayName" => Ok(SelectorTerm::DisplayName(value.to_owned())),
                other => Err(format!(
                    "`profileSelector`: unsupported selector {other:?}; supported are \
                     `.ref.application:<id or name>`, `.name.application:<name>` and \
                     `displayName:<name>`, joined by ` AND `"
                )),
            }
        })
        .collect()
}

/// The first (oldest) of the user's profiles matching every term.
async fn select_profile(app: &App, user: &User, terms: &[SelectorTerm]) -> Result<Profile, ApiError> {
    let service = &app.identity.service;
    let not_found = || ApiError::not_found("no profile of the user matches `profileSelector`");
    let mut application: Option<Application> = None;
    for term in terms {
        let found = match term {
            SelectorTerm::Application(name_or_id) => service.application(name_or_id).await,
            SelectorTerm::ApplicationName(name) => match service.application(name).await {
                // By name only: an id that happens to match is not a name.
                Ok(a) if a.name == *name => Ok(a),
                Ok(_) => Err(IdentityError::NotFound("no application by that name".into())),
                Err(e) => Err(e),
            },
            SelectorTerm::DisplayName(_) => continue,
        };
        let found = match found {
            Ok(found) => found,
            Err(IdentityError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        // Two application terms must name the same application.
        if application.as_ref().is_some_and(|a| a.id != found.id) {
            return Err(not_found());
        }
        application = Some(found);
    }
    let display_name = terms.iter().find_map(|t| match t {
        SelectorTerm::DisplayName(d) => Some(d.as_str()),
        _ => None,
    });
    let query = ProfileQuery {
        user_id: Some(&user.id),
        application: application.as_ref().map(|a| a.id.as_str()),
        display_name,
    };
    // A user has one profile per application: a page holds them all.
    let page = service.list_profiles(user, &query, 0, 100).await?;
    page.items
        .into_iter()
        .find(|p| {
            terms.iter().all(|t| match t {
                SelectorTerm::DisplayName(d) => p.display_name.as_deref() == Some(d.as_str()),
                _ => true,
            })
        })
        .ok_or_else(not_found)
}

/// The user's profile in the application `name_or_id`, if both exist.
async fn primary_profile(app: &App, user: &User, name_or_id: &str) -> Result<Option<Profile>, ApiError> {
    let service = &app.identity.service;
    let application = match service.application(name_or_id).await {
        Ok(a) => a,
        Err(IdentityError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let query = ProfileQuery {
        user_id: Some(&user.id),
        application: Some(&application.id),
        display_name: None,
    };
    Ok(service
        .list_profiles(user, &query, 0, 1)
        .await?
        .items
        .into_iter()
        .next())
}

/// Sign up, then log in.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SignupRequest {
    /// Unique name (no spaces or control characters, at most 128 bytes).
    pub name: String,
    /// Email.
    pub email: Option<String>,
    /// Password (at least 8 characters).
    pub password: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Open the session for this application (id or name), with a new profile.
    pub application: Option<String>,
}

/// Opens a session for `user`, for a profile / application if asked.
pub(crate) async fn open(
    app: &App,
    user: User,
    profile_id: Option<&str>,
    application: Option<&str>,
) -> Result<wire::SessionCreation, ApiError> {
    let service = &app.identity.service;
    let (profile, application): (Option<Profile>, Option<Application>) = match (profile_id, application) {
        (Some(id), _) => {
            let profile = service.profile(&user, id).await?;
            let application = service.application(&profile.application_id).await?;
            (Some(profile), Some(application))
        }
        (None, Some(name)) => {
            let application = service.application(name).await?;
            let (profile, _) = service.find_or_create_profile(&user.id, &application).await?;
            (Some(profile), Some(application))
        }
        (None, None) => (None, None),
    };
    let (secret, session) = service
        .create_session(
            &user.id,
            profile.as_ref(),
            application.as_ref().map(|a| a.id.as_str()),
            None,
        )
        .await?;
    Ok(wire::SessionCreation {
        session_secret: secret,
        session: elements_identity::wire::session(user, profile, application, session.expiry),
    })
}

/// Log in with a name or email and a password.
#[utoipa::path(post, path = "/api/rest/session", tag = "sessions", request_body = SessionRequest,
    responses(
        (status = 200, description = "Session opened", body = wire::SessionCreation),
        (status = 400, description = "Missing fields, or a `profileSelector` this server does not support", body = ErrorDto),
        (status = 401, description = "Invalid credentials", body = ErrorDto),
        (status = 403, description = "Banned, or not the user's profile", body = ErrorDto),
        (status = 404, description = "No profile with `profileId`, or none matching `profileSelector`", body = ErrorDto),
        (status = 429, description = "Too many failed logins for the account or from the address; see `Retry-After`", body = ErrorDto),
        (status = 503, description = "Password checks saturated; see `Retry-After`", body = ErrorDto),
    ))]
pub async fn create_session(
    State(app): State<Arc<App>>,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<Json<wire::SessionCreation>, ApiError> {
    let request: SessionRequest = parse_body(&body).map_err(bad_request)?;
    if request.user_id.is_empty() || request.password.is_empty() {
        return Err(bad_request("`userId` and `password` are required"));
    }
    // Refuse a malformed selector before the password is checked (and
    // counted against the account's failed logins).
    let selector = match request.profile_selector.as_deref() {
        Some(selector) if request.profile_id.is_none() => {
            Some(parse_selector(selector).map_err(bad_request)?)
        }
        _ => None,
    };
    let user = app
        .identity
        .service
        .login_password(&request.user_id, &request.password, client)
        .await?;
    // Namazu's order: profileId, then profileSelector, then
    // applicationNameOrId; then this server's `application`.
    let (profile_id, application) = if request.profile_id.is_some() {
        (request.profile_id, None)
    } else if let Some(terms) = &selector {
        (Some(select_profile(&app, &user, terms).await?.id), None)
    } else if let Some(name_or_id) = request.application_name_or_id.as_deref() {
        (
            primary_profile(&app, &user, name_or_id).await?.map(|p| p.id),
            None,
        )
    } else {
        (None, request.application)
    };
    let created = open(&app, user, profile_id.as_deref(), application.as_deref()).await?;
    Ok(Json(created))
}

/// Log out: end the session with this secret.
#[utoipa::path(delete, path = "/api/rest/session/{secret}", tag = "sessions",
    params(("secret" = String, Path, description = "The session secret")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 404, description = "No such session", body = ErrorDto),
    ))]
pub async fn delete_session(
    State(app): State<Arc<App>>,
    Path(secret): Path<String>,
) -> Result<Response, ApiError> {
    if app.identity.service.delete_session(&secret).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("no such session"))
    }
}

/// Create an account (level USER) and log in.
#[utoipa::path(post, path = "/api/rest/signup/session", tag = "sessions", request_body = SignupRequest,
    responses(
        (status = 200, description = "Account created and session opened", body = wire::SessionCreation),
        (status = 400, description = "Invalid name, email or password", body = ErrorDto),
        (status = 409, description = "Name or email taken", body = ErrorDto),
    ))]
pub async fn signup_session(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<Json<wire::SessionCreation>, ApiError> {
    let request: SignupRequest = parse_body(&body).map_err(bad_request)?;
    if request.password.is_empty() {
        return Err(bad_request("`password` is required"));
    }
    // Check the application before creating anything.
    if let Some(application) = &request.application {
        app.identity.service.application(application).await?;
    }
    let user = app
        .identity
        .service
        .create_user(NewUser {
            name: request.name,
            email: request.email.filter(|e| !e.is_empty()),
            password: Some(request.password),
            display_name: request.display_name,
            level: Level::User,
        })
        .await?;
    let created = open(&app, user, None, request.application.as_deref()).await?;
    Ok(Json(created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(
            parse_selector(".ref.application:game AND displayName:\"Ada L\"").unwrap(),
            [
                SelectorTerm::Application("game".into()),
                SelectorTerm::DisplayName("Ada L".into())
            ]
        );
        assert_eq!(
            parse_selector(" .name.application:chess ").unwrap(),
            [SelectorTerm::ApplicationName("chess".into())]
        );
        for bad in [
            "",
            "   ",
            "game",
            ".ref.user:u1",
            "level:SUPERUSER",
            ".ref.application:",
            "displayName:\"a\"b\"",
            ".ref.application:a OR .ref.application:b",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad:?}");
        }
        assert!(parse_selector(&"x".repeat(MAX_SELECTOR + 1)).is_err());
    }
}
