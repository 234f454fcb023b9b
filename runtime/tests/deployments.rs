//! The deployment admin API over real HTTP: upload, list, edit with
//! redeploy, disable, remove, logs, masking of sensitive attributes,
//! persistence across restarts, and two nodes sharing one store (SQLite, and
//! MongoDB when `ELEMENTS_MONGODB_URI` is set: `cargo xtask test` runs this
//! suite on both).

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Dirs, Server, admin_request, guest, json as read_json, request, root_secret, variant};

const SECRET: &str = "s3cr3t-value-that-must-never-leak";

const MANIFEST: &str = r#"
[attributes.greeting]
default = "Hello"
description = "How the Element greets"
[attributes."api.secret"]
required = true
sensitive = true
"#;

/// A node on `dirs`: every node started on the same `dirs` shares one store
/// (the SQLite file in its data folder, or, when the suite runs on MongoDB,
/// one database named after the folder), as the nodes of a cluster do.
fn start(dirs: &Dirs) -> Server {
    let folder = dirs.root.path().file_name().unwrap_or_default().to_string_lossy();
    let database: String = format!("deploy_{folder}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Server::start_with(dirs, &[], support::ROOT_ENV, Some(&database))
}

fn form(name: &str, component: Vec<u8>, manifest: &str, attributes: Value) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("name", name.to_owned())
        .part(
            "component",
            reqwest::multipart::Part::bytes(component).file_name("element.wasm"),
        )
        .text("manifest", manifest.to_owned())
        .text("attributes", attributes.to_string())
}

