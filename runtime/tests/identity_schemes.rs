//! OIDC and OAuth2 auth schemes, as in Namazu Elements: a superuser
//! registers them on the admin listener; players log in and link with
//! `/api/rest/auth/{oidc,oauth2}` against the local provider stub. Refused:
//! schemes that can't work, non-superusers, forged or foreign tokens, and
//! stored secrets are never shown.

mod support;

use serde_json::{Value, json};
use support::providers::{self, OAUTH2_API_KEY, OIDC_ISSUER, Stub};
use support::{Dirs, Server, admin_request, request, root_secret, root_server, secret};

const AUDIENCE: &str = "game-client";

async fn setup() -> (Stub, Server, Dirs, String) {
    let stub = Stub::start().await;
    let dirs = Dirs::new();
    let server = root_server(&dirs);
    let root = root_secret(&server).await;
    (stub, server, dirs, root)
}

fn oidc_scheme(stub: &Stub) -> Value {
    json!({
        "name": "example-id",
        "issuer": OIDC_ISSUER,
        "audiences": [AUDIENCE],
        "discoveryUrl": stub.url("/oidc/.well-known/openid-configuration"),
    })
}

fn oauth2_scheme(stub: &Stub) -> Value {
    json!({
        "name": "example-oauth",
        "validationUrl": stub.url("/oauth2/validate"),
        "method": "GET",
        "headers": [{"key": "x-api-key", "value": OAUTH2_API_KEY}],
        "params": [{"key": "access_token", "fromClient": true}],
        "responseIdMapping": "player_id",
        "responseValidMapping": "active",
    })
}

fn id_token(sub: &str, aud: &str, iss: &str) -> String {
    providers::id_token(
        "google-test",
        iss,
        aud,
        sub,
        json!({"name": format!("Player {sub}")}),
    )
}

