//! The `root` superuser the server bootstraps, and signing in over
//! `/api/rest/session`.

use serde_json::{Value, json};

use super::{Dirs, Server, request};

/// The password the tests give `root` (`ELEMENTS_ROOT_PASSWORD`).
pub const ROOT_PASSWORD: &str = "root-password-1";

/// The environment that bootstraps `root` with [`ROOT_PASSWORD`].
pub const ROOT_ENV: &[(&str, &str)] = &[("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD)];

/// A server on `dirs` whose `root` has [`ROOT_PASSWORD`].
pub fn root_server(dirs: &Dirs) -> Server {
    Server::start_with(dirs, &[], ROOT_ENV, None)
}

/// A password login: `(status, body)`.
pub async fn login(server: &Server, user: &str, password: &str) -> (u16, Value) {
    request(
        server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": user, "password": password})),
    )
    .await
}

/// The session secret of a login or signup body.
pub fn secret(body: &Value) -> String {
    body["sessionSecret"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {body}"))
        .to_owned()
}

/// Signs in as `root`, which must succeed: its session secret.
pub async fn root_secret(server: &Server) -> String {
    let (status, body) = login(server, "root", ROOT_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    secret(&body)
}
