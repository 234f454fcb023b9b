//! `elements:platform/identity`: users, identities, profiles and sessions for
//! Elements, over the same [`IdentityService`] as `/api/rest` and `/v2`, so a
//! player created by an Element is the same user everywhere. Entities cross
//! the WIT as JSON text of `elements-wire`'s shapes, which the SDK reads with
//! those very types (JSON text, not WIT records, so the shapes can gain
//! fields within `0.2.x` without breaking compiled Elements).
//!
//! The caller of a request is resolved from the credentials the HTTP layer
//! took from the request (`Authorization: Bearer` or
//! `Elements-SessionSecret`), never from anything the Element passes in.
//!
//! Every call is scoped by the Element's [`Grants`]: it finds or creates
//! users only through schemes it was granted (`identity.scheme:SCHEME`),
//! reaches only the calling user and users who have an identity of one of
//! those schemes, creates sessions only with `identity.session`, for users
//! it reaches and never for a SUPERUSER, and changes verification only with
//! `identity.verify:SCHEME`.
//!
//! `elements:platform/credentials` tells an Element which of three a
//! request is: without credentials, with a user's, or with credentials
//! that name no user (forged, expired, revoked, of a banned or deleted
//! user), the last one error without saying which, so that nothing about a
//! token's validity leaks beyond "invalid or expired". `identity.caller`
//! keeps its 0.2.0 answer, none for both, for Elements built before.
//!
//! `elements:platform/verification` lives here too: with
//! `identity.request-verification:email` an Element asks for an address to
//! be verified, and the host publishes
//! [`EMAIL_VERIFICATION_REQUESTED`] for the Email Verification Element,
//! which sends the link under its own bounds. An event rather than a call
//! into that Element's route: the host needs no route to it, the request
//! can't impersonate a user's session, the sender keeps the one copy of the
//! flow (tokens, throttles, template), and a deployment without it simply
//! sends nothing. Names under `dev.getelements.` need a grant the operator
//! approves to publish, so no Element forges the event by itself.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use elements_identity::{
    Application, Caller, CallerSession, FindOrCreate, IdentityError, IdentityService, Level, Profile, User,
    Verification, VerifiedIdentity,
};
use serde::Serialize;
use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::credentials as wit_credentials;
use super::elements::platform::identity::{self as wit, Error};
use super::elements::platform::verification as wit_verification;
use super::{DeployContext, HostService, ServiceConfigError, ServiceDeps, ServicesError};
use crate::events::{Chain, EventBus, MAX_DEPTH};
use crate::instance::{RequestInfo, RequestState};
use elements_config::grants::{Grant, Grants, MissingGrant};
use elements_wire as wire;

/// Longest session an Element may create: 90 days.
const MAX_SESSION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The event the Email Verification Element handles: another Element
/// asked for an address to be verified.
pub const EMAIL_VERIFICATION_REQUESTED: &str = "dev.getelements.verification.email_requested";

/// Most verification requests one request (or event delivery) makes: each
/// may send an email.
const MAX_VERIFICATION_REQUESTS: u32 = 10;

/// The identity service.
pub struct IdentityHostService {
    service: Arc<IdentityService>,
    bus: Arc<EventBus>,
}

impl IdentityHostService {
    /// Over the server's identity service, publishing verification
    /// requests on `bus`.
    pub fn new(service: Arc<IdentityService>, bus: Arc<EventBus>) -> IdentityHostService {
        IdentityHostService { service, bus }
    }
}

/// One Element's state: its grants and name.
pub struct DeployedIdentity {
    grants: Arc<Grants>,
    element: Arc<str>,
}

/// One instance's view: the service, the request's credential and the
/// Element's grants.
pub struct Identities {
    service: Arc<IdentityService>,
    credential: Option<Arc<str>>,
    grants: Arc<Grants>,
    /// The calling user, once resolved.
    caller: Option<Resolved>,
    /// Users this instance already found it may reach.
    reached: BTreeSet<String>,
    /// Where verification requests go.
    bus: Arc<EventBus>,
    /// The Element's name, named in the verification requests it makes.
    element: Arc<str>,
    /// The chain of the event being handled, if any; requests start their own.
    chain: Option<Chain>,
    /// Verification requests made so far by this instance.
    verification_requests: u32,
    /// What this request already read or wrote, so a login that names the
    /// same user, profile and application in three calls reads each once.
    seen: Seen,
}

