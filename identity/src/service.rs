//! The identity service: users and their identities over the document store.
//! Sessions and tokens are in [`crate::sessions`], profiles and applications
//! in [`crate::profiles`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use elements_store::{
    CollectionName, Conflict, DocumentStore, Filter, FindAndModify, IndexSpec, Namespace, Query, StoreError,
    Update, WriteOp,
};
use elements_wire::UserUpdate;
use serde_json::{Map, Value, json};

use crate::error::{IdentityError, Result};
use crate::model::{Identity, Level, Page, User, Verification, empty_object, scheme};
use crate::password::PasswordPool;
use crate::secret::{Secret, random_token};
use crate::sessions::{Caller, CallerSession};
use crate::store_util::{atomic, duplicate_in, is_precondition, page, parse, to_doc, update_by_id};
use crate::throttle::{LoginThrottle, ThrottleConfig};
use crate::time::now_ms;
use crate::token::TokenKeys;
use crate::validate;
use crate::verifier::{
    Credential, CustomVerifier, DeviceVerifier, EmailVerifier, IdentityVerifier, VerifiedIdentity,
    unknown_scheme,
};

/// Settings of the identity service.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// HMAC key of session tokens; generated once and kept in the store when
    /// absent, so every node and every restart share it.
    pub token_key: Option<Secret>,
    /// HMAC key of refresh tokens (must differ from `token_key`); same default.
    pub refresh_token_key: Option<Secret>,
    /// Lifetime of a session token (Nakama's default: 60 s).
    pub token_expiry: Duration,
    /// Lifetime of a refresh token (Nakama's default: 3600 s).
    pub refresh_token_expiry: Duration,
    /// Default lifetime of an Elements-style session.
    pub session_expiry: Duration,
    /// Password of the `root` superuser created on first start; random (and
    /// logged once by the caller) when absent.
    pub root_password: Option<Secret>,
    /// At most one profile per user per application (the default).
    pub unique_profile_per_application: bool,
    /// Limits on failed password logins (per node).
    pub login_throttle: ThrottleConfig,
    /// Threads hashing and verifying passwords (default: one per core).
    pub password_workers: usize,
    /// Password jobs that may wait for a thread; beyond, requests are
    /// refused with [`IdentityError::Busy`].
    pub password_queue: usize,
    /// Shifts the clock Nakama tokens are issued and checked against, in
    /// seconds (the server's `--clock-offset-secs`, for tests of expiry).
    pub clock_offset_secs: i64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            token_key: None,
            refresh_token_key: None,
            token_expiry: Duration::from_secs(60),
            refresh_token_expiry: Duration::from_secs(3600),
            session_expiry: Duration::from_secs(24 * 3600),
            root_password: None,
            unique_profile_per_application: true,
            login_throttle: ThrottleConfig::default(),
            password_workers: crate::password::default_workers(),
            password_queue: crate::password::DEFAULT_QUEUE,
            clock_offset_secs: 0,
        }
    }
}

/// The core collections the service owns.
#[derive(Debug, Clone)]
pub(crate) struct Collections {
    pub users: CollectionName,
    pub identities: CollectionName,
    pub profiles: CollectionName,
    pub applications: CollectionName,
    pub spent_refresh_tokens: CollectionName,
    pub settings: CollectionName,
    pub oidc_schemes: CollectionName,
    pub oauth2_schemes: CollectionName,
}

impl Collections {
    fn new() -> Result<Collections> {
        let core = Namespace::core();
        let c = |name: &str| core.collection(name).map_err(IdentityError::from);
        Ok(Collections {
            users: c("users")?,
            identities: c("identities")?,
            profiles: c("profiles")?,
            applications: c("applications")?,
            spent_refresh_tokens: c("spent_refresh_tokens")?,
            settings: c("settings")?,
            oidc_schemes: c("oidc_schemes")?,
            oauth2_schemes: c("oauth2_schemes")?,
        })
    }
}

/// The result of authenticating: the user, and whether this call created it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthOutcome {
    /// The user.
    pub user: User,
    /// True if the account was created by this call.
    pub created: bool,
    /// The generation of the user's Nakama tokens, read with the user, so
    /// the login's tokens need no further read (see `sessions`).
    pub token_generation: u64,
}

/// A find-or-create request for the user behind a verified identity.
#[derive(Debug, Clone)]
pub struct FindOrCreate {
    /// The identity (from a verifier, or built by a host service).
    pub identity: VerifiedIdentity,
    /// Create the account if no user has this identity.
    pub create: bool,
    /// Name of a new account (generated when absent; ignored for existing ones).
    pub username: Option<String>,
    /// The client's address, for throttling password guesses.
    pub client: Option<IpAddr>,
}

/// A user to create directly (sign-up, bootstrap, administration).
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Unique name.
    pub name: String,
    /// Email (becomes an `email` identity too).
    pub email: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Level.
    pub level: Level,
}

/// What [`IdentityService::bootstrap`] did.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The superuser created.
    pub user: User,
    /// The password, when it was generated (show it once, then forget it).
    pub generated_password: Option<Secret>,
}

