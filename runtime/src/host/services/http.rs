//! Outbound HTTP through the standard `wasi:http/outgoing-handler`, allowed
//! only to the hosts in the Element's allow-list attribute
//! [`ALLOW_ATTRIBUTE`]. Any other destination is refused before a connection
//! is made.
//!
//! The allow-list is comma- or space-separated entries, each `host` (any
//! port) or `host:port`, e.g. `users.roblox.com, 127.0.0.1:8089`. Hosts
//! compare case-insensitively and exactly: no wildcards, so an allowed name
//! never admits its subdomains.

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::{DeployContext, HostService, ServiceConfigError};
use crate::host::{RequestInfo, RequestState};

/// The attribute holding an Element's allow-list.
pub const ALLOW_ATTRIBUTE: &str = "dev.getelements.elements.http.allow";

/// The outbound HTTP service (its bindings are WASI's, linked with the rest
/// of `wasi:http`).
#[derive(Default)]
pub struct HttpService;

/// Where one Element may connect.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AllowList {
    /// `(host, port)`; `None` means any port.
    entries: BTreeSet<(String, Option<u16>)>,
}

impl AllowList {
    /// Parses an allow-list attribute value.
    pub fn parse(value: &str) -> Result<AllowList, String> {
        let mut entries = BTreeSet::new();
        for entry in value.split([',', ' ', '\n', '\t']).filter(|e| !e.is_empty()) {
            if entry.contains('/') {
                return Err(format!(
                    "{ALLOW_ATTRIBUTE}: {entry:?} is not a host or host:port (give no scheme or path)"
                ));
            }
            let (host, port) = match entry.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') || host.starts_with('[') => {
                    let port = port
                        .parse::<u16>()
                        .map_err(|_| format!("{ALLOW_ATTRIBUTE}: bad port in {entry:?}"))?;
                    (host, Some(port))
                }
                _ => (entry, None),
            };
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            if host.is_empty() || host.contains('/') || host.contains('*') || host.contains('@') {
                return Err(format!("{ALLOW_ATTRIBUTE}: {entry:?} is not a host or host:port"));
            }
            entries.insert((host, port));
        }
        Ok(AllowList { entries })
    }

    /// Whether a connection to `host:port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.entries.contains(&(host.clone(), Some(port))) || self.entries.contains(&(host, None))
    }
}

/// The `wasi:http` hooks of one instance: the allow-list check in front of
/// wasmtime's default client.
#[derive(Debug, Default, Clone)]
pub struct OutboundHooks {
    allow: Arc<AllowList>,
}

impl HostService for HttpService {
    type Deployed = Arc<AllowList>;
    type Instance = OutboundHooks;

    fn add_to_linker(_linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        // `wasi:http/outgoing-handler` is linked with the rest of wasi:http.
        Ok(())
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<Arc<AllowList>, ServiceConfigError> {
        Ok(Arc::new(AllowList {
            entries: element
                .grants
                .http_hosts()
                .map(|(host, port)| (host.to_owned(), port))
                .collect(),
        }))
    }

    fn prepare(&self, deployed: &Arc<AllowList>, _request: &RequestInfo) -> OutboundHooks {
        OutboundHooks {
            allow: deployed.clone(),
        }
    }
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
        if !self.allow.allows(&host, port) {
            tracing::warn!(%host, port, "outbound HTTP refused: not in the Element's allow-list");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        drop(fut);
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(http_body_util::BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matching() {
        let list = AllowList::parse("users.roblox.com, 127.0.0.1:8089 [::1]:9000").unwrap();
        assert!(list.allows("users.roblox.com", 443));
        assert!(list.allows("USERS.roblox.com", 80));
        assert!(list.allows("127.0.0.1", 8089));
        assert!(!list.allows("127.0.0.1", 8090));
        assert!(list.allows("::1", 9000));
        assert!(!list.allows("evil.users.roblox.com", 443));
        assert!(!list.allows("roblox.com", 443));
        assert!(!AllowList::parse("").unwrap().allows("localhost", 80));
        for bad in ["*.roblox.com", "http://x", "a:notaport", "user@host"] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }
}
