//! Test fixture: a hostile Element, written with the shipped SDK, that tries
//! to reach what it was not granted. Every route makes one attempt and
//! answers `{"ok": true, ...}` when it got through, or `{"ok": false,
//! "status", "code", "message"}` with the error the host gave it, so the
//! tests can assert exactly how each attempt failed.

use elements_sdk::identity::{self, Verification};
use elements_sdk::prelude::*;
use elements_sdk::{http, mail};
use serde_json::Value;

fn router() -> Router {
    Router::new()
        // Become another user: find them by their email, log in as them.
        .post("/takeover", |req: Request| {
            let email = text(&req, "email");
            outcome((|| {
                let (user, _) = identity::find_or_create_user(identity::EMAIL, &email, None)?;
                let session = identity::create_session(&user.id, None, 3600)?;
                Ok(json!({"session": session.session_secret}))
            })())
        })
        // Log in as a user by id (reached some other way).
        .post("/session/{user}", |req: Request| {
            let user = req.param("user").unwrap_or_default().to_owned();
            outcome(identity::create_session(&user, None, 3600).map(|s| json!({"session": s.session_secret})))
        })
        // Read any user by id.
        .get("/user/{user}", |req: Request| {
            outcome(identity::user(req.param("user").unwrap_or_default()).map(|u| json!(u)))
        })
        // Mark anyone's address verified.
        .post("/verify", |req: Request| {
            let email = text(&req, "email");
            outcome(
                identity::set_verification(identity::EMAIL, &email, Verification::Verified).map(|i| json!(i)),
            )
        })
        // Link an address to someone else's account.
        .post("/link", |req: Request| {
            let (user, email) = (text(&req, "user"), text(&req, "email"));
            outcome(identity::link_email(&user, &email).map(|_| json!({})))
        })
        // Find users through a scheme it was granted (to prove the grant works).
        .post("/player/{id}", |req: Request| {
            let id = req.param("id").unwrap_or_default().to_owned();
            outcome((|| {
                let (user, _) = identity::find_or_create_user("hostile.player", &id, None)?;
                let session = identity::create_session(&user.id, None, 60)?;
                Ok(json!({"user": user.id, "session": session.session_secret}))
            })())
        })
        // Read every attribute (looking for the operator's secrets).
        .get("/attributes", |_req| json!(attributes::list()))
        .post("/mail", |req: Request| {
            let n = req.query("n").and_then(|n| n.parse().ok()).unwrap_or(1u32);
            let to = text(&req, "to");
            outcome((|| {
                for i in 0..n {
                    mail::send(&mail::Message::to(&to).subject(format!("spam {i}")).text("x"))?;
                }
                Ok(json!({"sent": n}))
            })())
        })
        .post("/publish/{name}", |req: Request| {
            let n = req.query("n").and_then(|n| n.parse().ok()).unwrap_or(1u32);
            let name = req.param("name").unwrap_or_default().to_owned();
            outcome((|| {
                for i in 0..n {
                    events::publish(&name, &json!({"i": i}))?;
                }
                Ok(json!({"published": n}))
            })())
        })
        // How many events its loop handler saw (of one name, when given).
        .get("/echoes", |req: Request| {
            let filter = match req.query("name") {
                Some(name) => json!({"name": name}),
                None => json!({}),
            };
            outcome(
                documents::collection("echoes")
                    .count(filter)
                    .map(|n| json!({"count": n})),
            )
        })
        .get("/fetch", |req: Request| {
            let url = req.query("url").unwrap_or_default();
            outcome(
                http::get(&url)
                    .map(|r| json!({"status": r.status}))
                    .map_err(Error::from),
            )
        })
}

/// Publishes two events for every one it receives: an amplifying loop,
/// which the host must bound.
fn on_event(event: Event) -> Result<()> {
    documents::collection("echoes").insert(&json!({"name": event.name}))?;
    events::publish("hostile.echo", &json!({}))?;
    events::publish("hostile.echo", &json!({}))
}

fn text(req: &Request, key: &str) -> String {
    req.json::<Value>()
        .ok()
        .and_then(|v| v.get(key).and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn outcome(result: Result<Value>) -> Response {
    match result {
        Ok(mut value) => {
            if let Some(map) = value.as_object_mut() {
                map.insert("ok".into(), json!(true));
            }
            Response::json(&value)
        }
        Err(e) => Response::json(&json!({
            "ok": false,
            "status": e.status(),
            "code": e.code(),
            "message": e.message(),
        })),
    }
}

elements_sdk::export_element!(router, events = on_event);
