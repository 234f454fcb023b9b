//! The Email Verification Element in the real runtime (elements-test):
//! identity, documents (single-use tokens), mail to the harness's SMTP
//! capture and the events it publishes.

use elements_test::Harness;
use serde_json::json;

const REQUEST: &str = "/api/rest/user/me/email/verify";

#[test]
fn a_link_mailed_to_the_user_verifies_the_address_once() {
    let harness = Harness::build(env!("CARGO_MANIFEST_DIR")).start();
    let ana = harness.signup_with_email("ana", "ana@example.com");

    let anonymous = harness
        .server_request("POST", REQUEST)
        .json(&json!({"email": "ana@example.com"}))
        .send();
    assert_eq!(anonymous.status(), 401, "{}", anonymous.text());
    assert!(harness.mails().is_empty());

    let pending = harness
        .server_request("POST", REQUEST)
        .session(&ana)
        .json(&json!({"email": " ANA@example.com "}))
        .send();
    assert_eq!(pending.status(), 200, "{}", pending.text());
    assert_eq!(pending.json()["verification"], "PENDING");

    let mails = harness.wait_for_mail(1);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, ["ana@example.com"]);
    assert_eq!(mails[0].subject(), Some("Verify your email"));
    // The link is built on the server's public URL.
    let body = mails[0].decoded();
    let start = body
        .find(&format!("{}/api/rest/verify?token=", harness.base_url()))
        .unwrap_or_else(|| panic!("no link in {body}"));
    let link: String = body[start..]
        .chars()
        .take_while(|c| !matches!(c, '"' | '<' | '\r' | '\n'))
        .collect();
    let path = link.trim_start_matches(&harness.base_url()).to_owned();

    let requested = harness.wait_for_event("dev.getelements.email_verification.requested");
    assert_eq!(requested.payload["id"], "ana@example.com");

    let verified = harness.server_request("GET", &path).send();
    assert_eq!(verified.status(), 200, "{}", verified.text());
    assert_eq!(verified.json()["verification"], "VERIFIED");
    let again = harness.server_request("GET", &path).send();
    assert_eq!(again.status(), 404, "a second click: {}", again.text());
    let completed = harness.wait_for_event("dev.getelements.email_verification.completed");
    assert_eq!(completed.payload["verification"], "VERIFIED");
}

#[test]
fn another_users_address_is_refused_and_nothing_is_sent() {
    let harness = Harness::build(env!("CARGO_MANIFEST_DIR")).start();
    let ana = harness.signup_with_email("ana", "ana@example.com");
    harness.signup_with_email("bob", "bob@example.com");
    let res = harness
        .server_request("POST", REQUEST)
        .session(&ana)
        .json(&json!({"email": "bob@example.com"}))
        .send();
    assert_eq!(res.status(), 403, "{}", res.text());
    let unlinked = harness
        .server_request("POST", REQUEST)
        .session(&ana)
        .json(&json!({"email": "nobody@example.com"}))
        .send();
    assert_eq!(unlinked.status(), 404, "{}", unlinked.text());
    assert!(harness.mails().is_empty(), "{:?}", harness.mails());
}
