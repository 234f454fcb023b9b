//! Social and platform logins through the Nakama-compatible `/v2` API,
//! against the real binary and local stand-ins of each provider
//! (`support::providers`): genuine proofs log in, create accounts, link and
//! unlink; forged, expired, stale, wrong-audience and replayed proofs are
//! refused; a provider not configured, or not reachable, changes nothing.

mod support;

use serde_json::{Value, json};
use support::providers::{self, Stub};
use support::{Dirs, Server, request};

async fn post(server: &Server, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
    request(server, "POST", path, bearer, Some(body)).await
}

fn token(body: &Value) -> String {
    body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {body}"))
        .to_owned()
}

fn assert_error(reply: &(u16, Value), status: u16, code: i64, message: &str, doing: &str) {
    assert_eq!(reply.0, status, "{doing}: {}", reply.1);
    assert_eq!(reply.1["code"], code, "{doing}: {}", reply.1);
    assert_eq!(reply.1["message"], message, "{doing}: {}", reply.1);
}

async fn provider_server(stub: &Stub) -> (Server, Dirs) {
    let dirs = Dirs::new();
    dirs.config(&stub.config());
    let server = Server::start(&dirs, &[]);
    (server, dirs)
}

/// A device account to link providers to; its session token.
async fn device_account(server: &Server, id: &str) -> String {
    let reply = post(server, "/v2/account/authenticate/device", None, json!({"id": id})).await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    token(&reply.1)
}

