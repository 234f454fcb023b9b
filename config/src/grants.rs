//! Grants: the named capabilities an Element may hold.
//!
//! An Element always reaches its own log, its own attributes and its own
//! private documents. Everything else is a grant: its manifest *requests* it
//! (`grants = [...]`, plus what `[events] subscribe` and `core_routes`
//! imply), the operator *approves* it (configuration file, admin API,
//! portal), and a deploy whose requested grants are not all approved fails,
//! naming each missing one. At run time a host service checks the Element's
//! [`Grants`] and refuses a call outside them with a typed `forbidden` error
//! naming the grant that would allow it.
//!
//! | grant | allows |
//! |---|---|
//! | `identity.scheme:SCHEME` | find or create users by identities of `SCHEME`, read those identities, link email addresses (`SCHEME` = `email`); reach (read, profile) the users who have such an identity |
//! | `identity.session` | create sessions for users the Element reaches (never for a SUPERUSER) |
//! | `identity.verify:SCHEME` | read identities of `SCHEME` and set their verification status |
//! | `identity.request-verification:SCHEME` | ask the host to have an identity of `SCHEME` verified (`email`: the Email Verification Element emails the user a link) |
//! | `mail.send` | send email through the operator's SMTP server |
//! | `events.publish:PATTERN` | publish events whose names match `PATTERN` (a name, or a prefix ending in `*`) |
//! | `events.subscribe:PATTERN` | receive events whose names match `PATTERN` |
//! | `http.outbound:HOST[:PORT]` | outbound HTTP to that host (any port when none is given) |
//! | `route.core:PATH` | serve the core API extension point `PATH` |
//! | `rpc:ID` | serve the Nakama RPC `ID` (`POST /v2/rpc/ID` and the socket's `rpc`) |
//! | `realtime.notify` | send notifications to any user (pushed to their sockets, stored when persistent) |
//! | `realtime.rooms` | post messages, as the Element, to any chat room |
//! | `realtime.match` | create matches the Element runs and send match data to their players |
//!
//! Events under the Element's own name (`NAME.*`, when `NAME` is a valid
//! event-name segment) are its own: publishing and subscribing to them needs
//! no grant. Names under `dev.getelements.element.` belong to the server
//! alone: no grant covers them.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Events the server itself publishes: no Element may publish under this prefix.
pub const SERVER_EVENT_PREFIX: &str = "dev.getelements.element.";
/// Events reserved for the server and the bundled Elements: publishing
/// under it is a powerful grant.
pub const RESERVED_EVENT_PREFIX: &str = "dev.getelements.";

/// One capability.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    /// `identity.scheme:SCHEME`.
    IdentityScheme(String),
    /// `identity.session`.
    IdentitySession,
    /// `identity.verify:SCHEME`.
    IdentityVerify(String),
    /// `identity.request-verification:SCHEME`.
    IdentityRequestVerification(String),
    /// `mail.send`.
    MailSend,
    /// `events.publish:PATTERN`.
    EventsPublish(String),
    /// `events.subscribe:PATTERN`.
    EventsSubscribe(String),
    /// `http.outbound:HOST[:PORT]` (host lowercased, IPv6 without brackets).
    HttpOutbound {
        /// Host name or IP literal.
        host: String,
        /// A port, or any.
        port: Option<u16>,
    },
    /// `route.core:PATH`.
    CoreRoute(String),
    /// `rpc:ID` (lowercase, as Nakama matches RPC ids).
    Rpc(String),
    /// `realtime.notify`.
    RealtimeNotify,
    /// `realtime.rooms`.
    RealtimeRooms,
    /// `realtime.match`.
    RealtimeMatch,
}

/// A grant that can't be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid grant {grant:?}: {why}")]
pub struct GrantError {
    /// The text as written.
    pub grant: String,
    /// What is wrong.
    pub why: String,
}

impl FromStr for Grant {
    type Err = GrantError;

