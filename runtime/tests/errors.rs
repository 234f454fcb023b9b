//! One error shape: every JSON error a client receives from the server,
//! `/api/rest` and Elements (through the SDK) is `{"code", "message",
//! "requestId"}` with a SCREAMING_SNAKE code, and the README's error table
//! lists exactly the codes the sources can send, each with its status.
//! Nakama's `/v2` keeps Nakama's shape and is not covered here.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Dirs, Server};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The README's error table: code -> status.
fn readme_table() -> BTreeMap<String, u16> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("| Failure | Status | `code` |")
        .expect("the README has its error table");
    let mut table = BTreeMap::new();
    for line in readme[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let status: u16 = cells[2]
            .parse()
            .unwrap_or_else(|_| panic!("no status in the row {line:?}"));
        let code = cells[3]
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("no code in the row {line:?}"));
        assert!(
            table.insert(code.to_owned(), status).is_none(),
            "{code} has two rows"
        );
    }
    table
}

/// The status named by `StatusCode::NAME`.
fn status_named(name: &str) -> u16 {
    (100..600)
        .find(|&n| {
            http::StatusCode::from_u16(n)
                .ok()
                .and_then(|s| s.canonical_reason())
                .is_some_and(|r| r.to_ascii_uppercase().replace([' ', '-'], "_") == name)
        })
        .unwrap_or_else(|| panic!("no status is called {name}"))
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Nakama's `/v2` answers in Nakama's own shape.
            if path.file_name().is_some_and(|n| n == "nakama") {
                continue;
            }
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literal at the start of `text` (after whitespace), if any.
fn literal(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('"')?;
    rest.split('"').next()
}

/// What a source file can send: `(code, status if the source says)`, read
/// from the three ways the code base writes an error: `StatusCode::NAME,
/// "CODE"` (or `=> "CODE"`) on the server, `Error::new(STATUS, "CODE"` in
/// the SDK and Elements, and `"code": "CODE"` in a body written by hand.
fn emitted(text: &str, found: &mut BTreeMap<String, BTreeSet<Option<u16>>>) {
    let mut add = |code: &str, status: Option<u16>| {
        // Anything shaped like a code, in any case: a lower-case one is
        // caught below, not skipped here.
        if code.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            found.entry(code.to_owned()).or_default().insert(status);
        }
    };
    for (i, _) in text.match_indices("StatusCode::") {
        let rest = &text[i + "StatusCode::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        let after = rest[name.len()..].trim_start();
        let after = after.strip_prefix(',').or_else(|| after.strip_prefix("=>"));
        // Beside a status, only a code in capitals: a sentence is a message.
        if let Some(code) = after.and_then(literal)
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            add(code, Some(status_named(&name)));
        }
    }
    for pattern in ["Error::new(", "Self::new("] {
        for (i, _) in text.match_indices(pattern) {
            let rest = text[i + pattern.len()..].trim_start();
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let Ok(status) = digits.parse::<u16>() else {
                continue;
            };
            if let Some(code) = rest[digits.len()..]
                .trim_start()
                .strip_prefix(',')
                .and_then(literal)
            {
                add(code, Some(status));
            }
        }
    }
    for pattern in [r#""code":"#, r#""code": "#] {
        for (i, _) in text.match_indices(pattern) {
            if let Some(code) = literal(&text[i + pattern.len()..]) {
                add(code, None);
            }
        }
    }
}

/// Every code the server, the core APIs, the portal, the SDK and the
/// bundled Elements can send, with the statuses their sources give it.
fn emitted_codes() -> BTreeMap<String, BTreeSet<Option<u16>>> {
    let mut files = Vec::new();
    for dir in [
        "server/src",
        "api/src",
        "portal/src",
        "runtime/src",
        "deployments/src",
        "sdk-guest/src",
        "elements",
    ] {
        sources(&root().join(dir), &mut files);
    }
    let mut found = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests and doc examples assert codes; they don't send them.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        emitted(&code, &mut found);
    }
    found
}

