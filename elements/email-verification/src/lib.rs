//! Email Verification: proves that a user controls the email address linked
//! to their account.
//!
//! ```text
//! UNVERIFIED --POST /api/rest/user/me/email/verify--> PENDING --GET /api/rest/verify?token=--> VERIFIED
//! ```
//!
//! * `POST /api/rest/user/me/email/verify` `{"email": "ada@example.com"}`,
//!   with the user's session (`Authorization: Bearer`): emails a single-use
//!   link to the address and answers 200 with the identity, now `PENDING`,
//!   once the SMTP server accepted the message. 400 when mail is not
//!   configured (or the body is malformed), 401 without a session or with
//!   invalid or expired credentials (as `/api/rest` answers), 403 when the
//!   address belongs to another user, 404 when it is not linked to
//!   the caller, 502 when the SMTP server refuses or can't be reached. The
//!   address is trimmed and lower-cased. An address that is already
//!   `VERIFIED` is answered as it is, without an email.
//! * `GET /api/rest/verify?token=...`, public: consumes the token and answers
//!   200 with the identity, now `VERIFIED`; 404 for an unknown, used or
//!   expired token.
//!
//! Both paths are also served below the Element's prefix
//! (`/app/rest/email-verification/user/me/email/verify`, `.../verify`).
//!
//! Tokens are UUID v4 from the host's CSPRNG, stored in the `tokens`
//! collection with a 24-hour `_expiresAt` (the store never returns an expired
//! document) and consumed with one atomic `find_one_and_delete`, so of two
//! concurrent clicks exactly one succeeds. The token is stored before the
//! email is sent and deleted again if sending fails, and the identity only
//! becomes `PENDING` after the SMTP server accepted the message: a failed
//! send changes nothing.
//!
//! Requests are bounded per recipient address and per user, so neither a
//! user nor a stolen session can turn this Element into a mail cannon aimed
//! at an address they linked: at most one email per address per cooldown
//! (60 s), and at most 5 per address and 10 per user in 24 hours (the
//! `...verification.cooldown_secs`, `...max_per_address` and
//! `...max_per_user` attributes). Beyond, 429 `throttled` with
//! `Retry-After`, and no email. The bounds are documents with an
//! `_expiresAt` in the `limits` collection, taken with plain inserts whose
//! `_id` is the bound (a cooldown, or one of N slots of the day): an insert
//! either takes the `_id` or conflicts, atomically on every node sharing
//! the store, so concurrent requests can't overshoot. A failed send gives
//! its slots back.
//!
//! Events `dev.getelements.email_verification.requested` and
//! `dev.getelements.email_verification.completed` carry the identity, as
//! `{"scheme", "id", "userId", "verificationStatus"}` (Namazu's `UserUid`
//! field name; `verification`, the same value, is kept for older clients).
//!
//! Other Elements ask for a verification through the host
//! (`elements:platform/verification`, grant
//! `identity.request-verification:email`): the host publishes
//! `dev.getelements.verification.email_requested`, which this Element
//! handles with the same flow and the same bounds, for whoever the address
//! belongs to.
//!
//! The link is `{base_url}?token=...`: the `...verification.base_url`
//! attribute is the URL of the verification endpoint as clients reach it
//! (Namazu's meaning), by default the server's public URL plus
//! `/api/rest/verify`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use elements_sdk::identity::{EMAIL, Identity, Verification};
use elements_sdk::mail::Message;
use elements_sdk::prelude::*;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

const BASE_URL: &str = "dev.getelements.elements.verification.base_url";
const PUBLIC_URL: &str = "dev.getelements.elements.public_url";
const SUBJECT: &str = "dev.getelements.elements.verification.email_subject";
const TEMPLATE: &str = "dev.getelements.elements.verification.email_template";

const COOLDOWN: &str = "dev.getelements.elements.verification.cooldown_secs";
const MAX_PER_ADDRESS: &str = "dev.getelements.elements.verification.max_per_address";
const MAX_PER_USER: &str = "dev.getelements.elements.verification.max_per_user";
const DEFAULT_COOLDOWN_SECS: u64 = 60;
const DEFAULT_MAX_PER_ADDRESS: u64 = 5;
const DEFAULT_MAX_PER_USER: u64 = 10;
/// Most slots a bound may have, whatever the attribute says: each is an insert.
const MAX_SLOTS: u64 = 100;
/// The window of the per-address and per-user caps.
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Taken bounds: `{"_id": "<kind>:<key>[:<slot>]", "_expiresAt"}`.
const LIMITS: &str = "limits";

