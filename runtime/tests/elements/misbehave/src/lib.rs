//! Test fixture for the runtime's tests: an Element that loops, exhausts
//! memory, panics, prints, sleeps, and so on, on request; and that exposes
//! the host services (documents, events, mail, outbound HTTP, identity) over
//! HTTP.
//! Every event it receives is stored in its `received` collection.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use elements_sdk::documents::{self, FindAndModify, Sort};
use elements_sdk::prelude::*;
use elements_sdk::{http, mail};
use serde::Deserialize;
use serde_json::Value;

static COUNTER: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
    fn writev(fd: i32, iov: *const [usize; 2], iovcnt: i32) -> isize;
}

/// What `write` and `writev` to descriptor `fd` return, with errno when
/// they fail: `[result, errno]`.
fn unsafe_writes_to(fd: i32) -> ([i64; 2], [i64; 2]) {
    let text = b"nobody reads this";
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64;
    // SAFETY: `text` is readable for its length; one iovec pointing to it.
    let written = unsafe { write(fd, text.as_ptr(), text.len()) } as i64;
    let write_errno = errno();
    let iov = [text.as_ptr() as usize, text.len()];
    // SAFETY: as above.
    let vectored = unsafe { writev(fd, &iov, 1) } as i64;
    ([written, write_errno], [vectored, errno()])
}

