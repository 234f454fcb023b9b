//! Email over the operator's SMTP server.
//!
//! ```no_run
//! use elements_sdk::prelude::*;
//!
//! fn welcome(address: &str) -> Result<()> {
//!     let message = mail::Message::to(address)
//!         .subject("Welcome!")
//!         .html("<p>Glad you're here.</p>")
//!         .text("Glad you're here.");
//!     mail::send(&message)?; // a MailError converts into the SDK Error
//!     Ok(())
//! }
//! ```
//!
//! The operator configures the SMTP server (`[services.mail]` in the server
//! configuration; no Element can read or change it), and approves the
//! grant `mail.send` that the Element's manifest requests
//! (`grants = ["mail.send"]`); without it every send fails with
//! [`MailError::Forbidden`]. A message without [`from`](Message::from) is
//! sent from the operator's default sender. Without a configured SMTP host
//! every send fails with [`MailError::NotConfigured`]. One request sends at
//! most 10 messages (the operator may change that).
//!
//! [`send`] calls the host, so its examples are compiled but not run.

use std::fmt;

use crate::__private::bindings::elements::platform::mail as wit;
use crate::error::Error;

/// An email message, built with [`Message::to`] and the builder methods. It
/// needs at least one recipient and an [`html`](Message::html) or
/// [`text`](Message::text) body (or both: the client picks).
///
/// ```
/// use elements_sdk::mail::Message;
///
/// let m = Message::to(["ada@example.com", "bob@example.com"])
///     .and_to("eve@example.com")
///     .subject("Match found")
///     .text("Your match starts in 5 minutes.")
///     .from("Game <noreply@example.com>");
/// assert_eq!(m.to.len(), 3);
/// assert_eq!(m.html, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Recipients: `ada@example.com` or `Ada <ada@example.com>`.
    pub to: Vec<String>,
    /// The subject line.
    pub subject: String,
    /// An HTML body.
    pub html: Option<String>,
    /// A plain-text body.
    pub text: Option<String>,
    /// The sender; `None` means the operator's default sender.
    pub from: Option<String>,
}

impl Message {
    /// A message to one recipient (`"ada@example.com"`) or several (an array,
    /// slice or `Vec` of addresses).
    ///
    /// ```
    /// use elements_sdk::mail::Message;
    ///
    /// assert_eq!(Message::to("ada@example.com").to, ["ada@example.com"]);
    /// assert_eq!(Message::to(vec!["a@x.io".to_owned(), "b@x.io".to_owned()]).to.len(), 2);
    /// ```
    pub fn to(recipients: impl Recipients) -> Message {
        Message::default().and_to(recipients)
    }

    /// Adds recipients.
    ///
    /// ```
    /// let m = elements_sdk::mail::Message::to("a@x.io").and_to(["b@x.io", "c@x.io"]);
    /// assert_eq!(m.to, ["a@x.io", "b@x.io", "c@x.io"]);
    /// ```
    pub fn and_to(mut self, recipients: impl Recipients) -> Message {
        recipients.add_to(&mut self.to);
        self
    }

    /// Sets the subject.
    ///
    /// ```
    /// let m = elements_sdk::mail::Message::to("a@x.io").subject("Hi");
    /// assert_eq!(m.subject, "Hi");
    /// ```
    pub fn subject(mut self, subject: impl Into<String>) -> Message {
        self.subject = subject.into();
        self
    }

    /// Sets the HTML body.
    ///
    /// ```
    /// let m = elements_sdk::mail::Message::to("a@x.io").html("<b>hi</b>");
    /// assert_eq!(m.html.as_deref(), Some("<b>hi</b>"));
    /// ```
    pub fn html(mut self, html: impl Into<String>) -> Message {
        self.html = Some(html.into());
        self
    }

    /// Sets the plain-text body.
    ///
    /// ```
    /// let m = elements_sdk::mail::Message::to("a@x.io").text("hi");
    /// assert_eq!(m.text.as_deref(), Some("hi"));
    /// ```
    pub fn text(mut self, text: impl Into<String>) -> Message {
        self.text = Some(text.into());
        self
    }

    /// Sets the sender, instead of the operator's default.
    ///
    /// ```
    /// let m = elements_sdk::mail::Message::to("a@x.io").from("Game <noreply@x.io>");
    /// assert_eq!(m.from.as_deref(), Some("Game <noreply@x.io>"));
    /// ```
    pub fn from(mut self, from: impl Into<String>) -> Message {
        self.from = Some(from.into());
        self
    }
}

/// One or several recipient addresses, for [`Message::to`] and
/// [`Message::and_to`].
pub trait Recipients {
    /// Appends the addresses to `to`.
    fn add_to(self, to: &mut Vec<String>);
}

