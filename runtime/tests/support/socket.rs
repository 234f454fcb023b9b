//! The realtime socket (`/ws`) as a Nakama client speaks it: a device
//! account to connect as, the connection itself, and envelopes sent as JSON
//! text.

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::Server;
use super::client::request;

/// A client's socket.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A device login: (session token, user id).
pub async fn device_account(server: &Server, device: &str) -> (String, String) {
    let (status, body) = request(
        server,
        "POST",
        "/v2/account/authenticate/device",
        None,
        Some(json!({ "id": device })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, account) = request(server, "GET", "/v2/account", Some(&token), None).await;
    assert_eq!(status, 200, "{account}");
    (token, account["user"]["id"].as_str().unwrap().to_owned())
}

/// The socket's URL for `token`, in JSON, appearing online.
pub fn ws_url(server: &Server, token: &str) -> String {
    format!("ws://{}/ws?token={token}&status=true&format=json", server.addr)
}

/// A socket for `token`; the upgrade must succeed.
pub async fn connect(server: &Server, token: &str) -> Ws {
    let (ws, response) = tokio_tungstenite::connect_async(ws_url(server, token))
        .await
        .expect("socket connects");
    assert_eq!(response.status(), 101);
    ws
}

/// Sends one envelope.
pub async fn send(ws: &mut Ws, envelope: Value) {
    ws.send(Message::text(envelope.to_string())).await.unwrap();
}

/// Standard base64, as Nakama's envelopes carry match data.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
