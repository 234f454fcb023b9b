//! A provider's published signing keys (a JWKS document), cached.
//!
//! Keys are kept until the provider's `Cache-Control: max-age` (or the
//! configured time) runs out. A token naming a key id not in the cache
//! triggers a refetch, since providers rotate keys, but at most one every
//! [`MIN_REFETCH`]: made-up key ids can't make the server hammer the
//! provider. When a refetch fails, keys already held keep working (a
//! provider outage doesn't log everyone out); with none, the login is
//! `ProviderUnavailable`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use elements_identity::IdentityError;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use tokio::sync::Mutex;

use crate::Fetcher;

/// The shortest time between two fetches of one key set.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

/// Where a key set comes from.
enum Source {
    /// A JWKS document at this URL.
    Url(String),
    /// The `jwks_uri` of the OIDC discovery document at this URL.
    Discovery(String),
    /// Keys given inline, never fetched.
    Fixed,
}

/// One provider's key set.
pub struct KeySet {
    what: String,
    source: Source,
    fetcher: Fetcher,
    ttl: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<DecodingKey>>,
    attempted: Option<Instant>,
    expires: Option<Instant>,
}

impl KeySet {
    /// The keys at `url`, kept `ttl` unless the provider says less; `what`
    /// names them in logs and errors ("Apple keys").
    pub fn new(what: impl Into<String>, url: impl Into<String>, fetcher: Fetcher, ttl: Duration) -> KeySet {
        KeySet {
            what: what.into(),
            source: Source::Url(url.into()),
            fetcher,
            ttl,
            state: Mutex::new(State::default()),
        }
    }

    /// The keys named by the OIDC discovery document at `url` (its `jwks_uri`).
    pub fn discovered(
        what: impl Into<String>,
        url: impl Into<String>,
        fetcher: Fetcher,
        ttl: Duration,
    ) -> KeySet {
        KeySet {
            source: Source::Discovery(url.into()),
            ..KeySet::new(what, "", fetcher, ttl)
        }
    }

    /// Keys given inline (JWKs): never fetched, never expire.
    pub fn fixed(what: impl Into<String>, jwks: &[serde_json::Value], fetcher: Fetcher) -> KeySet {
        let state = State {
            keys: parse_keys(jwks.iter().cloned()),
            attempted: None,
            expires: Some(Instant::now() + Duration::from_secs(100 * 365 * 86_400)),
        };
        KeySet {
            what: what.into(),
            source: Source::Fixed,
            fetcher,
            ttl: Duration::MAX,
            state: Mutex::new(state),
        }
    }

    /// The key with id `kid`; `None` when the provider has no such key.
    pub async fn key(&self, kid: &str) -> Result<Option<Arc<DecodingKey>>, IdentityError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let fresh = state.expires.is_some_and(|e| now < e);
        let held = state.keys.contains_key(kid);
        if fresh && held {
            return Ok(state.keys.get(kid).cloned());
        }
        // With no keys at all there is nothing to answer from: try every
        // time (as providers called per login are). With keys, an unknown
        // id or expired keys refetch at most once every MIN_REFETCH.
        if matches!(self.source, Source::Fixed) {
            return Ok(state.keys.get(kid).cloned());
        }
        let may_refetch = state.keys.is_empty()
            || state
                .attempted
                .is_none_or(|a| now.duration_since(a) >= MIN_REFETCH);
        if may_refetch {
            state.attempted = Some(now);
            match self.fetch().await {
                Ok((keys, ttl)) => {
                    state.keys = keys;
                    state.expires = Some(now + ttl);
                }
                Err(e) if held => {
                    tracing::warn!("{}: refetch failed, keeping the keys held: {e}", self.what);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(state.keys.get(kid).cloned())
    }

    async fn fetch(&self) -> Result<(HashMap<String, Arc<DecodingKey>>, Duration), IdentityError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        #[derive(serde::Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let url = match &self.source {
            Source::Url(url) => url.clone(),
            Source::Discovery(url) => {
                let answer = self.fetcher.get(&self.what, url, &[]).await?;
                if !answer.ok() {
                    return Err(IdentityError::ProviderUnavailable(format!(
                        "{}: discovery answered {}",
                        self.what, answer.status
                    )));
                }
                answer.json::<Discovery>(&self.what)?.jwks_uri
            }
            Source::Fixed => return Ok((HashMap::new(), self.ttl)),
        };
        let answer = self.fetcher.get(&self.what, &url, &[]).await?;
        if !answer.ok() {
            return Err(IdentityError::ProviderUnavailable(format!(
                "{}: answered {}",
                self.what, answer.status
            )));
        }
        let document: Document = answer.json(&self.what)?;
        let ttl = answer.max_age.map_or(self.ttl, |a| a.min(self.ttl));
        Ok((parse_keys(document.keys), ttl))
    }
}

/// The usable keys of a JWKS, by key id. A key of a type this server
/// doesn't use, or without a `kid`, is skipped, not fatal.
fn parse_keys(keys: impl IntoIterator<Item = serde_json::Value>) -> HashMap<String, Arc<DecodingKey>> {
    let mut out = HashMap::new();
    for value in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(&jwk)) else {
            continue;
        };
        out.insert(kid, Arc::new(key));
    }
    out
}