async fn upload(server: &Server, token: &str, form: reqwest::multipart::Form) -> (u16, Value) {
    read_json(
        server
            .client
            .post(server.admin_url("/api/rest/elements/deployment"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// One request to the admin API with `token` as the Bearer credential.
async fn api(server: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    admin_request(server, method, path, Some(token), body).await
}

async fn greeting(server: &Server, prefix: &str) -> (u16, Value) {
    read_json(server.get(&format!("/app/rest/{prefix}/greeting")).await).await
}

/// Uploads `hello` as `greeter` with its secret and greeting `Hey`, which
/// must load: the deployment's view.
async fn deploy_greeter(server: &Server, root: &str) -> Value {
    let hello = std::fs::read(guest("hello")).unwrap();
    let attributes = json!({"api.secret": SECRET, "greeting": "Hey"});
    let (status, view) = upload(server, root, form("greeter", hello, MANIFEST, attributes)).await;
    assert!(status == 200 || status == 201, "{status} {view}");
    assert_eq!(view["status"], "LOADED", "{view}");
    assert_eq!(greeting(server, "greeter").await.1["greeting"], "Hey");
    view
}

/// A server with `greeter` deployed: the server, its folders, root's secret.
async fn greeter_server() -> (Server, Dirs, String) {
    let dirs = Dirs::new();
    let server = start(&dirs);
    let root = root_secret(&server).await;
    deploy_greeter(&server, &root).await;
    (server, dirs, root)
}

#[tokio::test]
async fn only_superusers_reach_the_deployment_api_and_a_refused_upload_closes_the_connection() {
    let dirs = Dirs::new();
    let server = start(&dirs);
    let response = server
        .client
        .get(server.admin_url("/api/rest/elements/deployment"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(json!({"name": "player1", "email": "p1@example.com", "password": "player-password-1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let player = body["sessionSecret"].as_str().unwrap().to_owned();
    let (status, _) = api(&server, &player, "GET", "/api/rest/elements/deployment", None).await;
    assert_eq!(status, 403);
    // The server answers 403 before reading the upload, so it says
    // `Connection: close` (a client's pool must not reuse the connection for
    // the next request). A small body: a client still writing a large one
    // would see its pipe closed.
    let refused = server
        .client
        .post(server.admin_url("/api/rest/elements/deployment"))
        .bearer_auth(&player)
        .multipart(form(
            "greeter",
            b"\0asm".to_vec(),
            MANIFEST,
            json!({"api.secret": SECRET}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["connection"], "close");
}

#[tokio::test]
async fn a_deployment_missing_a_required_attribute_is_stored_failed_until_uploaded_with_it() {
    let dirs = Dirs::new();
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let hello = std::fs::read(guest("hello")).unwrap();
    let (status, view) = upload(
        &server,
        &root,
        form("greeter", hello.clone(), MANIFEST, json!({})),
    )
    .await;
    assert_eq!(status, 201, "{view}");
    // A first deploy that fails, nothing serving: FAILED.
    assert_eq!(view["status"], "FAILED");
    assert_eq!(view["servingVersion"], Value::Null, "{view}");
    assert_eq!(view["lastFailure"]["version"], 1, "{view}");
    assert!(
        view["lastError"].as_str().unwrap().contains("api.secret"),
        "{view}"
    );
    assert_eq!(view["lastFailure"]["error"], view["lastError"], "{view}");

    let attributes = json!({"api.secret": SECRET, "greeting": "Hey"});
    let (status, view) = upload(&server, &root, form("greeter", hello, MANIFEST, attributes)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "LOADED", "{view}");
    assert_eq!(view["version"], 1);
    assert_eq!(view["servingVersion"], 1, "{view}");
    assert_eq!(view["lastFailure"], Value::Null, "{view}");
    assert_eq!(view["mountPath"], "/app/rest/greeter");
    assert_eq!(view["hash"].as_str().unwrap().len(), 64);
    assert_eq!(greeting(&server, "greeter").await.1["greeting"], "Hey");
}

#[tokio::test]
async fn sensitive_values_are_write_only_masked_in_every_response_and_never_logged() {
    let (server, _dirs, root) = greeter_server().await;
    let (_, list) = api(&server, &root, "GET", "/api/rest/elements/deployment", None).await;
    let text = list.to_string();
    assert!(!text.contains(SECRET), "the secret leaked in the list: {text}");
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "greeter")
        .unwrap()
        .clone();
    let secret = entry["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "api.secret")
        .unwrap()
        .clone();
    assert_eq!(
        (secret["value"].as_str(), secret["sensitive"].as_bool()),
        (Some("********"), Some(true))
    );
    let (status, view) = api(
        &server,
        &root,
        "PUT",
        "/api/rest/elements/deployment/greeter",
        Some(json!({"attributes": {"greeting": "Ahoy"}})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert!(!view.to_string().contains(SECRET));
    let (status, lines) = api(
        &server,
        &root,
        "GET",
        "/api/rest/elements/deployment/greeter/logs",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!lines.to_string().contains(SECRET));
    assert!(
        !server.log().contains(SECRET),
        "the secret appears in the server log"
    );
}

#[tokio::test]
async fn an_edit_redeploys_with_the_new_value() {
    let (server, _dirs, root) = greeter_server().await;
    let (status, view) = api(
        &server,
        &root,
        "PUT",
        "/api/rest/elements/deployment/greeter",
        Some(json!({"attributes": {"greeting": "Ahoy"}})),
    )
    .await;
    assert_eq!((status, &view["version"]), (200, &json!(2)), "{view}");
    assert_eq!(greeting(&server, "greeter").await.1["greeting"], "Ahoy");
    assert!(!view.to_string().contains(SECRET));
}

#[tokio::test]
async fn a_disabled_deployment_is_not_served_until_enabled_again() {
    let (server, _dirs, root) = greeter_server().await;
    let path = "/api/rest/elements/deployment/greeter";
    let (_, view) = api(&server, &root, "PUT", path, Some(json!({"enabled": false}))).await;
    assert_eq!(view["status"], "DISABLED", "{view}");
    assert_eq!(greeting(&server, "greeter").await.0, 404);
    let (_, view) = api(&server, &root, "PUT", path, Some(json!({"enabled": true}))).await;
    assert_eq!(view["status"], "LOADED", "{view}");
    assert_eq!(greeting(&server, "greeter").await.1["greeting"], "Hey");
}

#[tokio::test]
async fn what_is_not_a_component_is_refused_before_it_is_stored_and_the_old_version_keeps_serving() {
    let (server, _dirs, root) = greeter_server().await;
    // A core module is not a component either.
    for bytes in [b"not wasm".to_vec(), b"\0asm\x01\x00\x00\x00".to_vec()] {
        let (status, body) = upload(
            &server,
            &root,
            form("greeter", bytes, MANIFEST, json!({"api.secret": SECRET})),
        )
        .await;
        assert_eq!(
            (status, &body["code"]),
            (400, &json!("INVALID_PARAMETER")),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("not a WebAssembly component"),
            "{body}"
        );
    }
    assert_eq!(greeting(&server, "greeter").await.0, 200);
}

/// Serving version N while the deploy of N+1 failed is not FAILED: the
/// view says both, and so do the catalog and the single view.
#[tokio::test]
async fn a_broken_new_version_shows_serving_the_old_one_and_the_failure_in_the_view_and_logs() {
    let (server, _dirs, root) = greeter_server().await;
    let (status, view) = upload(
        &server,
        &root,
        form(
            "greeter",
            b"\0asm\x0d\x00\x01\x00 broken".to_vec(),
            MANIFEST,
            json!({"api.secret": SECRET}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    let path = "/api/rest/elements/deployment/greeter";
    let (status, single) = api(&server, &root, "GET", path, None).await;
    assert_eq!(status, 200, "{single}");
    let (status, list) = api(&server, &root, "GET", "/api/rest/elements/deployment", None).await;
    assert_eq!(status, 200, "{list}");
    let listed = list
        .as_array()
        .and_then(|l| l.iter().find(|v| v["id"] == "greeter"))
        .cloned()
        .unwrap_or_else(|| panic!("greeter not listed: {list}"));
    for view in [&view, &single, &listed] {
        assert_eq!(view["status"], "SERVING", "{view}");
        assert_eq!(view["servingVersion"], 1, "{view}");
        assert_eq!(view["version"], 1, "{view}");
        assert_eq!(view["mountPath"], "/app/rest/greeter", "{view}");
        let failure = &view["lastFailure"];
        assert_eq!(failure["version"], 2, "{view}");
        assert!(
            failure["error"]
                .as_str()
                .unwrap()
                .contains("not a valid WebAssembly component"),
            "{view}"
        );
        assert!(failure["at"].as_u64().is_some_and(|at| at > 0), "{view}");
        assert_eq!(view["lastError"], failure["error"], "{view}");
    }
    // Version 1 answers, with its attributes.
    let (status, body) = greeting(&server, "greeter").await;
    assert_eq!((status, &body["greeting"]), (200, &json!("Hey")), "{body}");
    // The admin API's document describes the fields.
    let (status, doc) = admin_request(&server, "GET", "/api/rest/openapi.json", None, None).await;
    assert_eq!(status, 200, "{doc}");
    let schemas = &doc["components"]["schemas"];
    let fields = &schemas["DeploymentView"]["properties"];
    assert!(
        fields["status"]["description"]
            .as_str()
            .unwrap()
            .contains("SERVING"),
        "{fields}"
    );
    assert!(fields.get("servingVersion").is_some(), "{fields}");
    assert!(
        fields["lastFailure"]
            .to_string()
            .contains("#/components/schemas/FailureView"),
        "{fields}"
    );
    for field in ["version", "error", "at"] {
        assert!(
            schemas["FailureView"]["properties"].get(field).is_some(),
            "{field}: {schemas}"
        );
    }
    let (status, lines) = api(
        &server,
        &root,
        "GET",
        "/api/rest/elements/deployment/greeter/logs",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let text = lines.to_string();
    assert!(text.contains("deploy failed"), "{text}");
    assert!(!text.contains(SECRET));
}

#[tokio::test]
async fn a_bad_name_and_an_unknown_deployment_are_refused() {
    let dirs = Dirs::new();
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let hello = std::fs::read(guest("hello")).unwrap();
    let (status, _) = upload(&server, &root, form("../evil", hello, "", json!({}))).await;
    assert_eq!(status, 400);
    let body = Some(json!({"enabled": true}));
    let (status, _) = api(
        &server,
        &root,
        "PUT",
        "/api/rest/elements/deployment/nobody",
        body,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_removed_deployment_is_gone_from_the_server_and_the_api() {
    let (server, _dirs, root) = greeter_server().await;
    let path = "/api/rest/elements/deployment/greeter";
    assert_eq!(api(&server, &root, "DELETE", path, None).await.0, 204);
    assert_eq!(greeting(&server, "greeter").await.0, 404);
    assert_eq!(api(&server, &root, "GET", path, None).await.0, 404);
}

/// The portal and the deployment admin API live on the admin listener only:
/// the public one (where Element content is served) answers 404 JSON for
/// them, even to a superuser, and the admin one serves nothing else.
#[tokio::test]
async fn the_public_listener_serves_neither_the_portal_nor_the_admin_api() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", "");
    let server = start(&dirs);
    let root = root_secret(&server).await;
    assert_ne!(server.addr, server.admin_addr);
    for (method, path) in [
        (reqwest::Method::GET, "/admin"),
        (reqwest::Method::GET, "/admin/"),
        (reqwest::Method::GET, "/admin/login"),
        (reqwest::Method::POST, "/admin/login"),
        (reqwest::Method::GET, "/admin/assets/portal.css"),
        (reqwest::Method::POST, "/admin/applications"),
        (reqwest::Method::GET, "/api/rest/elements/deployment"),
        (reqwest::Method::POST, "/api/rest/elements/deployment"),
        (reqwest::Method::GET, "/api/rest/elements/deployment/hello"),
        (reqwest::Method::PUT, "/api/rest/elements/deployment/hello"),
        (reqwest::Method::DELETE, "/api/rest/elements/deployment/hello"),
        (reqwest::Method::GET, "/api/rest/elements/deployment/hello/logs"),
    ] {
        let response = server
            .client
            .request(method.clone(), server.url(path))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap();
        assert!(response.headers().get("set-cookie").is_none(), "{method} {path}");
        let (status, body) = read_json(response).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["code"], "NOT_FOUND", "{method} {path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("admin listener"),
            "{body}"
        );
    }
    // Nothing above reached the Element's deployment.
    assert_eq!(greeting(&server, "hello").await.0, 200);

    // The admin listener serves them, and /health, and nothing else.
    let (status, list) = api(&server, &root, "GET", "/api/rest/elements/deployment", None).await;
    assert_eq!(status, 200, "{list}");
    let login_page = server
        .client
        .get(server.admin_url("/admin/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login_page.status(), 200);
    for (path, status) in [
        ("/health", 200),
        ("/app/rest/hello/greeting", 404),
        ("/api/rest/user/me", 404),
        ("/v2/account", 404),
        ("/doc/swagger/", 404),
    ] {
        let response = server
            .client
            .get(server.admin_url(path))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path} on the admin listener");
    }
}

#[tokio::test]
async fn folder_deployments_are_listed_and_protected() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", "[attributes.greeting]\ndefault = \"Hello\"\n");
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let (_, list) = api(&server, &root, "GET", "/api/rest/elements/deployment", None).await;
    let hello = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "hello")
        .unwrap()
        .clone();
    assert_eq!(
        (hello["source"].as_str(), hello["status"].as_str()),
        (Some("folder"), Some("LOADED"))
    );
    let (status, _) = upload(
        &server,
        &root,
        form("hello", std::fs::read(guest("hello")).unwrap(), "", json!({})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = api(
        &server,
        &root,
        "DELETE",
        "/api/rest/elements/deployment/hello",
        None,
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = api(
        &server,
        &root,
        "PUT",
        "/api/rest/elements/deployment/hello",
        Some(json!({"attributes": {"greeting": "Yo"}})),
    )
    .await;
    assert_eq!(status, 200, "an operator sets a folder Element's attributes");
    assert_eq!(greeting(&server, "hello").await.1["greeting"], "Yo");

    // An operator can switch a folder Element (e.g. a bundled one) off and on.
    let path = "/api/rest/elements/deployment/hello";
    let (status, view) = api(&server, &root, "PUT", path, Some(json!({"enabled": false}))).await;
    assert_eq!(
        (status, view["status"].as_str()),
        (200, Some("DISABLED")),
        "{view}"
    );
    assert_eq!(greeting(&server, "hello").await.0, 404);
    let (status, view) = api(&server, &root, "PUT", path, Some(json!({"enabled": true}))).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("LOADED")), "{view}");
    assert_eq!(
        greeting(&server, "hello").await.1["greeting"],
        "Yo",
        "set values survive a redeploy"
    );

    // Switched off, it stays off across a restart.
    let (status, _) = api(&server, &root, "PUT", path, Some(json!({"enabled": false}))).await;
    assert_eq!(status, 200);
    server.stop();
    let restarted = start(&dirs);
    assert_eq!(greeting(&restarted, "hello").await.0, 404, "{}", restarted.log());
    let root = root_secret(&restarted).await;
    let (_, view) = api(&restarted, &root, "GET", path, None).await;
    assert_eq!(view["status"], "DISABLED", "{view}");
}

#[tokio::test]
async fn stored_deployments_survive_restarts_and_reach_every_node() {
    let dirs = Dirs::new();
    let first = start(&dirs);
    let root = root_secret(&first).await;
    let (status, view) = upload(
        &first,
        &root,
        form(
            "greeter",
            std::fs::read(guest("hello")).unwrap(),
            MANIFEST,
            json!({"api.secret": SECRET, "greeting": "One"}),
        ),
    )
    .await;
    assert_eq!((status, view["status"].as_str()), (201, Some("LOADED")), "{view}");

    // A second node on the same store (SQLite in WAL mode is shared by
    // processes on one machine; on MongoDB, by any number of machines).
    let second = start(&dirs);
    assert_eq!(greeting(&second, "greeter").await.1["greeting"], "One");
    let backend = if second.log().contains("backend=\"mongodb\"") {
        "MongoDB"
    } else {
        "SQLite"
    };
    if std::env::var("ELEMENTS_MONGODB_URI").is_ok_and(|u| !u.is_empty()) {
        assert_eq!(backend, "MongoDB", "{}", second.log());
    }

    // A change on the first node reaches the second within seconds.
    let (status, _) = api(
        &first,
        &root,
        "PUT",
        "/api/rest/elements/deployment/greeter",
        Some(json!({"attributes": {"greeting": "Two"}})),
    )
    .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    while greeting(&second, "greeter").await.1["greeting"] != "Two" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the second node never converged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("second node ({backend}) converged in {:?}", started.elapsed());
    let (status, _) = api(
        &first,
        &root,
        "DELETE",
        "/api/rest/elements/deployment/greeter",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let started = Instant::now();
    while greeting(&second, "greeter").await.0 != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the second node never undeployed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);

    // A restart reloads what is stored, from the compiled cache.
    let (_, _) = upload(
        &first,
        &root,
        form(
            "again",
            std::fs::read(guest("hello")).unwrap(),
            MANIFEST,
            json!({"api.secret": SECRET}),
        ),
    )
    .await;
    first.stop();
    let restarted = start(&dirs);
    assert_eq!(greeting(&restarted, "again").await.0, 200);
    assert!(restarted.log().contains("compile=Cached"), "{}", restarted.log());
}

/// Issue figure: a restart with 50 stored Elements loads them all from the
/// compiled cache. Prints the time the server took to load them.
#[tokio::test]
async fn a_restart_reloads_fifty_stored_elements_from_the_cache() {
    let dirs = Dirs::with_own_cache();
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let hello = std::fs::read(guest("hello")).unwrap();
    for i in 0..50u32 {
        let (status, view) = upload(
            &server,
            &root,
            form(&format!("el{i}"), variant(&hello, i), "", json!({})),
        )
        .await;
        assert_eq!((status, view["status"].as_str()), (201, Some("LOADED")), "{view}");
    }
    server.stop();

    let started = Instant::now();
    let restarted = start(&dirs);
    let listening = started.elapsed();
    for i in 0..50 {
        let (status, _) = read_json(restarted.get(&format!("/app/rest/el{i}/hello")).await).await;
        assert_eq!(status, 200, "el{i} did not come back");
    }
    let log = restarted.log();
    assert_eq!(log.matches("compile=Cached").count(), 50, "{log}");
    let loaded_ms = log
        .lines()
        .find(|l| l.contains("loaded stored deployments"))
        .and_then(|l| l.split("elapsed_ms=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    println!(
        "restart with 50 stored Elements: loaded in {loaded_ms} ms (server listening after {listening:?}, debug build)"
    );
}

/// Components larger than axum's default 2 MiB body limit upload fine.
#[tokio::test]
async fn large_components_upload() {
    let dirs = Dirs::new();
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let mut big = std::fs::read(guest("hello")).unwrap();
    // A 3 MiB custom section: same behaviour, a much larger file.
    let payload = vec![7u8; 3 << 20];
    let name = b"padding";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    big.push(0);
    let mut len = section.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        big.push(if len == 0 { byte } else { byte | 0x80 });
        if len == 0 {
            break;
        }
    }
    big.extend_from_slice(&section);
    let (status, view) = upload(&server, &root, form("big", big, "", json!({}))).await;
    assert_eq!((status, view["status"].as_str()), (201, Some("LOADED")), "{view}");
    let (status, _) = read_json(server.get("/app/rest/big/hello").await).await;
    assert_eq!(status, 200);
}

/// The walk-through: the bundled Roblox Kit, deployed from the folder
/// without its secret, is FAILED; the operator sets the secret through the
/// API and it turns LOADED, the secret masked.
#[tokio::test]
async fn an_operator_sets_the_roblox_kit_secret_of_a_folder_deployment() {
    let dirs = Dirs::new();
    dirs.deploy_bundled("roblox-kit", "roblox-kit", &[]);
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let path = "/api/rest/elements/deployment/roblox-kit";
    let (_, view) = api(&server, &root, "GET", path, None).await;
    assert_eq!(view["status"], "FAILED", "{view}");
    assert!(
        view["lastError"]
            .as_str()
            .unwrap()
            .contains("dev.getelements.robloxkit.secret")
    );
    let (status, view) = api(
        &server,
        &root,
        "PUT",
        path,
        Some(json!({"attributes": {"dev.getelements.robloxkit.secret": SECRET}})),
    )
    .await;
    assert_eq!((status, view["status"].as_str()), (200, Some("LOADED")), "{view}");
    assert!(!view.to_string().contains(SECRET), "{view}");
    let secret = view["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "dev.getelements.robloxkit.secret")
        .unwrap()
        .clone();
    assert_eq!(secret["value"], "********");
    // The Kit now checks that secret.
    let (status, _) = read_json(
        server
            .client
            .post(server.url("/app/rest/roblox/auth"))
            .header("RobloxKit-Secret", "wrong")
            .json(&json!({"application": "x", "robloxUserId": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(!server.log().contains(SECRET));
}

/// Typed attributes may be written as TOML numbers and booleans; the Element
/// reads them as numbers, and a value of the wrong kind or out of range fails
/// the upload (a bad default) or the deploy (a bad value), naming the attribute.
#[tokio::test]
async fn typed_attributes_written_as_toml_numbers_deploy_and_read_as_numbers() {
    let dirs = Dirs::new();
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let misbehave = std::fs::read(guest("misbehave")).unwrap();
    let typed = |default: &str, extra: &str| {
        format!(
            "[attributes.size]\ntype = \"integer\"\nmin = 1\nmax = 1000\ndefault = {default}\n\
             [attributes.flag]\ntype = \"boolean\"\ndefault = true\n{extra}"
        )
    };

    let (status, view) = upload(
        &server,
        &root,
        form("typed", misbehave.clone(), &typed("280", ""), json!({})),
    )
    .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["status"], "LOADED", "{view}");
    let (status, body) = read_json(server.get("/app/rest/typed/attr-u32/size").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], json!(280), "{body}");
    let (_, body) = read_json(server.get("/app/rest/typed/attr/flag").await).await;
    assert_eq!(body["value"], "true", "{body}");

    // A quoted value still works, and reads the same.
    let (status, view) = upload(
        &server,
        &root,
        form("quoted", misbehave.clone(), &typed("\"281\"", ""), json!({})),
    )
    .await;
    assert_eq!((status, view["status"].as_str()), (201, Some("LOADED")), "{view}");
    let (_, body) = read_json(server.get("/app/rest/quoted/attr-u32/size").await).await;
    assert_eq!(body["value"], json!(281), "{body}");

    // A default of the wrong kind or out of range refuses the upload.
    for (default, why) in [
        ("2000", "must be at most 1000"),
        ("true", "must be a whole number"),
        ("2.5", "must be a whole number"),
    ] {
        let (status, body) = upload(
            &server,
            &root,
            form("bad", misbehave.clone(), &typed(default, ""), json!({})),
        )
        .await;
        assert_eq!(status, 400, "{default}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("\"size\"") && message.contains(why),
            "{default}: {body}"
        );
    }
    // A deployment value out of range fails the deploy, naming the attribute.
    let (status, view) = upload(
        &server,
        &root,
        form(
            "bad",
            misbehave,
            &typed("280", "[values]\nsize = 5000\n"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["status"], "FAILED", "{view}");
    let error = view["lastError"].as_str().unwrap();
    assert!(
        error.contains("size") && error.contains("must be at most 1000"),
        "{view}"
    );
    assert_eq!(
        read_json(server.get("/app/rest/bad/attr-u32/size").await).await.0,
        404
    );
}

/// A guest panic is one log line with its whole message, and the client's
/// error says where to read it.
#[tokio::test]
async fn a_panic_is_one_log_line_and_the_client_error_names_the_log() {
    let dirs = Dirs::new();
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let misbehave = std::fs::read(guest("misbehave")).unwrap();
    let (status, view) = upload(&server, &root, form("crashy", misbehave, "", json!({}))).await;
    assert_eq!((status, view["status"].as_str()), (201, Some("LOADED")), "{view}");

    let (status, body) = read_json(server.get("/app/rest/crashy/panic").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("ELEMENT_TRAP")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("/api/rest/elements/deployment/crashy/logs"),
        "{body}"
    );
    assert!(message.contains("/admin/elements/crashy"), "{body}");
    assert!(
        !message.contains("deliberate panic"),
        "the panic text stays in the log: {body}"
    );

    let (status, lines) = api(
        &server,
        &root,
        "GET",
        "/api/rest/elements/deployment/crashy/logs",
        None,
    )
    .await;
    assert_eq!(status, 200, "{lines}");
    let lines = lines.as_array().unwrap();
    let panics: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.contains("panicked"))
        .collect();
    assert_eq!(panics.len(), 1, "{lines:?}");
    assert!(
        panics[0].contains("deliberate panic from misbehave"),
        "{panics:?}"
    );
    assert!(panics[0].contains("src/lib.rs"), "{panics:?}");
    assert!(
        !lines.iter().any(|l| l.to_string().contains("RUST_BACKTRACE")),
        "{lines:?}"
    );
    let server_log = server.log();
    let joined: Vec<&str> = server_log.lines().filter(|l| l.contains("panicked at")).collect();
    assert_eq!(joined.len(), 1, "{server_log}");
    assert!(
        joined[0].contains("deliberate panic from misbehave"),
        "{server_log}"
    );
    assert!(!server_log.contains("RUST_BACKTRACE"), "{server_log}");
}