    fn from_str(text: &str) -> Result<Grant, GrantError> {
        let err = |why: &str| GrantError {
            grant: text.to_owned(),
            why: why.to_owned(),
        };
        let (kind, arg) = match text.split_once(':') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (text, None),
        };
        let needs = |what: &str| -> Result<&str, GrantError> {
            arg.filter(|a| !a.is_empty())
                .ok_or_else(|| err(&format!("give {what} after the ':'")))
        };
        let none = || -> Result<(), GrantError> {
            match arg {
                None => Ok(()),
                Some(_) => Err(err("takes no argument")),
            }
        };
        match kind {
            "identity.scheme" => Ok(Grant::IdentityScheme(
                scheme(needs("a scheme")?).map_err(|w| err(&w))?,
            )),
            "identity.verify" => Ok(Grant::IdentityVerify(
                scheme(needs("a scheme")?).map_err(|w| err(&w))?,
            )),
            "identity.request-verification" => Ok(Grant::IdentityRequestVerification(
                scheme(needs("a scheme")?).map_err(|w| err(&w))?,
            )),
            "identity.session" => none().map(|_| Grant::IdentitySession),
            "mail.send" => none().map(|_| Grant::MailSend),
            "events.publish" => {
                let pattern = event_pattern(needs("an event name or pattern")?).map_err(|w| err(&w))?;
                if pattern_overlaps(&pattern, SERVER_EVENT_PREFIX) {
                    return Err(err(&format!(
                        "events under {SERVER_EVENT_PREFIX:?} are published by the server alone"
                    )));
                }
                Ok(Grant::EventsPublish(pattern))
            }
            "events.subscribe" => Ok(Grant::EventsSubscribe(
                event_pattern(needs("an event name or pattern")?).map_err(|w| err(&w))?,
            )),
            "http.outbound" => {
                let (host, port) = host_port(needs("a host or host:port")?).map_err(|w| err(&w))?;
                Ok(Grant::HttpOutbound { host, port })
            }
            "route.core" => {
                let path = needs("a path")?;
                if !path.starts_with('/') || path.contains(char::is_whitespace) {
                    return Err(err("give an absolute path"));
                }
                Ok(Grant::CoreRoute(path.to_owned()))
            }
            "rpc" => Ok(Grant::Rpc(rpc_id(needs("an RPC id")?).map_err(|w| err(&w))?)),
            "realtime.notify" => none().map(|_| Grant::RealtimeNotify),
            "realtime.rooms" => none().map(|_| Grant::RealtimeRooms),
            "realtime.match" => none().map(|_| Grant::RealtimeMatch),
            _ => Err(err(
                "unknown kind; grants are identity.scheme:, identity.session, identity.verify:, \
                 identity.request-verification:, mail.send, events.publish:, events.subscribe:, http.outbound:, route.core:, rpc:, \
                 realtime.notify, realtime.rooms, realtime.match",
            )),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::IdentityScheme(s) => write!(f, "identity.scheme:{s}"),
            Grant::IdentitySession => f.write_str("identity.session"),
            Grant::IdentityVerify(s) => write!(f, "identity.verify:{s}"),
            Grant::IdentityRequestVerification(s) => write!(f, "identity.request-verification:{s}"),
            Grant::MailSend => f.write_str("mail.send"),
            Grant::EventsPublish(p) => write!(f, "events.publish:{p}"),
            Grant::EventsSubscribe(p) => write!(f, "events.subscribe:{p}"),
            Grant::HttpOutbound { host, port } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                match port {
                    Some(p) => write!(f, "http.outbound:{host}:{p}"),
                    None => write!(f, "http.outbound:{host}"),
                }
            }
            Grant::CoreRoute(p) => write!(f, "route.core:{p}"),
            Grant::Rpc(id) => write!(f, "rpc:{id}"),
            Grant::RealtimeNotify => f.write_str("realtime.notify"),
            Grant::RealtimeRooms => f.write_str("realtime.rooms"),
            Grant::RealtimeMatch => f.write_str("realtime.match"),
        }
    }
}

