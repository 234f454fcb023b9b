//! The client side: device logins through the Nakama API and realtime
//! sockets (`/ws?token=`, JSON envelopes), as a game client opens them.

use std::net::SocketAddr;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Nakama's default server key, `defaultkey:` in base64.
const SERVER_KEY: &str = "Basic ZGVmYXVsdGtleTo=";

/// Logins at once (each over a pooled keep-alive connection).
const LOGIN_CONCURRENCY: usize = 16;

/// Logs in (creating) the devices `PREFIX-0` .. `PREFIX-(n-1)` on `addr`
/// with `POST /v2/account/authenticate/device`; their session tokens, in
/// order.
pub async fn login_devices(addr: SocketAddr, prefix: &str, n: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v2/account/authenticate/device");
    let mut tasks = Vec::new();
    for lane in 0..LOGIN_CONCURRENCY.min(n.max(1)) {
        let (client, url, prefix) = (client.clone(), url.clone(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            for i in (lane..n).step_by(LOGIN_CONCURRENCY) {
                let response = client
                    .post(&url)
                    .header("authorization", SERVER_KEY)
                    .json(&serde_json::json!({ "id": format!("{prefix}-{i}") }))
                    .send()
                    .await
                    .expect("device login request");
                let status = response.status();
                let body: serde_json::Value = response.json().await.expect("device login answer");
                assert_eq!(status, 200, "device login: {body}");
                let token = body["token"].as_str().expect("a session token").to_owned();
                tokens.push((i, token));
            }
            tokens
        }));
    }
    let mut tokens = vec![String::new(); n];
    for task in tasks {
        for (i, token) in task.await.expect("login task") {
            tokens[i] = token;
        }
    }
    tokens
}

/// The client sockets' read buffer: `BENCH_CLIENT_READ_BUFFER`, default
/// 4096 bytes (tungstenite's own default is 128 KiB, which it fills with
/// zeros on a socket's first read: 10,000 client sockets would hold 1.3 GB).
pub fn read_buffer() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| crate::common::env_or("BENCH_CLIENT_READ_BUFFER", 4096).max(256) as usize)
}

/// Opens a realtime socket with `token`.
pub async fn connect(addr: SocketAddr, token: &str) -> Result<Ws, String> {
    let url = format!("ws://{addr}/ws?token={token}&format=json");
    let config = WebSocketConfig::default().read_buffer_size(read_buffer());
    match tokio_tungstenite::connect_async_with_config(url, Some(config), true).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(format!("refused with {}", response.status()))
        }
        Err(e) => Err(e.to_string()),
    }
}
