//! Applications: list, create, edit, delete.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use elements_identity::{Application, ApplicationUpdate};

use super::{Admin, Layout, PAGE, Pager, after, encode_component, error_page, render, time_text};
use elements_server::App;

/// One row of the listing.
struct Row {
    id: String,
    name: String,
    description: String,
    created: String,
}

impl From<Application> for Row {
    fn from(a: Application) -> Row {
        Row {
            id: a.id,
            name: a.name,
            description: a.description.unwrap_or_default(),
            created: time_text(a.created),
        }
    }
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    pager: Pager,
}

#[derive(Template)]
#[template(path = "application.html")]
struct EditPage {
    layout: Layout,
    app: Row,
    updated: String,
}

/// The listing's query.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    offset: u64,
}

/// `GET /admin/applications`.
pub async fn list(State(app): State<Arc<App>>, admin: Admin, Query(query): Query<ListQuery>) -> Response {
    match app
        .identity
        .service
        .list_applications(&admin.user, query.offset, PAGE)
        .await
    {
        Ok(page) => {
            let pager = Pager::new(page.offset, page.items.len(), page.total, PAGE, String::new());
            let page = ListPage {
                layout: admin.layout("Applications", "applications"),
                rows: page.items.into_iter().map(Row::from).collect(),
                pager,
            };
            render(StatusCode::OK, &page)
        }
        Err(e) => error_page(Some(&admin), "applications", e.into()),
    }
}

/// `GET /admin/applications/{id}`.
pub async fn page(State(app): State<Arc<App>>, admin: Admin, Path(id): Path<String>) -> Response {
    match app.identity.service.application(&id).await {
        Ok(application) => {
            let updated = time_text(application.updated);
            let page = EditPage {
                layout: admin.layout(format!("Application {}", application.name), "applications"),
                app: Row::from(application),
                updated,
            };
            render(StatusCode::OK, &page)
        }
        Err(e) => error_page(Some(&admin), "applications", e.into()),
    }
}

/// The create and edit forms.
#[derive(Debug, Deserialize)]
pub struct ApplicationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /admin/applications`.
pub async fn create(
    State(app): State<Arc<App>>,
    admin: Admin,
    Form(form): Form<ApplicationForm>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    let description = Some(form.description.trim().to_owned()).filter(|d| !d.is_empty());
    let result = app
        .identity
        .service
        .create_application(&admin.user, form.name.trim(), description)
        .await
        .map_err(Into::into);
    after(
        &admin,
        result,
        "/admin/applications",
        "/admin/applications",
        |a| format!("Created the application {}.", a.name),
    )
}

/// `POST /admin/applications/{id}`.
pub async fn update(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(id): Path<String>,
    Form(form): Form<ApplicationForm>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    let update = ApplicationUpdate {
        name: Some(form.name.trim().to_owned()),
        description: Some(form.description.trim().to_owned()),
    };
    let result = app
        .identity
        .service
        .update_application(&admin.user, &id, update)
        .await
        .map_err(Into::into);
    let back = format!("/admin/applications/{}", encode_component(&id));
    after(&admin, result, &back, &back, |a| {
        format!("Saved the application {}.", a.name)
    })
}

/// `POST /admin/applications/{id}/delete`.
pub async fn delete(
    State(app): State<Arc<App>>,
    admin: Admin,
    Path(id): Path<String>,
    Form(form): Form<super::auth::TokenForm>,
) -> Response {
    if let Some(refused) = admin.refuse_forged(&form.csrf) {
        return refused;
    }
    let service = &app.identity.service;
    let result = match service.application(&id).await {
        Ok(a) => service
            .delete_application(&admin.user, &id)
            .await
            .map(|()| a.name)
            .map_err(Into::into),
        Err(e) => Err(e.into()),
    };
    after(
        &admin,
        result,
        "/admin/applications",
        &format!("/admin/applications/{}", encode_component(&id)),
        |name| format!("Deleted the application {name}."),
    )
}