/// Users, profiles and applications one request has read or written: as
/// fresh as the request itself. Each list is bounded, so an Element looping
/// over many ids gains nothing but lookups that miss.
#[derive(Default)]
struct Seen {
    users: Vec<User>,
    profiles: Vec<Profile>,
    applications: Vec<Application>,
}

/// Most entries of each kind [`Seen`] keeps.
const MAX_SEEN: usize = 8;

/// Puts `item` in `list` in place of the entry with the same key, or adds
/// it (dropping the oldest when full).
fn remember<T>(list: &mut Vec<T>, item: T, key: impl Fn(&T) -> &str) {
    if let Some(i) = list.iter().position(|e| key(e) == key(&item)) {
        list[i] = item;
        return;
    }
    if list.len() >= MAX_SEEN {
        list.remove(0);
    }
    list.push(item);
}

/// What a request's credentials came to.
enum Resolved {
    /// The request carried none.
    Anonymous,
    /// It carried some that name no user.
    Invalid,
    /// They name this user.
    User(Box<Caller>),
}

impl HostService for IdentityHostService {
    type Deployed = DeployedIdentity;
    type Instance = Identities;

    fn start(deps: &ServiceDeps) -> Result<IdentityHostService, ServicesError> {
        Ok(IdentityHostService::new(
            deps.identity.clone(),
            deps.events.clone(),
        ))
    }

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Identities>>(linker, |state| {
            &mut state.services.identity
        })?;
        wit_verification::add_to_linker::<RequestState, HasSelf<Identities>>(linker, |state| {
            &mut state.services.identity
        })?;
        wit_credentials::add_to_linker::<RequestState, HasSelf<Identities>>(linker, |state| {
            &mut state.services.identity
        })
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<DeployedIdentity, ServiceConfigError> {
        Ok(DeployedIdentity {
            grants: element.grants.clone(),
            element: element.name.clone(),
        })
    }

    fn prepare(&self, deployed: &DeployedIdentity, request: &RequestInfo) -> Identities {
        Identities {
            service: self.service.clone(),
            credential: request.credential.clone(),
            grants: deployed.grants.clone(),
            caller: None,
            reached: BTreeSet::new(),
            bus: self.bus.clone(),
            element: deployed.element.clone(),
            chain: request.chain.clone(),
            verification_requests: 0,
            seen: Seen::default(),
        }
    }

    fn renew(&self, _deployed: &DeployedIdentity, instance: &mut Identities, request: &RequestInfo) {
        // Everything learnt about the last request's caller goes: the next
        // request may come from anyone.
        let Identities {
            service: _,
            credential,
            grants: _,
            caller,
            reached,
            bus: _,
            element: _,
            chain,
            verification_requests,
            seen,
        } = instance;
        *credential = request.credential.clone();
        *caller = None;
        reached.clear();
        *chain = request.chain.clone();
        *verification_requests = 0;
        *seen = Seen::default();
    }
}

fn forbidden(missing: MissingGrant) -> Error {
    Error::Forbidden(missing.to_string())
}

impl Identities {
    /// What the request's credentials come to, resolved once per instance.
    async fn resolve(&mut self) -> Result<&Resolved, Error> {
        if self.caller.is_none() {
            let resolved = match &self.credential {
                None => Resolved::Anonymous,
                Some(credential) => match self.service.resolve_credential(credential).await {
                    Ok(caller) => Resolved::User(Box::new(caller)),
                    // One answer for every reason, so that a client probing
                    // tokens learns nothing but "not valid".
                    Err(
                        IdentityError::Unauthenticated(_)
                        | IdentityError::NotFound(_)
                        | IdentityError::PermissionDenied(_),
                    ) => Resolved::Invalid,
                    Err(e) => return Err(to_wit(e)),
                },
            };
            self.caller = Some(resolved);
        }
        Ok(self.caller.as_ref().unwrap_or(&Resolved::Anonymous))
    }

    /// The calling user, if the request's credentials name one.
    async fn resolve_caller(&mut self) -> Result<Option<&Caller>, Error> {
        Ok(match self.resolve().await? {
            Resolved::User(caller) => Some(caller.as_ref()),
            Resolved::Anonymous | Resolved::Invalid => None,
        })
    }

