//! Nakama-compatible session and refresh tokens: HS256 JWTs with the claims
//! Nakama clients decode (`tid`, `uid`, `usn`, `vrs`, `exp`, `iat`), signed with
//! two different keys so a refresh token is never accepted as a session token
//! or the other way round.
//!
//! Elements session secrets are signed here too ([`Session`]), with a
//! third key derived from the session key: `PAYLOAD.MAC`, one dot, so a
//! secret is never taken for a JWT (three parts) or the other way round.
//!
//! A valid signature is necessary, not sufficient: the service also checks
//! the token against what its user's document revoked (logout, bans; see
//! [`crate::IdentityService::verify_token`]).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{IdentityError, Result};
use crate::model::Session;
use crate::secret::Secret;

/// The claims of both token kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Token id, new at each login and refresh.
    pub tid: String,
    /// User id.
    pub uid: String,
    /// Username at issue time.
    pub usn: String,
    /// Session variables the client passed when authenticating.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vrs: BTreeMap<String, String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// The login this token descends from (its first token id). Ours, not
    /// Nakama's: Nakama clients ignore claims they don't know.
    #[serde(default)]
    pub fam: String,
    /// The generation of the user's tokens it was issued in (see
    /// `sessions`); absent from tokens issued before there were generations,
    /// which are no longer valid.
    #[serde(rename = "gen", default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

/// Which of the two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Session token (bearer on every call).
    Session,
    /// Refresh token (exchanged for a new session).
    Refresh,
}

/// The two HMAC keys.
#[derive(Clone)]
pub struct TokenKeys {
    session: (EncodingKey, DecodingKey),
    refresh: (EncodingKey, DecodingKey),
    /// Signs Elements session secrets: HMAC-SHA256 of a label under the
    /// session key, so it differs from both JWT keys without a setting of
    /// its own.
    elements: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(***)")
    }
}

impl TokenKeys {
    /// Keys from two secrets, which must differ and be at least 16 bytes.
    pub fn new(session: &Secret, refresh: &Secret) -> Result<TokenKeys> {
        if session.expose().len() < 16 || refresh.expose().len() < 16 {
            return Err(IdentityError::invalid(
                "token signing keys must be at least 16 bytes",
            ));
        }
        if session == refresh {
            return Err(IdentityError::invalid(
                "the session and refresh token keys must differ",
            ));
        }
        let pair = |s: &Secret| {
            (
                EncodingKey::from_secret(s.expose().as_bytes()),
                DecodingKey::from_secret(s.expose().as_bytes()),
            )
        };
        let derived = Hmac::<Sha256>::new_from_slice(session.expose().as_bytes())
            .map_err(|e| IdentityError::internal(format!("deriving the session key: {e}")))?
            .chain_update(b"elements session secrets v1")
            .finalize()
            .into_bytes();
        let elements = Hmac::<Sha256>::new_from_slice(&derived)
            .map_err(|e| IdentityError::internal(format!("deriving the session key: {e}")))?;
        Ok(TokenKeys {
            session: pair(session),
            refresh: pair(refresh),
            elements,
        })
    }

    fn keys(&self, kind: TokenKind) -> &(EncodingKey, DecodingKey) {
        match kind {
            TokenKind::Session => &self.session,
            TokenKind::Refresh => &self.refresh,
        }
    }

    /// Signs `claims`.
    pub fn sign(&self, kind: TokenKind, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.keys(kind).0)
            .map_err(|e| IdentityError::internal(format!("signing a token: {e}")))
    }

    /// The claims of `token` if its signature (HS256 only) is valid for
    /// `kind` and it has not expired at `now` (seconds since the epoch, the
    /// service's clock); None otherwise.
    pub fn verify(&self, kind: TokenKind, token: &str, now: i64) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked here against the service's clock (which tests
        // shift), with no grace period past `exp`, as Nakama.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Claims>(token, &self.keys(kind).1, &validation)
            .ok()
            .map(|d| d.claims)
            .filter(|claims| claims.exp > now)
    }
}

