//! [`WelcomeMailHandler`]: runs the [`WELCOME_MAIL`] jobs that registration enqueues
//! (`jobs::welcome_mail`). Every node's pool has it, unless `AuthConfig::job_handlers` gives
//! another for the kind.
//!
//! It exists because the `mail` lane runs its jobs in order: a welcome mail that no node can
//! run would hold back every later mail of the lane, the password-reset mails included.

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_jobs::{Handler, Job, JobFailure};

use crate::jobs::WELCOME_MAIL;
use crate::mail::{Mail, MailFrom, Mailer};

/// Sends the welcome mail of a job's payload (`{"user_id", "username", "email"}`), with the
/// job id as its `Message-ID`.
pub(crate) struct WelcomeMailHandler {
    mailer: Arc<dyn Mailer>,
    from: MailFrom,
}

impl WelcomeMailHandler {
    pub(crate) fn new(mailer: Arc<dyn Mailer>, from: MailFrom) -> Self {
        Self { mailer, from }
    }
}

#[async_trait]
impl Handler for WelcomeMailHandler {
    fn kind(&self) -> &'static str {
        WELCOME_MAIL
    }

    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let field = |name: &str| job.payload[name].as_str().unwrap_or_default();
        let failure = |e: crate::mail::MailError| {
            if e.is_permanent() {
                JobFailure::Permanent(e.to_string())
            } else {
                JobFailure::Transient(e.to_string())
            }
        };
        let mail = Mail::welcome(&self.from, field("email"), field("username"), &job.id)
            .map_err(failure)?;
        self.mailer.send(&mail).await.map_err(failure)
    }
}