fn router() -> Router {
    Router::new()
        .get("/ok", |_req| json!({"ok": true}))
        // Origin separation: try to set the portal's cookies, and a page
        // that attacks the portal from the browser of a logged-in operator.
        .get("/cookies", |_req| {
            PORTAL_COOKIES
                .iter()
                .chain(OWN_COOKIES)
                .fold(Response::json(&json!({"cookies": true})), |r, c| {
                    r.append_header("set-cookie", *c)
                })
        })
        .get("/attack", attack_page)
        // Headers HTTP does not allow, beside a good one: the host drops
        // them and says so in the Element's log, without their values.
        .get("/bad-headers", |_req| {
            Response::json(&json!({"ok": true}))
                .with_header("bad name", "x")
                .with_header("x-secret", "a\nsecret-value")
                // A value or a name from a request, used as is: neither may
                // add a header of its own.
                .with_header("x-inject", "v\r\nx-injected: value")
                .append_header("x-name: x-injected", "name")
                .with_header("x-ok", "fine")
        })
        // Request ids: what the Element was told, and an attempt to answer
        // with an id of its own.
        .get("/request-id", |req: Request| {
            let seen = req.header("x-request-id").map(str::to_owned);
            Response::json(&json!({"seen": seen})).with_header("x-request-id", "forged-by-the-element")
        })
        .get("/loop", |_req| -> Response { spin() })
        .get("/alloc", |_req| -> Response { exhaust_memory() })
        .get("/panic", |_req| -> Response {
            panic!("deliberate panic from misbehave")
        })
        // The server's environment, as an Element looks for it: one
        // variable the server has for sure, and all of them; then one the
        // Element sets, overwrites and removes.
        .get("/env", |_req| {
            let path = std::env::var("PATH").ok();
            let variables = std::env::vars_os().count();
            // SAFETY: an Element has one thread.
            unsafe { std::env::set_var("ELEMENT_MODE", "fast") };
            let set = std::env::var("ELEMENT_MODE").ok();
            unsafe { std::env::set_var("ELEMENT_MODE", "slow") };
            let overwritten = std::env::var("ELEMENT_MODE").ok();
            unsafe { std::env::remove_var("ELEMENT_MODE") };
            let removed = std::env::var("ELEMENT_MODE").ok();
            json!({
                "path": path,
                "variables": variables,
                "set": set,
                "overwritten": overwritten,
                "removed": removed,
            })
        })
        .get("/print", |_req| {
            println!("hello on stdout");
            eprintln!("hello on stderr");
            json!({"printed": true})
        })
        // Standard output as an attacker uses it: a flood of lines, one
        // line far longer than a log line, text without a newline, and
        // writes to descriptors an Element doesn't have.
        .get("/printflood", |req: Request| {
            let n: u64 = query_number(&req, "n")?;
            for i in 0..n {
                println!("print line {i}");
            }
            Ok::<_, Error>(json!({"printed": n}))
        })
        .get("/printraw", |_req| {
            // More than std buffers: straight to `write`.
            print!("{}", "x".repeat(10_000));
            eprint!("stderr without newline");
            let (write, writev) = unsafe_writes_to(7);
            json!({"write": write, "writev": writev})
        })
        .get("/sleep", |req: Request| {
            let ms: u64 = query_number(&req, "ms")?;
            std::thread::sleep(Duration::from_millis(ms));
            Ok::<_, Error>(json!({"slept": ms}))
        })
        .get("/big", |req: Request| {
            let bytes: usize = query_number(&req, "bytes")?;
            Ok::<_, Error>(Response::text("x".repeat(bytes)))
        })
        .post("/echo", |req: Request| {
            if req.query("len").is_some_and(|v| v == "1") {
                Response::json(&json!({"len": req.body().len()}))
            } else {
                Response::bytes(req.into_body())
            }
        })
        .get("/counter", |_req| {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
            json!({"count": n})
        })
        .get("/attr/{name}", |req: Request| {
            let name = req.param("name").unwrap_or_default();
            json!({"name": name, "value": attributes::get(name)})
        })
        .get("/attr-u32/{name}", |req: Request| -> Result<Response> {
            let name = req.param("name").unwrap_or_default();
            let value = attributes::get_as::<u32>(name)?;
            Ok(Response::json(&json!({"name": name, "value": value})))
        })
        .get("/log", |_req| {
            trace!("level test trace");
            debug!("level test debug");
            info!("level test info");
            warn!("level test warn");
            error!("level test error");
            json!({"logged": true})
        })
        // Which levels the host says a line would be kept at.
        .get("/log-enabled", |_req| {
            use elements_sdk::log::{Level, enabled};
            json!({
                "trace": enabled(Level::Trace),
                "debug": enabled(Level::Debug),
                "info": enabled(Level::Info),
                "warn": enabled(Level::Warn),
                "error": enabled(Level::Error),
            })
        })
        // Quotas: `n` log lines in one request; a line with a newline and a
        // control character in it.
        .get("/logflood", |req: Request| {
            let n: u64 = query_number(&req, "n")?;
            for i in 0..n {
                info!("flood line {i}");
            }
            Ok::<_, Error>(json!({"logged": n}))
        })
        .get("/forge", |_req| {
            info!("before\nINFO element: FORGED-LINE from log");
            println!("stdout \u{1b}[31m FORGED-COLOUR");
            json!({"logged": true})
        })
        // Documents.
        .post("/docs/{collection}/fill", |req: Request| -> Result<Response> {
            let n: u64 = query_number(&req, "n")?;
            let docs = collection(&req);
            for i in 0..n {
                docs.insert(&json!({"i": i}))?;
            }
            Ok(Response::empty(204))
        })
        .post("/docs/{collection}", |req: Request| -> Result<Response> {
            let stored = collection(&req).insert(&req.json::<Value>()?)?;
            Ok(Response::json(&stored).with_status(201))
        })
        .post("/docs/{collection}/find", find)
        // Reads one document over and over until the deadline ends it:
        // small ones are read on the server's async workers.
        .get(
            "/docs/{collection}/getloop/{id}",
            |req: Request| -> Result<Response> {
                let docs = collection(&req);
                let id = req.param("id").unwrap_or_default();
                loop {
                    black_box(docs.get(id)?);
                }
            },
        )
        .post("/docs/{collection}/count", |req: Request| -> Result<Value> {
            let count = collection(&req).count(body_or_empty(&req)?)?;
            Ok(json!({"count": count}))
        })
        .post("/docs/{collection}/index", |req: Request| -> Result<Response> {
            #[derive(Deserialize)]
            struct Index {
                fields: Vec<String>,
                #[serde(default)]
                unique: bool,
            }
            let index: Index = req.json()?;
            let fields: Vec<&str> = index.fields.iter().map(String::as_str).collect();
            if index.unique {
                collection(&req).ensure_unique_index(&fields)?;
            } else {
                collection(&req).ensure_index(&fields)?;
            }
            Ok(Response::empty(204))
        })
        .post("/docs/{collection}/take", |req: Request| -> Result<Value> {
            collection(&req)
                .find_one_and_delete(body_or_empty(&req)?)?
                .ok_or_else(|| Error::not_found("no matching document"))
        })
        .post("/docs/{collection}/upsert", |req: Request| -> Result<Value> {
            #[derive(Deserialize)]
            struct Upsert {
                #[serde(default = "empty_object")]
                filter: Value,
                update: Value,
            }
            let body: Upsert = req.json()?;
            collection(&req)
                .find_one_and_update(body.filter, body.update, FindAndModify::new().upsert())?
                .ok_or_else(|| Error::internal("an upsert returned no document"))
        })
        .get("/docs/{collection}/{id}", |req: Request| -> Result<Value> {
            let id = req.param("id").unwrap_or_default();
            collection(&req)
                .get(id)?
                .ok_or_else(|| Error::not_found(format!("no document {id}")))
        })
        .patch("/docs/{collection}/{id}", |req: Request| -> Result<Value> {
            let id = req.param("id").unwrap_or_default();
            let update: Value = req.json()?;
            let docs = collection(&req);
            let updated = match req.query("version") {
                Some(v) => {
                    let version = v
                        .parse()
                        .map_err(|_| Error::bad_request("query parameter `version` must be a number"))?;
                    docs.update_if_version(id, update, version)?
                }
                None => docs.update(id, update)?,
            };
            updated.ok_or_else(|| Error::not_found(format!("no document {id}")))
        })
        .delete("/docs/{collection}/{id}", |req: Request| -> Result<Value> {
            let deleted = collection(&req).delete(req.param("id").unwrap_or_default())?;
            Ok(json!({"deleted": deleted}))
        })
        // Events.
        .post("/publish/{name}", |req: Request| -> Result<Response> {
            let payload = if req.body().is_empty() {
                Value::Null
            } else {
                req.json()?
            };
            events::publish(req.param("name").unwrap_or_default(), &payload)?;
            Ok(Response::empty(204))
        })
        .get("/received", |_req| -> Result<Value> {
            let received = documents::collection(RECEIVED)
                .find(json!({}))
                .sort_asc("_id")
                .all()?;
            Ok(Value::Array(received))
        })
        // Mail.
        .post("/mail", |req: Request| -> Result<Response> {
            #[derive(Deserialize)]
            struct Mail {
                to: Vec<String>,
                #[serde(default)]
                subject: String,
                html: Option<String>,
                text: Option<String>,
                from: Option<String>,
            }
            let body: Mail = req.json()?;
            let message = mail::Message {
                to: body.to,
                subject: body.subject,
                html: body.html,
                text: body.text,
                from: body.from,
            };
            mail::send(&message)?;
            Ok(Response::empty(204))
        })
        // Outbound HTTP.
        .get("/fetch", |req: Request| -> Result<Value> {
            let url = req
                .query("url")
                .ok_or_else(|| Error::bad_request("query parameter `url` is required"))?;
            // `timeout_ms`: the Element's own request options (connect and
            // first byte), which can only shorten the operator's timeouts.
            let res = match req.query("timeout_ms") {
                Some(_) => {
                    let ms: u64 = query_number(&req, "timeout_ms")?;
                    http::request(elements_sdk::Method::Get, &url)
                        .timeout(Duration::from_millis(ms))
                        .send()?
                }
                None => http::get(&url)?,
            };
            Ok(json!({"status": res.status, "body": String::from_utf8_lossy(&res.body)}))
        })
        // Identity: read an identity (what a test can't see through /api/rest).
        .get("/identity/{scheme}/{id}", |req: Request| -> Result<Response> {
            let (scheme, id) = (
                req.param("scheme").unwrap_or_default(),
                req.param("id").unwrap_or_default(),
            );
            match identity::get_identity(scheme, id)? {
                Some(found) => Ok(Response::json(&found)),
                None => Err(Error::not_found(format!("no identity {scheme}:{id}"))),
            }
        })
        // Ask the host to have an address verified (elements:platform/verification).
        .post("/verify-email/{email}", |req: Request| -> Result<Response> {
            let email = req.param("email").unwrap_or_default();
            Ok(Response::json(&identity::request_email_verification(email)?))
        })
        // Who is calling, as the Element sees it: each of the three cases
        // answered distinctly, so a test can tell which one the host gave.
        .get("/caller", |_req| match identity::caller() {
            Ok(Some(me)) => Response::json(&json!({"user": me.user.id})),
            Ok(None) => Response::json(&json!({"anonymous": true})),
            Err(identity::CallerError::InvalidCredentials) => {
                Error::from(identity::CallerError::InvalidCredentials).to_response()
            }
            Err(other) => Error::from(other).to_response(),
        })
        // The one-line 401 of a route that needs a user.
        .get("/me", |_req| -> Result<Response> {
            let me = identity::require_caller()?;
            Ok(Response::json(&json!({"user": me.user.id, "name": me.user.name})))
        })
        // Nakama RPCs (served when the manifest declares them): who called
        // with what; `fail` fails with the payload as the message.
        .rpc("echo", |req: Request| -> Result<Response> {
            let me = identity::require_caller()?;
            let answer = json!({"user": me.user.id, "payload": req.text()?});
            Ok(Response::text(answer.to_string()))
        })
        .rpc("fail", |req: Request| -> Result<Response> {
            Err(Error::bad_request(req.text()?.to_owned()))
        })
        // The realtime service, each call as the query asks.
        .post("/realtime/notify", |req: Request| -> Result<Response> {
            let user = req.query("user").unwrap_or_default();
            let code = req.query("code").and_then(|c| c.parse().ok()).unwrap_or(1);
            let note = realtime::Notification::new("from misbehave", json!({"n": 1})).code(code);
            realtime::notify(&[user], &note)?;
            Ok(Response::json(&json!({"ok": true})))
        })
        .post("/realtime/room", |req: Request| -> Result<Response> {
            let room = req.query("room").unwrap_or_default();
            let id = realtime::send_to_room(&room, &json!({"text": "hello"}))?;
            Ok(Response::json(&json!({"id": id})))
        })
        .post("/realtime/match-data", |req: Request| -> Result<Response> {
            let id = req.query("id").unwrap_or_default();
            realtime::send_match_data(&id, 1, b"injected")?;
            Ok(Response::json(&json!({"ok": true})))
        })
        // Creates matches until the host refuses: how many it allowed.
        .post("/realtime/create-many", |_req| -> Result<Response> {
            for made in 0..1000 {
                if let Err(e) = realtime::create_match() {
                    let e = Error::from(e);
                    return Ok(Response::json(&json!({"made": made, "code": e.code()})));
                }
            }
            Ok(Response::json(&json!({"made": 1000})))
        })
}