/// The identity service. Cheap to share as `Arc<IdentityService>`.
pub struct IdentityService {
    pub(crate) store: Arc<dyn DocumentStore>,
    pub(crate) c: Collections,
    pub(crate) config: IdentityConfig,
    pub(crate) keys: TokenKeys,
    pub(crate) passwords: PasswordPool,
    throttle: LoginThrottle,
    verifiers: RwLock<HashMap<String, Arc<dyn IdentityVerifier>>>,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("backend", &self.store.backend())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Id of the settings document holding generated token keys.
const TOKEN_KEYS_DOC: &str = "identity-token-keys";

/// Field of a user document holding [`validate::username_key`] of its name:
/// what names are unique by and looked up by. A storage detail, like the
/// password hash: [`User`] doesn't carry it.
const NAME_KEY: &str = "name_key";

/// Id of the settings document every batch that takes a superuser's rights
/// away writes, so that concurrent ones conflict (see `update_user`).
const SUPERUSER_GUARD_DOC: &str = "identity-superuser-guard";

impl IdentityService {
    /// Opens the service over `store`: creates its indexes (idempotent) and
    /// loads or generates the token keys. Registers the `device`, `custom`
    /// and `email` verifiers.
    pub async fn new(store: Arc<dyn DocumentStore>, config: IdentityConfig) -> Result<IdentityService> {
        let c = Collections::new()?;
        let index = |fields: &[&str], unique: bool| {
            if unique {
                IndexSpec::unique(fields)
            } else {
                IndexSpec::non_unique(fields)
            }
            .map_err(IdentityError::from)
        };
        let mut indexes = vec![
            (&c.users, index(&["name"], true)?),
            // Names are unique by their key (case- and spelling-insensitive).
            (&c.users, index(&[NAME_KEY], true)?),
            (&c.users, index(&["email"], true)?),
            (&c.users, index(&["level"], false)?),
            (&c.identities, index(&["user_id"], false)?),
            (&c.profiles, index(&["user_id"], false)?),
            (&c.profiles, index(&["application_id"], false)?),
            (&c.applications, index(&["name"], true)?),
            (&c.oidc_schemes, index(&["name"], true)?),
            (&c.oidc_schemes, index(&["issuer"], true)?),
            (&c.oauth2_schemes, index(&["name"], true)?),
        ];
        if config.unique_profile_per_application {
            indexes.push((&c.profiles, index(&["user_id", "application_id"], true)?));
        }
        for (collection, spec) in indexes {
            store.ensure_index(collection, &spec).await?;
        }
        backfill_name_keys(&store, &c).await?;
        let keys = load_token_keys(&store, &c, &config).await?;
        let passwords = PasswordPool::new(config.password_workers, config.password_queue)?;
        let throttle = LoginThrottle::new(config.login_throttle.clone());
        let service = IdentityService {
            store,
            c,
            config,
            keys,
            passwords,
            throttle,
            verifiers: RwLock::new(HashMap::new()),
        };
        service.register_verifier(Arc::new(DeviceVerifier));
        service.register_verifier(Arc::new(CustomVerifier));
        service.register_verifier(Arc::new(EmailVerifier));
        Ok(service)
    }

    /// The service's settings.
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// Adds (or replaces) the verifier of its scheme: how a new login method
    /// (a social provider) plugs in.
    pub fn register_verifier(&self, verifier: Arc<dyn IdentityVerifier>) {
        let mut verifiers = self.verifiers.write().unwrap_or_else(|e| e.into_inner());
        verifiers.insert(verifier.scheme().to_owned(), verifier);
    }

    /// The verifier of `scheme`.
    pub fn verifier(&self, scheme: &str) -> Result<Arc<dyn IdentityVerifier>> {
        let verifiers = self.verifiers.read().unwrap_or_else(|e| e.into_inner());
        verifiers
            .get(scheme)
            .cloned()
            .ok_or_else(|| unknown_scheme(scheme))
    }

