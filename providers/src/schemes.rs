//! The auth schemes operators register at run time (stored by the identity
//! service, see `elements_identity::schemes`): OIDC issuers, whose ID tokens
//! are checked like Apple's and Google's, and OAuth2 providers, whose
//! validation endpoint is asked about the client's token.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use elements_identity::schemes::{oauth2_identity_scheme, oidc_identity_scheme};
use elements_identity::{IdentityError, Result, Verification, VerifiedIdentity};
use elements_wire::schemes::{OAuth2AuthScheme, OAuth2KeyValue, OidcAuthScheme};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::jwt::{self};
use crate::keys::KeySet;
use crate::{Fetcher, MAX_PROOF, not_genuine};

/// Checks proofs against registered schemes, caching each OIDC scheme's keys.
pub struct AuthSchemes {
    fetcher: Fetcher,
    ttl: Duration,
    /// Key sets by scheme id, with the scheme's `updated` they were built for.
    keys: Mutex<HashMap<String, (i64, Arc<KeySet>)>>,
}

impl std::fmt::Debug for AuthSchemes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSchemes").finish_non_exhaustive()
    }
}

impl AuthSchemes {
    /// Calls providers through `fetcher`, keeping keys at most `ttl`.
    pub fn new(fetcher: Fetcher, ttl: Duration) -> AuthSchemes {
        AuthSchemes {
            fetcher,
            ttl,
            keys: Mutex::new(HashMap::new()),
        }
    }

    async fn key_set(&self, scheme: &OidcAuthScheme) -> Arc<KeySet> {
        let mut sets = self.keys.lock().await;
        if let Some((updated, set)) = sets.get(&scheme.id)
            && *updated == scheme.updated
        {
            return set.clone();
        }
        let what = format!("OIDC scheme {} keys", scheme.name);
        let set = Arc::new(match (&scheme.keys_url, &scheme.discovery_url) {
            _ if !scheme.keys.is_empty() => KeySet::fixed(what, &scheme.keys, self.fetcher.clone()),
            (Some(url), _) => KeySet::new(what, url, self.fetcher.clone(), self.ttl),
            (None, Some(url)) => KeySet::discovered(what, url, self.fetcher.clone(), self.ttl),
            (None, None) => KeySet::fixed(what, &[], self.fetcher.clone()),
        });
        // Schemes deleted meanwhile leave their sets behind; there are at
        // most a hundred schemes, so clearing now and then is enough.
        if sets.len() > 256 {
            sets.clear();
        }
        sets.insert(scheme.id.clone(), (scheme.updated, set.clone()));
        set
    }

    /// The player an ID token names, when one of `schemes` (the one whose
    /// issuer is the token's `iss`) vouches for it.
    pub async fn verify_oidc(&self, schemes: &[OidcAuthScheme], token: &str) -> Result<VerifiedIdentity> {
        if token.is_empty() {
            return Err(IdentityError::invalid("`jwt` is required"));
        }
        if token.len() > MAX_PROOF {
            return Err(not_genuine("OIDC"));
        }
        // The issuer picks the scheme; the signature is checked next, with
        // that scheme's keys, so a made-up `iss` gains nothing.
        let issuer = token
            .split('.')
            .nth(1)
            .and_then(|payload| URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|claims| claims.get("iss").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| not_genuine("OIDC"))?;
        let scheme = schemes
            .iter()
            .find(|s| s.issuer == issuer)
            .ok_or_else(|| not_genuine("OIDC"))?;
        let keys = self.key_set(scheme).await;
        let claims = jwt::verify(
            "OIDC",
            token,
            &keys,
            std::slice::from_ref(&scheme.issuer),
            &scheme.audiences,
        )
        .await?;
        jwt::identity(oidc_identity_scheme(&scheme.name), "OIDC", &claims, false)
    }