/// `Set-Cookie` values naming the portal's cookies, which the server must drop.
const PORTAL_COOKIES: &[&str] = &[
    "elements_admin=forged-by-an-element; Path=/admin; HttpOnly",
    "__Host-elements_admin=forged; Path=/; Secure",
    "Elements_Admin_Flash=forged; Path=/admin",
    "__Secure-elements_admin_login=forged; Secure",
];
/// The Element's own cookies, which must reach the client.
const OWN_COOKIES: &[&str] = &["theme=dark; Path=/", "session=abc123; HttpOnly"];

/// An HTML page whose inline script tries to read portal pages at the
/// `admin` URL with the browser's cookies and records what it got in its
/// title (`read:` then JSON); with `post=1` it then submits a portal form
/// (create an application) from this origin, with the `csrf` token given.
fn attack_page(req: Request) -> Result<Response> {
    let admin = req
        .query("admin")
        .ok_or_else(|| Error::bad_request("query parameter `admin` is required"))?;
    let post = req.query("post").is_some_and(|v| v == "1");
    let csrf = req.query("csrf").unwrap_or_default();
    // JSON-encoded, so the values are inert inside the script.
    let config = json!({"admin": admin, "post": post, "csrf": csrf})
        .to_string()
        .replace('<', "\\u003c");
    let html = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>attacking</title></head>
<body>
<form id="forge" method="post"><input name="name" value="forged_by_element">
<input name="description" value="posted from an Element page"><input name="csrf" id="csrf"></form>
<script>
const config = {config};
(async () => {{
  const outcome = {{}};
  for (const path of ['/admin/', '/admin/elements', '/admin/applications', '/api/rest/elements/deployment']) {{
    try {{
      const response = await fetch(config.admin + path, {{credentials: 'include'}});
      const text = await response.text();
      outcome[path] = 'read ' + response.status + ': ' + text.slice(0, 200);
    }} catch (e) {{
      outcome[path] = 'blocked: ' + e.name;
    }}
  }}
  document.title = 'read:' + JSON.stringify(outcome);
  if (config.post) {{
    const form = document.getElementById('forge');
    form.action = config.admin + '/admin/applications';
    document.getElementById('csrf').value = config.csrf;
    form.submit();
  }}
}})();
</script>
</body></html>"#
    );
    Ok(Response::text(html).with_header("content-type", "text/html; charset=utf-8"))
}

