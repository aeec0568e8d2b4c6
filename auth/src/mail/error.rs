//! [`MailError`]: why a mail was not sent, and whether trying again can help.

use std::time::Duration;

/// Why [`super::Mailer::send`] (or building a [`super::Mail`]) failed.
///
/// **Invariant:** every variant is either transient (the same mail may succeed later: retry it
/// with backoff) or permanent (it never will: give up), and [`MailError::is_permanent`] says
/// which. An error whose cause is unknown is transient, so a mail is never dropped on a guess;
/// the job queue's attempt limit bounds the retries.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The mail cannot be built or addressed: a malformed recipient or sender address, an id
    /// unfit for a `Message-ID`, a link that is not an `http(s)` URL. Permanent.
    #[error("invalid mail: {0}")]
    Invalid(String),
    /// The relay refused the mail with a 5xx reply (unknown recipient, policy). Permanent.
    #[error("rejected by the SMTP relay: {0}")]
    Rejected(String),
    /// The relay deferred the mail with a 4xx reply (greylisting, mailbox busy, rate). Transient.
    #[error("deferred by the SMTP relay: {0}")]
    Deferred(String),
    /// The relay could not be reached or the session broke: connection refused, reset, a TLS
    /// handshake that failed, a reply that did not parse. Transient.
    #[error("SMTP relay unreachable: {0}")]
    Connection(String),
    /// The whole send (connect, TLS, dialogue, data) took longer than the send timeout.
    /// Transient.
    #[error("SMTP send timed out after {0:?}")]
    Timeout(Duration),
    /// The outbox file could not be written (disk full, permissions). Transient.
    #[error("outbox write failed: {0}")]
    Outbox(#[from] std::io::Error),
}

impl MailError {
    /// True if sending the same mail again cannot succeed: [`MailError::Invalid`] and
    /// [`MailError::Rejected`]. Everything else is transient.
    pub fn is_permanent(&self) -> bool {
        matches!(self, MailError::Invalid(_) | MailError::Rejected(_))
    }

    /// A stable code for logs and a job's last error: `mail_invalid`, `mail_rejected`,
    /// `mail_deferred`, `mail_connection`, `mail_timeout`, `mail_outbox`.
    pub fn code(&self) -> &'static str {
        match self {
            MailError::Invalid(_) => "mail_invalid",
            MailError::Rejected(_) => "mail_rejected",
            MailError::Deferred(_) => "mail_deferred",
            MailError::Connection(_) => "mail_connection",
            MailError::Timeout(_) => "mail_timeout",
            MailError::Outbox(_) => "mail_outbox",
        }
    }

    /// Maps a lettre SMTP error: a 5xx reply is [`MailError::Rejected`], a 4xx reply
    /// [`MailError::Deferred`], an I/O timeout [`MailError::Timeout`] (with `timeout`, the
    /// configured limit), anything else (network, connection, TLS, an unparsable reply, a
    /// transport shut down, lettre's own client errors) [`MailError::Connection`].
    ///
    /// lettre's client errors are also raised for replies it did not expect (e.g. a 2xx code
    /// out of place), so they are treated as transient rather than as a bad mail: a mail
    /// that is malformed is caught earlier, when it is built ([`MailError::Invalid`]).
    pub(crate) fn from_smtp(err: &lettre::transport::smtp::Error, timeout: Duration) -> Self {
        let text = error_chain(err);
        if err.is_permanent() {
            MailError::Rejected(text)
        } else if err.is_transient() {
            MailError::Deferred(text)
        } else if err.is_timeout() {
            MailError::Timeout(timeout)
        } else {
            MailError::Connection(text)
        }
    }
}

/// `err` and its sources, `: `-separated (lettre's `Display` shows one level only).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_invalid_and_rejected_are_permanent() {
        let d = Duration::from_secs(1);
        assert!(MailError::Invalid("x".into()).is_permanent());
        assert!(MailError::Rejected("550".into()).is_permanent());
        assert!(!MailError::Deferred("451".into()).is_permanent());
        assert!(!MailError::Connection("refused".into()).is_permanent());
        assert!(!MailError::Timeout(d).is_permanent());
        assert!(!MailError::Outbox(std::io::Error::other("full")).is_permanent());
    }
}