#[tokio::test]
async fn only_superusers_on_the_admin_listener_register_schemes_that_can_work() {
    let (stub, server, _dirs, root) = setup().await;
    // The public listener doesn't serve the admin API.
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/auth_scheme/oidc",
        Some(&root),
        Some(oidc_scheme(&stub)),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // A plain user is refused.
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(json!({"name": "plain_user", "password": "plain-password-1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let plain = secret(&body);
    let (status, _) = admin_request(
        &server,
        "POST",
        "/api/rest/auth_scheme/oidc",
        Some(&plain),
        Some(oidc_scheme(&stub)),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = admin_request(&server, "GET", "/api/rest/auth_scheme/oauth2", None, None).await;
    assert_eq!(status, 401);

    // Schemes that can't work are refused at registration, with the reason.
    let mut no_audience = oidc_scheme(&stub);
    no_audience["audiences"] = json!([]);
    let mut no_keys = oidc_scheme(&stub);
    no_keys.as_object_mut().unwrap().remove("discoveryUrl");
    let mut bad_key = oidc_scheme(&stub);
    bad_key["keys"] = json!([{"kty": "RSA", "kid": "k", "n": "!!", "e": "AQAB"}]);
    for (what, scheme, needle) in [
        ("no audience", no_audience, "audiences"),
        ("no keys", no_keys, "keys"),
        ("a bad key", bad_key, "keys"),
    ] {
        let (status, body) = admin_request(
            &server,
            "POST",
            "/api/rest/auth_scheme/oidc",
            Some(&root),
            Some(scheme),
        )
        .await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(needle),
            "{what}: {body}"
        );
    }
    let mut nothing_from_client = oauth2_scheme(&stub);
    nothing_from_client["params"] = json!([{"key": "access_token", "value": "fixed"}]);
    let mut no_id = oauth2_scheme(&stub);
    no_id.as_object_mut().unwrap().remove("responseIdMapping");
    for (what, scheme) in [
        ("nothing from the client", nothing_from_client),
        ("no player id", no_id),
    ] {
        let (status, body) = admin_request(
            &server,
            "POST",
            "/api/rest/auth_scheme/oauth2",
            Some(&root),
            Some(scheme),
        )
        .await;
        assert_eq!(status, 400, "{what}: {body}");
    }

    // Registered; the name and issuer are unique.
    let (status, created) = admin_request(
        &server,
        "POST",
        "/api/rest/auth_scheme/oidc",
        Some(&root),
        Some(oidc_scheme(&stub)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = admin_request(
        &server,
        "POST",
        "/api/rest/auth_scheme/oidc",
        Some(&root),
        Some(oidc_scheme(&stub)),
    )
    .await;
    assert_eq!(status, 409);
    let (status, listed) =
        admin_request(&server, "GET", "/api/rest/auth_scheme/oidc", Some(&root), None).await;
    assert_eq!(
        (status, listed.as_array().map(Vec::len)),
        (200, Some(1)),
        "{listed}"
    );
    let path = format!("/api/rest/auth_scheme/oidc/{}", created["id"].as_str().unwrap());
    let (status, by_name) = admin_request(
        &server,
        "GET",
        "/api/rest/auth_scheme/oidc/example-id",
        Some(&root),
        None,
    )
    .await;
    assert_eq!((status, &by_name["id"]), (200, &created["id"]));
    let (status, _) = admin_request(&server, "DELETE", &path, Some(&root), None).await;
    assert_eq!(status, 204);
    let (status, _) = admin_request(&server, "GET", &path, Some(&root), None).await;
    assert_eq!(status, 404);

    // The OAuth2 scheme's stored key is never shown, and an edit keeps it.
    let (status, created) = admin_request(
        &server,
        "POST",
        "/api/rest/auth_scheme/oauth2",
        Some(&root),
        Some(oauth2_scheme(&stub)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(!created.to_string().contains(OAUTH2_API_KEY), "{created}");
    assert_eq!(created["headers"][0]["valueSet"], true, "{created}");
    let mut edit = created.clone();
    edit["responseValidExpectedValue"] = json!("true");
    let (status, edited) = admin_request(
        &server,
        "PUT",
        "/api/rest/auth_scheme/oauth2/example-oauth",
        Some(&root),
        Some(edit),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let (status, shown) =
        admin_request(&server, "GET", "/api/rest/auth_scheme/oauth2", Some(&root), None).await;
    assert_eq!(status, 200);
    assert!(!shown.to_string().contains(OAUTH2_API_KEY), "{shown}");
    let login = json!({"schemeId": "example-oauth", "requestParameters": {"access_token": "good-p1"}});
    let (status, body) = request(&server, "POST", "/api/rest/auth/oauth2", None, Some(login)).await;
    assert_eq!(status, 200, "the stored key was kept through the edit: {body}");
}

#[tokio::test]
async fn oidc_id_tokens_log_in_and_link_and_forgeries_are_refused() {
    let (stub, server, _dirs, root) = setup().await;
    let (status, body) = admin_request(
        &server,
        "POST",
        "/api/rest/auth_scheme/oidc",
        Some(&root),
        Some(oidc_scheme(&stub)),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let login = |jwt: String| json!({"jwt": jwt});
    let (status, first) = request(
        &server,
        "POST",
        "/api/rest/auth/oidc",
        None,
        Some(login(id_token("s1", AUDIENCE, OIDC_ISSUER))),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let user = &first["session"]["user"];
    assert_eq!(user["displayName"], "Player s1", "{first}");
    let (status, me) = request(&server, "GET", "/api/rest/user/me", Some(&secret(&first)), None).await;
    assert_eq!((status, &me["id"]), (200, &user["id"]));
    let (status, again) = request(
        &server,
        "POST",
        "/api/rest/auth/oidc",
        None,
        Some(login(id_token("s1", AUDIENCE, OIDC_ISSUER))),
    )
    .await;
    assert_eq!(
        (status, &again["session"]["user"]["id"]),
        (200, &user["id"]),
        "{again}"
    );

    let now = providers::now();
    let expired = providers::jwt(
        json!({"alg": "RS256", "kid": "google-test"}),
        json!({"iss": OIDC_ISSUER, "aud": AUDIENCE, "sub": "s1", "iat": now - 7200, "exp": now - 3600}),
    );
    for (what, jwt) in [
        ("another audience", id_token("s1", "other-client", OIDC_ISSUER)),
        (
            "an unregistered issuer",
            id_token("s1", AUDIENCE, "https://evil.example"),
        ),
        ("expired", expired),
        ("not a JWT", "abc".to_owned()),
        (
            "an unknown key",
            providers::id_token("apple-nope", OIDC_ISSUER, AUDIENCE, "s1", json!({})),
        ),
    ] {
        let (status, body) = request(&server, "POST", "/api/rest/auth/oidc", None, Some(login(jwt))).await;
        assert_eq!(status, 401, "{what}: {body}");
    }
    let (status, _) = request(&server, "POST", "/api/rest/auth/oidc", None, Some(json!({}))).await;
    assert_eq!(status, 400);

    // Link a second subject to root; the first subject belongs to another account.
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/auth/oidc/link",
        Some(&root),
        Some(login(id_token("s2", AUDIENCE, OIDC_ISSUER))),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, as_root) = request(
        &server,
        "POST",
        "/api/rest/auth/oidc",
        None,
        Some(login(id_token("s2", AUDIENCE, OIDC_ISSUER))),
    )
    .await;
    assert_eq!(
        (status, as_root["session"]["user"]["name"].as_str()),
        (200, Some("root")),
        "{as_root}"
    );
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/auth/oidc/link",
        Some(&root),
        Some(login(id_token("s1", AUDIENCE, OIDC_ISSUER))),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = request(
        &server,
        "POST",
        "/api/rest/auth/oidc/link",
        None,
        Some(login(id_token("s3", AUDIENCE, OIDC_ISSUER))),
    )
    .await;
    assert_eq!(status, 401, "linking needs a session");
}

#[tokio::test]
async fn oauth2_providers_vouch_for_tokens_and_an_outage_changes_nothing() {
    let (stub, server, _dirs, root) = setup().await;
    let (status, body) = admin_request(
        &server,
        "POST",
        "/api/rest/auth_scheme/oauth2",
        Some(&root),
        Some(oauth2_scheme(&stub)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let login =
        |scheme: &str, token: &str| json!({"schemeId": scheme, "requestParameters": {"access_token": token}});

    let (status, first) = request(
        &server,
        "POST",
        "/api/rest/auth/oauth2",
        None,
        Some(login("example-oauth", "good-p7")),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = request(
        &server,
        "POST",
        "/api/rest/auth/oauth2",
        None,
        Some(login("example-oauth", "good-p7")),
    )
    .await;
    assert_eq!(
        (status, &again["session"]["user"]["id"]),
        (200, &first["session"]["user"]["id"])
    );

    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/auth/oauth2",
        None,
        Some(login("example-oauth", "bad-token")),
    )
    .await;
    assert_eq!(status, 401, "an inactive token: {body}");
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/auth/oauth2",
        None,
        Some(json!({"schemeId": "example-oauth"})),
    )
    .await;
    assert_eq!(status, 400, "the client's value missing: {body}");
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/auth/oauth2",
        None,
        Some(login("no-such-scheme", "good-p7")),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/auth/oauth2",
        None,
        Some(login("example-oauth", "good-p7\r\nx: y")),
    )
    .await;
    assert_eq!(status, 401, "a value with control characters: {body}");

    stub.set_down(true);
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/auth/oauth2",
        None,
        Some(login("example-oauth", "good-p8")),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "PROVIDER_UNAVAILABLE", "{body}");
    stub.set_down(false);
    let (status, body) = request(
        &server,
        "POST",
        "/api/rest/auth/oauth2/link",
        Some(&root),
        Some(login("example-oauth", "good-p8")),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, as_root) = request(
        &server,
        "POST",
        "/api/rest/auth/oauth2",
        None,
        Some(login("example-oauth", "good-p8")),
    )
    .await;
    assert_eq!(
        (status, as_root["session"]["user"]["name"].as_str()),
        (200, Some("root")),
        "{as_root}"
    );
}