const DEFAULT_SUBJECT: &str = "Verify your email";
const DEFAULT_TEMPLATE: &str = "<p>Please verify your email address by clicking the link below:</p>\n\
                                <p><a href=\"{link}\">Verify Email</a></p>";

const REQUESTED: &str = "dev.getelements.email_verification.requested";
/// Published by the host when another Element asks for a verification
/// (`elements:platform/verification`).
const SEND_REQUESTED: &str = "dev.getelements.verification.email_requested";
const COMPLETED: &str = "dev.getelements.email_verification.completed";

/// Pending tokens: `{"_id": token, "email", "userId", "_expiresAt"}`.
const TOKENS: &str = "tokens";
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// The path of the public verification endpoint, for the link.
const VERIFY_PATH: &str = "/api/rest/verify";

fn router() -> Router {
    Router::new()
        // Mounted at the core paths, the Element sees the full path ...
        .post("/api/rest/user/me/email/verify", request_verification)
        .get(VERIFY_PATH, complete_verification)
        // ... and below its prefix, the rest.
        .post("/user/me/email/verify", request_verification)
        .get("/verify", complete_verification)
}

#[derive(Deserialize)]
struct VerifyRequest {
    email: String,
}

fn request_verification(req: Request) -> Result<Response> {
    let caller = identity::require_caller()?;
    let VerifyRequest { email } = req.json()?;
    let email = email.trim().to_lowercase();
    if email.is_empty() {
        return Err(Error::bad_request("`email` must not be empty"));
    }

    let linked = identity::get_identity(EMAIL, &email)?
        .ok_or_else(|| Error::not_found("this email address is not linked to your account"))?;
    if linked.user_id != caller.user.id {
        return Err(Error::forbidden("this email address belongs to another account"));
    }
    match send_verification(linked)? {
        Ok(identity) => Ok(Response::json(&identity)),
        Err(throttled) => Ok(throttled),
    }
}

/// Another Element asked the host to verify an address (the host checked
/// its grant `identity.request-verification:email` and published this
/// event; names under `dev.getelements.` can't be published without a
/// grant the operator approves). The same flow as the REST request, with
/// the same bounds, for the user the address belongs to now.
fn on_event(event: Event) -> Result<()> {
    if event.name != SEND_REQUESTED {
        return Ok(());
    }
    let field = |key: &str| event.payload.get(key).and_then(Value::as_str).unwrap_or_default();
    let (email, user_id, by) = (field("id"), field("userId"), field("requestedBy"));
    if field("scheme") != EMAIL || email.is_empty() {
        return Err(Error::bad_request(
            "a verification request names an email identity",
        ));
    }
    let linked = identity::get_identity(EMAIL, email)?
        .filter(|linked| user_id.is_empty() || linked.user_id == user_id)
        .ok_or_else(|| Error::not_found("the address is no longer linked to that user"))?;
    match send_verification(linked)? {
        Ok(identity) => {
            info!(
                "verification of {email} requested by Element {by:?}: {:?}",
                identity.verification_status
            );
            Ok(())
        }
        Err(_) => Err(Error::new(
            429,
            "THROTTLED",
            format!("verification of {email} requested by Element {by:?} is throttled"),
        )),
    }
}

