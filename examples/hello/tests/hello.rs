//! The hello Element in the real runtime (elements-test): its routes, the
//! `greeting` attribute and its log.

use elements_sdk::prelude::*;
use elements_test::Harness;
use serde_json::json;

#[test]
fn greets_with_the_operators_greeting_and_logs_echoes() {
    let harness = Harness::build(env!("CARGO_MANIFEST_DIR"))
        .attribute("greeting", "Hi")
        .start();

    let res = harness.get("/hello").send();
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(res.json(), json!({"message": "Hello from an Element!"}));

    // The attribute reaches the Element through the attributes host service.
    let greeted = harness.get("/greeting/ada").send();
    assert_eq!(greeted.json(), json!({"greeting": "Hi, ada!"}));

    let echoed = harness.post("/echo").json(&json!({"a": 1})).send();
    assert_eq!(echoed.status(), 200, "{}", echoed.text());
    assert_eq!(echoed.json(), json!({"a": 1}));
    assert!(harness.logged("echoing 7 bytes of JSON"), "{:?}", harness.logs());

    let missing = harness.get("/nowhere").send();
    assert_eq!(missing.status(), 404, "{}", missing.text());
}

#[test]
fn the_manifest_default_greets_without_an_operator_value() {
    let harness = Harness::build(env!("CARGO_MANIFEST_DIR")).start();
    let greeted = harness.get("/greeting").send();
    assert_eq!(greeted.json(), json!({"greeting": "Hello"}));
}

/// Outside the runtime a host call is an error the test can see, not an
/// abort of the whole test binary.
#[test]
fn host_calls_outside_the_runtime_are_errors() {
    let router = Router::new().get("/count", |_req: Request| -> Result<Response> {
        let n = documents::collection("things").count(json!({}))?;
        Ok(Response::json(&json!({"n": n})))
    });
    let res = router.handle(Request::new(Method::Get, "/count"));
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("outside the Elements runtime")),
        "{body}"
    );
    assert_eq!(attributes::get("greeting"), None);
}
