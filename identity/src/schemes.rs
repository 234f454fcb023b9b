//! Auth schemes an operator registers: OIDC issuers and OAuth2 providers
//! (see `elements_wire::schemes`). Stored in the core collections, so every
//! node sees the same ones; checked when written, so a scheme that can't
//! work is refused at registration, not at a player's login.

use elements_store::{Filter, Query, StoreError};
use elements_wire::schemes::{OAuth2AuthScheme, OAuth2KeyValue, OidcAuthScheme};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{IdentityError, Result};
use crate::model::User;
use crate::service::{IdentityService, require_superuser};
use crate::store_util::{parse, to_doc};
use crate::time::now_ms;

/// The identity scheme of the players an OIDC scheme logs in.
pub fn oidc_identity_scheme(name: &str) -> String {
    format!("oidc.{name}")
}

/// The identity scheme of the players an OAuth2 scheme logs in.
pub fn oauth2_identity_scheme(name: &str) -> String {
    format!("oauth2.{name}")
}

/// Most schemes of each kind (each login reads them all).
const MAX_SCHEMES: usize = 100;
/// Most keys, audiences or request values in one scheme.
const MAX_ITEMS: usize = 32;
/// Longest URL, issuer, key or value.
const MAX_TEXT: usize = 2048;

fn invalid(message: impl Into<String>) -> IdentityError {
    IdentityError::invalid(message)
}

fn scheme_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "`name` must be 1-64 lower-case letters, digits, `_` or `-`",
        ))
    }
}

fn text(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "`{field}` must be 1-{MAX_TEXT} bytes without control characters"
        )));
    }
    Ok(())
}

fn url(field: &str, value: &str) -> Result<()> {
    text(field, value)?;
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Err(invalid(format!("`{field}` must be an http:// or https:// URL")));
    }
    Ok(())
}

fn check_oidc(s: &OidcAuthScheme) -> Result<()> {
    scheme_name(&s.name)?;
    text("issuer", &s.issuer)?;
    if s.audiences.is_empty() || s.audiences.len() > MAX_ITEMS {
        return Err(invalid(format!(
            "`audiences` must name 1-{MAX_ITEMS} audiences (the client ids tokens are issued to): \
             without one, a token the issuer made for any other app would log in"
        )));
    }
    for audience in &s.audiences {
        text("audiences", audience)?;
    }
    if s.keys.len() > MAX_ITEMS {
        return Err(invalid(format!("at most {MAX_ITEMS} `keys`")));
    }
    for key in &s.keys {
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(key.clone()).map_err(|e| invalid(format!("`keys`: not a JWK: {e}")))?;
        if jwk.common.key_id.is_none() {
            return Err(invalid("`keys`: every key needs a `kid`"));
        }
        jsonwebtoken::DecodingKey::from_jwk(&jwk)
            .map_err(|e| invalid(format!("`keys`: unusable key: {e}")))?;
    }
    if let Some(u) = &s.keys_url {
        url("keysUrl", u)?;
    }
    if let Some(u) = &s.discovery_url {
        url("discoveryUrl", u)?;
    }
    if s.keys.is_empty() && s.keys_url.is_none() && s.discovery_url.is_none() {
        return Err(invalid("give `keys`, `keysUrl` or `discoveryUrl`"));
    }
    Ok(())
}

fn check_oauth2(s: &OAuth2AuthScheme) -> Result<()> {
    scheme_name(&s.name)?;
    url("validationUrl", &s.validation_url)?;
    if !matches!(s.method.as_str(), "GET" | "POST") {
        return Err(invalid("`method` must be GET or POST"));
    }
    if !matches!(
        s.body_type.as_deref(),
        None | Some("JSON") | Some("FORM_URL_ENCODED")
    ) {
        return Err(invalid("`bodyType` must be JSON or FORM_URL_ENCODED"));
    }
    if s.method == "GET" && !s.body.is_empty() {
        return Err(invalid("a GET validation request has no `body`"));
    }
    let all: Vec<&OAuth2KeyValue> = s.headers.iter().chain(&s.params).chain(&s.body).collect();
    if all.len() > MAX_ITEMS {
        return Err(invalid(format!(
            "at most {MAX_ITEMS} headers, params and body fields together"
        )));
    }
    for kv in &all {
        text("key", &kv.key)?;
        match (&kv.value, kv.from_client) {
            (Some(v), false) => text("value", v)?,
            (None, false) => {
                return Err(invalid(format!("`{}` needs a `value` or `fromClient`", kv.key)));
            }
            (_, true) => {}
        }
        if kv.user_id && !kv.from_client {
            return Err(invalid(format!("`{}`: `userId` needs `fromClient`", kv.key)));
        }
    }
    for header in &s.headers {
        http_header_name(&header.key)?;
    }
    if !all.iter().any(|kv| kv.from_client) {
        return Err(invalid(
            "at least one value must come from the client (its token): otherwise every login \
             would be the same player",
        ));
    }
    let user_ids = all.iter().filter(|kv| kv.user_id).count();
    if user_ids > 1 {
        return Err(invalid("at most one value may be the `userId`"));
    }
    if user_ids == 0 && s.response_id_mapping.as_deref().is_none_or(str::is_empty) {
        return Err(invalid(
            "give `responseIdMapping` (where the answer names the player) or mark a value `userId`",
        ));
    }
    if s.valid_status_codes.iter().any(|c| !(100..=599).contains(c)) || s.valid_status_codes.len() > MAX_ITEMS
    {
        return Err(invalid("`validStatusCodes` must be HTTP statuses"));
    }
    Ok(())
}

