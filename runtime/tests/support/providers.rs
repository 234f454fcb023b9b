//! Stand-ins for the login providers on loopback, speaking each one's
//! documented protocol and signing with the test key in `provider-keys/`
//! (a key made for these tests, trusted by nothing else):
//!
//! * `/apple/keys`, `/google/certs`, `/facebook/jwks`: JWKS with the test
//!   key (kids `apple-test`, `google-test`, `fb-test`);
//! * `/graph/debug_token`, `/graph/me`: the Graph API for access tokens
//!   `fb-good-<uid>` (issued to [`FACEBOOK_APP_ID`]), `fb-other-app-<uid>`
//!   (issued to another app) and anything else (invalid);
//! * `/steam/ISteamUserAuth/AuthenticateUserTicket/v1/`: ticket
//!   `5eed<steamid>` is genuine, any other is "Invalid ticket";
//! * `/gc/test.cer`: the test certificate (DER).
//!
//! [`Stub::set_down`] (or `POST /control/outage?down=true`) makes every
//! provider route answer 503, as a provider in an outage would;
//! [`Stub::fetches`] counts the calls, to check caching.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub const BUNDLE_ID: &str = "com.example.game";
pub const GOOGLE_CLIENT_ID: &str = "game.apps.googleusercontent.com";
pub const FACEBOOK_APP_ID: &str = "424242";
pub const FACEBOOK_APP_SECRET: &str = "fb-app-secret";
pub const INSTANT_GAME_SECRET: &str = "fbig-app-secret";
pub const STEAM_APP_ID: u32 = 480;
pub const STEAM_KEY: &str = "steam-publisher-key";

const KEY_PEM: &str = include_str!("provider-keys/test-key.pem");
const KEY_JWK: &str = include_str!("provider-keys/test-key.json");
const CERT_DER: &[u8] = include_bytes!("provider-keys/test-cert.der");

/// A running stub.
#[derive(Clone)]
pub struct Stub {
    pub port: u16,
    state: Arc<StubState>,
}

#[derive(Default)]
struct StubState {
    down: AtomicBool,
    fetches: AtomicUsize,
}

impl Stub {
    /// Starts the stub on an ephemeral loopback port, on the current runtime.
    pub async fn start() -> Stub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(StubState::default());
        let app = axum::Router::new()
            .route(
                "/apple/keys",
                axum::routing::get(|s: State<Arc<StubState>>| jwks(s, "apple-test")),
            )
            .route(
                "/google/certs",
                axum::routing::get(|s: State<Arc<StubState>>| jwks(s, "google-test")),
            )
            .route(
                "/facebook/jwks",
                axum::routing::get(|s: State<Arc<StubState>>| jwks(s, "fb-test")),
            )
            .route("/graph/debug_token", axum::routing::get(debug_token))
            .route("/graph/me", axum::routing::get(me))
            .route(
                "/steam/ISteamUserAuth/AuthenticateUserTicket/v1/",
                axum::routing::get(steam),
            )
            .route("/gc/test.cer", axum::routing::get(certificate))
            .route(
                "/oidc/.well-known/openid-configuration",
                axum::routing::get(discovery),
            )
            .route(
                "/oauth2/validate",
                axum::routing::get(oauth2_validate).post(oauth2_validate),
            )
            // For scripts (nakama-js) that can't call `set_down`: `?down=true|false`.
            .route("/control/outage", axum::routing::post(outage))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every route answers 503 while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Calls the stub has answered so far.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// The `[providers]` configuration pointing every provider at this stub.
    pub fn config(&self) -> String {
        format!(
            r#"
[providers]
timeout_ms = 3000

[providers.apple]
bundle_ids = ["{BUNDLE_ID}"]
keys_url = "{apple}"

[providers.google]
client_ids = ["{GOOGLE_CLIENT_ID}"]
keys_url = "{google}"

[providers.facebook]
app_id = "{FACEBOOK_APP_ID}"
app_secret = "{FACEBOOK_APP_SECRET}"
graph_url = "{graph}"
limited_login_keys_url = "{fb_keys}"

[providers.facebook_instant_game]
app_secret = "{INSTANT_GAME_SECRET}"

[providers.game_center]
bundle_ids = ["{BUNDLE_ID}"]
key_url_prefix = "{gc}"

[providers.steam]
app_id = {STEAM_APP_ID}
publisher_key = "{STEAM_KEY}"
api_url = "{steam}"
"#,
            apple = self.url("/apple/keys"),
            google = self.url("/google/certs"),
            graph = self.url("/graph"),
            fb_keys = self.url("/facebook/jwks"),
            gc = self.url("/gc/"),
            steam = self.url("/steam"),
        )
    }

