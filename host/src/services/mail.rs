//! `elements:platform/mail`: email over the operator's SMTP server, with
//! `lettre`. The relay is the operator's (`[services.mail]` in the server
//! configuration, or `ELEMENTS_SMTP_*`): no Element reads or overrides it.
//! Only Elements with the `mail.send` grant may send, at most
//! [`MailSettings::max_per_request`] messages per request.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::mail::{self as wit, Error, Message as WitMessage};
use super::{DeployContext, HostService, ServiceConfigError, ServiceDeps, ServicesError};
use crate::instance::{RequestInfo, RequestState};
use elements_config::MailSettings;
use elements_config::ServicesConfig;
use elements_config::grants::Grant;

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Most recipients of one message.
const MAX_RECIPIENTS: usize = 50;

/// The mail service: one relay for every Element, swapped whole when an
/// operator changes the settings.
pub struct MailService {
    relay: arc_swap::ArcSwap<Relay>,
}

/// The relay and its per-request cap.
pub struct Relay {
    smtp: Option<Arc<Smtp>>,
    max_per_request: u32,
}

/// A configured SMTP relay.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    default_from: Option<Mailbox>,
}

/// Mail settings the service can't use.
#[derive(Debug, thiserror::Error)]
#[error("[services.mail]: {0}")]
pub struct MailConfigError(String);

impl MailService {
    /// The service over the operator's settings.
    pub fn new(settings: &MailSettings) -> Result<MailService, MailConfigError> {
        Ok(MailService {
            relay: arc_swap::ArcSwap::from_pointee(Relay::new(settings)?),
        })
    }

    /// Applies new operator settings to every message from now on; bad
    /// settings change nothing.
    pub fn apply(&self, settings: &MailSettings) -> Result<(), MailConfigError> {
        self.relay.store(Arc::new(Relay::new(settings)?));
        Ok(())
    }
}

impl Relay {
    /// Checks the settings and builds the transport (it connects lazily).
    pub fn new(settings: &MailSettings) -> Result<Relay, MailConfigError> {
        let smtp = match &settings.host {
            None => None,
            Some(host) => {
                let default_from = settings
                    .from
                    .as_deref()
                    .map(|from| {
                        from.parse::<Mailbox>()
                            .map_err(|e| MailConfigError(format!("from is not an email address: {e}")))
                    })
                    .transpose()?;
                let mut builder = if settings.starttls {
                    AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                        .map_err(|e| MailConfigError(format!("host: {e}")))?
                } else {
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                };
                builder = builder.port(settings.port).timeout(Some(SMTP_TIMEOUT));
                if let Some(user) = &settings.user {
                    let password = settings
                        .password
                        .as_ref()
                        .map(|p| p.expose().to_owned())
                        .unwrap_or_default();
                    builder = builder.credentials(Credentials::new(user.clone(), password));
                }
                Some(Arc::new(Smtp {
                    transport: builder.build(),
                    default_from,
                }))
            }
        };
        Ok(Relay {
            smtp,
            max_per_request: settings.max_per_request,
        })
    }
}

/// One instance's mailer: the relay as it was when the request started,
/// whether the Element holds `mail.send`, and what it sent.
pub struct Instance {
    allowed: bool,
    relay: Arc<Relay>,
    sent: u32,
}

impl HostService for MailService {
    /// Whether the Element holds `mail.send`.
    type Deployed = bool;
    type Instance = Instance;

    fn start(deps: &ServiceDeps) -> Result<MailService, ServicesError> {
        Ok(MailService::new(&deps.settings.mail)?)
    }

    fn check_settings(settings: &ServicesConfig) -> Result<(), ServicesError> {
        Relay::new(&settings.mail)?;
        Ok(())
    }

    fn reconfigure(&self, settings: &ServicesConfig) -> Result<(), ServicesError> {
        Ok(self.apply(&settings.mail)?)
    }

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Instance>>(linker, |state| &mut state.services.mail)
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<bool, ServiceConfigError> {
        Ok(element.grants.has(&Grant::MailSend))
    }

    fn prepare(&self, allowed: &bool, _request: &RequestInfo) -> Instance {
        Instance {
            allowed: *allowed,
            relay: self.relay.load_full(),
            sent: 0,
        }
    }

    fn renew(&self, _allowed: &bool, instance: &mut Instance, _request: &RequestInfo) {
        let Instance {
            allowed: _,
            relay,
            sent,
        } = instance;
        *sent = 0;
        // The relay as it is now: the operator may have changed it since
        // this instance's last request.
        let current = self.relay.load();
        if !Arc::ptr_eq(&current, relay) {
            *relay = arc_swap::Guard::into_inner(current);
        }
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
                Error::Invalid("the message names no sender and the operator set no default".into())
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

impl wit::Host for Instance {
    async fn send(&mut self, message: WitMessage) -> Result<(), Error> {
        if !self.allowed {
            return Err(Error::Forbidden(format!(
                "this Element lacks the grant {}; the operator approves grants the manifest requests",
                Grant::MailSend
            )));
        }
        let Some(smtp) = &self.relay.smtp else {
            return Err(Error::NotConfigured);
        };
        if self.sent >= self.relay.max_per_request {
            return Err(Error::LimitExceeded(format!(
                "one request sends at most {} messages",
                self.relay.max_per_request
            )));
        }
        let email = smtp.build(message)?;
        self.sent += 1;
        smtp.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| Error::SendFailed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reused instance starts each request with nothing sent and the
    /// relay as the operator last set it (the same one while unchanged).
    #[test]
    fn a_renewed_instance_counts_anew_and_takes_the_current_relay() {
        let service = MailService::new(&MailSettings::default()).unwrap();
        let request = RequestInfo::internal("r1");
        let mut instance = service.prepare(&true, &request);
        instance.sent = 3;
        let first = instance.relay.clone();
        service.renew(&true, &mut instance, &request);
        assert_eq!(instance.sent, 0);
        assert!(Arc::ptr_eq(&first, &instance.relay));
        service
            .apply(&MailSettings {
                max_per_request: 7,
                ..MailSettings::default()
            })
            .unwrap();
        service.renew(&true, &mut instance, &request);
        assert_eq!(instance.relay.max_per_request, 7);
        assert!(instance.allowed);
    }
}
