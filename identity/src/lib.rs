//! # elements-identity: who is calling
//!
//! The identity model and its services, over the document store
//! (`Arc<dyn DocumentStore>`, core collections). No HTTP here: the runtime's
//! `/api/rest` and Nakama-compatible `/v2` handlers, and host services used
//! by Elements, call [`IdentityService`].
//!
//! ## Model ([`model`])
//!
//! * [`Application`]: unique name, description.
//! * [`User`]: unique name, email, [`Level`] (`UNPRIVILEGED`, `USER`,
//!   `SUPERUSER`), display name, banned flag. The password hash (argon2id)
//!   is stored on the user document and never leaves the service.
//! * [`Identity`] (UID): `(scheme, id)`, unique per scheme, pointing to one
//!   user, with a [`Verification`]. Device ids, custom ids and emails
//!   are identities under their own schemes, so a player is the same user
//!   whichever API they log in through.
//! * [`Profile`]: a user in an application (one per pair by default).
//! * [`Session`]: an Elements session; the client holds a random secret,
//!   the store its SHA-256. Nakama clients get JWT session/refresh tokens
//!   ([`token`]), which are not stored: the user's document holds what
//!   revokes them (see `sessions`); refresh tokens rotate within a family,
//!   and a replayed one revokes the family.
//!
//! Collections (namespace `core`): `users`, `identities` (`_id` =
//! `<scheme>:<id>`), `profiles`, `applications`, `sessions`,
//! `spent_refresh_tokens`, `settings` (generated token keys).
//!
//! What clients see of the model — the JSON shapes of `elements-wire` that
//! `/api/rest`, `/v2` and Elements share — is converted in [`wire`]. Updates
//! ([`UserUpdate`], [`ProfileUpdate`]) and the vocabulary ([`Level`],
//! [`Verification`]) are those very wire types: they read the same on the
//! wire as in the model.
//!
//! ## Races
//!
//! Find-or-create ([`IdentityService::find_or_create_user`]) inserts the
//! identity (deterministic `_id`) and the user in one all-or-nothing store
//! batch: of N concurrent first logins with one device id exactly one
//! creates the account; the others get a duplicate key and read it.
//! Unlinking checks "another identifier remains" in the same batch as the
//! delete and a write of the user document, so concurrent unlinks can't
//! strip an account of every identifier.
//!
//! ## Secrets
//!
//! Passwords: argon2id, m = 19456 KiB, t = 2, p = 1 (OWASP's minimum), see
//! [`password`], on a pool of its own bounded in threads and queue. Failed
//! password logins are throttled per account and client address
//! ([`throttle`], per node). Session secrets: 256 random bits from the OS CSPRNG, stored
//! as SHA-256. Every secret comparison is constant-time ([`secret::ct_eq`],
//! argon2's verifier, the JWT HMAC check). [`Secret`] never prints.
//!
//! ## Extending
//!
//! A new login method is an [`IdentityVerifier`] for its scheme, registered
//! with [`IdentityService::register_verifier`].

#![warn(missing_docs)]

mod error;
pub mod model;
pub mod password;
mod profiles;
pub mod schemes;
pub mod secret;
mod service;
mod sessions;
mod store_util;
pub mod throttle;
pub mod time;
pub mod token;
pub mod validate;
pub mod verifier;
pub mod wire;

pub use elements_wire::{ApplicationUpdate, ProfileUpdate, UserUpdate};
pub use error::{IdentityError, Result};
pub use model::{Application, Identity, Level, Page, Profile, Session, User, Verification, scheme};
pub use password::PasswordPool;
pub use profiles::{NewProfile, ProfileQuery};
pub use secret::Secret;
pub use service::{
    AuthOutcome, Bootstrap, FindOrCreate, IdentityConfig, IdentityService, NewUser,
    require_self_or_superuser, require_superuser,
};
pub use sessions::{Caller, CallerSession, ResolvedSession, TokenPair, TokenSession};
pub use throttle::ThrottleConfig;
pub use verifier::{Credential, IdentityVerifier, VerifiedIdentity};
