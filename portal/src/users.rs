//! Users: search, view, change level, ban and unban.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use elements_identity::{Level, ProfileQuery, User, UserUpdate};

use super::profiles::{ProfileRow, profile_rows};
use super::{
    Admin, Layout, PAGE, Pager, after, encode_component, error_page, query_string, render, time_text,
};
use elements_server::App;
use elements_server::error::ApiError;

/// One user as the pages show it.
struct UserRow {
    id: String,
    name: String,
    email: String,
    display_name: String,
    level: &'static str,
    banned: bool,
    banned_at: String,
    created: String,
    updated: String,
}

impl From<User> for UserRow {
    fn from(u: User) -> UserRow {
        UserRow {
            id: u.id,
            name: u.name,
            email: u.email.unwrap_or_default(),
            display_name: u.display_name.unwrap_or_default(),
            level: u.level.as_str(),
            banned: u.banned,
            banned_at: u.banned_at.map(time_text).unwrap_or_default(),
            created: time_text(u.created),
            updated: time_text(u.updated),
        }
    }
}

/// One identity of a user.
struct IdentityRow {
    scheme: String,
    id: String,
    status: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct ListPage {
    layout: Layout,
    q: String,
    rows: Vec<UserRow>,
    pager: Pager,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    layout: Layout,
    user: UserRow,
    myself: bool,
    levels: [&'static str; 3],
    identities: Vec<IdentityRow>,
    profiles: Vec<ProfileRow>,
}

/// The search's query.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: u64,
}

/// `GET /admin/users?q=`: users whose name or email starts with `q`.
pub async fn list(State(app): State<Arc<App>>, admin: Admin, Query(query): Query<SearchQuery>) -> Response {
    let q = query.q.trim();
    match app
        .identity
        .service
        .search_users(&admin.user, Some(q), query.offset, PAGE)
        .await
    {
        Ok(page) => {
            let pager = Pager::new(
                page.offset,
                page.items.len(),
                page.total,
                PAGE,
                query_string(&[("q", q)]),
            );
            let page = ListPage {
                layout: admin.layout("Users", "users"),
                q: q.to_owned(),
                rows: page.items.into_iter().map(UserRow::from).collect(),
                pager,
            };
            render(StatusCode::OK, &page)
        }
        Err(e) => error_page(Some(&admin), "users", e.into()),
    }
}

/// `GET /admin/users/{id}`.
pub async fn page(State(app): State<Arc<App>>, admin: Admin, Path(id): Path<String>) -> Response {
    match user_page(&app, &admin, &id).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(Some(&admin), "users", e),
    }
}

async fn user_page(app: &App, admin: &Admin, id: &str) -> Result<UserPage, ApiError> {
    let service = &app.identity.service;
    let user = service.user(id).await?;
    let identities = service
        .identities_of(id)
        .await?
        .into_iter()
        .map(|i| IdentityRow {
            scheme: i.scheme,
            id: i.id,
            status: format!("{:?}", i.status).to_uppercase(),
        })
        .collect();
    let query = ProfileQuery {
        user_id: Some(id),
        ..ProfileQuery::default()
    };
    let profiles = service.list_profiles(&admin.user, &query, 0, 100).await?.items;
    Ok(UserPage {
        layout: admin.layout(format!("User {}", user.name), "users"),
        myself: user.id == admin.user.id,
        user: UserRow::from(user),
        levels: ["UNPRIVILEGED", "USER", "SUPERUSER"],
        identities,
        profiles: profile_rows(app, profiles).await,
    })
}

/// The level form.
#[derive(Debug, Deserialize)]
pub struct LevelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    level: String,
}

fn parse_level(text: &str) -> Result<Level, ApiError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        elements_server::request::bad_request(format!(
            "Unknown level {text:?}: choose UNPRIVILEGED, USER or SUPERUSER."
        ))
    })
}

/// Superusers can't lock themselves out: another superuser must change or
/// ban them, so the server always keeps one who can log in.
fn not_yourself(admin: &Admin, id: &str, what: &str) -> Result<(), ApiError> {
    if admin.user.id == id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!("You can't {what} yourself here; ask another superuser."),
        ));
    }
    Ok(())
}

/// `POST /admin/users/{id}/level`.
pub async fn level(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(id): Path<String>,
    Form(form): Form<LevelForm>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    let result = async {
        not_yourself(&admin, &id, "change the level of")?;
        let level = parse_level(&form.level)?;
        let update = UserUpdate {
            level: Some(level),
            ..UserUpdate::default()
        };
        Ok::<_, ApiError>(app.identity.service.update_user(&admin.user, &id, update).await?)
    }
    .await;
    let back = format!("/admin/users/{}", encode_component(&id));
    after(&admin, result, &back, &back, |u| {
        format!("{} is now {}.", u.name, u.level.as_str())
    })
}

/// The ban form.
#[derive(Debug, Deserialize)]
pub struct BanForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    banned: String,
}

/// `POST /admin/users/{id}/ban`: `banned=true` bans (revoking every session),
/// `banned=false` lifts the ban.
pub async fn ban(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(id): Path<String>,
    Form(form): Form<BanForm>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    let result = async {
        not_yourself(&admin, &id, "ban")?;
        let banned = match form.banned.as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(elements_server::request::bad_request(format!(
                    "`banned` must be true or false, not {other:?}"
                )));
            }
        };
        let update = UserUpdate {
            banned: Some(banned),
            ..UserUpdate::default()
        };
        Ok(app.identity.service.update_user(&admin.user, &id, update).await?)
    }
    .await;
    let back = format!("/admin/users/{}", encode_component(&id));
    after(&admin, result, &back, &back, |u| {
        if u.banned {
            format!("Banned {}; their sessions are revoked.", u.name)
        } else {
            format!("Lifted the ban on {}.", u.name)
        }
    })
}
