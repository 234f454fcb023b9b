//! The OpenAPI documents against the real server: each listener's document
//! lists every JSON route the listener serves and nothing it doesn't, and
//! schemathesis (from the test venv) fuzzes every operation of both, without
//! credentials and with a session, checking that no answer is a server error
//! and that statuses, content types and bodies match the document.
//!
//! The fuzz run is bounded (`ELEMENTS_FUZZ_EXAMPLES` cases per operation,
//! default 12) and seeded: the seed is printed, and `ELEMENTS_FUZZ_SEED=N`
//! replays a run (schemathesis also prints a `curl` line per failure).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::{Dirs, ROOT_PASSWORD, Server, SmtpServer, request};

const SERVER_KEY: &str = "fuzz-server-key";
const OPENAPI: &str = "/api/rest/openapi.json";
/// The default seed: fixed, so CI runs are reproducible; change it through
/// `ELEMENTS_FUZZ_SEED` to explore.
const DEFAULT_SEED: u64 = 20_261_128;

/// Every JSON route each listener serves: (method, path template). Kept
/// here by hand on purpose: the test fails when a route is added to a
/// listener without its documentation, or documented on the wrong one.
const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("post", "/api/rest/session"),
    ("delete", "/api/rest/session/{secret}"),
    ("post", "/api/rest/signup/session"),
    ("post", "/api/rest/auth/oidc"),
    ("post", "/api/rest/auth/oidc/link"),
    ("post", "/api/rest/auth/oauth2"),
    ("post", "/api/rest/auth/oauth2/link"),
    ("get", "/api/rest/user"),
    ("get", "/api/rest/user/me"),
    ("get", "/api/rest/user/{id}"),
    ("put", "/api/rest/user/{id}"),
    ("get", "/api/rest/profile"),
    ("post", "/api/rest/profile"),
    ("get", "/api/rest/profile/current"),
    ("get", "/api/rest/profile/{id}"),
    ("put", "/api/rest/profile/{id}"),
    ("delete", "/api/rest/profile/{id}"),
    ("get", "/api/rest/application"),
    ("post", "/api/rest/application"),
    ("get", "/api/rest/application/{id}"),
    ("put", "/api/rest/application/{id}"),
    ("delete", "/api/rest/application/{id}"),
    ("get", "/v2/account"),
    ("put", "/v2/account"),
    ("delete", "/v2/account"),
    ("post", "/v2/account/authenticate/{scheme}"),
    ("post", "/v2/account/link/{scheme}"),
    ("post", "/v2/account/unlink/{scheme}"),
    ("post", "/v2/account/session/refresh"),
    ("post", "/v2/session/logout"),
    ("get", "/v2/user"),
    ("get", "/ws"),
    ("get", "/v2/notification"),
    ("delete", "/v2/notification"),
    ("get", "/v2/channel/{channel_id}"),
    ("post", "/v2/rpc/{id}"),
    // Core extension points (served by the Email Verification Element).
    ("post", "/api/rest/user/me/email/verify"),
    ("get", "/api/rest/verify"),
];

const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/api/rest/elements/deployment"),
    ("post", "/api/rest/elements/deployment"),
    ("get", "/api/rest/elements/deployment/{id}"),
    ("put", "/api/rest/elements/deployment/{id}"),
    ("delete", "/api/rest/elements/deployment/{id}"),
    ("get", "/api/rest/elements/deployment/{id}/logs"),
    ("get", "/api/rest/services"),
    ("put", "/api/rest/services/{service}"),
    ("delete", "/api/rest/services/{service}"),
    ("get", "/api/rest/auth_scheme/oidc"),
    ("post", "/api/rest/auth_scheme/oidc"),
    ("get", "/api/rest/auth_scheme/oidc/{id}"),
    ("put", "/api/rest/auth_scheme/oidc/{id}"),
    ("delete", "/api/rest/auth_scheme/oidc/{id}"),
    ("get", "/api/rest/auth_scheme/oauth2"),
    ("post", "/api/rest/auth_scheme/oauth2"),
    ("get", "/api/rest/auth_scheme/oauth2/{id}"),
    ("put", "/api/rest/auth_scheme/oauth2/{id}"),
    ("delete", "/api/rest/auth_scheme/oauth2/{id}"),
    ("post", "/api/rest/realtime/notification"),
];