/// Emails a single-use link for `linked` (an email identity) and marks it
/// `PENDING`; an address already `VERIFIED` is returned as it is.
/// `Ok(Err(response))` is the 429 when a bound is reached.
fn send_verification(linked: Identity) -> Result<std::result::Result<Identity, Response>> {
    if linked.verification == Verification::Verified {
        return Ok(Ok(linked));
    }
    let (email, user_id) = (linked.id.as_str(), linked.user_id.as_str());

    let link = link_base()?;
    let taken = match take_send_allowance(email, user_id)? {
        Ok(taken) => taken,
        Err(throttled) => return Ok(Err(throttled)),
    };
    let token = Uuid::new_v4().to_string();
    let tokens = documents::collection(TOKENS);
    tokens.insert(&json!({
        "_id": token,
        "email": email,
        "userId": user_id,
        "_expiresAt": now_ms() + TOKEN_TTL.as_millis() as i64,
    }))?;

    let template = attributes::get(TEMPLATE).unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned());
    let message = Message::to(email)
        .subject(attributes::get(SUBJECT).unwrap_or_else(|| DEFAULT_SUBJECT.to_owned()))
        .html(template.replace("{link}", &format!("{link}{token}")));
    if let Err(e) = mail::send(&message) {
        // No live token may outlive a failed send, and nothing was sent.
        if let Err(cleanup) = tokens.delete(&token) {
            error!("could not delete the token of a failed verification email: {cleanup}");
        }
        give_back(&taken);
        return Err(e.into());
    }

    let identity = identity::set_verification(EMAIL, email, Verification::Pending)?;
    publish(REQUESTED, &identity);
    Ok(Ok(identity))
}

fn complete_verification(req: Request) -> Result<Response> {
    let unknown = || Error::not_found("unknown, already used or expired verification token");
    // Anything that is not a UUID can't be a token we issued.
    let token = req
        .query("token")
        .and_then(|t| Uuid::try_parse(t.trim()).ok())
        .ok_or_else(unknown)?
        .to_string();

    // Atomic consume: of concurrent clicks, exactly one gets the document.
    let consumed = documents::collection(TOKENS)
        .find_one_and_delete(json!({"_id": token}))?
        .ok_or_else(unknown)?;
    // The store never returns expired documents; check anyway.
    let expires_at = consumed.get("_expiresAt").and_then(Value::as_i64).unwrap_or(0);
    if expires_at <= now_ms() {
        return Err(unknown());
    }
    let field = |key: &str| consumed.get(key).and_then(Value::as_str).unwrap_or_default();
    let (email, user_id) = (field("email"), field("userId"));

    // The address must still belong to the user who asked.
    match identity::get_identity(EMAIL, email)? {
        Some(linked) if linked.user_id == user_id => {}
        _ => {
            return Err(Error::not_found(
                "this email address is no longer linked to the account",
            ));
        }
    }
    let identity = identity::set_verification(EMAIL, email, Verification::Verified)?;
    publish(COMPLETED, &identity);
    Ok(Response::json(&identity))
}