fn http_header_name(name: &str) -> Result<()> {
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("`{name}` is not a header name")))
    }
}

/// Stored values of `old` kept where `new` leaves them out (answers never
/// show them, so an edit sends none back).
fn keep_values(new: &mut [OAuth2KeyValue], old: &[OAuth2KeyValue]) {
    for kv in new.iter_mut().filter(|kv| kv.value.is_none() && !kv.from_client) {
        if let Some(stored) = old.iter().find(|o| o.key == kv.key && !o.from_client) {
            kv.value = stored.value.clone();
        }
    }
}

/// The scheme as answers show it: stored values hidden.
pub fn redacted(mut s: OAuth2AuthScheme) -> OAuth2AuthScheme {
    for kv in s
        .headers
        .iter_mut()
        .chain(s.params.iter_mut())
        .chain(s.body.iter_mut())
    {
        kv.value_set = kv.value.is_some();
        kv.value = None;
    }
    s
}

fn all_schemes() -> Query {
    Query {
        limit: Some(MAX_SCHEMES as u64),
        ..Query::new(Filter::all())
    }
}

/// The optional fields of both kinds: an update that leaves one out clears it.
const OPTIONAL: &[&str] = &[
    "keysUrl",
    "discoveryUrl",
    "bodyType",
    "responseIdMapping",
    "responseValidMapping",
    "responseValidExpectedValue",
];

fn not_found() -> IdentityError {
    IdentityError::not_found("Auth scheme not found.")
}

fn to_stored<T: Serialize>(id: &str, scheme: &T) -> Result<Value> {
    let mut doc = to_doc(scheme)?;
    if let Some(map) = doc.as_object_mut() {
        map.remove("id");
        map.insert("_id".into(), Value::String(id.to_owned()));
    }
    Ok(doc)
}

fn from_stored<T: DeserializeOwned>(mut doc: Value) -> Result<T> {
    if let Some(map) = doc.as_object_mut()
        && let Some(id) = map.remove("_id")
    {
        map.insert("id".into(), id);
    }
    parse(doc)
}

impl IdentityService {
    /// Every OIDC scheme.
    pub async fn oidc_schemes(&self) -> Result<Vec<OidcAuthScheme>> {
        let docs = self.store.find(&self.c.oidc_schemes, &all_schemes()).await?;
        docs.into_iter().map(from_stored).collect()
    }

    /// The OIDC scheme with this id or name.
    pub async fn oidc_scheme(&self, id_or_name: &str) -> Result<OidcAuthScheme> {
        self.oidc_schemes()
            .await?
            .into_iter()
            .find(|s| s.id == id_or_name || s.name == id_or_name)
            .ok_or_else(not_found)
    }

    /// Registers an OIDC scheme (superusers only).
    pub async fn create_oidc_scheme(
        &self,
        actor: &User,
        mut scheme: OidcAuthScheme,
    ) -> Result<OidcAuthScheme> {
        require_superuser(actor)?;
        check_oidc(&scheme)?;
        if self.oidc_schemes().await?.len() >= MAX_SCHEMES {
            return Err(invalid(format!("at most {MAX_SCHEMES} OIDC schemes")));
        }
        let now = now_ms();
        scheme.id = uuid::Uuid::new_v4().to_string();
        (scheme.created, scheme.updated) = (now, now);
        self.insert_scheme(&self.c.oidc_schemes, &scheme.id, &scheme)
            .await?;
        Ok(scheme)
    }