    /// The URL of the Game Center certificate.
    pub fn certificate_url(&self) -> String {
        self.url("/gc/test.cer")
    }
}

/// Counts the call; `Some(503)` while the stub is down.
fn answer(state: &StubState) -> Option<Response> {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    state
        .down
        .load(Ordering::SeqCst)
        .then(|| (StatusCode::SERVICE_UNAVAILABLE, "provider outage").into_response())
}

async fn jwks(State(state): State<Arc<StubState>>, kid: &'static str) -> Response {
    if let Some(down) = answer(&state) {
        return down;
    }
    let key: Value = serde_json::from_str(KEY_JWK).unwrap();
    let jwks = json!({"keys": [
        // A key of a type the server doesn't use is skipped, not fatal.
        {"kty": "OKP", "kid": "unused", "crv": "Ed448", "x": "AAAA"},
        {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": key["n"], "e": key["e"]},
    ]});
    ([("cache-control", "public, max-age=3600")], axum::Json(jwks)).into_response()
}

async fn debug_token(
    State(state): State<Arc<StubState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(down) = answer(&state) {
        return down;
    }
    let invalid = || {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}})),
        )
            .into_response()
    };
    if q.get("access_token").map(String::as_str) != Some(&format!("{FACEBOOK_APP_ID}|{FACEBOOK_APP_SECRET}"))
    {
        return invalid();
    }
    let token = q.get("input_token").cloned().unwrap_or_default();
    let (app, user) = if let Some(uid) = token.strip_prefix("fb-good-") {
        (FACEBOOK_APP_ID, uid)
    } else if let Some(uid) = token.strip_prefix("fb-other-app-") {
        ("999", uid)
    } else {
        return axum::Json(
            json!({"data": {"is_valid": false, "error": {"code": 190, "message": "Malformed access token"}}}),
        )
        .into_response();
    };
    axum::Json(json!({"data": {"app_id": app, "type": "USER", "is_valid": true, "user_id": user, "expires_at": 4_000_000_000u64}}))
        .into_response()
}

async fn me(State(state): State<Arc<StubState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(down) = answer(&state) {
        return down;
    }
    let token = q.get("access_token").cloned().unwrap_or_default();
    let Some(uid) = token
        .strip_prefix("fb-good-")
        .or_else(|| token.strip_prefix("fb-other-app-"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"code": 190}})),
        )
            .into_response();
    };
    axum::Json(json!({
        "id": uid,
        "name": format!("FB Player {uid}"),
        "email": format!("{uid}@FB.example"),
        "picture": {"data": {"url": format!("https://fb.example/{uid}.png")}},
    }))
    .into_response()
}

async fn steam(State(state): State<Arc<StubState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(down) = answer(&state) {
        return down;
    }
    if q.get("key").map(String::as_str) != Some(STEAM_KEY) {
        return (StatusCode::FORBIDDEN, "<html>Forbidden</html>").into_response();
    }
    if q.get("appid").map(String::as_str) != Some(&STEAM_APP_ID.to_string()) {
        return axum::Json(
            json!({"response": {"error": {"errorcode": 3, "errordesc": "Invalid parameter"}}}),
        )
        .into_response();
    }
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    match ticket.strip_prefix("5eed").filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())) {
        Some(steamid) => axum::Json(json!({"response": {"params": {
            "result": "OK", "steamid": steamid, "ownersteamid": steamid, "vacbanned": false, "publisherbanned": false,
        }}}))
        .into_response(),
        None => axum::Json(json!({"response": {"error": {"errorcode": 101, "errordesc": "Invalid ticket"}}})).into_response(),
    }
}

