//! Test fixture for the runtime's isolation tests: an Element that loops,
//! exhausts memory, panics, prints, sleeps, and so on, on request.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use elements_sdk::prelude::*;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn router() -> Router {
    Router::new()
        .get("/ok", |_req| json!({"ok": true}))
        .get("/loop", |_req| -> Response { spin() })
        .get("/alloc", |_req| -> Response { exhaust_memory() })
        .get("/panic", |_req| -> Response {
            panic!("deliberate panic from misbehave")
        })
        .get("/print", |_req| {
            println!("hello on stdout");
            eprintln!("hello on stderr");
            json!({"printed": true})
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
        .get("/log", |_req| {
            trace!("level test trace");
            debug!("level test debug");
            info!("level test info");
            warn!("level test warn");
            error!("level test error");
            json!({"logged": true})
        })
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

elements_sdk::export_element!(router);