    /// Creates the `root` superuser if the store has no superuser and no
    /// `root` yet (first start). Safe to run on several nodes at once: the
    /// unique name decides which one creates it.
    pub async fn bootstrap(&self) -> Result<Option<Bootstrap>> {
        let superusers = self
            .store
            .count(&self.c.users, &Filter::eq("level", Level::Superuser.as_str())?)
            .await?;
        if superusers > 0 || self.find_user_by_name("root").await?.is_some() {
            return Ok(None);
        }
        let (password, generated) = match &self.config.root_password {
            Some(p) => (p.clone(), None),
            None => {
                let p = Secret::new(random_token(18)?);
                (p.clone(), Some(p))
            }
        };
        let created = self
            .create_user(NewUser {
                name: "root".into(),
                password: Some(password.expose().to_owned()),
                level: Level::Superuser,
                ..NewUser::default()
            })
            .await;
        match created {
            Ok(user) => Ok(Some(Bootstrap {
                user,
                generated_password: generated,
            })),
            // Another node bootstrapped first.
            Err(IdentityError::AlreadyExists(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---------------------------------------------------------------- users

    /// The user with this id.
    pub async fn user(&self, id: &str) -> Result<User> {
        match self.store.get(&self.c.users, id).await? {
            Some(doc) => parse(doc),
            None => Err(IdentityError::not_found("User not found.")),
        }
    }

    /// The user and its password hash.
    async fn user_with_hash(&self, id: &str) -> Result<Option<(User, Option<String>)>> {
        match self.store.get(&self.c.users, id).await? {
            Some(doc) => Ok(Some(split_hash(doc)?)),
            None => Ok(None),
        }
    }

    /// The user with this name, in any case or spelling (`ROOT` finds
    /// `root`; see [`validate::username_key`]).
    pub async fn find_user_by_name(&self, name: &str) -> Result<Option<User>> {
        self.user_doc_by_name(name).await?.map(parse).transpose()
    }

    /// The user document named `name`. The exact name first: an account
    /// made before names were unique by key may share its key with another
    /// (its own key then has a suffix), and its exact name still finds it.
    async fn user_doc_by_name(&self, name: &str) -> Result<Option<Value>> {
        if let Some(doc) = self
            .store
            .find_one(&self.c.users, &Filter::eq("name", name)?)
            .await?
        {
            return Ok(Some(doc));
        }
        let key = validate::username_key(name);
        Ok(self
            .store
            .find_one(&self.c.users, &Filter::eq(NAME_KEY, key)?)
            .await?)
    }

    /// The user document with this email, normalized as on sign-up (none for
    /// an invalid address).
    async fn user_doc_by_email(&self, email: &str) -> Result<Option<Value>> {
        let Ok(email) = validate::email(email) else {
            return Ok(None);
        };
        Ok(self
            .store
            .find_one(&self.c.users, &Filter::eq("email", email)?)
            .await?)
    }

    /// The user with this email, in any spelling (see [`validate::email`]).
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.user_doc_by_email(email).await?.map(parse).transpose()
    }

    /// The user document a password login names: a login with `@` is an
    /// email and only an email (no name has one), anything else a name.
    async fn user_doc_by_login(&self, login: &str) -> Result<Option<Value>> {
        if login.contains('@') {
            self.user_doc_by_email(login).await
        } else {
            self.user_doc_by_name(login).await
        }
    }

    /// Logs in with a name or email and a password (the `/api/rest` session
    /// and portal logins). Unknown logins and wrong passwords fail alike, in
    /// about the same time; throttled ones fail before any hashing.
    pub async fn login_password(&self, login: &str, password: &str, client: Option<IpAddr>) -> Result<User> {
        let doc = self.user_doc_by_login(login).await?;
        let found = doc.map(split_hash).transpose()?;
        // A known account is throttled under its id whichever login named it.
        let account = found.as_ref().map_or(login, |(user, _)| user.id.as_str());
        let phc = found.as_ref().and_then(|(_, h)| h.clone());
        let matches = self.check_password(account, client, password, phc).await?;
        match found {
            Some((user, Some(_))) if matches => {
                if user.banned {
                    return Err(IdentityError::banned());
                }
                Ok(user)
            }
            _ => Err(IdentityError::invalid_credentials()),
        }
    }

    /// Nakama's username login (`authenticate/email` without an email): an
    /// existing account by its name and password, never a new one. Checked
    /// and throttled like the email login, under the account's id. As in
    /// Nakama, an unknown name is "not found" (names are public: `GET
    /// /v2/user` finds users by them), and an account without a password
    /// fails like a wrong password.
    pub async fn login_username(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<User> {
        validate::password(password)?;
        if username.is_empty() {
            return Err(IdentityError::invalid(
                "Username is required when email address is not supplied.",
            ));
        }
        let name = validate::username(username)?;
        let Some((user, phc)) = self.user_doc_by_name(&name).await?.map(split_hash).transpose()? else {
            return Err(IdentityError::account_not_found());
        };
        if !self.check_password(&user.id, client, password, phc).await? {
            return Err(IdentityError::invalid_credentials());
        }
        if user.banned {
            return Err(IdentityError::banned());
        }
        Ok(user)
    }

    /// Whether `password` matches `phc` (never without one), throttled per
    /// `account` and `client`: a throttled attempt fails before hashing,
    /// a wrong password counts, a right one clears the account's failures.
    async fn check_password(
        &self,
        account: &str,
        client: Option<IpAddr>,
        password: &str,
        phc: Option<String>,
    ) -> Result<bool> {
        let attempt = self.throttle.begin(account, client)?;
        match self.passwords.verify(password.to_owned(), phc).await {
            Ok(true) => {
                attempt.succeeded();
                Ok(true)
            }
            // Dropping the attempt leaves the failure counted.
            Ok(false) => Ok(false),
            Err(e @ IdentityError::Busy { .. }) => {
                attempt.abandoned();
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a user from scratch (sign-up, administration, bootstrap). An
    /// email becomes an unverified `email` identity too.
    pub async fn create_user(&self, new: NewUser) -> Result<User> {
        let name = validate::username(&new.name)?;
        let email = new.email.as_deref().map(validate::email).transpose()?;
        if let Some(display_name) = &new.display_name {
            validate::user_text("display_name", display_name)?;
        }
        let hash = match new.password {
            Some(p) => {
                validate::password(&p)?;
                Some(self.passwords.hash(p).await?)
            }
            None => None,
        };
        let now = now_ms();
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            email: email.clone(),
            level: new.level,
            display_name: new.display_name.filter(|d| !d.is_empty()),
            avatar_url: None,
            lang_tag: None,
            location: None,
            timezone: None,
            metadata: empty_object(),
            banned: false,
            banned_at: None,
            created: now,
            updated: now,
        };
        let mut ops = Vec::new();
        if let Some(email) = &email {
            ops.push(self.insert_identity(&user.id, scheme::EMAIL, email, Verification::Unverified, now)?);
        }
        ops.push(WriteOp::Insert {
            collection: self.c.users.clone(),
            document: user_doc(&user, hash.as_deref())?,
        });
        match atomic(&self.store, ops).await {
            Ok(()) => Ok(user),
            Err(e) if duplicate_in(&e).is_some() => {
                Err(self.explain_duplicate(&e, &user.name, "Email").await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Turns a duplicate-key conflict on creating or changing a user into
    /// the client's error: the name, or else the identity/email, is taken.
    async fn explain_duplicate(&self, e: &StoreError, name: &str, label: &str) -> Result<IdentityError> {
        let on_identities = duplicate_in(e) == Some(self.c.identities.physical());
        if !on_identities && self.find_user_by_name(name).await?.is_some() {
            return Ok(IdentityError::username_in_use());
        }
        Ok(IdentityError::AlreadyExists(format!(
            "{label} is already in use."
        )))
    }

    /// Users whose name or email starts with `prefix` (all users without
    /// one), by name. Superusers only.
    pub async fn search_users(
        &self,
        actor: &User,
        prefix: Option<&str>,
        offset: u64,
        count: u64,
    ) -> Result<Page<User>> {
        require_superuser(actor)?;
        let filter = match prefix.filter(|p| !p.is_empty()) {
            None => Filter::all(),
            Some(p) => {
                // Strings compare by UTF-8 bytes: [p, p + U+10FFFF) is "starts with p".
                let upper = format!("{p}\u{10FFFF}");
                let key = validate::username_key(p);
                let upper_key = format!("{key}\u{10FFFF}");
                let lower_email = p.to_lowercase();
                let upper_email = format!("{lower_email}\u{10FFFF}");
                Filter::parse(&json!({"$or": [
                    {"name": {"$gte": p, "$lt": upper}},
                    {NAME_KEY: {"$gte": key, "$lt": upper_key}},
                    {"email": {"$gte": lower_email, "$lt": upper_email}},
                ]}))?
            }
        };
        page(&*self.store, &self.c.users, filter, "name", offset, count).await
    }

    /// Changes a user. The user themself or a superuser; only a superuser
    /// changes levels and bans. A ban revokes the user's sessions and tokens.
    /// Users changing their own password or email must give their current
    /// password (if they have one); a change of either ends every session of
    /// the user. Use [`IdentityService::update_user_as`] to keep the caller's.
    pub async fn update_user(&self, actor: &User, id: &str, update: UserUpdate) -> Result<User> {
        self.update_user_keeping(actor, None, id, update).await
    }

    /// [`IdentityService::update_user`] by the caller of a request: a change
    /// of the caller's own password or email ends their *other* sessions and
    /// keeps the one they made it with.
    pub async fn update_user_as(&self, caller: &Caller, id: &str, update: UserUpdate) -> Result<User> {
        self.update_user_keeping(&caller.user, Some(&caller.session), id, update)
            .await
    }

    async fn update_user_keeping(
        &self,
        actor: &User,
        keep: Option<&CallerSession>,
        id: &str,
        update: UserUpdate,
    ) -> Result<User> {
        require_self_or_superuser(actor, id)?;
        if (update.level.is_some() || update.banned.is_some()) && actor.level != Level::Superuser {
            return Err(IdentityError::PermissionDenied(
                "Only a superuser may change a user's level or ban a user.".into(),
            ));
        }
        let (current, phc) = self
            .user_with_hash(id)
            .await?
            .ok_or_else(|| IdentityError::not_found("User not found."))?;
        let new_email = update.email.as_deref().map(validate::email).transpose()?;
        let changes_credentials = update.password.is_some()
            || new_email
                .as_deref()
                .is_some_and(|e| current.email.as_deref() != Some(e));
        // A stolen session must not be enough to take the account over; a
        // superuser acting on another account is the operator's decision.
        if changes_credentials && actor.id == id && phc.is_some() {
            let given = update.current_password.as_deref().unwrap_or_default();
            if given.is_empty() {
                return Err(IdentityError::invalid(
                    "The current password is required to change the password or email.",
                ));
            }
            if !self.check_password(id, None, given, phc).await? {
                return Err(IdentityError::invalid("The current password is wrong."));
            }
        }
        let now = now_ms();
        let mut set = Map::new();
        let mut unset = Map::new();
        let mut ops = Vec::new();
        let mut name = current.name.clone();
        if let Some(n) = &update.name {
            name = validate::username(n)?;
            set.insert("name".into(), json!(name));
            set.insert(NAME_KEY.into(), json!(validate::username_key(&name)));
        }
        for (field, value) in [
            ("display_name", &update.display_name),
            ("avatar_url", &update.avatar_url),
            ("lang_tag", &update.lang_tag),
            ("location", &update.location),
            ("timezone", &update.timezone),
        ] {
            match value.as_deref() {
                Some("") => {
                    unset.insert(field.into(), json!(""));
                }
                Some(v) => {
                    validate::user_text(field, v)?;
                    set.insert(field.into(), json!(v));
                }
                None => {}
            }
        }
        if let Some(metadata) = update.metadata {
            validate::metadata(&metadata)?;
            set.insert("metadata".into(), metadata);
        }
        // The server must always keep a superuser who can log in: a restart
        // creates none once one ever existed.
        let stays_superuser =
            update.level.is_none_or(|l| l == Level::Superuser) && update.banned != Some(true);
        let steps_down = current.level == Level::Superuser && !current.banned && !stays_superuser;
        if steps_down {
            // Checked again in the batch, so two superusers demoting each
            // other at once can't both pass.
            ops.extend(self.other_superuser_required(id).await?);
        }
        if let Some(p) = update.password {
            validate::password(&p)?;
            set.insert("password_hash".into(), json!(self.passwords.hash(p).await?));
        }
        if let Some(level) = update.level {
            set.insert("level".into(), json!(level));
        }
        if let Some(banned) = update.banned {
            set.insert("banned".into(), json!(banned));
            if banned && !current.banned {
                set.insert("banned_at".into(), json!(now));
            } else if !banned {
                unset.insert("banned_at".into(), json!(""));
            }
        }
        if let Some(email) = new_email
            && current.email.as_deref() != Some(email.as_str())
        {
            ops.push(self.insert_identity(id, scheme::EMAIL, &email, Verification::Unverified, now)?);
            if let Some(old) = &current.email {
                ops.push(self.delete_identity(id, scheme::EMAIL, old)?);
            }
            set.insert("email".into(), json!(email));
        }
        set.insert("updated".into(), json!(now));
        let mut doc = Map::new();
        doc.insert("$set".into(), Value::Object(set));
        if !unset.is_empty() {
            doc.insert("$unset".into(), Value::Object(unset));
        }
        ops.push(update_by_id(
            &self.c.users,
            id,
            Update::parse(&Value::Object(doc))?,
        ));
        match atomic(&self.store, ops).await {
            Ok(()) => {}
            Err(e) if duplicate_in(&e).is_some() => {
                // Only a changed name can collide on the name index.
                let changed_name = if name != current.name { name.as_str() } else { "" };
                return Err(self.explain_duplicate(&e, changed_name, "Email").await?);
            }
            Err(StoreError::Conflict(Conflict::Precondition { op_index: 0, .. })) if steps_down => {
                return Err(last_superuser());
            }
            Err(e) if is_precondition(&e) => return Err(IdentityError::not_found("User not found.")),
            Err(e) => return Err(e.into()),
        }
        if update.banned == Some(true) {
            self.revoke_all(id).await?;
        } else if changes_credentials {
            match keep.filter(|_| actor.id == id) {
                Some(session) => self.revoke_other_sessions(id, session).await?,
                None => self.revoke_all(id).await?,
            }
        }
        self.user(id).await
    }

    /// Deletes a user: the user themself or a superuser. Its identities
    /// (so the same device id, custom id or email makes a fresh account
    /// afterwards), its profiles and the user go in one all-or-nothing
    /// batch; then every session and token of the user is revoked. The last
    /// superuser can't be deleted (the same rule as demoting or banning it).
    ///
    /// The batch deletes the user only at the version it read: a link,
    /// unlink or update of the user meanwhile (each writes the user
    /// document) makes it read again, so no identity added concurrently is
    /// left pointing to a deleted user. Identities go before the user, so
    /// even the one-by-one fallback of a store without transactions never
    /// leaves such an identity behind.
    pub async fn delete_user(&self, actor: &User, id: &str) -> Result<()> {
        require_self_or_superuser(actor, id)?;
        for _ in 0..8 {
            let Some(doc) = self.store.get(&self.c.users, id).await? else {
                return Err(IdentityError::not_found("User not found."));
            };
            let version = doc
                .get(elements_store::VERSION)
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let user: User = parse(doc)?;
            let mut ops = Vec::new();
            let last_superuser_guarded = user.level == Level::Superuser && !user.banned;
            if last_superuser_guarded {
                ops.extend(self.other_superuser_required(id).await?);
            }
            for identity in self.identities_of(id).await? {
                ops.push(self.delete_identity(id, &identity.scheme, &identity.id)?);
            }
            let profiles = self
                .store
                .find(&self.c.profiles, &Query::new(Filter::eq("user_id", id)?))
                .await?;
            for profile in profiles {
                if let Some(profile_id) = profile.get("_id").and_then(Value::as_str) {
                    ops.push(WriteOp::Delete {
                        collection: self.c.profiles.clone(),
                        filter: Filter::by_id(profile_id),
                        require_match: false,
                    });
                }
            }
            ops.push(WriteOp::Delete {
                collection: self.c.users.clone(),
                filter: Filter::by_id(id).and(Filter::eq(elements_store::VERSION, version)?),
                require_match: true,
            });
            match atomic(&self.store, ops).await {
                Ok(()) => {
                    // A profile made while the batch ran, and any token or
                    // session, issued before or meanwhile.
                    self.store
                        .delete_many(&self.c.profiles, &Filter::eq("user_id", id)?)
                        .await?;
                    self.revoke_all(id).await?;
                    return Ok(());
                }
                Err(StoreError::Conflict(Conflict::Precondition { op_index: 0, .. }))
                    if last_superuser_guarded =>
                {
                    return Err(last_superuser());
                }
                // The user changed (or went) since it was read: read again.
                Err(e) if is_precondition(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IdentityError::internal(
            "could not delete the user (too much contention)",
        ))
    }

    /// The batch steps that let a superuser stop being one (demoted, banned
    /// or deleted) only while another active superuser remains: that one
    /// required (op 0, so a failure there is [`last_superuser`]), and a
    /// write of one guard document, so two such batches at once conflict
    /// (two transactions that only read each other's superuser would not:
    /// write skew). Fails at once when no other superuser exists.
    async fn other_superuser_required(&self, id: &str) -> Result<Vec<WriteOp>> {
        let others = Filter::parse(&json!({
            "level": Level::Superuser.as_str(),
            "banned": {"$ne": true},
            "_id": {"$ne": id},
        }))?;
        if self.store.count(&self.c.users, &others).await? == 0 {
            return Err(last_superuser());
        }
        Ok(vec![
            WriteOp::Require {
                collection: self.c.users.clone(),
                filter: others,
                exists: true,
            },
            WriteOp::Update {
                collection: self.c.settings.clone(),
                filter: Filter::by_id(SUPERUSER_GUARD_DOC),
                update: Update::parse(&json!({"$inc": {"changes": 1}}))?,
                upsert: true,
                require_match: false,
            },
        ])
    }

    // ----------------------------------------------------------- identities

    /// Authenticates with a credential of `scheme` through its verifier, then
    /// finds or creates the user (Nakama's authenticate calls).
    /// `client` is the caller's address, for throttling password guesses.
    pub async fn authenticate(
        &self,
        scheme: &str,
        credential: &Credential,
        create: bool,
        username: Option<String>,
        client: Option<IpAddr>,
    ) -> Result<AuthOutcome> {
        let identity = self.verifier(scheme)?.verify(credential).await?;
        self.find_or_create_user(FindOrCreate {
            identity,
            create,
            username,
            client,
        })
        .await
    }

    /// Finds the user behind `(scheme, id)`, or creates user and identity
    /// together. Race-free: the identity's `_id` is `<scheme>:<id>`, inserted
    /// in the same all-or-nothing batch as the user, so of any number of
    /// concurrent first logins exactly one creates the account and the others
    /// find it. With a password in the identity, an existing account must
    /// have it, and a new account gets it.
    pub async fn find_or_create_user(&self, request: FindOrCreate) -> Result<AuthOutcome> {
        let v = &request.identity;
        let username = request.username.as_deref().map(validate::username).transpose()?;
        let key = Identity::key_of(&v.scheme, &v.id);
        let mut password_hash: Option<String> = None;
        // A provider's email fills a new account unless another account
        // has it; then the account is created without one (the provider
        // vouched for the player, not for that account).
        let mut email = if v.scheme == scheme::EMAIL {
            v.email.clone()
        } else {
            v.email.as_deref().and_then(|e| validate::email(e).ok())
        };
        for _ in 0..8 {
            if let Some(doc) = self.store.get(&self.c.identities, &key).await? {
                let identity: Identity = parse(doc)?;
                let Some(doc) = self.store.get(&self.c.users, &identity.user_id).await? else {
                    // A deletion removes the user and its identities in one
                    // batch: if it came between the two reads, the identity
                    // is gone now too, and this login starts over (creating
                    // a new account, or finding none). Only an identity that
                    // is still there points to a missing user.
                    let again = self.store.get(&self.c.identities, &key).await?;
                    if again
                        .map(parse::<Identity>)
                        .transpose()?
                        .is_some_and(|i| i.user_id == identity.user_id)
                    {
                        return Err(IdentityError::internal(format!(
                            "identity {key} points to a missing user"
                        )));
                    }
                    continue;
                };
                let token_generation = crate::sessions::TokenState::generation_of(&doc)?;
                let (user, phc) = split_hash(doc)?;
                if let Some(password) = &v.password
                    && !self
                        .check_password(&user.id, request.client, password, phc)
                        .await?
                {
                    return Err(IdentityError::invalid_credentials());
                }
                if user.banned {
                    return Err(IdentityError::banned());
                }
                return Ok(AuthOutcome {
                    user,
                    created: false,
                    token_generation,
                });
            }
            if !request.create {
                return Err(IdentityError::account_not_found());
            }
            if password_hash.is_none()
                && let Some(password) = &v.password
            {
                password_hash = Some(self.passwords.hash(password.clone()).await?);
            }
            let name = match &username {
                Some(n) => n.clone(),
                None => validate::generate_username()?,
            };
            let now = now_ms();
            let user = User {
                id: uuid::Uuid::new_v4().to_string(),
                name,
                email: email.clone(),
                level: Level::User,
                display_name: provided("display_name", &v.display_name),
                avatar_url: provided("avatar_url", &v.avatar_url),
                lang_tag: None,
                location: None,
                timezone: None,
                metadata: empty_object(),
                banned: false,
                banned_at: None,
                created: now,
                updated: now,
            };
            // The identity goes first: its unique `_id` decides the race.
            let ops = vec![
                self.insert_identity(&user.id, &v.scheme, &v.id, v.status, now)?,
                WriteOp::Insert {
                    collection: self.c.users.clone(),
                    document: user_doc(&user, password_hash.as_deref())?,
                },
            ];
            match atomic(&self.store, ops).await {
                Ok(()) => {
                    return Ok(AuthOutcome {
                        user,
                        created: true,
                        token_generation: 0,
                    });
                }
                // Another login created the identity first: read it.
                Err(e) if duplicate_in(&e) == Some(self.c.identities.physical()) => continue,
                Err(e) if duplicate_in(&e).is_some() => {
                    if self.find_user_by_name(&user.name).await?.is_some() {
                        if username.is_some() {
                            return Err(IdentityError::username_in_use());
                        }
                        // A generated name collided: draw another.
                        continue;
                    }
                    if v.scheme != scheme::EMAIL && email.is_some() {
                        email = None;
                        continue;
                    }
                    return Err(IdentityError::AlreadyExists("Email is already in use.".into()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(IdentityError::internal(
            "could not find or create the account (too much contention)",
        ))
    }

    /// The identity `(scheme, id)`, if any user has it.
    pub async fn identity(&self, scheme: &str, id: &str) -> Result<Option<Identity>> {
        let doc = self
            .store
            .get(&self.c.identities, &Identity::key_of(scheme, id))
            .await?;
        doc.map(parse).transpose()
    }

    /// The user behind `(scheme, id)`, if any.
    pub async fn find_user_by_identity(&self, scheme: &str, id: &str) -> Result<Option<User>> {
        match self.identity(scheme, id).await? {
            Some(identity) => Ok(Some(self.user(&identity.user_id).await?)),
            None => Ok(None),
        }
    }

    /// Every identity of a user, by key.
    pub async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>> {
        let query = Query::new(Filter::eq("user_id", user_id)?).sort_asc("_id")?;
        self.store
            .find(&self.c.identities, &query)
            .await?
            .into_iter()
            .map(parse)
            .collect()
    }

    /// Sets the verification status of an identity.
    pub async fn set_verification_status(
        &self,
        scheme: &str,
        id: &str,
        status: Verification,
    ) -> Result<Identity> {
        let key = Identity::key_of(scheme, id);
        let update = Update::parse(&json!({"$set": {"status": status, "updated": now_ms()}}))?;
        match self
            .store
            .update_by_id(&self.c.identities, &key, &update, None)
            .await
        {
            Ok(doc) => parse(doc),
            Err(StoreError::NotFound(_)) => Err(IdentityError::not_found("Identity not found.")),
            Err(e) => Err(e.into()),
        }
    }

    /// Links a credential of `scheme` (checked by its verifier) to a user.
    /// Re-linking the user's own identifier is a no-op; one another account
    /// uses is "`<label>` is already in use.". An account has one email and
    /// one custom id, as in Nakama: linking another replaces it.
    pub async fn link(&self, user_id: &str, scheme: &str, credential: &Credential) -> Result<()> {
        let verifier = self.verifier(scheme)?;
        let mut identity = verifier.verify(credential).await?;
        if scheme == scheme::EMAIL && self.require_own_password(user_id, credential).await? {
            // The password given is the current one: nothing to re-hash.
            identity.password = None;
        }
        self.link_verified(user_id, &identity, verifier.label()).await
    }

    /// Nakama's email link and unlink replace or remove the account's email
    /// and password with a session token alone; a stolen token must not be
    /// enough for that. When the account has a password, the credential's
    /// password must be it (checked and throttled like a login). Returns
    /// whether the account has a password.
    async fn require_own_password(&self, user_id: &str, credential: &Credential) -> Result<bool> {
        let (_, phc) = self
            .user_with_hash(user_id)
            .await?
            .ok_or_else(IdentityError::account_not_found)?;
        let Some(phc) = phc else { return Ok(false) };
        let given = credential.password.as_deref().unwrap_or_default();
        if given.is_empty() || !self.check_password(user_id, None, given, Some(phc)).await? {
            return Err(IdentityError::invalid(
                "The account's current password is required to change or remove its email.",
            ));
        }
        Ok(true)
    }

    /// Links an email to a user (replacing the user's previous email), with a
    /// new password if given. For host services (e.g. the Email Verification
    /// Element), which may then set its verification status.
    pub async fn link_email(&self, user_id: &str, email: &str, password: Option<String>) -> Result<()> {
        let email = validate::email(email)?;
        if let Some(p) = &password {
            validate::password(p)?;
        }
        let identity = VerifiedIdentity {
            scheme: scheme::EMAIL.into(),
            id: email.clone(),
            status: Verification::Unverified,
            password,
            email: Some(email),
            ..VerifiedIdentity::default()
        };
        self.link_verified(user_id, &identity, "Email").await
    }

    /// Links an already verified identity to a user.
    pub async fn link_verified(&self, user_id: &str, v: &VerifiedIdentity, label: &str) -> Result<()> {
        let in_use = || IdentityError::AlreadyExists(format!("{label} is already in use."));
        let password_hash = match (&v.password, v.scheme == scheme::EMAIL) {
            (Some(p), true) => Some(self.passwords.hash(p.clone()).await?),
            _ => None,
        };
        for _ in 0..8 {
            if let Some(existing) = self.identity(&v.scheme, &v.id).await? {
                return if existing.user_id == user_id {
                    Ok(())
                } else {
                    Err(in_use())
                };
            }
            let user = self
                .user(user_id)
                .await
                .map_err(|_| IdentityError::account_not_found())?;
            let now = now_ms();
            let mut ops = vec![self.insert_identity(user_id, &v.scheme, &v.id, v.status, now)?];
            let mut set = Map::new();
            set.insert("updated".into(), json!(now));
            if v.scheme == scheme::EMAIL {
                // One email per account, as in Nakama: linking another replaces it.
                if let Some(old) = user.email.as_deref().filter(|old| *old != v.id) {
                    ops.push(self.delete_identity(user_id, scheme::EMAIL, old)?);
                }
                set.insert("email".into(), json!(v.id));
                if let Some(hash) = &password_hash {
                    set.insert("password_hash".into(), json!(hash));
                }
            }
            if v.scheme == scheme::CUSTOM {
                // One custom id per account, as in Nakama (its `custom_id`
                // column): linking another replaces it, in the same batch, so
                // the old one stops logging in exactly when the new one starts.
                for old in self.identities_of(user_id).await? {
                    if old.scheme == scheme::CUSTOM && old.id != v.id {
                        ops.push(self.delete_identity(user_id, scheme::CUSTOM, &old.id)?);
                    }
                }
            }
            ops.push(update_by_id(
                &self.c.users,
                user_id,
                Update::parse(&json!({"$set": set}))?,
            ));
            return match atomic(&self.store, ops).await {
                Ok(()) => Ok(()),
                Err(e) if duplicate_in(&e) == Some(self.c.identities.physical()) => {
                    // A concurrent link of the same id: fine if it was ours.
                    match self.identity(&v.scheme, &v.id).await? {
                        Some(existing) if existing.user_id == user_id => Ok(()),
                        _ => Err(in_use()),
                    }
                }
                Err(e) if duplicate_in(&e).is_some() => Err(in_use()),
                // The identity being replaced went meanwhile (a concurrent
                // link or unlink): read the account again. A user that is
                // gone is not found then.
                Err(e) if is_precondition(&e) => continue,
                Err(e) => Err(e.into()),
            };
        }
        Err(IdentityError::internal(
            "could not link the identity (too much contention)",
        ))
    }

    /// Unlinks `(scheme, id)` from a user, refusing to remove the user's last
    /// identifier. The check and the delete are one batch that also writes
    /// the user document, so two concurrent unlinks of a user's last two
    /// identifiers conflict instead of both passing.
    pub async fn unlink(&self, user_id: &str, scheme: &str, credential: &Credential) -> Result<()> {
        let id = self.verifier(scheme)?.identify(credential).await?;
        if scheme == scheme::EMAIL {
            self.require_own_password(user_id, credential).await?;
        }
        let now = now_ms();
        let mut update = json!({"$set": {"updated": now}});
        if scheme == scheme::EMAIL {
            update["$unset"] = json!({"email": "", "password_hash": ""});
        }
        let ops = vec![
            self.delete_identity(user_id, scheme, &id)?,
            WriteOp::Require {
                collection: self.c.identities.clone(),
                filter: Filter::eq("user_id", user_id)?,
                exists: true,
            },
            update_by_id(&self.c.users, user_id, Update::parse(&update)?),
        ];
        match atomic(&self.store, ops).await {
            Ok(()) => Ok(()),
            // Not linked to this user, or the last one: Nakama answers both alike.
            Err(e) if is_precondition(&e) => Err(IdentityError::last_identifier()),
            Err(e) => Err(e.into()),
        }
    }

    fn insert_identity(
        &self,
        user_id: &str,
        scheme: &str,
        id: &str,
        status: Verification,
        now: i64,
    ) -> Result<WriteOp> {
        let identity = Identity {
            key: Identity::key_of(scheme, id),
            scheme: scheme.into(),
            id: id.into(),
            user_id: user_id.into(),
            status,
            created: now,
            updated: now,
        };
        Ok(WriteOp::Insert {
            collection: self.c.identities.clone(),
            document: to_doc(&identity)?,
        })
    }

    fn delete_identity(&self, user_id: &str, scheme: &str, id: &str) -> Result<WriteOp> {
        Ok(WriteOp::Delete {
            collection: self.c.identities.clone(),
            filter: Filter::by_id(&Identity::key_of(scheme, id)).and(Filter::eq("user_id", user_id)?),
            require_match: true,
        })
    }

    /// Revokes every session and token of a user (ban, logout everywhere).
    pub async fn revoke_all(&self, user_id: &str) -> Result<()> {
        self.revoke_all_tokens(user_id, None).await
    }
}

/// A user as a store document, with its password hash.
fn user_doc(user: &User, password_hash: Option<&str>) -> Result<Value> {
    let mut doc = to_doc(user)?;
    if let Some(m) = doc.as_object_mut() {
        m.insert(NAME_KEY.into(), json!(validate::username_key(&user.name)));
        if let Some(hash) = password_hash {
            m.insert("password_hash".into(), json!(hash));
        }
    }
    Ok(doc)
}

/// Gives every user stored before names were unique by key its
/// [`NAME_KEY`], so old accounts are found in any case too (run at every
/// start; a no-op once done, and safe on several nodes at once). Two old
/// accounts whose names now share a key (`ROOT` and `root`) both keep
/// working: the later one gets `<key>@<id>`, which no new name's key can
/// equal (names have no `@`), and its exact name still finds it.
async fn backfill_name_keys(store: &Arc<dyn DocumentStore>, c: &Collections) -> Result<()> {
    let missing = Filter::parse(&json!({NAME_KEY: {"$exists": false}}))?;
    loop {
        let batch = store
            .find(&c.users, &Query::new(missing.clone()).sort_asc("_id")?.limit(100))
            .await?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut progress = false;
        for doc in batch {
            let (Some(id), Some(name)) = (
                doc.get("_id").and_then(Value::as_str),
                doc.get("name").and_then(Value::as_str),
            ) else {
                return Err(IdentityError::internal("a stored user lacks _id or name"));
            };
            let key = validate::username_key(name);
            // Only where still missing: another node may be at it too.
            let filter = Filter::by_id(id).and(missing.clone());
            let set = |key: &str| Update::parse(&json!({"$set": {NAME_KEY: key}}));
            match store
                .find_one_and_update(&c.users, &filter, &set(&key)?, &FindAndModify::default())
                .await
            {
                Ok(_) => progress = true,
                Err(e) if e.is_duplicate_key() => {
                    tracing::warn!(
                        user_id = id,
                        "user's name differs only in case or spelling from another's; keeping both"
                    );
                    let apart = format!("{key}@{id}");
                    store
                        .find_one_and_update(&c.users, &filter, &set(&apart)?, &FindAndModify::default())
                        .await?;
                    progress = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !progress {
            return Err(IdentityError::internal("could not backfill user name keys"));
        }
    }
}

/// A profile field a provider gave, if it fits the field's limits: a
/// provider's odd data never fails a login, it is just not copied.
fn provided(field: &str, value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .filter(|v| !v.is_empty() && validate::user_text(field, v).is_ok())
        .map(str::to_owned)
}

/// A user document split into the user and its password hash.
fn split_hash(doc: Value) -> Result<(User, Option<String>)> {
    let hash = doc
        .get("password_hash")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((parse(doc)?, hash))
}

/// Why the last superuser can't step down.
fn last_superuser() -> IdentityError {
    IdentityError::PermissionDenied(
        "This is the last superuser: promote another user before demoting, banning or deleting it.".into(),
    )
}

/// Fails unless `actor` is a superuser.
pub fn require_superuser(actor: &User) -> Result<()> {
    if actor.level == Level::Superuser {
        Ok(())
    } else {
        Err(IdentityError::PermissionDenied(
            "This requires a superuser.".into(),
        ))
    }
}

/// Fails unless `actor` is `owner_id` or a superuser.
pub fn require_self_or_superuser(actor: &User, owner_id: &str) -> Result<()> {
    if actor.id == owner_id || actor.level == Level::Superuser {
        Ok(())
    } else {
        Err(IdentityError::PermissionDenied(
            "Only the owner or a superuser may do this.".into(),
        ))
    }
}

/// The configured token keys, or the generated ones kept in the store
/// (created once; a concurrent first start on another node reads the winner's).
async fn load_token_keys(
    store: &Arc<dyn DocumentStore>,
    c: &Collections,
    config: &IdentityConfig,
) -> Result<TokenKeys> {
    if let (Some(s), Some(r)) = (&config.token_key, &config.refresh_token_key) {
        return TokenKeys::new(s, r);
    }
    let stored = match store.get(&c.settings, TOKEN_KEYS_DOC).await? {
        Some(doc) => doc,
        None => {
            let doc = json!({
                "_id": TOKEN_KEYS_DOC,
                "session": random_token(32)?,
                "refresh": random_token(32)?,
            });
            match store.insert(&c.settings, doc).await {
                Ok(doc) => doc,
                Err(e) if e.is_duplicate_key() => store
                    .get(&c.settings, TOKEN_KEYS_DOC)
                    .await?
                    .ok_or_else(|| IdentityError::internal("token keys vanished"))?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let key = |field: &str| {
        stored
            .get(field)
            .and_then(Value::as_str)
            .map(Secret::new)
            .ok_or_else(|| IdentityError::internal(format!("stored token keys lack `{field}`")))
    };
    let session = config
        .token_key
        .clone()
        .map(Ok)
        .unwrap_or_else(|| key("session"))?;
    let refresh = config
        .refresh_token_key
        .clone()
        .map(Ok)
        .unwrap_or_else(|| key("refresh"))?;
    TokenKeys::new(&session, &refresh)
}