impl Recipients for &str {
    fn add_to(self, to: &mut Vec<String>) {
        to.push(self.to_owned());
    }
}

impl Recipients for String {
    fn add_to(self, to: &mut Vec<String>) {
        to.push(self);
    }
}

impl Recipients for &String {
    fn add_to(self, to: &mut Vec<String>) {
        to.push(self.clone());
    }
}

impl<T: Recipients> Recipients for Vec<T> {
    fn add_to(self, to: &mut Vec<String>) {
        for r in self {
            r.add_to(to);
        }
    }
}

impl<T: Recipients, const N: usize> Recipients for [T; N] {
    fn add_to(self, to: &mut Vec<String>) {
        for r in self {
            r.add_to(to);
        }
    }
}

impl<T: Recipients + Clone> Recipients for &[T] {
    fn add_to(self, to: &mut Vec<String>) {
        for r in self {
            r.clone().add_to(to);
        }
    }
}

/// Why a message was not sent.
///
/// Converts into the SDK [`Error`], so `?` works in handlers:
///
/// ```
/// use elements_sdk::{Error, mail::MailError};
///
/// let e = Error::from(MailError::NotConfigured);
/// assert_eq!((e.status(), e.code()), (400, "MAIL_NOT_CONFIGURED"));
/// let e = Error::from(MailError::Invalid("bad address".into()));
/// assert_eq!((e.status(), e.code()), (400, "BAD_REQUEST"));
/// let e = Error::from(MailError::SendFailed("connection refused".into()));
/// assert_eq!((e.status(), e.code()), (502, "MAIL_SEND_FAILED"));
/// let e = Error::from(MailError::Forbidden("lacks the grant mail.send".into()));
/// assert_eq!((e.status(), e.code()), (403, "FORBIDDEN"));
/// let e = Error::from(MailError::LimitExceeded("at most 10".into()));
/// assert_eq!((e.status(), e.code()), (429, "LIMIT_EXCEEDED"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailError {
    /// The operator has not configured an SMTP host.
    NotConfigured,
    /// An address or the message is not valid (no recipient, no body, ...).
    Invalid(String),
    /// The SMTP server refused the message or could not be reached.
    SendFailed(String),
    /// The Element lacks the grant `mail.send`.
    Forbidden(String),
    /// The request already sent as many messages as it may.
    LimitExceeded(String),
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailError::NotConfigured => f.write_str("mail is not configured on this server"),
            MailError::Invalid(m) => write!(f, "invalid message: {m}"),
            MailError::SendFailed(m) => write!(f, "sending failed: {m}"),
            MailError::Forbidden(m) => write!(f, "not allowed: {m}"),
            MailError::LimitExceeded(m) => write!(f, "too many messages: {m}"),
        }
    }
}

impl std::error::Error for MailError {}

/// `NotConfigured` is 400 `MAIL_NOT_CONFIGURED`, `Invalid` 400
/// `BAD_REQUEST`, `SendFailed` 502 `MAIL_SEND_FAILED`, `Forbidden` 403
/// `FORBIDDEN`, `LimitExceeded` 429 `LIMIT_EXCEEDED`.
impl From<MailError> for Error {
    fn from(e: MailError) -> Error {
        let message = e.to_string();
        match e {
            MailError::NotConfigured => Error::new(400, "MAIL_NOT_CONFIGURED", message),
            MailError::Invalid(_) => Error::bad_request(message),
            MailError::SendFailed(_) => Error::new(502, "MAIL_SEND_FAILED", message),
            MailError::Forbidden(_) => Error::forbidden(message),
            MailError::LimitExceeded(_) => Error::new(429, "LIMIT_EXCEEDED", message),
        }
    }
}

/// Sends `message`; returns once the SMTP server accepted it.
///
/// ```no_run
/// use elements_sdk::mail::{self, MailError, Message};
///
/// let message = Message::to("ada@example.com").subject("Hi").text("Hello!");
/// match mail::send(&message) {
///     Ok(()) => {}
///     Err(MailError::NotConfigured) => elements_sdk::warn!("no SMTP server; skipping the email"),
///     Err(e) => return Err(e.into()),
/// }
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn send(message: &Message) -> Result<(), MailError> {
    let message = wit::Message {
        to: message.to.clone(),
        subject: message.subject.clone(),
        html: message.html.clone(),
        text: message.text.clone(),
        from: message.from.clone(),
    };
    wit::send(&message).map_err(|e| match e {
        wit::Error::NotConfigured => MailError::NotConfigured,
        wit::Error::Invalid(m) => MailError::Invalid(m),
        wit::Error::SendFailed(m) => MailError::SendFailed(m),
        wit::Error::Forbidden(m) => MailError::Forbidden(m),
        wit::Error::LimitExceeded(m) => MailError::LimitExceeded(m),
    })
}
