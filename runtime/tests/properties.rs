//! Property tests: manifest parsing on arbitrary text and generated TOML,
//! and random bodies fired at the real server's `/v2` routes over loopback.
//!
//! Bounded by `PROPTEST_CASES` (pure properties default to 256 cases, the
//! HTTP one to 48). A failure prints its minimal case and seed and is
//! saved under `runtime/tests/properties.proptest-regressions` (commit it:
//! the next run replays it first).

mod support;

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use elements_host::element::manifest::{EXTENSION_ROUTES, Manifest, validate_name};
use support::{Dirs, Server};

/// A TOML value of any type.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        // Rust's escapes are mostly TOML's; where not, the text is just invalid.
        ".{0,12}".prop_map(|s| format!("{s:?}")),
        Just("\"reuse\"".to_owned()),
        Just("\"integer\"".to_owned()),
        Just("\"/api/rest/verify\"".to_owned()),
        Just("\"mail.send\"".to_owned()),
        Just("\"dev.getelements.*\"".to_owned()),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop::collection::vec(inner, 0..3).prop_map(|v| format!("[{}]", v.join(", ")))
    })
}

/// A manifest-like TOML document: known and unknown keys, in known and
/// unknown tables, with values of any type.
fn manifest_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("prefix"),
        Just("core_routes"),
        Just("grants"),
        Just("timeout_ms"),
        Just("memory_mib"),
        Just("isolation"),
        Just("subscribe"),
        Just("default"),
        Just("type"),
        Just("min"),
        Just("max"),
        Just("required"),
        Just("sensitive"),
        Just("description"),
        Just("greeting"),
        Just("unknown"),
    ];
    let table = prop_oneof![
        Just(""),
        Just("[limits]"),
        Just("[events]"),
        Just("[values]"),
        Just("[attributes.a]"),
        Just("[attributes.\"b c\"]"),
        Just("[elsewhere]"),
    ];
    prop::collection::vec((table, prop::collection::vec((key, toml_value()), 0..4)), 0..4).prop_map(
        |sections| {
            let mut text = String::new();
            // Top-level keys first: a table header ends the top level.
            let mut sorted = sections;
            sorted.sort_by_key(|(t, _)| !t.is_empty());
            for (table, pairs) in sorted {
                text.push_str(table);
                text.push('\n');
                for (k, v) in pairs {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
            text
        },
    )
}

/// What every accepted manifest satisfies.
fn check_accepted(m: &Manifest) -> Result<(), TestCaseError> {
    if let Some(prefix) = &m.prefix {
        prop_assert!(
            validate_name("prefix", prefix).is_ok(),
            "accepted prefix {:?}",
            prefix
        );
    }
    for route in &m.core_routes {
        prop_assert!(
            EXTENSION_ROUTES.contains(&route.as_str()),
            "accepted core route {:?}",
            route
        );
    }
    for (name, spec) in &m.attributes {
        if let Some(default) = &spec.default {
            prop_assert!(
                default.trim().is_empty() || spec.check(default).is_ok(),
                "default of {:?}",
                name
            );
        }
        if let (Some(min), Some(max)) = (spec.min, spec.max) {
            prop_assert!(min <= max);
        }
    }
    // Never panics, whatever was accepted.
    let _ = m.requested_grants("element");
    Ok(())
}

proptest! {
    /// Any text is a manifest or a typed error.
    #[test]
    fn any_text_never_panics(text in "\\PC{0,200}") {
        if let Ok(m) = Manifest::parse(&text) {
            check_accepted(&m)?;
        }
    }

    /// Generated manifest-shaped TOML: accepted ones hold the invariants.
    #[test]
    fn generated_toml_never_panics(text in manifest_text()) {
        if let Ok(m) = Manifest::parse(&text) {
            check_accepted(&m)?;
        }
    }

    /// A prefix is accepted exactly when it is a valid name.
    #[test]
    fn prefix_accepted_iff_valid(prefix in "[a-zA-Z0-9_./ -]{0,52}") {
        let parsed = Manifest::parse(&format!("prefix = {prefix:?}"));
        prop_assert_eq!(parsed.is_ok(), validate_name("prefix", &prefix).is_ok(), "{:?}", prefix);
        if let Ok(m) = parsed {
            prop_assert_eq!(m.prefix.as_deref(), Some(prefix.as_str()));
        }
    }

    /// An integer attribute's default within its range round-trips; out of
    /// range it is refused.
    #[test]
    fn integer_attribute_bounds(min in -1000i64..1000, span in 0i64..1000, value in -3000i64..3000) {
        let max = min + span;
        let text = format!("[attributes.n]\ntype = \"integer\"\nmin = {min}\nmax = {max}\ndefault = \"{value}\"\n");
        let parsed = Manifest::parse(&text);
        prop_assert_eq!(parsed.is_ok(), (min..=max).contains(&value), "{}", text);
        if let Ok(m) = parsed {
            let expected = value.to_string();
            prop_assert_eq!(m.attributes["n"].default.as_deref(), Some(expected.as_str()));
        }
    }
}

static SERVER: OnceLock<(Server, Dirs)> = OnceLock::new();

/// One server for every HTTP case (started on first use).
fn server() -> &'static (Server, Dirs) {
    SERVER.get_or_init(|| {
        let dirs = Dirs::new();
        let server = Server::start_with(&dirs, &[], &[("ELEMENTS_SERVER_KEY", "props-key")], None);
        // A static is never dropped, so `Server`'s own clean-up would never
        // run and the server would outlive the suite (CI found it still
        // running): stop it, and remove its folders, when this binary exits.
        // SAFETY: registers a plain function; it runs once, at exit.
        unsafe { libc::atexit(stop_server) };
        (server, dirs)
    })
}