#[test]
fn the_readme_table_lists_exactly_the_codes_the_sources_send_with_their_statuses() {
    let table = readme_table();
    let found = emitted_codes();
    // The scan finds the codes of each kind of source (or it reads nothing).
    for code in [
        "NOT_FOUND",
        "ELEMENT_TRAP",
        "METHOD_NOT_ALLOWED",
        "MAIL_SEND_FAILED",
        "REQUEST_TIMEOUT",
    ] {
        assert!(
            found.contains_key(code),
            "{code} not found in the sources: {found:?}"
        );
    }
    for (code, statuses) in &found {
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "{code} is not SCREAMING_SNAKE"
        );
        let Some(&row) = table.get(code) else {
            panic!("{code} (status {statuses:?}) is sent but not in the README's error table");
        };
        for status in statuses.iter().flatten() {
            assert_eq!(
                *status, row,
                "{code} is sent with {status}, the README says {row}"
            );
        }
    }
    for code in table.keys() {
        assert!(
            found.contains_key(code),
            "the README lists {code}, which nothing sends"
        );
    }
}

/// One request: status, the `x-request-id` header and the JSON body.
async fn send(server: &Server, request: reqwest::RequestBuilder) -> (u16, String, Value) {
    let _ = server;
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, id, body)
}

#[tokio::test]
async fn errors_of_the_server_the_api_and_elements_have_one_shape_and_the_readmes_status() {
    let table = readme_table();
    let dirs = Dirs::new();
    dirs.deploy("misbehave", "misbehave", "");
    let server = Server::start(&dirs, &["--max-request-body", "1000"]);
    let c = &server.client;
    let url = |path: &str| server.url(path);
    let cases: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        ("server: no route", c.get(url("/nothing")), "NOT_FOUND"),
        (
            "server: a body over the limit",
            c.post(url("/app/rest/misbehave/echo")).body(vec![b'x'; 2000]),
            "REQUEST_TOO_LARGE",
        ),
        (
            "server: a trap",
            c.get(url("/app/rest/misbehave/panic")),
            "ELEMENT_TRAP",
        ),
        ("api: no session", c.get(url("/api/rest/user/me")), "UNAUTHORIZED"),
        (
            "api: a bad session",
            c.get(url("/api/rest/user/me")).bearer_auth("bogus"),
            "UNAUTHORIZED",
        ),
        (
            "sdk: no route",
            c.get(url("/app/rest/misbehave/no/such/route")),
            "NOT_FOUND",
        ),
        (
            "sdk: a method the route doesn't take",
            c.delete(url("/app/rest/misbehave/ok")),
            "METHOD_NOT_ALLOWED",
        ),
        (
            "sdk: no session",
            c.get(url("/app/rest/misbehave/me")),
            "UNAUTHORIZED",
        ),
        (
            "sdk: a bad session",
            c.get(url("/app/rest/misbehave/me")).bearer_auth("bogus"),
            "UNAUTHORIZED",
        ),
        (
            "sdk: a bad query",
            c.get(url("/app/rest/misbehave/sleep?ms=soon")),
            "BAD_REQUEST",
        ),
        (
            "sdk: an invalid collection",
            c.post(url("/app/rest/misbehave/docs/no%20spaces")).body("{}"),
            "BAD_REQUEST",
        ),
    ];
    for (what, request, code) in cases {
        let (status, id, body) = send(&server, request).await;
        assert_eq!(body["code"], code, "{what}: {body}");
        assert_eq!(
            Some(&status),
            table.get(code),
            "{what}: the README's status for {code}: {body}"
        );
        assert!(!id.is_empty(), "{what}: no x-request-id");
        assert_eq!(body["requestId"], id, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        let keys: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        let allowed = BTreeSet::from(["code", "message", "requestId", "element"]);
        assert!(keys.is_subset(&allowed), "{what}: {body}");
    }
}
