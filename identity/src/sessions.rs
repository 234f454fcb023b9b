//! Sessions: Elements-style sessions (a random secret, stored as its SHA-256)
//! and Nakama-compatible JWT session/refresh tokens (stored as an allow-list
//! entry per token id, which logout and bans remove). Both live in the store,
//! so revocation survives restarts and holds on every node.
//!
//! ## Token families
//!
//! A login starts a *family*; each refresh rotates within it: the refresh
//! token used is spent (its entry marked `rotated`, atomically, so of two
//! concurrent refreshes with one token exactly one wins) and a new pair is
//! issued in the same family. A spent refresh token presented again means
//! two parties hold it, one of them a thief: the whole family (every
//! session and refresh token issued from that login) is revoked. Logout
//! revokes the family of the tokens it names.

use std::collections::BTreeMap;
use std::time::Duration;

use elements_store::{Filter, FindAndModify, ReturnDocument, StoreError, Update, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{IdentityError, Result};
use crate::model::{Application, Profile, Session, User};
use crate::secret::{ct_eq, hash_secret, random_token};
use crate::service::IdentityService;
use crate::store_util::{atomic, is_precondition, parse, to_doc};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSession {
    /// User id (`uid`).
    pub user_id: String,
    /// Username at issue time (`usn`).
    pub username: String,
    /// Session variables (`vrs`).
    pub vars: BTreeMap<String, String>,
    /// Token id (`tid`).
    pub token_id: String,
    /// Expiry, seconds since the epoch (`exp`).
    pub expires_at: i64,
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
    Token(TokenSession),
}

/// Allow-list entry of a Nakama token id.
#[derive(Debug, Serialize, Deserialize)]
struct TokenDoc {
    #[serde(rename = "_id")]
    id: String,
    user_id: String,
    /// The session token with this id is valid.
    session: bool,
    /// The refresh token with this id is valid.
    refresh: bool,
    session_exp: i64,
    refresh_exp: i64,
    #[serde(rename = "_expiresAt")]
    expires_at: i64,
    /// The login this entry descends from (absent on entries issued before
    /// families: the entry is its own family then).
    #[serde(default)]
    family: String,
    /// The refresh token was exchanged: presenting it again is a replay.
    #[serde(default)]
    rotated: bool,
}

impl TokenDoc {
    fn family(&self) -> &str {
        if self.family.is_empty() {
            &self.id
        } else {
            &self.family
        }
    }
}

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

    /// Opens an Elements session for a user (optionally for a profile and an
    /// application) lasting `ttl` (the configured default when None). Returns
    /// the secret, shown to the client once; the store keeps its hash.
    pub async fn create_session(
        &self,
        user_id: &str,
        profile_id: Option<&str>,
        application_id: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<(String, Session)> {
        let secret = random_token(32)?;
        let now = now_ms();
        let ttl = ttl.unwrap_or(self.config.session_expiry);
        let session = Session {
            id: hash_secret(&secret),
            user_id: user_id.into(),
            profile_id: profile_id.map(str::to_owned),
            application_id: application_id.map(str::to_owned),
            expiry: now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64),
            created: now,
        };
        let mut doc = to_doc(&session)?;
        doc[elements_store::EXPIRES_AT] = json!(session.expiry);
        self.store.insert(&self.c.sessions, doc).await?;
        if let Some(profile_id) = profile_id {
            let update = Update::parse(&json!({"$set": {"last_login": now}}))?;
            match self
                .store
                .update_by_id(&self.c.profiles, profile_id, &update, None)
                .await
            {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok((secret, session))
    }

    /// The live session with this secret, with its user, profile and
    /// application. Unknown or expired: unauthenticated; banned user:
    /// permission denied.
    pub async fn resolve_session(&self, secret: &str) -> Result<ResolvedSession> {
        if secret.is_empty() || secret.len() > MAX_CREDENTIAL {
            return Err(session_invalid());
        }
        let hash = hash_secret(secret);
        // The lookup is by hash, so its timing says nothing about the secret;
        // the stored hash is compared again in constant time regardless.
        let doc = self
            .store
            .get(&self.c.sessions, &hash)
            .await?
            .ok_or_else(session_invalid)?;
        let session: Session = parse(doc)?;
        if !ct_eq(&session.id, &hash) || session.expiry <= now_ms() {
            return Err(session_invalid());
        }
        let user = match self.user(&session.user_id).await {
            Ok(user) => user,
            Err(IdentityError::NotFound(_)) => return Err(session_invalid()),
            Err(e) => return Err(e),
        };
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

    /// Ends the session with this secret; false if there was none.
    pub async fn delete_session(&self, secret: &str) -> Result<bool> {
        if secret.is_empty() || secret.len() > MAX_CREDENTIAL {
            return Ok(false);
        }
        Ok(self
            .store
            .delete_by_id(&self.c.sessions, &hash_secret(secret), None)
            .await?)
    }

    // ------------------------------------------------------ Nakama tokens

    /// Issues a session token and a refresh token for `user`, sharing a new
    /// token id that is put on the allow-list, in a new family (a login).
    pub async fn issue_tokens(&self, user: &User, vars: BTreeMap<String, String>) -> Result<TokenPair> {
        let token_id = uuid::Uuid::new_v4().to_string();
        self.issue_in_family(user, vars, token_id.clone(), token_id, None)
            .await
    }

    /// Issues a pair in `family`. With `parent` (the refresh that led here),
    /// only while the parent's entry is still there, in one atomic batch:
    /// a replay revoking the family at the same moment either removes the
    /// parent first (nothing is issued) or the new entry with the family.
    async fn issue_in_family(
        &self,
        user: &User,
        vars: BTreeMap<String, String>,
        token_id: String,
        family: String,
        parent: Option<&str>,
    ) -> Result<TokenPair> {
        let iat = now_ms() / 1000;
        let exp = iat.saturating_add(self.config.token_expiry.as_secs() as i64);
        let refresh_exp = iat.saturating_add(self.config.refresh_token_expiry.as_secs() as i64);
        let entry = TokenDoc {
            id: token_id.clone(),
            user_id: user.id.clone(),
            session: true,
            refresh: true,
            session_exp: exp,
            refresh_exp,
            expires_at: exp.max(refresh_exp).saturating_mul(1000),
            family,
            rotated: false,
        };
        match parent {
            None => {
                self.store.insert(&self.c.tokens, to_doc(&entry)?).await?;
            }
            Some(parent) => {
                let ops = vec![
                    WriteOp::Require {
                        collection: self.c.tokens.clone(),
                        filter: Filter::by_id(parent),
                        exists: true,
                    },
                    WriteOp::Insert {
                        collection: self.c.tokens.clone(),
                        document: to_doc(&entry)?,
                    },
                ];
                match atomic(&self.store, ops).await {
                    Ok(()) => {}
                    Err(e) if is_precondition(&e) => {
                        return Err(IdentityError::Unauthenticated(
                            "Refresh token invalid or expired.".into(),
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // A deletion of the account may race this: it removes the user,
        // then every token of the user. A token stored after that sweep
        // would outlive the account (and where the store has no
        // transactions the parent check above can't stop it), so the user
        // is looked up once more and the entry withdrawn when it is gone.
        if self.store.get(&self.c.users, &user.id).await?.is_none() {
            self.store.delete_by_id(&self.c.tokens, &token_id, None).await?;
            return Err(IdentityError::account_not_found());
        }
        let mut claims = Claims {
            tid: token_id.clone(),
            uid: user.id.clone(),
            usn: user.name.clone(),
            vrs: vars,
            exp,
            iat,
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

    async fn token_entry(&self, token_id: &str) -> Result<Option<TokenDoc>> {
        self.store
            .get(&self.c.tokens, token_id)
            .await?
            .map(parse)
            .transpose()
    }

    /// Checks a session token: signature, expiry, and that it was not
    /// revoked (logout, ban). Failures are "Auth token invalid".
    pub async fn verify_token(&self, token: &str) -> Result<TokenSession> {
        if token.len() > MAX_CREDENTIAL {
            return Err(token_invalid());
        }
        let claims = self
            .keys
            .verify(TokenKind::Session, token)
            .ok_or_else(token_invalid)?;
        match self.token_entry(&claims.tid).await? {
            Some(entry) if entry.session && entry.user_id == claims.uid => Ok(TokenSession {
                user_id: claims.uid,
                username: claims.usn,
                vars: claims.vrs,
                token_id: claims.tid,
                expires_at: claims.exp,
            }),
            _ => Err(token_invalid()),
        }
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
            .verify(TokenKind::Refresh, refresh_token)
            .ok_or_else(invalid)?;
        // Spend the refresh token: one atomic step, so of concurrent
        // refreshes with it exactly one gets through.
        let live = Filter::parse(&json!({"_id": claims.tid, "refresh": true, "user_id": claims.uid}))?;
        let spend = Update::parse(&json!({"$set": {"refresh": false, "rotated": true}}))?;
        let options = FindAndModify {
            return_document: ReturnDocument::Before,
            ..FindAndModify::default()
        };
        let spent = self
            .store
            .find_one_and_update(&self.c.tokens, &live, &spend, &options)
            .await?;
        let entry: TokenDoc = match spent {
            Some(doc) => parse(doc)?,
            None => {
                if let Some(entry) = self.token_entry(&claims.tid).await?
                    && entry.rotated
                    && entry.user_id == claims.uid
                {
                    tracing::warn!(
                        user = %claims.uid,
                        "a spent refresh token was presented again: revoking its session family"
                    );
                    self.revoke_family(&entry).await?;
                }
                return Err(invalid());
            }
        };
        let user = match self.user(&claims.uid).await {
            Ok(user) => user,
            Err(IdentityError::NotFound(_)) => return Err(IdentityError::account_not_found()),
            Err(e) => return Err(e),
        };
        if user.banned {
            return Err(IdentityError::banned());
        }
        let vars = if vars.is_empty() { claims.vrs } else { vars };
        let pair = self
            .issue_in_family(
                &user,
                vars,
                uuid::Uuid::new_v4().to_string(),
                entry.family().to_owned(),
                Some(&entry.id),
            )
            .await?;
        Ok((user, pair))
    }

    /// Revokes every token of `entry`'s family.
    async fn revoke_family(&self, entry: &TokenDoc) -> Result<()> {
        let filter = Filter::parse(&json!({"$or": [{"family": entry.family()}, {"_id": entry.id}]}))?;
        self.store.delete_many(&self.c.tokens, &filter).await?;
        Ok(())
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
        let session_claims = match token {
            Some(t) => Some(
                self.keys
                    .verify(TokenKind::Session, t)
                    .filter(|c| c.uid == user_id)
                    .ok_or_else(|| IdentityError::invalid("Session token invalid."))?,
            ),
            None => None,
        };
        let refresh_claims = match refresh_token {
            Some(t) => Some(
                self.keys
                    .verify(TokenKind::Refresh, t)
                    .filter(|c| c.uid == user_id)
                    .ok_or_else(|| IdentityError::invalid("Refresh token invalid."))?,
            ),
            None => None,
        };
        if session_claims.is_none() && refresh_claims.is_none() {
            self.store
                .delete_many(&self.c.tokens, &Filter::eq("user_id", user_id)?)
                .await?;
            return Ok(());
        }
        for claims in [session_claims, refresh_claims].into_iter().flatten() {
            // Already gone (logged out, revoked, expired): nothing to do.
            if let Some(entry) = self.token_entry(&claims.tid).await?
                && entry.user_id == user_id
            {
                self.revoke_family(&entry).await?;
            }
        }
        Ok(())
    }

    /// Ends every session and token of `user_id` except `keep` (the one the
    /// user is acting with): after a password or email change, whoever else
    /// held a session is out.
    pub async fn revoke_other_sessions(&self, user_id: &str, keep: &CallerSession) -> Result<()> {
        match keep {
            CallerSession::Elements(resolved) => {
                let others =
                    Filter::parse(&json!({"user_id": user_id, "_id": {"$ne": resolved.session.id}}))?;
                self.store.delete_many(&self.c.sessions, &others).await?;
                self.store
                    .delete_many(&self.c.tokens, &Filter::eq("user_id", user_id)?)
                    .await?;
            }
            CallerSession::Token(session) => {
                let family = match self.token_entry(&session.token_id).await? {
                    Some(entry) => entry.family().to_owned(),
                    None => session.token_id.clone(),
                };
                let others = Filter::parse(&json!({
                    "user_id": user_id,
                    "family": {"$ne": family},
                    "_id": {"$ne": session.token_id},
                }))?;
                self.store.delete_many(&self.c.tokens, &others).await?;
                self.store
                    .delete_many(&self.c.sessions, &Filter::eq("user_id", user_id)?)
                    .await?;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------ either kind

    /// Resolves a bearer credential of either kind (a Nakama session token,
    /// which has the three dot-separated parts of a JWT, or an Elements
    /// session secret) to the calling user. For host services resolving the
    /// request's caller.
    pub async fn resolve_credential(&self, credential: &str) -> Result<Caller> {
        if credential.matches('.').count() == 2 {
            let session = self.verify_token(credential).await?;
            let user = match self.user(&session.user_id).await {
                Ok(user) => user,
                Err(IdentityError::NotFound(_)) => return Err(token_invalid()),
                Err(e) => return Err(e),
            };
            if user.banned {
                return Err(IdentityError::banned());
            }
            return Ok(Caller {
                user,
                session: CallerSession::Token(session),
            });
        }
        let resolved = self.resolve_session(credential).await?;
        Ok(Caller {
            user: resolved.user.clone(),
            session: CallerSession::Elements(Box::new(resolved)),
        })
    }
}