impl serde::Serialize for Grant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Grant {
    /// Whether an operator should think twice: the grant reaches other
    /// users' accounts, the server's reserved events, core routes or a
    /// private address.
    pub fn is_powerful(&self) -> bool {
        match self {
            // Requesting verifications sends mail to any user's address.
            Grant::IdentitySession
            | Grant::IdentityVerify(_)
            | Grant::IdentityRequestVerification(_)
            | Grant::CoreRoute(_) => true,
            // The built-in login schemes are every player's account.
            Grant::IdentityScheme(s) => matches!(s.as_str(), "email" | "device" | "custom"),
            Grant::EventsPublish(p) | Grant::EventsSubscribe(p) => pattern_overlaps(p, RESERVED_EVENT_PREFIX),
            Grant::HttpOutbound { host, .. } => host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| crate::address::non_public(ip).is_some()),
            // Players call it as they call any of the Element's routes.
            Grant::MailSend | Grant::Rpc(_) => false,
            // It pushes to any player's socket and stored notifications.
            Grant::RealtimeNotify => true,
            // Rooms are public; the Element's matches are its own.
            Grant::RealtimeRooms | Grant::RealtimeMatch => false,
        }
    }

    /// What the grant allows, in one sentence for operators.
    pub fn describe(&self) -> String {
        match self {
            Grant::IdentityScheme(s) => format!(
                "Find or create users by their {s:?} identities, and read and update the users who have one."
            ),
            Grant::IdentitySession => {
                "Create sessions (log in) for the users it reaches through its schemes; never a superuser."
                    .into()
            }
            Grant::IdentityVerify(s) => {
                format!("Read {s:?} identities of any user and set their verification status.")
            }
            Grant::IdentityRequestVerification(s) => format!(
                "Have any user's {s:?} identity verified (for email: a verification link is sent to the address)."
            ),
            Grant::MailSend => "Send email through the server's SMTP settings.".into(),
            Grant::EventsPublish(p) => format!("Publish events named {p}."),
            Grant::EventsSubscribe(p) => format!("Receive events named {p}."),
            Grant::HttpOutbound { host, port } => match port {
                Some(p) => format!("Call {host} on port {p} over HTTP."),
                None => format!("Call {host} over HTTP on any port."),
            },
            Grant::CoreRoute(p) => format!("Serve the core API path {p}."),
            Grant::Rpc(id) => {
                format!("Serve the Nakama RPC {id:?} (POST /v2/rpc/{id} and the socket's rpc).")
            }
            Grant::RealtimeNotify => {
                "Send notifications to any user's sockets, stored for them when persistent.".into()
            }
            Grant::RealtimeRooms => "Post messages, under its own name, to any chat room.".into(),
            Grant::RealtimeMatch => {
                "Create matches it runs, and send match data to the players who joined them.".into()
            }
        }
    }
}

/// Longest RPC id.
pub const MAX_RPC_ID: usize = 128;

/// An RPC id, lowercased (Nakama matches ids without regard to case):
/// 1 to [`MAX_RPC_ID`] letters, digits, `_`, `-` and `.`.
pub fn rpc_id(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= MAX_RPC_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "an RPC id is 1 to {MAX_RPC_ID} letters, digits, '_', '-' and '.'"
        ))
    }
}

fn scheme(s: &str) -> Result<String, String> {
    if s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_owned())
    } else {
        Err("a scheme is 1 to 128 visible ASCII characters".into())
    }
}

/// Checks an event name: dotted segments of lowercase letters, digits, `_`
/// and `-`, at most 128 bytes.
pub fn validate_event_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid event name {name:?}: use dotted segments of lowercase letters, digits, '_' and '-'"
        ))
    }
}

