//! `elements:platform/mail`: email over the operator's SMTP server, with
//! `lettre`. Configured by operator attributes (set for every Element in the
//! server configuration's `[attributes]`, or per Element):
//!
//! | attribute | default | meaning |
//! |---|---|---|
//! | `dev.getelements.elements.email.smtp.host` | blank | SMTP host; blank means mail is not configured |
//! | `dev.getelements.elements.email.smtp.port` | 587 | SMTP port |
//! | `dev.getelements.elements.email.smtp.starttls` | true | upgrade with STARTTLS (required when true) |
//! | `dev.getelements.elements.email.smtp.user` | blank | user name; blank means no authentication |
//! | `dev.getelements.elements.email.smtp.password` | blank | password (sensitive) |
//! | `dev.getelements.elements.email.default.from` | blank | sender when a message names none |
//!
//! Bad values fail the Element's deploy, naming the attribute.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::mail::{self as wit, Error, Message as WitMessage};
use super::{DeployContext, HostService, ServiceConfigError};
use crate::host::{RequestInfo, RequestState};

const HOST: &str = "dev.getelements.elements.email.smtp.host";
const PORT: &str = "dev.getelements.elements.email.smtp.port";
const STARTTLS: &str = "dev.getelements.elements.email.smtp.starttls";
const USER: &str = "dev.getelements.elements.email.smtp.user";
const PASSWORD: &str = "dev.getelements.elements.email.smtp.password";
const DEFAULT_FROM: &str = "dev.getelements.elements.email.default.from";

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Most recipients of one message.
const MAX_RECIPIENTS: usize = 50;

/// The mail service.
#[derive(Default)]
pub struct MailService;

/// One Element's mailer; `None` inside when mail is not configured.
#[derive(Clone)]
pub struct Mailer(Option<Arc<Smtp>>);

/// A configured SMTP relay.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    default_from: Option<Mailbox>,
}

fn config_error(message: String) -> ServiceConfigError {
    ServiceConfigError {
        service: "mail",
        message,
    }
}

impl HostService for MailService {
    type Deployed = Mailer;
    type Instance = Mailer;

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Mailer>>(linker, |state| &mut state.services.mail)
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<Mailer, ServiceConfigError> {
        let get = |name: &str| {
            element
                .attributes
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let Some(host) = get(HOST) else {
            return Ok(Mailer(None));
        };
        let port = match get(PORT) {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| config_error(format!("{PORT} must be a port number")))?,
            None => 587,
        };
        let starttls = match get(STARTTLS) {
            Some(v) => v
                .parse::<bool>()
                .map_err(|_| config_error(format!("{STARTTLS} must be true or false")))?,
            None => true,
        };
        let default_from = get(DEFAULT_FROM)
            .map(|from| {
                from.parse::<Mailbox>()
                    .map_err(|e| config_error(format!("{DEFAULT_FROM} is not an email address: {e}")))
            })
            .transpose()?;
        let mut builder = if starttls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| config_error(format!("{HOST}: {e}")))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        };
        builder = builder.port(port).timeout(Some(SMTP_TIMEOUT));
        if let Some(user) = get(USER) {
            let password = element.attributes.get(PASSWORD).cloned().unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.to_owned(), password));
        }
        Ok(Mailer(Some(Arc::new(Smtp {
            transport: builder.build(),
            default_from,
        }))))
    }

    fn prepare(&self, deployed: &Mailer, _request: &RequestInfo) -> Mailer {
        deployed.clone()
    }
}

fn mailbox(address: &str, what: &str) -> Result<Mailbox, Error> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| Error::Invalid(format!("{what} {address:?} is not an email address: {e}")))
}

impl Smtp {
    fn build(&self, message: WitMessage) -> Result<Message, Error> {
        if message.to.is_empty() || message.to.len() > MAX_RECIPIENTS {
            return Err(Error::Invalid(format!(
                "a message needs 1 to {MAX_RECIPIENTS} recipients"
            )));
        }
        let from = match &message.from {
            Some(from) => mailbox(from, "sender")?,
            None => self.default_from.clone().ok_or_else(|| {
                Error::Invalid(format!(
                    "the message names no sender and {DEFAULT_FROM} is not set"
                ))
            })?,
        };
        let mut builder = Message::builder().from(from).subject(message.subject);
        for to in &message.to {
            builder = builder.to(mailbox(to, "recipient")?);
        }
        let built = match (message.html, message.text) {
            (Some(html), Some(text)) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
            (Some(html), None) => {
                builder.singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html))
            }
            (None, Some(text)) => builder.singlepart(SinglePart::plain(text)),
            (None, None) => return Err(Error::Invalid("a message needs an html or a text body".into())),
        };
        built.map_err(|e| Error::Invalid(e.to_string()))
    }
}

impl wit::Host for Mailer {
    async fn send(&mut self, message: WitMessage) -> Result<(), Error> {
        let Some(smtp) = &self.0 else {
            return Err(Error::NotConfigured);
        };
        let email = smtp.build(message)?;
        smtp.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| Error::SendFailed(e.to_string()))
    }
}