    /// `Ok` when the Element may act on user `user_id`: the calling user,
    /// or one with an identity of a scheme the Element was granted.
    async fn reach(&mut self, user_id: &str) -> Result<(), Error> {
        if self.reached.contains(user_id) {
            return Ok(());
        }
        if self
            .resolve_caller()
            .await?
            .is_some_and(|caller| caller.user.id == user_id)
        {
            self.reached.insert(user_id.to_owned());
            return Ok(());
        }
        let schemes: BTreeSet<&str> = self.grants.schemes().collect();
        if !schemes.is_empty() {
            let identities = match self.service.identities_of(user_id).await {
                Ok(identities) => identities,
                Err(IdentityError::NotFound(_)) => Vec::new(),
                Err(e) => return Err(to_wit(e)),
            };
            if identities.iter().any(|i| schemes.contains(i.scheme.as_str())) {
                self.reached.insert(user_id.to_owned());
                return Ok(());
            }
        }
        // Same answer whether or not the user exists: nothing to probe.
        Err(Error::Forbidden(format!(
            "this Element does not reach user {user_id:?}: it reaches the calling user and users \
             with an identity of a scheme it was granted (identity.scheme:SCHEME)"
        )))
    }

    /// The user `user_id`, read once per request.
    async fn seen_user(&mut self, user_id: &str) -> Result<User, Error> {
        if let Some(user) = self.seen.users.iter().find(|u| u.id == user_id) {
            return Ok(user.clone());
        }
        let user = self.service.user(user_id).await.map_err(to_wit)?;
        remember(&mut self.seen.users, user.clone(), |u| &u.id);
        Ok(user)
    }

    /// The profile `profile_id` (whoever owns it), read once per request.
    async fn seen_profile(&mut self, profile_id: &str) -> Result<Profile, Error> {
        if let Some(profile) = self.seen.profiles.iter().find(|p| p.id == profile_id) {
            return Ok(profile.clone());
        }
        let profile = self.service.profile_as_system(profile_id).await.map_err(to_wit)?;
        remember(&mut self.seen.profiles, profile.clone(), |p| &p.id);
        Ok(profile)
    }

    /// The application with this id or name, read once per request.
    async fn seen_application(&mut self, id_or_name: &str) -> Result<Application, IdentityError> {
        if let Some(app) = self
            .seen
            .applications
            .iter()
            .find(|a| a.id == id_or_name || a.name == id_or_name)
        {
            return Ok(app.clone());
        }
        let app = self.service.application(id_or_name).await?;
        remember(&mut self.seen.applications, app.clone(), |a| &a.id);
        Ok(app)
    }

    /// `Ok` when the Element holds `identity.scheme:SCHEME` or `identity.verify:SCHEME`.
    fn may_read_scheme(&self, scheme: &str) -> Result<(), Error> {
        let read = Grant::IdentityScheme(scheme.to_owned());
        if self.grants.has(&read) || self.grants.has(&Grant::IdentityVerify(scheme.to_owned())) {
            Ok(())
        } else {
            Err(forbidden(MissingGrant(read.to_string())))
        }
    }
}

