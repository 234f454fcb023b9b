//! ID tokens (Apple, Google, Facebook Limited Login): JWTs signed with one
//! of the provider's published keys.

use elements_identity::{IdentityError, Verification, VerifiedIdentity};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::keys::KeySet;
use crate::{MAX_PROOF, not_genuine};

/// The algorithms providers sign ID tokens with. Never `HS*` (a public key
/// used as an HMAC secret is the classic forgery) and never `none`.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
const LEEWAY: u64 = 60;

/// The claims of `token` when it is signed by a key of `keys`, names one of
/// `issuers`, is meant for one of `audiences`, has a subject and has not
/// expired; otherwise "Could not authenticate `provider` profile.".
pub(crate) async fn verify(
    provider: &str,
    token: &str,
    keys: &KeySet,
    issuers: &[String],
    audiences: &[String],
) -> Result<Map<String, Value>, IdentityError> {
    if token.len() > MAX_PROOF {
        return Err(not_genuine(provider));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| not_genuine(provider))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(not_genuine(provider));
    }
    let kid = header.kid.ok_or_else(|| not_genuine(provider))?;
    let key = keys.key(&kid).await?.ok_or_else(|| not_genuine(provider))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY;
    validation.set_audience(audiences);
    validation.set_issuer(issuers);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
        tracing::debug!(provider, "ID token refused: {e}");
        not_genuine(provider)
    })?;
    Ok(data.claims)
}

/// A string claim, if present and not empty.
pub(crate) fn claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Whether a claim is `true` or `"true"` (Apple sends booleans as strings).
pub(crate) fn claim_true(claims: &Map<String, Value>, name: &str) -> bool {
    match claims.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// The player verified ID-token `claims` name, as an identity of `scheme`:
/// `sub`; the email when the provider vouches for it (`email_verified`, or
/// always with `trust_email`); the name and picture, which fill a new
/// account.
pub(crate) fn identity(
    scheme: impl Into<String>,
    provider: &str,
    claims: &Map<String, Value>,
    trust_email: bool,
) -> Result<VerifiedIdentity, IdentityError> {
    let id = claim(claims, "sub").ok_or_else(|| not_genuine(provider))?;
    let email = (trust_email || claim_true(claims, "email_verified"))
        .then(|| claim(claims, "email"))
        .flatten();
    Ok(VerifiedIdentity {
        scheme: scheme.into(),
        id,
        status: Verification::Verified,
        email: email.map(|e| e.to_lowercase()),
        display_name: claim(claims, "name").or_else(|| claim(claims, "preferred_username")),
        avatar_url: claim(claims, "picture"),
        ..VerifiedIdentity::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn id_token_claims_make_a_verified_identity_and_the_email_needs_the_providers_word() {
        let vouched = claims(
            json!({"sub": "s1", "email": "Ada@Example.com", "email_verified": "true", "name": "Ada", "picture": "https://p/a.png"}),
        );
        let made = identity("apple", "Apple", &vouched, false).unwrap();
        assert_eq!(made.status, Verification::Verified);
        assert_eq!(
            (
                made.id.as_str(),
                made.email.as_deref(),
                made.display_name.as_deref(),
                made.avatar_url.as_deref()
            ),
            (
                "s1",
                Some("ada@example.com"),
                Some("Ada"),
                Some("https://p/a.png")
            )
        );
        let unvouched = claims(json!({"sub": "s1", "email": "ada@example.com", "email_verified": false}));
        assert_eq!(identity_email(&unvouched, false), None);
        assert_eq!(
            identity_email(&unvouched, true).as_deref(),
            Some("ada@example.com")
        );
        let no_subject = claims(json!({"email": "ada@example.com"}));
        assert!(identity("apple", "Apple", &no_subject, false).is_err());
    }

    fn identity_email(claims: &Map<String, Value>, trust: bool) -> Option<String> {
        identity("google", "Google", claims, trust).unwrap().email
    }
}