/// A server with the Email Verification Element (on a real SMTP server)
/// serving the extension points.
fn start() -> (Server, SmtpServer, Dirs) {
    let smtp = SmtpServer::start();
    let dirs = Dirs::new();
    dirs.config(&format!(
        "[services.mail]\nhost = \"127.0.0.1\"\nport = {}\nstarttls = false\nfrom = \"noreply@game.test\"\n",
        smtp.port
    ));
    dirs.deploy_bundled("email-verification", "email-verification", &[]);
    let server = Server::start_with(
        &dirs,
        &[],
        &[
            ("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD),
            ("ELEMENTS_SERVER_KEY", SERVER_KEY),
            ("ELEMENTS_PUBLIC_URL", "https://game.test"),
        ],
        None,
    );
    (server, smtp, dirs)
}

async fn document(server: &Server, url: String) -> Value {
    let response = server.client.get(url).send().await.expect("document");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a JSON document")
}

/// The document's operations as (method, path).
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

fn listed(routes: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    routes
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

/// A concrete path for a template (placeholders filled with `x`).
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Each listener's document lists exactly the JSON routes it serves: every
/// route is documented, every documented operation answers on that
/// listener (not the fallback's "nothing is served"), and the other
/// listener does not serve it (except `/health`, served by both).
#[tokio::test]
async fn documents_list_exactly_the_served_routes() {
    let (server, _smtp, _dirs) = start();
    let public = document(&server, server.url(OPENAPI)).await;
    let admin = document(&server, server.admin_url(OPENAPI)).await;
    assert_eq!(
        operations(&public),
        listed(PUBLIC_ROUTES),
        "public document vs served routes"
    );
    assert_eq!(
        operations(&admin),
        listed(ADMIN_ROUTES),
        "admin document vs served routes"
    );

    let client = &server.client;
    for (listener, routes, other) in [
        ("public", PUBLIC_ROUTES, ADMIN_ROUTES),
        ("admin", ADMIN_ROUTES, PUBLIC_ROUTES),
    ] {
        for (method, template) in routes {
            let path = concrete(template);
            let (here, there) = if listener == "public" {
                (server.url(&path), server.admin_url(&path))
            } else {
                (server.admin_url(&path), server.url(&path))
            };
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = client.request(method.clone(), &here).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unserved = status == 405
                || (status == 404
                    && body["message"].as_str().is_some_and(|m| {
                        m.starts_with("nothing is served") || m.starts_with("nothing serves")
                    }));
            assert!(
                !unserved,
                "{listener}: {method} {path} is documented but not served: {status} {body}"
            );
            if *template != "/health" && !other.iter().any(|(_, p)| p == template) {
                let elsewhere = client.request(method.clone(), &there).send().await.unwrap();
                assert_eq!(
                    elsewhere.status(),
                    404,
                    "{method} {path} is also served on the other listener"
                );
            }
        }
    }
    // The admin document is not on the public listener's Swagger UI origin
    // and vice versa: Swagger UI stays on the public listener.
    let swagger = client
        .get(server.admin_url("/doc/swagger/"))
        .send()
        .await
        .unwrap();
    assert_eq!(swagger.status(), 404);
}

/// The schemathesis CLI in the test venv, if installed.
fn schemathesis() -> Option<PathBuf> {
    let bin = support::venv_python().with_file_name("schemathesis");
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{} is missing under CI: `cargo xtask test` installs schemathesis into the test venv",
        bin.display()
    );
    eprintln!(
        "SKIPPED: {} is missing (`cargo xtask test` installs it into the test venv)",
        bin.display()
    );
    None
}

/// Runs schemathesis on `document_url`; `auth` is the content of a
/// `schemathesis.toml` giving credentials per security scheme (none: no
/// credentials, so every protected operation must answer 401/403 as
/// documented). Returns the failure report, if any.
fn run_schemathesis(
    bin: &Path,
    label: &str,
    document_url: &str,
    auth: Option<&str>,
    filter: &[&str],
    seed: u64,
    examples: u32,
) -> Option<String> {
    let workdir = tempfile::tempdir().unwrap();
    let config = workdir.path().join("schemathesis.toml");
    std::fs::write(&config, auth.unwrap_or("")).unwrap();
    let mut command = Command::new(bin);
    command
        .current_dir(workdir.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", document_url, "--no-color"])
        .args(filter)
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", &seed.to_string()])
        .arg("--generation-deterministic")
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .args(["--max-failures", "50"])
        .env_remove("CI");
    eprintln!("fuzz_openapi: {label}: {command:?}");
    let output = command.output().expect("running schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "fuzz_openapi: {label}: {}",
        report.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
    );
    (!output.status.success()).then(|| format!("== {label} ==\n{report}"))
}

/// schemathesis against every operation of both documents, with and
/// without credentials: 0 server errors, answers as documented.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing() {
    let Some(bin) = schemathesis() else { return };
    let seed = std::env::var("ELEMENTS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let examples = std::env::var("ELEMENTS_FUZZ_EXAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    eprintln!(
        "fuzz_openapi: seed {seed}, {examples} examples per operation (replay: ELEMENTS_FUZZ_SEED={seed})"
    );
    let (server, _smtp, _dirs) = start();

    // A dedicated player with an email linked (so the extension points
    // reach their Element's logic), a Nakama account, and root.
    let (status, created) = request(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(json!({"name": "fuzzer", "email": "fuzzer@game.test", "password": "fuzzer-password"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let session = created["sessionSecret"].as_str().unwrap().to_owned();
    let nakama = server
        .client
        .post(server.url("/v2/account/authenticate/device"))
        .basic_auth(SERVER_KEY, Some(""))
        .json(&json!({"id": "fuzz-device-0001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(nakama.status(), 200);
    let nakama: Value = nakama.json().await.unwrap();
    let token = nakama["token"].as_str().unwrap().to_owned();
    let (status, root) = request(
        &server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "root", "password": ROOT_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{root}");
    let root = root["sessionSecret"].as_str().unwrap().to_owned();

    let public_auth = format!(
        "[auth.openapi.session]\nbearer = {session:?}\n\
         [auth.openapi.bearer]\nbearer = {token:?}\n\
         [auth.openapi.server_key]\nusername = {SERVER_KEY:?}\npassword = \"-\"\n"
    );
    let admin_auth = format!("[auth.openapi.session]\nbearer = {root:?}\n");
    let public = server.url(OPENAPI);
    let admin = server.admin_url(OPENAPI);
    // Deleting the Nakama account would leave the other /v2 operations only
    // its 401s to fuzz: it runs on its own, last.
    let delete_account = ["--include-name", "DELETE /v2/account"];
    let but_delete_account = ["--exclude-name", "DELETE /v2/account"];
    let runs: [(&str, &str, Option<&str>, &[&str]); 5] = [
        ("public, no credentials", public.as_str(), None, &[]),
        (
            "public, with a session",
            public.as_str(),
            Some(public_auth.as_str()),
            &but_delete_account,
        ),
        ("admin, no credentials", admin.as_str(), None, &[]),
        ("admin, as root", admin.as_str(), Some(admin_auth.as_str()), &[]),
        (
            "public, deleting the Nakama account",
            public.as_str(),
            Some(public_auth.as_str()),
            &delete_account,
        ),
    ];
    let mut failures = Vec::new();
    for (label, url, auth, filter) in runs {
        let bin = bin.clone();
        let (label, url, auth) = (label.to_owned(), url.to_owned(), auth.map(str::to_owned));
        let filter: Vec<String> = filter.iter().map(|a| (*a).to_owned()).collect();
        let failure = tokio::task::spawn_blocking(move || {
            let filter: Vec<&str> = filter.iter().map(String::as_str).collect();
            run_schemathesis(&bin, &label, &url, auth.as_deref(), &filter, seed, examples)
        })
        .await
        .unwrap();
        failures.extend(failure);
    }
    assert!(
        server.log().lines().all(|l| !l.contains("panicked")),
        "the server panicked:\n{}",
        server.log()
    );
    assert!(
        failures.is_empty(),
        "schemathesis found problems (seed {seed}; replay with ELEMENTS_FUZZ_SEED={seed}):\n{}",
        failures.join("\n")
    );
}
