//! [`SmtpMailer`]: mails sent to an SMTP relay (`--smtp-url`) with lettre, over rustls.

use std::time::Duration;

use async_trait::async_trait;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::{Mail, MailError, Mailer, SmtpUrl};

/// Sends each mail to the relay of an [`SmtpUrl`] on a new connection (no pool: at the mail
/// rate, about one a second, a pool saves little and a relay restart would cost a stale
/// connection).
///
/// **Invariant:** [`Mailer::send`] returns within the send timeout, whatever the relay does:
/// lettre's per-command socket timeout is set to it, and the whole send (connect, TLS, EHLO,
/// AUTH, MAIL, RCPT, DATA) is bounded by it too.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    timeout: Duration,
    /// The URL without its password, for logs.
    url: String,
}

impl SmtpMailer {
    /// A mailer for the relay at `url` that gives up on a send after `timeout`.
    ///
    /// # Errors
    /// [`MailError::Invalid`] if lettre refuses the URL (an [`SmtpUrl`] was already checked by
    /// the same call, so this happens only if the TLS setup fails).
    pub fn new(url: &SmtpUrl, timeout: Duration) -> Result<SmtpMailer, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|e| MailError::Invalid(format!("--smtp-url {url}: {e}")))?
            .timeout(Some(timeout))
            .build();
        Ok(SmtpMailer {
            transport,
            timeout,
            url: url.to_string(),
        })
    }
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let bytes = mail.formatted();
        let sent = tokio::time::timeout(
            self.timeout,
            self.transport.send_raw(mail.envelope(), &bytes),
        )
        .await;
        match sent {
            Ok(Ok(response)) => {
                tracing::info!(message_id = mail.message_id(), relay = %self.url,
                    code = %response.code(), "mail sent");
                Ok(())
            }
            Ok(Err(err)) => {
                let err = MailError::from_smtp(&err, self.timeout);
                tracing::warn!(message_id = mail.message_id(), relay = %self.url,
                    code = err.code(), permanent = err.is_permanent(), error = %err, "mail not sent");
                Err(err)
            }
            Err(_elapsed) => {
                tracing::warn!(message_id = mail.message_id(), relay = %self.url,
                    timeout = ?self.timeout, "mail send timed out");
                Err(MailError::Timeout(self.timeout))
            }
        }
    }
}