/// An event name, or a prefix ending in `*` (`game.*`, `*`).
fn event_pattern(p: &str) -> Result<String, String> {
    let name = p.strip_suffix(".*").or(p.strip_suffix('*')).unwrap_or(p);
    if p == "*" || validate_event_name(name).is_ok() {
        Ok(p.to_owned())
    } else {
        Err("give an event name or a prefix ending in '*'".into())
    }
}

/// Whether some event name under `prefix` matches `pattern`.
fn pattern_overlaps(pattern: &str, prefix: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(p) => p.starts_with(prefix) || prefix.starts_with(p),
        None => pattern.starts_with(prefix),
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn host_port(entry: &str) -> Result<(String, Option<u16>), String> {
    if entry.contains(['/', '@', '*', '?', '#']) || entry.contains(char::is_whitespace) {
        return Err("give a host or host:port (no scheme, path, user or wildcard)".into());
    }
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '['")?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err("unexpected text after ']'".into()),
        }
    } else {
        match entry.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            // A bare IPv6 address.
            Some(_) => (entry, None),
            None => (entry, None),
        }
    };
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| format!("bad port {p:?}")))
        .transpose()?;
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Whether event `name` matches `pattern` (a name, or a prefix ending in `*`).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The grants one deployed Element holds (all approved), with the checks
/// host services make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    element: String,
    grants: BTreeSet<Grant>,
}

/// A call outside the Element's grants; the message names the missing grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this Element lacks the grant {0}; the operator approves grants the manifest requests")]
pub struct MissingGrant(pub String);

impl Grants {
    /// The grants of the Element `element`.
    pub fn new(element: &str, grants: impl IntoIterator<Item = Grant>) -> Grants {
        Grants {
            element: element.to_owned(),
            grants: grants.into_iter().collect(),
        }
    }

    /// Every grant, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }

    /// Whether the Element holds exactly `grant`.
    pub fn has(&self, grant: &Grant) -> bool {
        self.grants.contains(grant)
    }

    /// `Ok` when the Element holds `grant`, else the error naming it.
    pub fn require(&self, grant: Grant) -> Result<(), MissingGrant> {
        if self.has(&grant) {
            Ok(())
        } else {
            Err(MissingGrant(grant.to_string()))
        }
    }

