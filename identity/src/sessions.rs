//! Sessions: Elements-style sessions (a signed secret) and Nakama-compatible
//! JWT session/refresh tokens.
//!
//! ## Revocations are stored, not sessions
//!
//! Opening a session or issuing a token writes nothing: a login that
//! creates nothing costs no durable write. Both kinds are signed (see
//! [`crate::token`]) and carry their user, expiry, *family* and
//! *generation*. What is stored is what revokes them, in the user's own
//! document ([`TokenState`]): the generation (revoking every session and
//! token of the user moves it on: ban, logout everywhere, password change,
//! deletion) and the revoked families. Each check of a credential reads the
//! user's document (one read, which the caller needs anyway), so a
//! revocation holds at once on every node sharing the store, and across
//! restarts.
//!
//! An Elements session's family is its own id: logging it out
//! (`DELETE /api/rest/session/{secret}`) revokes just that session.
//!
//! ## Token families
//!
//! A login starts a *family* (`fam`, its first token id); each refresh
//! rotates within it: the refresh token used is spent (its id inserted in
//! `spent_refresh_tokens`, which succeeds once, so of two concurrent
//! refreshes with one token exactly one wins) and a new pair is issued in
//! the same family. A spent refresh token presented again means two parties
//! hold it, one of them a thief: the whole family (every session and
//! refresh token issued from that login) is revoked. Logout revokes the
//! family of the tokens it names.

use std::collections::BTreeMap;
use std::time::Duration;

use elements_store::{StoreError, Update};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{IdentityError, Result};
use crate::model::{Application, Profile, Session, User};
use crate::secret::random_token;
use crate::service::{AuthOutcome, IdentityService};
use crate::store_util::{parse, to_doc};
use crate::time::now_ms;
use crate::token::{Claims, TokenKind};

/// A session as resolved from its secret, with what it points to.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedSession {
    /// The session.
    pub session: Session,
    /// Its user.
    pub user: User,
    /// Its profile, if any.
    pub profile: Option<Profile>,
    /// Its application, if any.
    pub application: Option<Application>,
}

/// A newly issued Nakama session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// Session token (JWT).
    pub token: String,
    /// Refresh token (JWT).
    pub refresh_token: String,
    /// The token id (`tid`) both share.
    pub token_id: String,
    /// Session token expiry, seconds since the epoch.
    pub expires_at: i64,
    /// Refresh token expiry, seconds since the epoch.
    pub refresh_expires_at: i64,
}

/// A valid Nakama session token's contents.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSession {
    /// User id (`uid`).
    pub user_id: String,
    /// Username at issue time (`usn`).
    pub username: String,
    /// Session variables (`vrs`).
    pub vars: BTreeMap<String, String>,
    /// Token id (`tid`).
    pub token_id: String,
    /// The login the token descends from (`fam`).
    pub family: String,
    /// Expiry, seconds since the epoch (`exp`).
    pub expires_at: i64,
    /// The user, as read when the token was checked.
    pub user: User,
}

/// Who is calling, from either kind of credential.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The user.
    pub user: User,
    /// The session the credential is.
    pub session: CallerSession,
}

/// The session behind a [`Caller`].
#[derive(Debug, Clone, PartialEq)]
pub enum CallerSession {
    /// An Elements session secret.
    Elements(Box<ResolvedSession>),
    /// A Nakama session token.
    Token(Box<TokenSession>),
}

/// What a user's document keeps about its Nakama tokens (field
/// [`TOKEN_STATE`]). Tokens are not stored: a login writes nothing. A token
/// is valid while its signature and expiry hold and this state admits it,
/// so revoking writes here, and every check reads it with the user.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TokenState {
    /// Tokens carry the generation they were issued in; revoking every
    /// token of the user moves it on.
    #[serde(default)]
    generation: u64,
    /// Families of an older generation still admitted: the caller's own,
    /// kept when a password change ends the other sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kept: Vec<String>,
    /// Revoked families, each with when its last possible token expires
    /// (seconds): dropped once that has passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    revoked: Vec<(String, i64)>,
}

/// The user document's field holding its [`TokenState`].
pub(crate) const TOKEN_STATE: &str = "token_state";

/// Most revoked families a user document keeps; past that, every token of
/// the user is revoked instead (the safe side of a bounded list: someone
/// logging out a thousand times can't grow their document).
const MAX_REVOKED_FAMILIES: usize = 32;

impl TokenState {
    /// The generation in a user's document.
    pub(crate) fn generation_of(doc: &Value) -> Result<u64> {
        Ok(TokenState::of(doc)?.generation)
    }