/// Where [`on_event`] stores what it receives.
const RECEIVED: &str = "received";

/// Stores every event in `received`.
fn on_event(event: Event) -> Result<()> {
    // An event may ask its handlers to take this long first (for the tests
    // of handlers that overrun their deadline).
    if let Some(ms) = event.payload.get("sleep_ms").and_then(|v| v.as_u64()) {
        std::thread::sleep(Duration::from_millis(ms.min(5_000)));
    }
    documents::collection(RECEIVED).insert(&json!({"name": event.name, "payload": event.payload}))?;
    Ok(())
}

fn collection(req: &Request) -> documents::Collection {
    documents::collection(req.param("collection").unwrap_or_default())
}

fn empty_object() -> Value {
    json!({})
}

/// The JSON body, or `{}` when there is none.
fn body_or_empty(req: &Request) -> Result<Value> {
    if req.body().is_empty() {
        Ok(empty_object())
    } else {
        req.json()
    }
}

/// `POST /docs/{collection}/find` with `{"filter", "sort": [[field, descending]], "skip", "limit"}`.
fn find(req: Request) -> Result<Value> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Find {
        filter: Option<Value>,
        sort: Vec<(String, bool)>,
        skip: Option<u64>,
        limit: Option<u64>,
    }
    let body: Find = if req.body().is_empty() {
        Find::default()
    } else {
        req.json()?
    };
    let docs = collection(&req);
    let mut query = docs.find(body.filter.unwrap_or_else(empty_object));
    let mut sort = Sort::default();
    for (field, descending) in body.sort {
        sort = if descending {
            sort.then_desc(field)
        } else {
            sort.then_asc(field)
        };
    }
    query = query.sort(sort);
    if let Some(skip) = body.skip {
        query = query.skip(skip);
    }
    if let Some(limit) = body.limit {
        query = query.limit(limit);
    }
    Ok(Value::Array(query.all()?))
}

fn query_number<T: std::str::FromStr>(req: &Request, name: &str) -> Result<T> {
    req.query(name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::bad_request(format!("query parameter `{name}` must be a number")))
}

/// Burns CPU forever; `black_box` keeps the optimizer from removing the loop.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates and touches 1 MiB chunks until allocation fails, which aborts
/// the guest (a trap).
fn exhaust_memory() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        // Touch every page so the memory is really used.
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = 1;
        }
        chunks.push(black_box(chunk));
    }
}

elements_sdk::export_element!(router, events = on_event);
