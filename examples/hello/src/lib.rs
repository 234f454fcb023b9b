//! The example Element: copy this to start a new one.

use elements_sdk::prelude::*;

fn router() -> Router {
    Router::new()
        .get("/hello", |_req| json!({"message": "Hello from an Element!"}))
        .post("/echo", echo)
        .get("/greeting", |_req| json!({"greeting": greeting()}))
        .get("/greeting/{name}", |req: Request| {
            let name = req.param("name").unwrap_or_default();
            json!({"greeting": format!("{}, {name}!", greeting())})
        })
}

/// Echoes a JSON body back; malformed JSON is answered with 400 by the SDK.
fn echo(req: Request) -> Result<Response> {
    let body: serde_json::Value = req.json()?;
    info!("echoing {} bytes of JSON", req.body().len());
    Ok(Response::json(&body))
}

/// The `greeting` attribute (the manifest declares its default).
fn greeting() -> String {
    attributes::get_or("greeting", "Hello")
}

elements_sdk::export_element!(router);
