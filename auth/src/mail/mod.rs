//! Mail: the welcome and password-reset mails ([`Mail`]) and how they leave ([`Mailer`]).
//!
//! - `content`: [`Mail`] built from the templates in `auth/templates/mail/` (plain text and
//!   HTML), [`MailFrom`].
//! - `smtp`: [`SmtpMailer`], lettre over rustls to `--smtp-url`.
//! - `outbox`: [`OutboxMailer`], one `.eml` file per mail in `DATA_DIR/outbox/` (no relay).
//! - `config`: [`MailConfig`], [`SmtpUrl`] and the flags ([`MailFlags`]).
//! - `error`: [`MailError`], transient or permanent.
//! - `handler`: [`WelcomeMailHandler`], the `welcome_mail` job's handler (registered by
//!   [`crate::Auth::open`] on every node that opens the service).
//!
//! **Invariant:** this module sends one mail when asked and says whether a failure is worth
//! retrying; it never retries, paces or queues. The job queue does (at-least-once, the cluster's
//! `--mail-rate-per-sec`), and the stable `Message-ID` of each [`Mail`] lets receivers drop the
//! duplicates that at-least-once allows.

mod config;
mod content;
mod error;
mod handler;
mod outbox;
mod smtp;

use std::path::Path;
use std::sync::Arc;

pub use config::{
    parse_rate, parse_timeout, MailConfig, MailFlags, SmtpUrl, SmtpUrlParser,
    DEFAULT_MAIL_RATE_PER_SEC, DEFAULT_SMTP_TIMEOUT,
};
pub use content::{Mail, MailFrom, DEFAULT_MAIL_FROM, MAX_ID_LEN, RESET_SUBJECT, WELCOME_SUBJECT};
pub use error::MailError;
pub use handler::WelcomeMailHandler;
pub use outbox::{OutboxMailer, OUTBOX_DIR};
pub use smtp::SmtpMailer;

/// Sends one [`Mail`]. The seam between the job that decides to send a mail and the way it
/// leaves: [`SmtpMailer`], [`OutboxMailer`], or a test's own.
///
/// Contract: `Ok` means the relay accepted the mail (or the file is in place); an error says by
/// [`MailError::is_permanent`] whether sending the same mail again can help. Sending the same
/// [`Mail`] twice is allowed (its `Message-ID` is the same both times).
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `mail` once.
    ///
    /// # Errors
    /// [`MailError`], transient or permanent.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// The mailer `cfg` describes: an [`SmtpMailer`] with `cfg.smtp_url`, else an [`OutboxMailer`]
/// in `data_dir/outbox` (created 0700). Blocking (it may create the outbox directory).
///
/// # Errors
/// [`MailError::Invalid`] if the SMTP transport cannot be set up, [`MailError::Outbox`] if the
/// outbox directory cannot be created.
pub fn mailer(cfg: &MailConfig, data_dir: &Path) -> Result<Arc<dyn Mailer>, MailError> {
    Ok(match &cfg.smtp_url {
        Some(url) => Arc::new(SmtpMailer::new(url, cfg.send_timeout)?),
        None => Arc::new(OutboxMailer::open(data_dir.join(OUTBOX_DIR))?),
    })
}