async fn outage(State(state): State<Arc<StubState>>, Query(q): Query<HashMap<String, String>>) -> StatusCode {
    state.down.store(
        q.get("down").map(String::as_str) == Some("true"),
        Ordering::SeqCst,
    );
    StatusCode::NO_CONTENT
}

/// The stub's OIDC issuer: `OIDC_ISSUER`, keys at `/google/certs` (kid `google-test`).
pub const OIDC_ISSUER: &str = "https://id.example.test";

async fn discovery(State(state): State<Arc<StubState>>, headers: axum::http::HeaderMap) -> Response {
    if let Some(down) = answer(&state) {
        return down;
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    axum::Json(json!({
        "issuer": OIDC_ISSUER,
        "jwks_uri": format!("http://{host}/google/certs"),
        "authorization_endpoint": format!("http://{host}/authorize"),
    }))
    .into_response()
}

/// The key an OAuth2 scheme must send as `x-api-key`.
pub const OAUTH2_API_KEY: &str = "stored-api-key";

/// An OAuth2 validation endpoint: `x-api-key` must be [`OAUTH2_API_KEY`];
/// `access_token=good-<id>` is active and names `<id>`, any other inactive.
async fn oauth2_validate(
    State(state): State<Arc<StubState>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(down) = answer(&state) {
        return down;
    }
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(OAUTH2_API_KEY) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "bad api key"})),
        )
            .into_response();
    }
    let token = q.get("access_token").cloned().unwrap_or_default();
    match token.strip_prefix("good-") {
        Some(id) => axum::Json(json!({"data": {"active": true, "user": {"player_id": id}}})).into_response(),
        None => axum::Json(json!({"data": {"active": false}})).into_response(),
    }
}

async fn certificate(State(state): State<Arc<StubState>>) -> Response {
    if let Some(down) = answer(&state) {
        return down;
    }
    ([("content-type", "application/pkix-cert")], CERT_DER).into_response()
}

/// The test key, for signing.
fn key_pair() -> ring::signature::RsaKeyPair {
    let body: String = KEY_PEM.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).unwrap();
    ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap()
}

/// RSA-SHA256 (PKCS#1 v1.5) of `message` with the test key.
pub fn sign(message: &[u8]) -> Vec<u8> {
    let key = key_pair();
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message,
        &mut signature,
    )
    .unwrap();
    signature
}

/// A JWT with `header` and `claims`, signed RS256 with the test key.
pub fn jwt(header: Value, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// An ID token as a provider would issue it: RS256, `kid`, and standard
/// claims (`iss`, `aud`, `sub`, `iat`, `exp` an hour out) plus `extra`.
pub fn id_token(kid: &str, iss: &str, aud: &str, sub: &str, extra: Value) -> String {
    let now = now();
    let mut claims = json!({"iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + 3600});
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            claims.insert(k.clone(), v.clone());
        }
    }
    jwt(json!({"alg": "RS256", "kid": kid, "typ": "JWT"}), claims)
}

/// Facebook Instant Games signed player info for `player_id`, issued at `issued_at`.
pub fn signed_player_info(secret: &str, player_id: &str, issued_at: u64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(
        json!({"algorithm": "HMAC-SHA256", "issued_at": issued_at, "player_id": player_id, "request_payload": null})
            .to_string(),
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature = ring::hmac::sign(&key, payload.as_bytes());
    format!("{}.{payload}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// A Game Center body (Nakama's `AccountGameCenter`) signed with the test
/// key, made `timestamp` (Unix seconds) with a fresh salt.
pub fn game_center(player_id: &str, bundle_id: &str, timestamp: u64, key_url: &str) -> Value {
    let salt: [u8; 8] = rand_bytes();
    let mut message = Vec::new();
    message.extend_from_slice(player_id.as_bytes());
    message.extend_from_slice(bundle_id.as_bytes());
    message.extend_from_slice(&timestamp.to_be_bytes());
    message.extend_from_slice(&salt);
    json!({
        "player_id": player_id,
        "bundle_id": bundle_id,
        "timestamp_seconds": timestamp,
        "salt": STANDARD.encode(salt),
        "signature": STANDARD.encode(sign(&message)),
        "public_key_url": key_url,
    })
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes
}

/// The current Unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