async fn account(server: &Server, token: &str) -> Value {
    let (status, body) = request(server, "GET", "/v2/account", Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// One provider's proofs, for [`logs_in_links_and_refuses_forgeries`].
struct Case<'a> {
    scheme: &'a str,
    /// The name in Nakama's messages ("Could not authenticate Apple profile.").
    name: &'a str,
    /// The `link` conflict label ("Apple ID is already in use.").
    label: &'a str,
    /// The account field holding the id.
    field: &'a str,
    /// A genuine proof for player `n` (a fresh one each call: Game Center
    /// refuses a replayed signature).
    genuine: &'a dyn Fn(u32) -> Value,
    /// The provider's id of player `n`.
    id: &'a dyn Fn(u32) -> String,
    /// Proofs that are not genuine, each with what is wrong with it.
    forged: Vec<(&'a str, Value)>,
}

/// The behaviour every provider shares: create=false for a stranger is 404;
/// a genuine proof creates the account once, then finds it; each forgery is
/// 401 and creates nothing; link, conflict, unlink, and the last identifier.
async fn logs_in_links_and_refuses_forgeries(server: &Server, case: Case<'_>) {
    let scheme = case.scheme;
    let authenticate = format!("/v2/account/authenticate/{scheme}");
    let not_genuine = format!("Could not authenticate {} profile.", case.name);

    let stranger = post(
        server,
        &format!("{authenticate}?create=false"),
        None,
        (case.genuine)(1),
    )
    .await;
    assert_error(
        &stranger,
        404,
        5,
        "User account not found.",
        &format!("{scheme}: create=false for a stranger"),
    );

    let first = post(
        server,
        &format!("{authenticate}?username=first_{scheme}"),
        None,
        (case.genuine)(1),
    )
    .await;
    assert_eq!(first.0, 200, "{scheme}: genuine proof: {}", first.1);
    assert_eq!(first.1["created"], true, "{scheme}");
    let me = account(server, &token(&first.1)).await;
    assert_eq!(
        me["user"]["username"],
        format!("first_{scheme}"),
        "{scheme}: {me}"
    );
    assert_eq!(me["user"][case.field], (case.id)(1), "{scheme}: {me}");

    let again = post(
        server,
        &format!("{authenticate}?create=false"),
        None,
        (case.genuine)(1),
    )
    .await;
    assert_eq!(again.0, 200, "{scheme}: second login: {}", again.1);
    assert_eq!(again.1["created"], false, "{scheme}");
    assert_eq!(
        account(server, &token(&again.1)).await["user"]["id"],
        me["user"]["id"],
        "{scheme}"
    );

    for (what, body) in &case.forged {
        let reply = post(server, &authenticate, None, body.clone()).await;
        assert_error(&reply, 401, 16, &not_genuine, &format!("{scheme}: {what}"));
    }

    // Link player 2 to a device account; the id is then taken.
    let device = device_account(server, &format!("device-for-{scheme}")).await;
    let linked = post(
        server,
        &format!("/v2/account/link/{scheme}"),
        Some(&device),
        (case.genuine)(2),
    )
    .await;
    assert_eq!(linked.0, 200, "{scheme}: link: {}", linked.1);
    assert_eq!(
        account(server, &device).await["user"][case.field],
        (case.id)(2),
        "{scheme}"
    );
    let found = post(
        server,
        &format!("{authenticate}?create=false"),
        None,
        (case.genuine)(2),
    )
    .await;
    assert_eq!(found.0, 200, "{scheme}: login after link: {}", found.1);
    assert_eq!(
        account(server, &token(&found.1)).await["user"]["id"],
        account(server, &device).await["user"]["id"],
        "{scheme}"
    );
    let taken = post(
        server,
        &format!("/v2/account/link/{scheme}"),
        Some(&token(&first.1)),
        (case.genuine)(2),
    )
    .await;
    assert_error(
        &taken,
        409,
        6,
        &format!("{} is already in use.", case.label),
        &format!("{scheme}: link taken id"),
    );
    for (what, body) in &case.forged {
        let reply = post(
            server,
            &format!("/v2/account/link/{scheme}"),
            Some(&device),
            body.clone(),
        )
        .await;
        assert_error(&reply, 401, 16, &not_genuine, &format!("{scheme}: link {what}"));
        let reply = post(
            server,
            &format!("/v2/account/unlink/{scheme}"),
            Some(&device),
            body.clone(),
        )
        .await;
        assert_error(&reply, 401, 16, &not_genuine, &format!("{scheme}: unlink {what}"));
    }

    // Unlink needs a genuine proof of the linked id.
    let unlinked = post(
        server,
        &format!("/v2/account/unlink/{scheme}"),
        Some(&device),
        (case.genuine)(2),
    )
    .await;
    assert_eq!(unlinked.0, 200, "{scheme}: unlink: {}", unlinked.1);
    assert!(
        account(server, &device).await["user"].get(case.field).is_none(),
        "{scheme}"
    );
    let gone = post(
        server,
        &format!("{authenticate}?create=false"),
        None,
        (case.genuine)(2),
    )
    .await;
    assert_eq!(gone.0, 404, "{scheme}: login after unlink: {}", gone.1);

    // The provider is the first account's only identifier.
    let last = post(
        server,
        &format!("/v2/account/unlink/{scheme}"),
        Some(&token(&first.1)),
        (case.genuine)(1),
    )
    .await;
    assert_eq!(last.0, 403, "{scheme}: unlink the last identifier: {}", last.1);
}

#[tokio::test]
async fn apple_id_tokens() {
    let stub = Stub::start().await;
    let (server, _dirs) = provider_server(&stub).await;
    let iss = "https://appleid.apple.com";
    let apple_token = |n: u32| {
        providers::id_token(
            "apple-test",
            iss,
            providers::BUNDLE_ID,
            &format!("000{n}.apple"),
            json!({}),
        )
    };
    let genuine = |n: u32| json!({"token": apple_token(n)});
    let now = providers::now();
    let body = |t: String| json!({"token": t});
    let claims = |exp: u64, aud: &str, iss: &str| json!({"iss": iss, "aud": aud, "sub": "0009.apple", "iat": now - 7200, "exp": exp});
    let header = json!({"alg": "RS256", "kid": "apple-test"});
    let mut tampered = apple_token(9);
    tampered.insert(tampered.rfind('.').unwrap() + 1, 'A');
    let forged = vec![
        (
            "expired",
            body(providers::jwt(
                header.clone(),
                claims(now - 3600, providers::BUNDLE_ID, iss),
            )),
        ),
        (
            "another app's",
            body(providers::jwt(
                header.clone(),
                claims(now + 3600, "com.other.game", iss),
            )),
        ),
        (
            "another issuer's",
            body(providers::jwt(
                header.clone(),
                claims(now + 3600, providers::BUNDLE_ID, "https://evil.example"),
            )),
        ),
        (
            "unknown key id",
            body(providers::jwt(
                json!({"alg": "RS256", "kid": "nope"}),
                claims(now + 3600, providers::BUNDLE_ID, iss),
            )),
        ),
        (
            "alg none",
            body(format!(
                "{}.",
                providers::jwt(
                    json!({"alg": "none", "kid": "apple-test"}),
                    claims(now + 3600, providers::BUNDLE_ID, iss)
                )
                .rsplit_once('.')
                .unwrap()
                .0
            )),
        ),
        (
            "HS256 with the public key",
            body(providers::jwt(
                json!({"alg": "HS256", "kid": "apple-test"}),
                claims(now + 3600, providers::BUNDLE_ID, iss),
            )),
        ),
        ("bad signature", body(tampered)),
        ("garbage", body("not.a.jwt".into())),
        ("oversized", body("a".repeat(20_000))),
    ];
    logs_in_links_and_refuses_forgeries(
        &server,
        Case {
            scheme: "apple",
            name: "Apple",
            label: "Apple ID",
            field: "apple_id",
            genuine: &genuine,
            id: &|n| format!("000{n}.apple"),
            forged,
        },
    )
    .await;

    // Apple vouches for the email when it says so; it fills the new account.
    let with_email = providers::id_token(
        "apple-test",
        iss,
        providers::BUNDLE_ID,
        "0077.apple",
        json!({"email": "Player77@privaterelay.appleid.com", "email_verified": "true"}),
    );
    let reply = post(
        &server,
        "/v2/account/authenticate/apple",
        None,
        json!({"token": with_email}),
    )
    .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(
        account(&server, &token(&reply.1)).await["email"],
        "player77@privaterelay.appleid.com"
    );
    // An empty token is a malformed request, not a forgery.
    let empty = post(
        &server,
        "/v2/account/authenticate/apple",
        None,
        json!({"token": ""}),
    )
    .await;
    assert_error(&empty, 400, 3, "Apple ID token is required.", "empty token");
}

#[tokio::test]
async fn google_id_tokens_and_the_profile_they_carry() {
    let stub = Stub::start().await;
    let (server, _dirs) = provider_server(&stub).await;
    let iss = "https://accounts.google.com";
    let google_token = |n: u32| {
        providers::id_token(
            "google-test",
            iss,
            providers::GOOGLE_CLIENT_ID,
            &format!("10{n}"),
            json!({}),
        )
    };
    let genuine = |n: u32| json!({"token": google_token(n)});
    let forged = vec![
        (
            "another client's",
            json!({"token": providers::id_token("google-test", iss, "other.apps.googleusercontent.com", "109", json!({}))}),
        ),
        (
            "Apple's key id",
            json!({"token": providers::id_token("apple-test", iss, providers::GOOGLE_CLIENT_ID, "109", json!({}))}),
        ),
        (
            "another issuer's",
            json!({"token": providers::id_token("google-test", "https://accounts.google.com.evil", providers::GOOGLE_CLIENT_ID, "109", json!({}))}),
        ),
    ];
    logs_in_links_and_refuses_forgeries(
        &server,
        Case {
            scheme: "google",
            name: "Google",
            label: "Google ID",
            field: "google_id",
            genuine: &genuine,
            id: &|n| format!("10{n}"),
            forged,
        },
    )
    .await;

    // Both issuer spellings Google uses are accepted; name, picture and a
    // verified email fill the new account.
    let profile = providers::id_token(
        "google-test",
        "accounts.google.com",
        providers::GOOGLE_CLIENT_ID,
        "1077",
        json!({"name": "Ada Player", "picture": "https://lh3.example/ada.png", "email": "ada@gmail.example", "email_verified": true}),
    );
    let reply = post(
        &server,
        "/v2/account/authenticate/google",
        None,
        json!({"token": profile}),
    )
    .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    let me = account(&server, &token(&reply.1)).await;
    assert_eq!(me["user"]["display_name"], "Ada Player", "{me}");
    assert_eq!(me["user"]["avatar_url"], "https://lh3.example/ada.png", "{me}");
    assert_eq!(me["email"], "ada@gmail.example", "{me}");

    // The same verified email from another Google account: the new account
    // is created without it (the email belongs to the first).
    let twin = providers::id_token(
        "google-test",
        iss,
        providers::GOOGLE_CLIENT_ID,
        "1078",
        json!({"email": "ada@gmail.example", "email_verified": true, "name": "Control\u{7}Char"}),
    );
    let reply = post(
        &server,
        "/v2/account/authenticate/google",
        None,
        json!({"token": twin}),
    )
    .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    let me = account(&server, &token(&reply.1)).await;
    assert!(me.get("email").is_none(), "{me}");
    assert!(
        me["user"].get("display_name").is_none(),
        "a name with a control character is not copied: {me}"
    );
}

#[tokio::test]
async fn facebook_access_tokens_and_limited_login() {
    let stub = Stub::start().await;
    let (server, _dirs) = provider_server(&stub).await;
    let genuine = |n: u32| json!({"token": format!("fb-good-55{n}")});
    let forged = vec![
        ("another app's", json!({"token": "fb-other-app-559"})),
        ("invalid", json!({"token": "fb-made-up"})),
        (
            "Limited Login for another app",
            json!({"token": providers::id_token("fb-test", "https://www.facebook.com", "999", "559", json!({}))}),
        ),
    ];
    logs_in_links_and_refuses_forgeries(
        &server,
        Case {
            scheme: "facebook",
            name: "Facebook",
            label: "Facebook ID",
            field: "facebook_id",
            genuine: &genuine,
            id: &|n| format!("55{n}"),
            forged,
        },
    )
    .await;

    // The Graph API's profile fills the new account.
    let reply = post(
        &server,
        "/v2/account/authenticate/facebook?sync=true",
        None,
        json!({"token": "fb-good-5577"}),
    )
    .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    let me = account(&server, &token(&reply.1)).await;
    assert_eq!(me["user"]["display_name"], "FB Player 5577", "{me}");
    assert_eq!(me["user"]["avatar_url"], "https://fb.example/5577.png", "{me}");
    assert_eq!(me["email"], "5577@fb.example", "{me}");

    // Limited Login: a JWT from Facebook's keys, the app id as audience.
    let limited = providers::id_token(
        "fb-test",
        "https://www.facebook.com",
        providers::FACEBOOK_APP_ID,
        "5588",
        json!({"name": "Limited Lin"}),
    );
    let reply = post(
        &server,
        "/v2/account/authenticate/facebook",
        None,
        json!({"token": limited}),
    )
    .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    let me = account(&server, &token(&reply.1)).await;
    assert_eq!(
        (
            me["user"]["facebook_id"].as_str(),
            me["user"]["display_name"].as_str()
        ),
        (Some("5588"), Some("Limited Lin"))
    );
}

#[tokio::test]
async fn facebook_instant_games_signed_player_info() {
    let stub = Stub::start().await;
    let (server, _dirs) = provider_server(&stub).await;
    let now = providers::now();
    let genuine = |n: u32| json!({"signed_player_info": providers::signed_player_info(providers::INSTANT_GAME_SECRET, &format!("77{n}"), providers::now())});
    let good = providers::signed_player_info(providers::INSTANT_GAME_SECRET, "779", now);
    let (signature, payload) = good.split_once('.').unwrap();
    let forged = vec![
        (
            "signed with another secret",
            json!({"signed_player_info": providers::signed_player_info("guess", "779", now)}),
        ),
        (
            "stale",
            json!({"signed_player_info": providers::signed_player_info(providers::INSTANT_GAME_SECRET, "779", now - 7200)}),
        ),
        (
            "another payload under a genuine signature",
            json!({"signed_player_info": format!("{signature}.{}", &payload[1..])}),
        ),
        ("no signature", json!({"signed_player_info": payload})),
    ];
    logs_in_links_and_refuses_forgeries(
        &server,
        Case {
            scheme: "facebookinstantgame",
            name: "Facebook Instant Game",
            label: "Facebook Instant Game ID",
            field: "facebook_instant_game_id",
            genuine: &genuine,
            id: &|n| format!("77{n}"),
            forged,
        },
    )
    .await;
}

#[tokio::test]
async fn game_center_signatures() {
    let stub = Stub::start().await;
    let (server, _dirs) = provider_server(&stub).await;
    let url = stub.certificate_url();
    let now = providers::now();
    let genuine =
        |n: u32| providers::game_center(&format!("G:88{n}"), providers::BUNDLE_ID, providers::now(), &url);
    let mut tampered = providers::game_center("G:889", providers::BUNDLE_ID, now, &url);
    tampered["player_id"] = json!("G:880");
    let replayed = providers::game_center("G:8899", providers::BUNDLE_ID, now, &url);
    let first = post(
        &server,
        "/v2/account/authenticate/gamecenter",
        None,
        replayed.clone(),
    )
    .await;
    assert_eq!(first.0, 200, "{}", first.1);
    let mut elsewhere = providers::game_center("G:889", providers::BUNDLE_ID, now, &url);
    let forged = vec![
        ("another player under a genuine signature", tampered),
        (
            "another game's",
            providers::game_center("G:889", "com.other.game", now, &url),
        ),
        (
            "stale",
            providers::game_center("G:889", providers::BUNDLE_ID, now - 3600, &url),
        ),
        (
            "from the future",
            providers::game_center("G:889", providers::BUNDLE_ID, now + 3600, &url),
        ),
        ("replayed", replayed),
        ("a certificate from elsewhere", {
            elsewhere["public_key_url"] = json!(format!("http://127.0.0.2:{}/gc/test.cer", stub.port));
            elsewhere
        }),
        (
            "a path outside the prefix",
            providers::game_center("G:889", providers::BUNDLE_ID, now, &stub.url("/apple/keys")),
        ),
        (
            "a missing certificate",
            providers::game_center("G:889", providers::BUNDLE_ID, now, &stub.url("/gc/missing.cer")),
        ),
        (
            "a user in the URL",
            providers::game_center(
                "G:889",
                providers::BUNDLE_ID,
                now,
                &url.replace("http://", "http://me@"),
            ),
        ),
    ];
    logs_in_links_and_refuses_forgeries(
        &server,
        Case {
            scheme: "gamecenter",
            name: "Game Center",
            label: "Game Center ID",
            field: "gamecenter_id",
            genuine: &genuine,
            id: &|n| format!("G:88{n}"),
            forged,
        },
    )
    .await;
    // The certificate is fetched once and cached, whatever the logins.
    assert_eq!(stub.fetches(), 1, "the certificate is fetched once");
    // A timestamp as grpc-gateway writes an int64 (a string) is accepted.
    let mut as_string = providers::game_center("G:8866", providers::BUNDLE_ID, providers::now(), &url);
    as_string["timestamp_seconds"] = json!(as_string["timestamp_seconds"].to_string());
    let reply = post(&server, "/v2/account/authenticate/gamecenter", None, as_string).await;
    assert_eq!(reply.0, 200, "{}", reply.1);
}

#[tokio::test]
async fn steam_session_tickets() {
    let stub = Stub::start().await;
    let (server, _dirs) = provider_server(&stub).await;
    let genuine = |n: u32| json!({"token": format!("5eed7656119796028793{n}")});
    let forged = vec![
        ("unknown ticket", json!({"token": "deadbeef"})),
        ("not hex", json!({"token": "5eed-76561197960287930"})),
    ];
    logs_in_links_and_refuses_forgeries(
        &server,
        Case {
            scheme: "steam",
            name: "Steam",
            label: "Steam ID",
            field: "steam_id",
            genuine: &genuine,
            id: &|n| format!("7656119796028793{n}"),
            forged,
        },
    )
    .await;
}

#[tokio::test]
async fn a_provider_not_configured_is_a_failed_precondition() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let device = device_account(&server, "device-no-providers").await;
    for (scheme, name) in [
        ("apple", "Apple"),
        ("google", "Google"),
        ("facebook", "Facebook"),
        ("facebookinstantgame", "Facebook Instant Game"),
        ("gamecenter", "Game Center"),
        ("steam", "Steam"),
    ] {
        let message = format!("{name} authentication is not configured.");
        let reply = post(
            &server,
            &format!("/v2/account/authenticate/{scheme}"),
            None,
            json!({"token": "x"}),
        )
        .await;
        assert_error(&reply, 400, 9, &message, scheme);
        for action in ["link", "unlink"] {
            let reply = post(
                &server,
                &format!("/v2/account/{action}/{scheme}"),
                Some(&device),
                json!({"token": "x"}),
            )
            .await;
            assert_error(&reply, 400, 9, &message, &format!("{action} {scheme}"));
        }
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_a_bad_gateway_and_changes_nothing() {
    let stub = Stub::start().await;
    let (server, _dirs) = provider_server(&stub).await;
    let device = device_account(&server, "device-outage").await;
    let before = account(&server, &device).await;
    stub.set_down(true);
    let now = providers::now();
    let proofs = [
        (
            "apple",
            json!({"token": providers::id_token("apple-test", "https://appleid.apple.com", providers::BUNDLE_ID, "0001.apple", json!({}))}),
        ),
        (
            "google",
            json!({"token": providers::id_token("google-test", "https://accounts.google.com", providers::GOOGLE_CLIENT_ID, "101", json!({}))}),
        ),
        ("facebook", json!({"token": "fb-good-551"})),
        (
            "gamecenter",
            providers::game_center("G:881", providers::BUNDLE_ID, now, &stub.certificate_url()),
        ),
        ("steam", json!({"token": "5eed76561197960287931"})),
    ];
    for (scheme, proof) in &proofs {
        let reply = post(
            &server,
            &format!("/v2/account/authenticate/{scheme}"),
            None,
            proof.clone(),
        )
        .await;
        assert_error(
            &reply,
            502,
            14,
            "The login provider could not be reached; retry later.",
            scheme,
        );
        let reply = post(
            &server,
            &format!("/v2/account/link/{scheme}"),
            Some(&device),
            proof.clone(),
        )
        .await;
        assert_eq!(reply.0, 502, "link {scheme}: {}", reply.1);
    }
    assert_eq!(account(&server, &device).await, before, "nothing changed");

    // Back up: the same proofs work (Game Center's signature wasn't spent).
    stub.set_down(false);
    for (scheme, proof) in &proofs {
        let reply = post(
            &server,
            &format!("/v2/account/authenticate/{scheme}"),
            None,
            proof.clone(),
        )
        .await;
        assert_eq!(reply.0, 200, "{scheme} after the outage: {}", reply.1);
        assert_eq!(reply.1["created"], true, "{scheme}");
    }

    // Keys already held keep working through a later outage.
    stub.set_down(true);
    let apple = providers::id_token(
        "apple-test",
        "https://appleid.apple.com",
        providers::BUNDLE_ID,
        "0002.apple",
        json!({}),
    );
    let reply = post(
        &server,
        "/v2/account/authenticate/apple",
        None,
        json!({"token": apple}),
    )
    .await;
    assert_eq!(reply.0, 200, "cached Apple keys during an outage: {}", reply.1);
}

#[tokio::test]
async fn unknown_key_ids_refetch_the_keys_at_most_every_few_seconds() {
    let stub = Stub::start().await;
    let (server, _dirs) = provider_server(&stub).await;
    let iss = "https://appleid.apple.com";
    let good = providers::id_token("apple-test", iss, providers::BUNDLE_ID, "0001.apple", json!({}));
    assert_eq!(
        post(
            &server,
            "/v2/account/authenticate/apple",
            None,
            json!({"token": good})
        )
        .await
        .0,
        200
    );
    let after_first = stub.fetches();
    assert_eq!(after_first, 1, "the keys are fetched once");
    // A flood of made-up key ids: refused, and the provider is not flooded.
    for i in 0..30 {
        let forged = providers::id_token(
            &format!("made-up-{i}"),
            iss,
            providers::BUNDLE_ID,
            "0001.apple",
            json!({}),
        );
        let reply = post(
            &server,
            "/v2/account/authenticate/apple",
            None,
            json!({"token": forged}),
        )
        .await;
        assert_eq!(reply.0, 401, "{}", reply.1);
    }
    assert!(stub.fetches() <= after_first + 1, "{} fetches", stub.fetches());
}