    /// Replaces an OIDC scheme (superusers only); its id stays.
    pub async fn update_oidc_scheme(
        &self,
        actor: &User,
        id_or_name: &str,
        mut scheme: OidcAuthScheme,
    ) -> Result<OidcAuthScheme> {
        require_superuser(actor)?;
        let current = self.oidc_scheme(id_or_name).await?;
        check_oidc(&scheme)?;
        scheme.id = current.id.clone();
        scheme.created = current.created;
        scheme.updated = now_ms().max(current.updated + 1);
        self.replace_scheme(&self.c.oidc_schemes, &scheme.id, &scheme)
            .await?;
        Ok(scheme)
    }

    /// Every OAuth2 scheme, with its stored values (for logins; answers
    /// show [`redacted`] ones).
    pub async fn oauth2_schemes(&self) -> Result<Vec<OAuth2AuthScheme>> {
        let docs = self.store.find(&self.c.oauth2_schemes, &all_schemes()).await?;
        docs.into_iter().map(from_stored).collect()
    }

    /// The OAuth2 scheme with this id or name, with its stored values.
    pub async fn oauth2_scheme(&self, id_or_name: &str) -> Result<OAuth2AuthScheme> {
        self.oauth2_schemes()
            .await?
            .into_iter()
            .find(|s| s.id == id_or_name || s.name == id_or_name)
            .ok_or_else(not_found)
    }

    /// Registers an OAuth2 scheme (superusers only).
    pub async fn create_oauth2_scheme(
        &self,
        actor: &User,
        mut scheme: OAuth2AuthScheme,
    ) -> Result<OAuth2AuthScheme> {
        require_superuser(actor)?;
        if scheme.valid_status_codes.is_empty() {
            scheme.valid_status_codes = vec![200];
        }
        check_oauth2(&scheme)?;
        if self.oauth2_schemes().await?.len() >= MAX_SCHEMES {
            return Err(invalid(format!("at most {MAX_SCHEMES} OAuth2 schemes")));
        }
        let now = now_ms();
        scheme.id = uuid::Uuid::new_v4().to_string();
        (scheme.created, scheme.updated) = (now, now);
        self.insert_scheme(&self.c.oauth2_schemes, &scheme.id, &scheme)
            .await?;
        Ok(scheme)
    }

    /// Replaces an OAuth2 scheme (superusers only); its id stays, and a
    /// stored value the update leaves out is kept.
    pub async fn update_oauth2_scheme(
        &self,
        actor: &User,
        id_or_name: &str,
        mut scheme: OAuth2AuthScheme,
    ) -> Result<OAuth2AuthScheme> {
        require_superuser(actor)?;
        let current = self.oauth2_scheme(id_or_name).await?;
        keep_values(&mut scheme.headers, &current.headers);
        keep_values(&mut scheme.params, &current.params);
        keep_values(&mut scheme.body, &current.body);
        if scheme.valid_status_codes.is_empty() {
            scheme.valid_status_codes = vec![200];
        }
        check_oauth2(&scheme)?;
        scheme.id = current.id.clone();
        scheme.created = current.created;
        scheme.updated = now_ms().max(current.updated + 1);
        self.replace_scheme(&self.c.oauth2_schemes, &scheme.id, &scheme)
            .await?;
        Ok(scheme)
    }