    /// The player `values` (the client's part of the validation request)
    /// prove to be, when `scheme`'s validation endpoint says so.
    pub async fn verify_oauth2(
        &self,
        scheme: &OAuth2AuthScheme,
        values: &BTreeMap<String, String>,
    ) -> Result<VerifiedIdentity> {
        let resolve = |kv: &OAuth2KeyValue| -> Result<String> {
            if kv.from_client {
                let value = values.get(&kv.key).filter(|v| !v.is_empty()).ok_or_else(|| {
                    IdentityError::invalid(format!("`requestParameters.{}` is required", kv.key))
                })?;
                if value.len() > MAX_PROOF || value.chars().any(char::is_control) {
                    return Err(not_genuine("OAuth2"));
                }
                Ok(value.clone())
            } else {
                kv.value.clone().ok_or_else(|| {
                    IdentityError::internal(format!("scheme {} has no value for {}", scheme.name, kv.key))
                })
            }
        };
        let params = scheme
            .params
            .iter()
            .map(|kv| Ok((kv.key.clone(), resolve(kv)?)))
            .collect::<Result<Vec<_>>>()?;
        let headers = scheme
            .headers
            .iter()
            .map(|kv| Ok((kv.key.clone(), resolve(kv)?)))
            .collect::<Result<Vec<_>>>()?;
        let body = scheme
            .body
            .iter()
            .map(|kv| Ok((kv.key.clone(), resolve(kv)?)))
            .collect::<Result<Vec<_>>>()?;
        let user_id = scheme
            .headers
            .iter()
            .chain(&scheme.params)
            .chain(&scheme.body)
            .find(|kv| kv.user_id)
            .map(resolve)
            .transpose()?;

        let what = format!("OAuth2 scheme {}", scheme.name);
        let answer = self
            .fetcher
            .send(
                &what,
                &scheme.method,
                &scheme.validation_url,
                &params,
                &headers,
                &body,
                scheme.body_type.as_deref(),
            )
            .await?;
        let codes: &[u16] = if scheme.valid_status_codes.is_empty() {
            &[200]
        } else {
            &scheme.valid_status_codes
        };
        if !codes.contains(&answer.status) {
            if answer.status >= 500 {
                return Err(IdentityError::ProviderUnavailable(format!(
                    "{what} answered {}",
                    answer.status
                )));
            }
            return Err(not_genuine("OAuth2"));
        }
        let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if let Some(key) = scheme.response_valid_mapping.as_deref().filter(|k| !k.is_empty()) {
            let valid = match (
                find_key(&json, key),
                scheme.response_valid_expected_value.as_deref(),
            ) {
                (Some(value), Some(expected)) => as_text(value).as_deref() == Some(expected),
                (Some(Value::Bool(b)), None) => *b,
                (Some(value), None) => as_text(value).is_some_and(|t| !t.is_empty() && t != "false"),
                (None, _) => false,
            };
            if !valid {
                return Err(not_genuine("OAuth2"));
            }
        }
        let id = match user_id {
            Some(id) => id,
            None => scheme
                .response_id_mapping
                .as_deref()
                .and_then(|key| find_key(&json, key))
                .and_then(as_text)
                .filter(|id| !id.is_empty() && id.len() <= 256)
                .ok_or_else(|| not_genuine("OAuth2"))?,
        };
        Ok(VerifiedIdentity {
            scheme: oauth2_identity_scheme(&scheme.name),
            id,
            status: Verification::Verified,
            ..VerifiedIdentity::default()
        })
    }
}

/// The value of the first `key` found in `value`, depth first.
fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| find_key(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

/// A string or number as text (ids come as either).
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_found_at_any_depth() {
        let answer =
            json!({"response": {"params": {"result": "OK", "steamid": "7656"}}, "list": [{"sub": 42}]});
        assert_eq!(
            find_key(&answer, "steamid").and_then(as_text).as_deref(),
            Some("7656")
        );
        assert_eq!(find_key(&answer, "sub").and_then(as_text).as_deref(), Some("42"));
        assert_eq!(find_key(&answer, "missing"), None);
    }
}