    fn of(doc: &Value) -> Result<TokenState> {
        match doc.get(TOKEN_STATE) {
            Some(state) => parse(state.clone()),
            None => Ok(TokenState::default()),
        }
    }

    fn admits(&self, claims: &Claims) -> bool {
        self.admits_family(&claims.fam, claims.generation)
    }

    /// Whether a credential of `family`, issued in `generation`, still holds.
    fn admits_family(&self, family: &str, generation: Option<u64>) -> bool {
        !family.is_empty()
            && !self.revoked.iter().any(|(f, _)| f == family)
            && (generation == Some(self.generation) || self.kept.iter().any(|f| f == family))
    }

    fn revoke_all(&mut self, keep: Option<&str>) {
        self.generation += 1;
        self.kept = keep.map(str::to_owned).into_iter().collect();
        self.revoked.clear();
    }

    fn revoke_family(&mut self, family: &str, until: i64, now: i64) {
        self.revoked.retain(|(f, exp)| *exp > now && f != family);
        self.kept.retain(|f| f != family);
        if self.revoked.len() >= MAX_REVOKED_FAMILIES {
            self.revoke_all(None);
        } else {
            self.revoked.push((family.to_owned(), until));
        }
    }
}

/// How stale a profile's `last_login` may get before a login writes it
/// again: a minute, so that a player logging in again and again costs no
/// write each time.
pub const LAST_LOGIN_RESOLUTION_MS: i64 = 60_000;

/// Longest credential looked at (anything longer is not ours).
const MAX_CREDENTIAL: usize = 4096;

fn session_invalid() -> IdentityError {
    IdentityError::Unauthenticated("Session secret invalid or expired.".into())
}

fn token_invalid() -> IdentityError {
    IdentityError::Unauthenticated("Auth token invalid".into())
}

impl IdentityService {
    // ------------------------------------------------- Elements sessions