fn to_wit(error: IdentityError) -> Error {
    match error {
        IdentityError::NotFound(m) => Error::NotFound(m),
        IdentityError::AlreadyExists(m) => Error::Conflict(m),
        IdentityError::InvalidArgument(m) => Error::Invalid(m),
        IdentityError::PermissionDenied(m) => Error::Forbidden(m),
        IdentityError::Unavailable(m) | IdentityError::ProviderUnavailable(m) => Error::Unavailable(m),
        // Password threads saturated: as transient as a store outage.
        busy @ IdentityError::Busy { .. } => Error::Unavailable(busy.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

fn to_json(value: impl Serialize) -> Result<String, Error> {
    serde_json::to_string(&value).map_err(|e| Error::Internal(e.to_string()))
}

/// Verification statuses as WIT has them.
fn status(v: wit::Verification) -> Verification {
    match v {
        wit::Verification::Unverified => Verification::Unverified,
        wit::Verification::Pending => Verification::Pending,
        wit::Verification::Verified => Verification::Verified,
    }
}

impl wit::Host for Identities {
    async fn find_or_create_user(
        &mut self,
        scheme: String,
        id: String,
        username: Option<String>,
    ) -> Result<(String, bool), Error> {
        if scheme.is_empty() || id.is_empty() || scheme.len() > 128 || id.len() > 256 {
            return Err(Error::Invalid(
                "the scheme and id must be 1 to 128 and 1 to 256 bytes".into(),
            ));
        }
        self.grants
            .require(Grant::IdentityScheme(scheme.clone()))
            .map_err(forbidden)?;
        let outcome = self
            .service
            .find_or_create_user(FindOrCreate {
                identity: VerifiedIdentity {
                    scheme,
                    id,
                    status: Verification::Verified,
                    password: None,
                    email: None,
                    ..VerifiedIdentity::default()
                },
                create: true,
                username,
                client: None,
            })
            .await
            .map_err(to_wit)?;
        self.reached.insert(outcome.user.id.clone());
        remember(&mut self.seen.users, outcome.user.clone(), |u| &u.id);
        Ok((to_json(wire::User::from(outcome.user))?, outcome.created))
    }

    async fn user(&mut self, user_id: String) -> Result<String, Error> {
        self.reach(&user_id).await?;
        to_json(wire::User::from(self.seen_user(&user_id).await?))
    }

    async fn application(&mut self, name_or_id: String) -> Result<Option<String>, Error> {
        match self.seen_application(&name_or_id).await {
            Ok(app) => Ok(Some(to_json(wire::Application::from(app))?)),
            Err(IdentityError::NotFound(_)) => Ok(None),
            Err(e) => Err(to_wit(e)),
        }
    }

    async fn find_or_create_profile(
        &mut self,
        user_id: String,
        application: String,
    ) -> Result<(String, bool), Error> {
        self.reach(&user_id).await?;
        let application = self.seen_application(&application).await.map_err(to_wit)?;
        let (profile, created) = self
            .service
            .find_or_create_profile(&user_id, &application)
            .await
            .map_err(to_wit)?;
        remember(&mut self.seen.profiles, profile.clone(), |p| &p.id);
        Ok((to_json(wire::Profile::from(profile))?, created))
    }

    async fn update_profile(&mut self, profile_id: String, update: String) -> Result<String, Error> {
        let change: wire::ProfileUpdate = serde_json::from_str(&update)
            .map_err(|e| Error::Invalid(format!("the update is not a profile update: {e}")))?;
        let owner = self.seen_profile(&profile_id).await?.user_id;
        self.reach(&owner).await?;
        let profile = self
            .service
            .update_profile_as_system(&profile_id, change)
            .await
            .map_err(to_wit)?;
        remember(&mut self.seen.profiles, profile.clone(), |p| &p.id);
        to_json(wire::Profile::from(profile))
    }

    async fn create_session(
        &mut self,
        user_id: String,
        profile_id: Option<String>,
        expiry_seconds: u64,
    ) -> Result<String, Error> {
        let ttl = Duration::from_secs(expiry_seconds);
        if ttl.is_zero() || ttl > MAX_SESSION {
            return Err(Error::Invalid(format!(
                "expiry-seconds must be between 1 and {}",
                MAX_SESSION.as_secs()
            )));
        }
        self.grants.require(Grant::IdentitySession).map_err(forbidden)?;
        self.reach(&user_id).await?;
        let user = self.seen_user(&user_id).await?;
        if user.level == Level::Superuser {
            return Err(Error::Forbidden(
                "an Element never creates sessions for a SUPERUSER".into(),
            ));
        }
        let profile = match &profile_id {
            Some(id) => Some(self.seen_profile(id).await?),
            None => None,
        };
        if let Some(p) = &profile
            && p.user_id != user.id
        {
            return Err(Error::Invalid("the profile belongs to another user".into()));
        }
        let application = match &profile {
            Some(p) => Some(self.seen_application(&p.application_id).await.map_err(to_wit)?),
            None => None,
        };
        let (secret, session) = self
            .service
            .create_session(
                &user.id,
                profile.as_ref(),
                application.as_ref().map(|a| a.id.as_str()),
                Some(ttl),
            )
            .await
            .map_err(to_wit)?;
        to_json(wire::SessionCreation {
            session_secret: secret,
            session: elements_identity::wire::session(user, profile, application, session.expiry),
        })
    }

    async fn caller(&mut self) -> Result<Option<String>, Error> {
        match self.resolve_caller().await?.cloned() {
            Some(caller) => caller_json(caller).map(Some),
            None => Ok(None),
        }
    }

    async fn get_identity(&mut self, scheme: String, id: String) -> Result<Option<String>, Error> {
        self.may_read_scheme(&scheme)?;
        let found = self.service.identity(&scheme, &id).await.map_err(to_wit)?;
        found.map(|i| to_json(wire::Identity::from(i))).transpose()
    }

    async fn set_verification(
        &mut self,
        scheme: String,
        id: String,
        verification: wit::Verification,
    ) -> Result<String, Error> {
        self.grants
            .require(Grant::IdentityVerify(scheme.clone()))
            .map_err(forbidden)?;
        // A user's answer may show its identities' status: read it again.
        self.seen.users.clear();
        let identity = self
            .service
            .set_verification_status(&scheme, &id, status(verification))
            .await
            .map_err(to_wit)?;
        to_json(wire::Identity::from(identity))
    }

    async fn link_email(&mut self, user_id: String, email: String) -> Result<(), Error> {
        self.grants
            .require(Grant::IdentityScheme("email".into()))
            .map_err(forbidden)?;
        self.reach(&user_id).await?;
        // The user changes: the next read is a read.
        self.seen.users.retain(|u| u.id != user_id);
        self.service
            .link_email(&user_id, &email, None)
            .await
            .map_err(to_wit)
    }
}

/// The caller as `elements-wire`'s `Caller` in JSON.
fn caller_json(caller: Caller) -> Result<String, Error> {
    let (profile, application) = match caller.session {
        CallerSession::Elements(resolved) => (resolved.profile, resolved.application),
        CallerSession::Token(_) => (None, None),
    };
    to_json(wire::Caller {
        user: caller.user.into(),
        profile: profile.map(Into::into),
        application: application.map(Into::into),
    })
}

impl wit_credentials::Host for Identities {
    async fn caller(&mut self) -> Result<Option<String>, wit_credentials::Error> {
        match self.resolve().await.map_err(credentials_error)? {
            Resolved::Anonymous => Ok(None),
            Resolved::Invalid => Err(wit_credentials::Error::InvalidCredentials),
            Resolved::User(caller) => caller_json((**caller).clone())
                .map(Some)
                .map_err(credentials_error),
        }
    }
}

/// An identity error as `credentials` has them: only the store's outage is
/// worth a retry; the rest can't arise from reading credentials.
fn credentials_error(error: Error) -> wit_credentials::Error {
    match error {
        Error::Unavailable(m) => wit_credentials::Error::Unavailable(m),
        Error::NotFound(m)
        | Error::Conflict(m)
        | Error::Invalid(m)
        | Error::Forbidden(m)
        | Error::Internal(m) => wit_credentials::Error::Internal(m),
    }
}

impl wit_verification::Host for Identities {
    async fn request_email(&mut self, email: String) -> Result<String, Error> {
        self.grants
            .require(Grant::IdentityRequestVerification("email".into()))
            .map_err(forbidden)?;
        let email = email.trim().to_lowercase();
        if email.is_empty() || email.len() > 256 {
            return Err(Error::Invalid("the address must be 1 to 256 bytes".into()));
        }
        if self.verification_requests >= MAX_VERIFICATION_REQUESTS {
            return Err(Error::Invalid(format!(
                "at most {MAX_VERIFICATION_REQUESTS} verification requests in one request or event"
            )));
        }
        let identity = self
            .service
            .identity("email", &email)
            .await
            .map_err(to_wit)?
            .ok_or_else(|| Error::NotFound(format!("no user has the email address {email:?}")))?;
        let identity = wire::Identity::from(identity);
        if identity.verification != Verification::Verified {
            // Within the chain of the event being handled, so that handlers
            // requesting verifications can't loop; a request starts its own.
            let chain = match &self.chain {
                Some(chain) if chain.depth >= MAX_DEPTH => {
                    return Err(Error::Invalid(format!(
                        "this event handler runs {MAX_DEPTH} deliveries deep"
                    )));
                }
                Some(chain) => chain.clone(),
                None => Chain::root(),
            };
            if !chain.take() {
                return Err(Error::Invalid(
                    "this request, with everything its events set off, published its last event".into(),
                ));
            }
            self.verification_requests += 1;
            self.bus.publish_in(
                EMAIL_VERIFICATION_REQUESTED,
                serde_json::json!({
                    "scheme": identity.scheme,
                    "id": identity.id,
                    "userId": identity.user_id,
                    "requestedBy": &*self.element,
                }),
                chain,
            );
        }
        to_json(identity)
    }
}