/// A numeric attribute, or its default when unset or not a number.
fn number(name: &str, default: u64) -> u64 {
    attributes::get(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Takes the right to send one email to `email` for `user_id`: the
/// address's cooldown, a slot of the address's day and one of the user's.
/// `Ok(Err(response))` is the 429 to answer when a bound is reached (what
/// was taken is given back); `Ok(Ok(ids))` the bounds taken.
fn take_send_allowance(email: &str, user_id: &str) -> Result<std::result::Result<Vec<String>, Response>> {
    let limits = documents::collection(LIMITS);
    let cooldown = Duration::from_secs(number(COOLDOWN, DEFAULT_COOLDOWN_SECS));
    let mut taken = Vec::new();
    let outcome = (|| {
        if !cooldown.is_zero() {
            taken.push(take(&limits, &format!("cooldown:{email}"), cooldown)?);
        }
        let per_address = number(MAX_PER_ADDRESS, DEFAULT_MAX_PER_ADDRESS).min(MAX_SLOTS);
        taken.push(take_slot(&limits, &format!("address:{email}"), per_address)?);
        let per_user = number(MAX_PER_USER, DEFAULT_MAX_PER_USER).min(MAX_SLOTS);
        taken.push(take_slot(&limits, &format!("user:{user_id}"), per_user)?);
        Ok::<_, Taken>(())
    })();
    match outcome {
        Ok(()) => Ok(Ok(taken)),
        Err(Taken::Busy(retry_after)) => {
            give_back(&taken);
            let response = Error::new(
                429,
                "THROTTLED",
                "too many verification emails for this address or account; retry later",
            )
            .to_response()
            .with_header("Retry-After", retry_after.to_string());
            Ok(Err(response))
        }
        Err(Taken::Failed(e)) => {
            give_back(&taken);
            Err(e)
        }
    }
}

/// Why a bound could not be taken.
enum Taken {
    /// Already taken; free again in this many seconds.
    Busy(u64),
    /// The store failed.
    Failed(Error),
}

/// Takes the bound `id` for `ttl`: an insert, which conflicts while another
/// live document holds the `_id`.
fn take(limits: &documents::Collection, id: &str, ttl: Duration) -> std::result::Result<String, Taken> {
    let expires_at = now_ms() + ttl.as_millis() as i64;
    match limits.insert(&json!({"_id": id, "_expiresAt": expires_at})) {
        Ok(_) => Ok(id.to_owned()),
        Err(e) if e.status() == 409 => {
            let holder_expires = limits
                .get(id)
                .ok()
                .flatten()
                .and_then(|d| d.get("_expiresAt").and_then(Value::as_i64))
                .unwrap_or(expires_at);
            Err(Taken::Busy(seconds_until(holder_expires)))
        }
        Err(e) => Err(Taken::Failed(e)),
    }
}

/// Takes one of `slots` day-long slots of `key`.
fn take_slot(limits: &documents::Collection, key: &str, slots: u64) -> std::result::Result<String, Taken> {
    let mut soonest = u64::MAX;
    for slot in 0..slots {
        match take(limits, &format!("{key}:{slot}"), DAY) {
            Ok(id) => return Ok(id),
            Err(Taken::Busy(secs)) => soonest = soonest.min(secs),
            Err(failed) => return Err(failed),
        }
    }
    Err(Taken::Busy(if soonest == u64::MAX {
        DAY.as_secs()
    } else {
        soonest
    }))
}

/// Gives taken bounds back (nothing was sent).
fn give_back(taken: &[String]) {
    let limits = documents::collection(LIMITS);
    for id in taken {
        if let Err(e) = limits.delete(id) {
            warn!("could not give back the verification bound {id}: {e}");
        }
    }
}

/// Whole seconds from now until `at_ms`, rounded up, at least 1.
fn seconds_until(at_ms: i64) -> u64 {
    let ms = (at_ms - now_ms()).max(0) as u64;
    ms.div_ceil(1000).max(1)
}

/// What the token is appended to: the `base_url` attribute, which is (as
/// in Namazu Elements) the URL of the verification endpoint itself, e.g.
/// `https://game.example.com/api/rest/verify` behind a proxy; when blank,
/// the server's public URL (set by the host) plus `/api/rest/verify`, never
/// the request's `Host` header. A `base_url` that is a bare origin
/// (`https://game.example.com`, no path) is read as the server's root, as
/// this attribute meant before 0.2, so links set up then keep working.
fn link_base() -> Result<String> {
    let attribute = |name: &str| {
        attributes::get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let (name, url) = match attribute(BASE_URL) {
        Some(url) => (BASE_URL, url),
        None => {
            let public = attribute(PUBLIC_URL)
                .ok_or_else(|| Error::internal(format!("neither `{BASE_URL}` nor `{PUBLIC_URL}` is set")))?;
            (
                PUBLIC_URL,
                format!("{}{VERIFY_PATH}", public.trim_end_matches('/')),
            )
        }
    };
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(Error::internal(format!(
            "attribute `{name}` must be an http(s) URL, not {url:?}"
        )));
    };
    if url.contains('#') || url.contains(char::is_whitespace) || rest.is_empty() {
        return Err(Error::internal(format!(
            "attribute `{name}` must be an http(s) URL without a fragment, not {url:?}"
        )));
    }
    let url = match rest.find(['/', '?']) {
        // A bare origin: the server's root.
        None => format!("{url}{VERIFY_PATH}"),
        Some(at) if rest[at..] == *"/" => format!("{}{VERIFY_PATH}", url.trim_end_matches('/')),
        Some(_) => url,
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{separator}token="))
}

/// Publishes an event; a failure is logged and never fails the request (the
/// state change already happened).
fn publish(name: &str, identity: &Identity) {
    if let Err(e) = events::publish(name, identity) {
        warn!("could not publish {name}: {e}");
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

elements_sdk::export_element!(router, events = on_event);