    /// Opens an Elements session for a user (optionally for one of its
    /// profiles, as just read, and an application) lasting `ttl` (the
    /// configured default when None). Returns the secret, shown to the
    /// client once. Nothing is stored for the session: the one read is the
    /// user's generation. The profile's last login is written when the one
    /// it has is older than [`LAST_LOGIN_RESOLUTION_MS`].
    pub async fn create_session(
        &self,
        user_id: &str,
        profile: Option<&Profile>,
        application_id: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<(String, Session)> {
        if profile.is_some_and(|p| p.user_id != user_id) {
            return Err(IdentityError::invalid("the profile belongs to another user"));
        }
        let doc = self
            .store
            .get(&self.c.users, user_id)
            .await?
            .ok_or_else(IdentityError::account_not_found)?;
        let generation = TokenState::generation_of(&doc)?;
        let now = self.now_ms();
        let ttl = ttl.unwrap_or(self.config.session_expiry);
        let session = Session {
            id: random_token(16)?,
            user_id: user_id.into(),
            profile_id: profile.map(|p| p.id.clone()),
            application_id: application_id.map(str::to_owned),
            expiry: now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64),
            created: now,
            generation,
        };
        let secret = self.keys.sign_session(&session)?;
        if let Some(profile) = profile
            && profile
                .last_login
                .is_none_or(|at| now.saturating_sub(at) >= LAST_LOGIN_RESOLUTION_MS)
        {
            let update = Update::parse(&json!({"$set": {"last_login": now}}))?;
            match self
                .store
                .update_by_id(&self.c.profiles, &profile.id, &update, None)
                .await
            {
                // Deleted meanwhile: the session fails on its first use.
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok((secret, session))
    }

    /// The live session with this secret, with its user, profile and
    /// application. Forged, expired or revoked, or its user gone:
    /// unauthenticated; banned user: permission denied.
    pub async fn resolve_session(&self, secret: &str) -> Result<ResolvedSession> {
        if secret.is_empty() || secret.len() > MAX_CREDENTIAL {
            return Err(session_invalid());
        }
        let session = self
            .keys
            .verify_session(secret, self.now_ms())
            .ok_or_else(session_invalid)?;
        let doc = self
            .store
            .get(&self.c.users, &session.user_id)
            .await?
            .ok_or_else(session_invalid)?;
        let state = TokenState::of(&doc)?;
        // Revoked first: a ban revokes every session, which are then
        // unknown (401), like Nakama tokens; a banned user's fresh login is
        // the 403.
        if !state.admits_family(&session.id, Some(session.generation)) {
            return Err(session_invalid());
        }
        let user: User = parse(doc)?;
        if user.banned {
            return Err(IdentityError::banned());
        }
        let profile = match &session.profile_id {
            Some(id) => self
                .store
                .get(&self.c.profiles, id)
                .await?
                .map(parse)
                .transpose()?,
            None => None,
        };
        let application = match &session.application_id {
            Some(id) => self
                .store
                .get(&self.c.applications, id)
                .await?
                .map(parse)
                .transpose()?,
            None => None,
        };
        Ok(ResolvedSession {
            session,
            user,
            profile,
            application,
        })
    }

    /// Ends the session with this secret (revokes it, on every node); false
    /// if it was not a live session.
    pub async fn delete_session(&self, secret: &str) -> Result<bool> {
        if secret.is_empty() || secret.len() > MAX_CREDENTIAL {
            return Ok(false);
        }
        let Some(session) = self.keys.verify_session(secret, self.now_ms()) else {
            return Ok(false);
        };
        let Some(doc) = self.store.get(&self.c.users, &session.user_id).await? else {
            return Ok(false);
        };
        if !TokenState::of(&doc)?.admits_family(&session.id, Some(session.generation)) {
            return Ok(false);
        }
        // Kept in the revoked list until the session would have expired, on
        // the clock the list is pruned by.
        let now = self.now_secs();
        let until = now.saturating_add(session.expiry.saturating_sub(self.now_ms()).div_euclid(1000) + 1);
        self.change_token_state(&session.user_id, |state| {
            state.revoke_family(&session.id, until, now)
        })
        .await?;
        Ok(true)
    }

    // ------------------------------------------------------ Nakama tokens

    /// Seconds since the epoch on the service's clock (the system's, shifted
    /// by `clock_offset_secs`): tokens are issued and checked against it.
    fn now_secs(&self) -> i64 {
        self.now_ms() / 1000
    }

    /// The same clock in milliseconds: Elements sessions are issued and
    /// checked against it.
    fn now_ms(&self) -> i64 {
        now_ms().saturating_add(self.config.clock_offset_secs.saturating_mul(1000))
    }

    /// Issues a session token and a refresh token for `user` (as just read
    /// from the store), sharing a new token id, in a new family (a login).
    /// Nothing is written: see [`TokenState`].
    pub async fn issue_tokens(&self, user: &User, vars: BTreeMap<String, String>) -> Result<TokenPair> {
        let state = match self.store.get(&self.c.users, &user.id).await? {
            Some(doc) => TokenState::of(&doc)?,
            None => return Err(IdentityError::account_not_found()),
        };
        let token_id = uuid::Uuid::new_v4().to_string();
        self.sign_pair(user, vars, token_id.clone(), token_id, state.generation)
    }

    /// Issues the tokens of a login: [`AuthOutcome`] carries the
    /// generation read with the user, so this costs no store access.
    pub fn issue_login_tokens(
        &self,
        login: &AuthOutcome,
        vars: BTreeMap<String, String>,
    ) -> Result<TokenPair> {
        let token_id = uuid::Uuid::new_v4().to_string();
        self.sign_pair(
            &login.user,
            vars,
            token_id.clone(),
            token_id,
            login.token_generation,
        )
    }

    fn sign_pair(
        &self,
        user: &User,
        vars: BTreeMap<String, String>,
        token_id: String,
        family: String,
        generation: u64,
    ) -> Result<TokenPair> {
        let iat = self.now_secs();
        let exp = iat.saturating_add(self.config.token_expiry.as_secs() as i64);
        let refresh_exp = iat.saturating_add(self.config.refresh_token_expiry.as_secs() as i64);
        let mut claims = Claims {
            tid: token_id.clone(),
            uid: user.id.clone(),
            usn: user.name.clone(),
            vrs: vars,
            exp,
            iat,
            fam: family,
            generation: Some(generation),
        };
        let token = self.keys.sign(TokenKind::Session, &claims)?;
        claims.exp = refresh_exp;
        let refresh_token = self.keys.sign(TokenKind::Refresh, &claims)?;
        Ok(TokenPair {
            token,
            refresh_token,
            token_id,
            expires_at: exp,
            refresh_expires_at: refresh_exp,
        })
    }

    /// The user of `claims` if its document admits them: it exists, is not
    /// banned, and has not revoked the token's family or generation.
    async fn admitted(&self, claims: &Claims) -> Result<Option<(User, TokenState)>> {
        let Some(doc) = self.store.get(&self.c.users, &claims.uid).await? else {
            return Ok(None);
        };
        let state = TokenState::of(&doc)?;
        let user: User = parse(doc)?;
        if user.banned || !state.admits(claims) {
            return Ok(None);
        }
        Ok(Some((user, state)))
    }

    /// Checks a session token: signature, expiry, and that it was not
    /// revoked (logout, ban, deletion). Failures are "Auth token invalid".
    /// One store read, which also gives the user.
    pub async fn verify_token(&self, token: &str) -> Result<TokenSession> {
        if token.len() > MAX_CREDENTIAL {
            return Err(token_invalid());
        }
        let claims = self
            .keys
            .verify(TokenKind::Session, token, self.now_secs())
            .ok_or_else(token_invalid)?;
        let (user, _) = self.admitted(&claims).await?.ok_or_else(token_invalid)?;
        Ok(TokenSession {
            user_id: claims.uid,
            username: claims.usn,
            vars: claims.vrs,
            token_id: claims.tid,
            family: claims.fam,
            expires_at: claims.exp,
            user,
        })
    }

    /// Exchanges a valid refresh token for a new session (Nakama's session
    /// refresh). The new session keeps the refresh token's variables unless
    /// `vars` has some.
    pub async fn refresh_tokens(
        &self,
        refresh_token: &str,
        vars: BTreeMap<String, String>,
    ) -> Result<(User, TokenPair)> {
        if refresh_token.is_empty() {
            return Err(IdentityError::invalid("Refresh token is required."));
        }
        let invalid = || IdentityError::Unauthenticated("Refresh token invalid or expired.".into());
        if refresh_token.len() > MAX_CREDENTIAL {
            return Err(invalid());
        }
        let claims = self
            .keys
            .verify(TokenKind::Refresh, refresh_token, self.now_secs())
            .ok_or_else(invalid)?;
        let (user, state) = self.admitted(&claims).await?.ok_or_else(invalid)?;
        // Spend the refresh token: its id inserted once, so of concurrent
        // refreshes with it exactly one gets through, and a second use is
        // seen. A revocation racing this one lands in the user's document:
        // the pair issued below is then refused like the rest of its family.
        let mut spent = json!({"_id": claims.tid, "user_id": claims.uid});
        spent[elements_store::EXPIRES_AT] = json!(claims.exp.saturating_mul(1000));
        match self.store.insert(&self.c.spent_refresh_tokens, spent).await {
            Ok(_) => {}
            Err(e) if e.is_duplicate_key() => {
                tracing::warn!(
                    user = %claims.uid,
                    "a spent refresh token was presented again: revoking its session family"
                );
                self.revoke_families(&claims.uid, &[claims.fam.as_str()]).await?;
                return Err(invalid());
            }
            Err(e) => return Err(e.into()),
        }
        let vars = if vars.is_empty() { claims.vrs } else { vars };
        let pair = self.sign_pair(
            &user,
            vars,
            uuid::Uuid::new_v4().to_string(),
            claims.fam,
            state.generation,
        )?;
        Ok((user, pair))
    }

    /// Changes the user's [`TokenState`] with `change`, atomically against
    /// concurrent changes (compare-and-set on the document's version). A
    /// user that is gone has no tokens left to revoke.
    async fn change_token_state(&self, user_id: &str, change: impl Fn(&mut TokenState)) -> Result<()> {
        for _ in 0..16 {
            let Some(doc) = self.store.get(&self.c.users, user_id).await? else {
                return Ok(());
            };
            let mut state = TokenState::of(&doc)?;
            change(&mut state);
            let update = Update::set(TOKEN_STATE, to_doc(&state)?)?;
            let version = doc
                .get(elements_store::VERSION)
                .and_then(Value::as_i64)
                .unwrap_or(0);
            match self
                .store
                .update_by_id(&self.c.users, user_id, &update, Some(version))
                .await
            {
                Ok(_) | Err(StoreError::NotFound(_)) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IdentityError::internal(
            "could not revoke the tokens (too much contention on the account)",
        ))
    }

    /// Revokes every token of these families of `user_id`.
    async fn revoke_families(&self, user_id: &str, families: &[&str]) -> Result<()> {
        let now = self.now_secs();
        // No token of a family outlives a refresh token issued now.
        let until = now.saturating_add(self.config.refresh_token_expiry.as_secs() as i64);
        self.change_token_state(user_id, |state| {
            for family in families {
                state.revoke_family(family, until, now);
            }
        })
        .await
    }

    /// Revokes every Nakama token of `user_id`, except those of the family
    /// `keep`.
    pub(crate) async fn revoke_all_tokens(&self, user_id: &str, keep: Option<&str>) -> Result<()> {
        self.change_token_state(user_id, |state| state.revoke_all(keep))
            .await
    }

    /// Nakama's session logout for `user_id`: revokes the families of the
    /// given session and/or refresh token (each must be the caller's), or
    /// every token of the user when neither is given.
    pub async fn logout_tokens(
        &self,
        user_id: &str,
        token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> Result<()> {
        let token = token.filter(|t| !t.is_empty());
        let refresh_token = refresh_token.filter(|t| !t.is_empty());
        let mut families = Vec::new();
        for (kind, token, what) in [
            (TokenKind::Session, token, "Session token invalid."),
            (TokenKind::Refresh, refresh_token, "Refresh token invalid."),
        ] {
            if let Some(t) = token {
                let claims = self
                    .keys
                    .verify(kind, t, self.now_secs())
                    .filter(|c| c.uid == user_id)
                    .ok_or_else(|| IdentityError::invalid(what))?;
                families.push(claims.fam);
            }
        }
        if token.is_none() && refresh_token.is_none() {
            return self.revoke_all_tokens(user_id, None).await;
        }
        let families: Vec<&str> = families
            .iter()
            .map(String::as_str)
            .filter(|f| !f.is_empty())
            .collect();
        self.revoke_families(user_id, &families).await
    }

    /// Ends every session and token of `user_id` except `keep` (the one the
    /// user is acting with): after a password or email change, whoever else
    /// held a session is out.
    pub async fn revoke_other_sessions(&self, user_id: &str, keep: &CallerSession) -> Result<()> {
        let family = match keep {
            CallerSession::Elements(resolved) => &resolved.session.id,
            CallerSession::Token(session) => &session.family,
        };
        self.revoke_all_tokens(user_id, Some(family)).await
    }

    // ------------------------------------------------------ either kind

    /// Resolves a bearer credential of either kind (a Nakama session token,
    /// which has the three dot-separated parts of a JWT, or an Elements
    /// session secret) to the calling user. For host services resolving the
    /// request's caller.
    pub async fn resolve_credential(&self, credential: &str) -> Result<Caller> {
        if credential.matches('.').count() == 2 {
            let session = self.verify_token(credential).await?;
            return Ok(Caller {
                user: session.user.clone(),
                session: CallerSession::Token(Box::new(session)),
            });
        }
        let resolved = self.resolve_session(credential).await?;
        Ok(Caller {
            user: resolved.user.clone(),
            session: CallerSession::Elements(Box::new(resolved)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(fam: &str, generation: Option<u64>) -> Claims {
        Claims {
            tid: "t".into(),
            uid: "u".into(),
            usn: "ana".into(),
            vrs: BTreeMap::new(),
            exp: 0,
            iat: 0,
            fam: fam.into(),
            generation,
        }
    }

    #[test]
    fn a_token_needs_its_family_and_the_current_generation() {
        let mut state = TokenState::default();
        assert!(state.admits(&claims("f1", Some(0))));
        // Tokens from before generations (no `fam`, no `gen`) are refused.
        assert!(!state.admits(&claims("", Some(0))));
        assert!(!state.admits(&claims("f1", None)));
        assert!(
            !state.admits(&claims("f1", Some(1))),
            "a generation not reached yet"
        );
        state.revoke_all(Some("f1"));
        assert!(state.admits(&claims("f1", Some(0))), "the kept family");
        assert!(!state.admits(&claims("f2", Some(0))), "every other one");
        assert!(
            state.admits(&claims("f3", Some(1))),
            "logins after the revocation"
        );
        state.revoke_family("f1", 100, 0);
        assert!(!state.admits(&claims("f1", Some(0))));
        assert!(!state.admits(&claims("f1", Some(1))));
        state.revoke_all(None);
        assert!(!state.admits(&claims("f3", Some(1))));
    }

    #[test]
    fn revoked_families_are_pruned_and_bounded() {
        let mut state = TokenState::default();
        state.revoke_family("old", 10, 0);
        state.revoke_family("new", 1000, 20);
        assert_eq!(
            state.revoked,
            vec![("new".to_string(), 1000)],
            "past ones dropped"
        );
        for i in 0..MAX_REVOKED_FAMILIES - 1 {
            state.revoke_family(&format!("f{i}"), 1000, 20);
        }
        assert_eq!((state.generation, state.revoked.len()), (0, MAX_REVOKED_FAMILIES));
        state.revoke_family("one-more", 1000, 20);
        assert_eq!(
            (state.generation, state.revoked.len()),
            (1, 0),
            "everything revoked instead"
        );
    }
}