    /// The identity schemes the Element was granted.
    pub fn schemes(&self) -> impl Iterator<Item = &str> {
        self.grants.iter().filter_map(|g| match g {
            Grant::IdentityScheme(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The Element's own event namespace (`NAME.`), when its name is a valid
    /// event-name segment.
    fn own_events(&self) -> Option<String> {
        validate_event_name(&self.element)
            .ok()
            .filter(|_| !self.element.contains('.'))
            .map(|_| format!("{}.", self.element))
    }

    /// Whether the Element may publish `name`.
    pub fn may_publish(&self, name: &str) -> Result<(), MissingGrant> {
        if name.starts_with(SERVER_EVENT_PREFIX) {
            return Err(MissingGrant(format!(
                "(none: events under {SERVER_EVENT_PREFIX:?} are the server's)"
            )));
        }
        if self.own_events().is_some_and(|own| name.starts_with(&own)) {
            return Ok(());
        }
        let granted = self.grants.iter().any(|g| match g {
            Grant::EventsPublish(p) => pattern_matches(p, name),
            _ => false,
        });
        if granted {
            Ok(())
        } else {
            Err(MissingGrant(Grant::EventsPublish(name.to_owned()).to_string()))
        }
    }

    /// The `(host, port)` pairs the Element may call.
    pub fn http_hosts(&self) -> impl Iterator<Item = (&str, Option<u16>)> {
        self.grants.iter().filter_map(|g| match g {
            Grant::HttpOutbound { host, port } => Some((host.as_str(), *port)),
            _ => None,
        })
    }
}

/// Grants implied by a subscription or a core route, so a manifest needn't
/// repeat them; `None` when the Element's own namespace covers it.
pub fn implied_by_subscription(element: &str, pattern: &str) -> Option<Grant> {
    let own = Grants::new(element, []).own_events();
    match own {
        Some(own) if pattern.starts_with(&own) => None,
        _ => Some(Grant::EventsSubscribe(pattern.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names() {
        assert!(validate_event_name("game.match.ended").is_ok());
        assert!(validate_event_name("leaderboard.score_posted").is_ok());
        for bad in ["", "Game.x", "a..b", ".a", "a.", "a b", "a/b"] {
            assert!(validate_event_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grants_parse_and_print() {
        for text in [
            "identity.scheme:dev.getelements.robloxkit.player.id",
            "identity.session",
            "identity.verify:email",
            "identity.request-verification:email",
            "mail.send",
            "events.publish:game.*",
            "events.subscribe:dev.getelements.email_verification.completed",
            "http.outbound:users.roblox.com",
            "http.outbound:127.0.0.1:8089",
            "http.outbound:[::1]:9000",
            "route.core:/api/rest/verify",
            "realtime.notify",
            "realtime.rooms",
            "realtime.match",
        ] {
            let grant: Grant = text.parse().unwrap();
            assert_eq!(grant.to_string(), text);
        }
        assert_eq!(
            "http.outbound:USERS.Roblox.com"
                .parse::<Grant>()
                .unwrap()
                .to_string(),
            "http.outbound:users.roblox.com"
        );
        for bad in [
            "identity",
            "identity.scheme",
            "identity.scheme:",
            "identity.session:x",
            "identity.request-verification",
            "identity.request-verification:",
            "mail.send:all",
            "events.publish:Game",
            "events.publish:*",
            "events.publish:dev.getelements.*",
            "events.publish:dev.getelements.element.loaded",
            "http.outbound:http://x",
            "http.outbound:*.example.com",
            "http.outbound:x:notaport",
            "route.core:relative",
            "realtime.match:other",
            "realtime",
            "root",
        ] {
            assert!(bad.parse::<Grant>().is_err(), "{bad}");
        }
    }

    #[test]
    fn powerful_grants_are_flagged() {
        let p = |t: &str| t.parse::<Grant>().unwrap().is_powerful();
        assert!(p("identity.session"));
        assert!(p("identity.scheme:email"));
        assert!(!p("identity.scheme:dev.getelements.robloxkit.player.id"));
        assert!(p("identity.verify:email"));
        assert!(p("identity.request-verification:email"));
        assert!(p("events.publish:dev.getelements.email_verification.*"));
        assert!(!p("events.publish:game.*"));
        assert!(p("http.outbound:127.0.0.1:80"));
        assert!(p("http.outbound:169.254.169.254"));
        assert!(!p("http.outbound:users.roblox.com"));
        assert!(!p("mail.send"));
        assert!(p("realtime.notify"));
        assert!(!p("realtime.rooms"));
        assert!(!p("realtime.match"));
    }

    #[test]
    fn event_checks() {
        let grants = Grants::new("leaderboard", ["events.publish:game.*".parse::<Grant>().unwrap()]);
        assert!(grants.may_publish("leaderboard.score").is_ok());
        assert!(grants.may_publish("game.ended").is_ok());
        let err = grants.may_publish("chat.message").unwrap_err();
        assert!(err.to_string().contains("events.publish:chat.message"), "{err}");
        assert!(grants.may_publish("dev.getelements.element.loaded").is_err());
        assert_eq!(implied_by_subscription("leaderboard", "leaderboard.*"), None);
        assert_eq!(
            implied_by_subscription("leaderboard", "game.*"),
            Some(Grant::EventsSubscribe("game.*".into()))
        );
        // A name that is not an event segment has no own namespace.
        assert!(Grants::new("Game", []).may_publish("game.x").is_err());
    }
}