extern "C" fn stop_server() {
    if let Some((server, dirs)) = SERVER.get() {
        // SAFETY: signals our own child, whose pid is still ours: it is
        // never reaped before this.
        unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGKILL) };
        let _ = std::fs::remove_dir_all(dirs.root.path());
    }
}

/// Any JSON, biased towards the fields `/v2` bodies have.
fn any_body() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("email".to_owned()),
        Just("password".to_owned()),
        Just("vars".to_owned()),
        Just("token".to_owned()),
        Just("refresh_token".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,24}".prop_map(Value::String),
        "[a-z0-9@.]{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body as sent: JSON, or raw bytes that may not be JSON at all.
fn any_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => any_body().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

const V2_ROUTES: &[&str] = &[
    "/v2/account/authenticate/device",
    "/v2/account/authenticate/email",
    "/v2/account/authenticate/custom",
    "/v2/account/authenticate/steam",
    "/v2/account/session/refresh",
    "/v2/account/link/device",
    "/v2/account/link/email",
    "/v2/account/link/custom",
    "/v2/account/unlink/custom",
    "/v2/session/logout",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48)
    ))]

    /// Random bodies (and query strings) at every `/v2` POST route, with
    /// the server key, with a session token and with nothing: never a 5xx,
    /// and every error is Nakama's `{code, message, details}`.
    #[test]
    fn v2_bodies_never_fail_the_server(
        route in prop::sample::select(V2_ROUTES),
        payload in any_payload(),
        create in prop::option::of(prop_oneof![Just("true"), Just("false"), Just("yes"), Just("")]),
        auth in 0u8..3,
    ) {
        let (server, _) = server();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(async {
            let mut url = server.url(route);
            if let Some(create) = create {
                url.push_str(&format!("?create={create}&username=u{}", payload.len()));
            }
            let mut request = server.client.post(&url)
                .header("content-type", "application/json")
                .body(payload.clone());
            match auth {
                0 => {}
                1 => request = request.basic_auth("props-key", Some("")),
                _ => {
                    // A valid session token, from a fresh device account.
                    let created = server.client.post(server.url("/v2/account/authenticate/device"))
                        .basic_auth("props-key", Some(""))
                        .json(&json!({"id": format!("props-device-{}", payload.len() + 1000)}))
                        .send().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let body: Value = created.json().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    request = request.bearer_auth(body["token"].as_str().unwrap_or_default());
                }
            }
            let response = request.send().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let status = response.status().as_u16();
            let text = response.text().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(status < 500, "{} {} -> {} {}", route, String::from_utf8_lossy(&payload), status, text);
            let body: Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{route} answered non-JSON {status} {text:?}: {e}")))?;
            if status >= 400 {
                prop_assert!(body["code"].is_u64() && body["message"].is_string() && body["details"].is_array(),
                    "{} -> {} {}", route, status, body);
            }
            Ok(())
        })?;
    }
}
