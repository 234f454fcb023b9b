//! Nakama RPCs served by Elements: the Element whose manifest declares an
//! RPC id (`rpcs = ["roll_dice"]`, approved as the grant `rpc:roll_dice`)
//! answers `POST /v2/rpc/roll_dice` and the socket's `rpc` for it.
//!
//! The call goes through the Element's ordinary HTTP handler, so any
//! `wasi:http` component can serve RPCs: `POST /.elements/rpc/ID` (a path
//! the front refuses from clients), the payload as a `text/plain` body, the
//! caller's session token as the request's credential (the Element asks
//! `credentials.caller` who that is; it never sees the token). A 2xx answer's
//! body is the RPC's answer; any other status fails the RPC with the answer's
//! `message`.

use std::sync::Arc;

use bytes::Bytes;
use elements_host::element::RPC_PATH;
use elements_host::instance::RequestInfo;
use elements_realtime::{RpcCaller, RpcError, RpcHandler};

use crate::Deployer;
use crate::registry::Registry;

/// Serves RPCs with the mounted Elements.
pub struct ElementRpcs {
    registry: Arc<Registry>,
    deployer: Arc<Deployer>,
}

impl ElementRpcs {
    /// RPCs served by the Elements in `registry`, with `deployer`'s host.
    pub fn new(registry: Arc<Registry>, deployer: Arc<Deployer>) -> ElementRpcs {
        ElementRpcs { registry, deployer }
    }
}

#[async_trait::async_trait]
impl RpcHandler for ElementRpcs {
    async fn call(&self, id: &str, payload: String, caller: RpcCaller) -> Result<String, RpcError> {
        let Some(element) = self.registry.rpc(id) else {
            return Err(RpcError::NotFound);
        };
        let limit = element.limits.max_request_body;
        if payload.len() > limit {
            return Err(RpcError::Failed(format!(
                "The RPC payload is larger than {limit} bytes."
            )));
        }
        let request = http::Request::post(format!("http://localhost{RPC_PATH}{id}"))
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(http::header::CONTENT_LENGTH, payload.len())
            .body(Bytes::from(payload))
            .map_err(|e| RpcError::Failed(format!("bad RPC request: {e}")))?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let info = RequestInfo::http(request_id, caller.credential.map(Into::into));
        let response = element
            .serve(&self.deployer.host().services, request, info)
            .await
            // The Element's log has the detail; the caller learns only that it failed.
            .map_err(|e| RpcError::Failed(format!("The RPC's Element {e}.")))?;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| format!("The RPC failed with HTTP status {}.", parts.status.as_u16()));
            return Err(RpcError::Failed(message));
        }
        String::from_utf8(body.to_vec())
            .map_err(|_| RpcError::Failed("The RPC's answer is not UTF-8 text.".into()))
    }
}