impl TokenKeys {
    /// An Elements session's secret: `PAYLOAD.MAC`, both URL-safe base64
    /// (the payload is the session's JSON).
    pub fn sign_session(&self, session: &Session) -> Result<String> {
        let json = serde_json::to_vec(session)
            .map_err(|e| IdentityError::internal(format!("encoding a session: {e}")))?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mac = self.elements.clone().chain_update(payload.as_bytes()).finalize();
        Ok(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.into_bytes())))
    }

    /// The session of an Elements session secret whose MAC is valid
    /// (compared in constant time) and which has not expired at `now_ms`;
    /// None otherwise.
    pub fn verify_session(&self, secret: &str, now_ms: i64) -> Option<Session> {
        let (payload, mac) = secret.split_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        self.elements
            .clone()
            .chain_update(payload.as_bytes())
            .verify_slice(&mac)
            .ok()?;
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        serde_json::from_slice::<Session>(&json)
            .ok()
            .filter(|session| session.expiry > now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            &Secret::new("session-key-0123456789"),
            &Secret::new("refresh-key-0123456789"),
        )
        .expect("keys")
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            tid: "t1".into(),
            uid: "u1".into(),
            usn: "ana".into(),
            vrs: BTreeMap::from([("k".to_string(), "v".to_string())]),
            exp,
            iat: 1,
            fam: "t1".into(),
            generation: Some(0),
        }
    }

    #[test]
    fn round_trip_and_key_separation() -> Result<()> {
        let keys = keys();
        let now = crate::time::now_ms() / 1000;
        let far = now + 3600;
        let token = keys.sign(TokenKind::Session, &claims(far))?;
        assert_eq!(keys.verify(TokenKind::Session, &token, now), Some(claims(far)));
        assert_eq!(keys.verify(TokenKind::Refresh, &token, now), None, "wrong key");
        let expired = keys.sign(TokenKind::Session, &claims(far - 7200))?;
        assert_eq!(keys.verify(TokenKind::Session, &expired, now), None, "expired");
        assert_eq!(keys.verify(TokenKind::Session, "a.b.c", now), None);
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(keys.verify(TokenKind::Session, &tampered, now), None);
        Ok(())
    }

    #[test]
    fn keys_must_differ_and_be_long_enough() {
        let s = Secret::new("same-key-0123456789");
        assert!(TokenKeys::new(&s, &s).is_err());
        assert!(TokenKeys::new(&Secret::new("short"), &s).is_err());
    }

    #[test]
    fn claims_are_nakamas() -> Result<()> {
        let v = serde_json::to_value(claims(5)).map_err(|e| IdentityError::internal(e.to_string()))?;
        let mut keys: Vec<&String> = v.as_object().map(|m| m.keys().collect()).unwrap_or_default();
        keys.sort();
        // Nakama's, plus the two our revocation needs.
        assert_eq!(keys, ["exp", "fam", "gen", "iat", "tid", "uid", "usn", "vrs"]);
        Ok(())
    }

    fn session_claims(expiry: i64) -> Session {
        Session {
            id: "s1".into(),
            user_id: "u1".into(),
            profile_id: Some("p1".into()),
            application_id: None,
            expiry,
            created: 1,
            generation: 3,
        }
    }

    #[test]
    fn session_secrets_are_signed_and_expire() -> Result<()> {
        let keys = keys();
        let now = crate::time::now_ms();
        let secret = keys.sign_session(&session_claims(now + 60_000))?;
        assert_eq!(secret.matches('.').count(), 1, "never taken for a JWT");
        assert_eq!(
            keys.verify_session(&secret, now),
            Some(session_claims(now + 60_000))
        );
        let expired = keys.sign_session(&session_claims(now))?;
        assert_eq!(keys.verify_session(&expired, now), None, "expired");
        // Another server's keys, a changed payload, a cut or changed MAC.
        let other = TokenKeys::new(
            &Secret::new("another-session-key-0123"),
            &Secret::new("refresh-key-0123456789"),
        )?;
        assert_eq!(other.verify_session(&secret, now), None, "another key");
        let (payload, mac) = secret.split_once('.').unwrap_or_default();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Session {
                user_id: "root".into(),
                ..session_claims(now + 60_000)
            })
            .map_err(|e| IdentityError::internal(e.to_string()))?,
        );
        assert_eq!(
            keys.verify_session(&format!("{forged}.{mac}"), now),
            None,
            "forged"
        );
        assert_eq!(
            keys.verify_session(&format!("{payload}.{}", &mac[1..]), now),
            None
        );
        assert_eq!(keys.verify_session(&format!("{payload}.A{mac}"), now), None);
        for garbage in ["", ".", "nonsense", "a.b", "a.b.c", "..", "é.é"] {
            assert_eq!(keys.verify_session(garbage, now), None, "{garbage:?}");
        }
        // A JWT signed with the session key is not a session secret.
        let token = keys.sign(TokenKind::Session, &claims(now / 1000 + 60))?;
        assert_eq!(keys.verify_session(&token, now), None);
        Ok(())
    }
}