    /// Deletes an OIDC (`oauth2` false) or OAuth2 scheme (superusers only).
    /// Identities it created stay; they just can't log in until a scheme of
    /// the same name is registered again.
    pub async fn delete_auth_scheme(&self, actor: &User, oauth2: bool, id_or_name: &str) -> Result<()> {
        require_superuser(actor)?;
        let (collection, id) = if oauth2 {
            (&self.c.oauth2_schemes, self.oauth2_scheme(id_or_name).await?.id)
        } else {
            (&self.c.oidc_schemes, self.oidc_scheme(id_or_name).await?.id)
        };
        match self.store.delete_by_id(collection, &id, None).await {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn insert_scheme<T: Serialize>(
        &self,
        collection: &elements_store::CollectionName,
        id: &str,
        scheme: &T,
    ) -> Result<()> {
        match self.store.insert(collection, to_stored(id, scheme)?).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_duplicate_key() => Err(IdentityError::AlreadyExists(
                "An auth scheme with this name (or issuer) already exists.".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn replace_scheme<T: Serialize>(
        &self,
        collection: &elements_store::CollectionName,
        id: &str,
        scheme: &T,
    ) -> Result<()> {
        let mut doc = to_stored(id, scheme)?;
        let mut unset = serde_json::Map::new();
        if let Some(map) = doc.as_object_mut() {
            map.remove("_id");
            for field in OPTIONAL {
                if !map.contains_key(*field) {
                    unset.insert((*field).to_owned(), Value::String(String::new()));
                }
            }
        }
        let mut update = serde_json::json!({ "$set": doc });
        if !unset.is_empty() {
            update["$unset"] = Value::Object(unset);
        }
        let update = elements_store::Update::parse(&update)?;
        match self.store.update_by_id(collection, id, &update, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_duplicate_key() => Err(IdentityError::AlreadyExists(
                "An auth scheme with this name (or issuer) already exists.".into(),
            )),
            Err(StoreError::NotFound(_)) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth2() -> OAuth2AuthScheme {
        OAuth2AuthScheme {
            name: "steam_game1".into(),
            validation_url: "https://partner.steam-api.com/ISteamUserAuth/AuthenticateUserTicket/v1/".into(),
            method: "GET".into(),
            params: vec![
                OAuth2KeyValue {
                    key: "key".into(),
                    value: Some("secret".into()),
                    ..Default::default()
                },
                OAuth2KeyValue {
                    key: "ticket".into(),
                    from_client: true,
                    ..Default::default()
                },
            ],
            response_id_mapping: Some("steamid".into()),
            valid_status_codes: vec![200],
            ..Default::default()
        }
    }

    #[test]
    fn oauth2_schemes_that_cant_work_are_refused() {
        assert!(check_oauth2(&oauth2()).is_ok());
        type Change = Box<dyn Fn(&mut OAuth2AuthScheme)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "nothing from the client",
                Box::new(|s| s.params.retain(|kv| !kv.from_client)),
            ),
            (
                "no way to name the player",
                Box::new(|s| s.response_id_mapping = None),
            ),
            ("a stored value missing", Box::new(|s| s.params[0].value = None)),
            ("a bad method", Box::new(|s| s.method = "DELETE".into())),
            (
                "a bad URL",
                Box::new(|s| s.validation_url = "file:///etc/passwd".into()),
            ),
            ("a bad name", Box::new(|s| s.name = "Steam Game".into())),
            (
                "a bad header",
                Box::new(|s| {
                    s.headers.push(OAuth2KeyValue {
                        key: "a b".into(),
                        value: Some("v".into()),
                        ..Default::default()
                    })
                }),
            ),
            ("a stored userId", Box::new(|s| s.params[0].user_id = true)),
            (
                "a body on GET",
                Box::new(|s| {
                    s.body.push(OAuth2KeyValue {
                        key: "b".into(),
                        from_client: true,
                        ..Default::default()
                    })
                }),
            ),
        ];
        for (what, change) in cases {
            let mut s = oauth2();
            change(&mut s);
            assert!(check_oauth2(&s).is_err(), "{what}");
        }
    }

    #[test]
    fn stored_values_are_hidden_and_kept_across_edits() {
        let stored = oauth2();
        let shown = redacted(stored.clone());
        assert_eq!(
            (shown.params[0].value.as_deref(), shown.params[0].value_set),
            (None, true)
        );
        assert_eq!(
            (shown.params[1].value.as_deref(), shown.params[1].value_set),
            (None, false)
        );
        let mut edited = shown.clone();
        keep_values(&mut edited.params, &stored.params);
        assert_eq!(edited.params[0].value.as_deref(), Some("secret"));
    }

    #[test]
    fn oidc_schemes_need_an_audience_and_keys() {
        let good = OidcAuthScheme {
            name: "okta".into(),
            issuer: "https://example.okta.com".into(),
            audiences: vec!["game".into()],
            keys_url: Some("https://example.okta.com/keys".into()),
            ..Default::default()
        };
        assert!(check_oidc(&good).is_ok());
        assert!(
            check_oidc(&OidcAuthScheme {
                audiences: vec![],
                ..good.clone()
            })
            .is_err()
        );
        assert!(
            check_oidc(&OidcAuthScheme {
                keys_url: None,
                ..good.clone()
            })
            .is_err()
        );
        assert!(
            check_oidc(&OidcAuthScheme {
                keys: vec![serde_json::json!({"kty": "RSA"})],
                ..good.clone()
            })
            .is_err()
        );
    }
}
