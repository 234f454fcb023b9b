//! Profiles: search by application and display name; view one with its
//! metadata (e.g. the Roblox Kit's `robloxProfile`).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use elements_identity::{Profile, ProfileQuery};

use super::{Admin, Layout, PAGE, Pager, error_page, query_string, render, time_text};
use elements_server::App;
use elements_server::error::ApiError;

/// One profile as the pages show it.
pub(crate) struct ProfileRow {
    pub id: String,
    pub display_name: String,
    pub user_id: String,
    pub user_name: String,
    pub application: String,
    pub image_url: String,
    pub last_login: String,
    pub created: String,
    pub updated: String,
    pub metadata: String,
}

/// Rows for `profiles`, with user and application names looked up once each.
pub(crate) async fn profile_rows(app: &App, profiles: Vec<Profile>) -> Vec<ProfileRow> {
    let service = &app.identity.service;
    let mut users: HashMap<String, String> = HashMap::new();
    let mut applications: HashMap<String, String> = HashMap::new();
    let mut rows = Vec::with_capacity(profiles.len());
    for p in profiles {
        if !users.contains_key(&p.user_id) {
            // A lookup failure shows the id rather than failing the page.
            let name = service.user(&p.user_id).await.map(|u| u.name).unwrap_or_default();
            users.insert(p.user_id.clone(), name);
        }
        if !applications.contains_key(&p.application_id) {
            let name = service
                .application(&p.application_id)
                .await
                .map(|a| a.name)
                .unwrap_or_else(|_| p.application_id.clone());
            applications.insert(p.application_id.clone(), name);
        }
        rows.push(ProfileRow {
            display_name: p.display_name.clone().unwrap_or_default(),
            user_name: users.get(&p.user_id).cloned().unwrap_or_default(),
            application: applications.get(&p.application_id).cloned().unwrap_or_default(),
            image_url: p.image_url.clone().unwrap_or_default(),
            last_login: p.last_login.map(time_text).unwrap_or_default(),
            created: time_text(p.created),
            updated: time_text(p.updated),
            metadata: serde_json::to_string_pretty(&p.metadata).unwrap_or_default(),
            id: p.id,
            user_id: p.user_id,
        });
    }
    rows
}

#[derive(Template)]
#[template(path = "profiles.html")]
struct ListPage {
    layout: Layout,
    applications: Vec<String>,
    application: String,
    name: String,
    rows: Vec<ProfileRow>,
    pager: Pager,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    layout: Layout,
    profile: ProfileRow,
}

/// The search's query.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    application: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    offset: u64,
}

/// `GET /admin/profiles?application=&name=`.
pub async fn list(State(app): State<Arc<App>>, admin: Admin, Query(query): Query<SearchQuery>) -> Response {
    match list_page(&app, &admin, &query).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(Some(&admin), "profiles", e),
    }
}

async fn list_page(app: &App, admin: &Admin, query: &SearchQuery) -> Result<ListPage, ApiError> {
    let service = &app.identity.service;
    let application = query.application.trim();
    let name = query.name.trim();
    let applications = service
        .list_applications(&admin.user, 0, 1000)
        .await?
        .items
        .into_iter()
        .map(|a| a.name)
        .collect();
    let filter = ProfileQuery {
        user_id: None,
        application: Some(application),
        display_name: Some(name),
    };
    let page = service
        .list_profiles(&admin.user, &filter, query.offset, PAGE)
        .await?;
    let pager = Pager::new(
        page.offset,
        page.items.len(),
        page.total,
        PAGE,
        query_string(&[("application", application), ("name", name)]),
    );
    Ok(ListPage {
        layout: admin.layout("Profiles", "profiles"),
        applications,
        application: application.to_owned(),
        name: name.to_owned(),
        rows: profile_rows(app, page.items).await,
        pager,
    })
}

/// `GET /admin/profiles/{id}`.
pub async fn page(State(app): State<Arc<App>>, admin: Admin, Path(id): Path<String>) -> Response {
    let profile = match app.identity.service.profile(&admin.user, &id).await {
        Ok(p) => p,
        Err(e) => return error_page(Some(&admin), "profiles", e.into()),
    };
    let Some(profile) = profile_rows(&app, vec![profile]).await.pop() else {
        return error_page(
            Some(&admin),
            "profiles",
            ApiError::not_found("Profile not found."),
        );
    };
    let page = ProfilePage {
        layout: admin.layout(format!("Profile {}", profile.display_name), "profiles"),
        profile,
    };
    render(StatusCode::OK, &page)
}
