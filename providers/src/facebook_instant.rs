//! Facebook Instant Games: the client sends the signed player info the
//! Instant Games SDK gives it (`getSignedPlayerInfoAsync`),
//! `<signature>.<payload>`, both base64url. The signature is
//! HMAC-SHA256 of the encoded payload with the app secret; the payload
//! names the player and when it was issued. No call to Facebook is needed.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use elements_config::providers::FacebookInstantGame as Settings;
use elements_identity::{
    Credential, IdentityVerifier, Result, Secret, Verification, VerifiedIdentity, scheme,
};
use serde::Deserialize;

use crate::{MAX_PROOF, not_genuine, now_secs, required};

const PROVIDER: &str = "Facebook Instant Game";

/// The Facebook Instant Games verifier.
pub struct FacebookInstantGame {
    key: ring::hmac::Key,
    max_age: u64,
}

impl FacebookInstantGame {
    /// A verifier for `settings`.
    pub fn new(settings: &Settings) -> FacebookInstantGame {
        FacebookInstantGame {
            key: hmac_key(&settings.app_secret),
            max_age: settings.max_age_secs,
        }
    }
}

fn hmac_key(secret: &Secret) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes())
}

/// Base64url with or without padding (Facebook strips it; others keep it).
fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

#[async_trait]
impl IdentityVerifier for FacebookInstantGame {
    fn scheme(&self) -> &str {
        scheme::FACEBOOK_INSTANT_GAME
    }
    fn label(&self) -> &str {
        "Facebook Instant Game ID"
    }
    fn normalize(&self, id: &str) -> Result<String> {
        Ok(id.to_owned())
    }
    async fn identify(&self, credential: &Credential) -> Result<String> {
        Ok(self.verify(credential).await?.id)
    }
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity> {
        #[derive(Deserialize)]
        struct Payload {
            algorithm: Option<String>,
            issued_at: Option<u64>,
            player_id: Option<String>,
        }
        let signed = credential
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| required("Signed player info"))?;
        if signed.len() > MAX_PROOF {
            return Err(not_genuine(PROVIDER));
        }
        let (signature, payload) = signed.split_once('.').ok_or_else(|| not_genuine(PROVIDER))?;
        let signature = decode(signature).ok_or_else(|| not_genuine(PROVIDER))?;
        // Constant time: the comparison is ring's.
        ring::hmac::verify(&self.key, payload.as_bytes(), &signature).map_err(|_| not_genuine(PROVIDER))?;
        let payload: Payload = decode(payload)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| not_genuine(PROVIDER))?;
        if payload
            .algorithm
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case("HMAC-SHA256"))
        {
            return Err(not_genuine(PROVIDER));
        }
        // Signed info has no expiry of its own: an old one is a replay.
        let issued_at = payload.issued_at.ok_or_else(|| not_genuine(PROVIDER))?;
        let now = now_secs();
        if issued_at > now + 60 || now.saturating_sub(issued_at) > self.max_age {
            return Err(not_genuine(PROVIDER));
        }
        let id = payload
            .player_id
            .filter(|p| !p.is_empty() && p.len() <= 128)
            .ok_or_else(|| not_genuine(PROVIDER))?;
        Ok(VerifiedIdentity {
            scheme: scheme::FACEBOOK_INSTANT_GAME.into(),
            id,
            status: Verification::Verified,
            ..VerifiedIdentity::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE;

    fn sign(secret: &str, payload: &serde_json::Value, padded: bool) -> String {
        let engine = if padded { URL_SAFE } else { URL_SAFE_NO_PAD };
        let payload = engine.encode(payload.to_string());
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let signature = ring::hmac::sign(&key, payload.as_bytes());
        format!("{}.{payload}", engine.encode(signature.as_ref()))
    }

    fn verifier() -> FacebookInstantGame {
        FacebookInstantGame::new(&Settings {
            app_secret: Secret::new("app-secret"),
            max_age_secs: 3600,
        })
    }

    fn credential(token: String) -> Credential {
        Credential {
            token: Some(token),
            ..Credential::default()
        }
    }

    #[tokio::test]
    async fn genuine_info_names_the_player_and_forgeries_are_refused() {
        let v = verifier();
        let now = now_secs();
        let good = serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": now, "player_id": "1234"});
        for padded in [false, true] {
            let identity = v
                .verify(&credential(sign("app-secret", &good, padded)))
                .await
                .unwrap();
            assert_eq!(
                (identity.id.as_str(), identity.status),
                ("1234", Verification::Verified)
            );
        }
        let refused = [
            sign("another-secret", &good, false),
            sign(
                "app-secret",
                &serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": now - 7200, "player_id": "1234"}),
                false,
            ),
            sign(
                "app-secret",
                &serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": now + 3600, "player_id": "1234"}),
                false,
            ),
            sign(
                "app-secret",
                &serde_json::json!({"algorithm": "none", "issued_at": now, "player_id": "1234"}),
                false,
            ),
            sign(
                "app-secret",
                &serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": now}),
                false,
            ),
            "no-dot".into(),
            "!!!.???".into(),
            "a".repeat(MAX_PROOF + 1),
        ];
        for token in refused {
            let e = v.verify(&credential(token.clone())).await.unwrap_err();
            assert_eq!(
                e.to_string(),
                "Could not authenticate Facebook Instant Game profile.",
                "{token:.40}"
            );
        }
        // A signature over another payload doesn't carry over.
        let (sig, _) = sign("app-secret", &good, false)
            .split_once('.')
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .unwrap();
        let other = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": now, "player_id": "9999"})
                .to_string(),
        );
        assert!(v.verify(&credential(format!("{sig}.{other}"))).await.is_err());
    }
}
