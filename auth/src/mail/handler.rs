//! [`WelcomeMailHandler`]: the job handler that turns a `welcome_mail` job into a sent mail.
//!
//! **Invariants:** the mail's `Message-ID` is built from the job id, so every attempt of one
//! job (a retry, or a second run after a lease ran out) carries the same one; the handler sends
//! once per run and never retries or paces by itself (the queue's mail lane does both).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use switchboard_jobs::{Handler, Job, JobFailure};

use super::{Mail, MailError, MailFrom, Mailer};
use crate::jobs::WELCOME_MAIL;

/// The payload of a `welcome_mail` job, as registration writes it (`jobs::welcome_mail`).
/// Unknown fields are ignored, so a newer release may add some.
#[derive(Debug, Deserialize)]
struct WelcomePayload {
    username: String,
    email: String,
}

/// Runs `welcome_mail` jobs: the payload's `username` and `email` →
/// [`Mail::welcome`] with the job id as the `Message-ID`'s id → [`Mailer::send`].
///
/// Failures: a payload without a string `username` and `email`, and a permanent
/// [`MailError`] ([`MailError::is_permanent`]: a 5xx reply, an address that does not parse)
/// are [`JobFailure::Permanent`] (the job dies at once); every other failure (4xx, relay down,
/// timeout, outbox not writable) is [`JobFailure::Transient`] (retried with backoff). The
/// failure's text starts with the [`MailError::code`] and lands in the job's `last_error`.
#[derive(Debug, Clone)]
pub struct WelcomeMailHandler {
    mailer: Arc<dyn Mailer>,
    from: MailFrom,
}

impl WelcomeMailHandler {
    /// A handler sending through `mailer` as `from`.
    pub fn new(mailer: Arc<dyn Mailer>, from: MailFrom) -> Self {
        Self { mailer, from }
    }
}

/// `err` as the job's failure: permanent or transient as [`MailError::is_permanent`] says.
fn failure(err: &MailError) -> JobFailure {
    let text = format!("{}: {err}", err.code());
    if err.is_permanent() {
        JobFailure::Permanent(text)
    } else {
        JobFailure::Transient(text)
    }
}

#[async_trait]
impl Handler for WelcomeMailHandler {
    fn kind(&self) -> &'static str {
        WELCOME_MAIL
    }

    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let payload = WelcomePayload::deserialize(&job.payload)
            .map_err(|e| JobFailure::Permanent(format!("malformed welcome_mail payload: {e}")))?;
        let mail = Mail::welcome(&self.from, &payload.email, &payload.username, &job.id)
            .map_err(|e| failure(&e))?;
        self.mailer.send(&mail).await.map_err(|e| {
            tracing::warn!(job = %job.id, attempt = job.attempts, code = e.code(), error = %e,
                "welcome mail not sent");
            failure(&e)
        })?;
        tracing::info!(job = %job.id, message_id = mail.message_id(), "welcome mail sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;
    use switchboard_jobs::State;

    use super::*;

    /// Records the mails it is given and answers with the next scripted result.
    #[derive(Debug, Default)]
    struct Scripted {
        sent: Mutex<Vec<Mail>>,
        next: Mutex<Vec<MailError>>,
    }

    #[async_trait]
    impl Mailer for Scripted {
        async fn send(&self, mail: &Mail) -> Result<(), MailError> {
            if let Some(err) = self.next.lock().unwrap().pop() {
                return Err(err);
            }
            self.sent.lock().unwrap().push(mail.clone());
            Ok(())
        }
    }

    fn job(id: &str, payload: serde_json::Value) -> Job {
        Job {
            id: id.into(),
            kind: WELCOME_MAIL.into(),
            payload,
            lane: Some(crate::jobs::MAIL_LANE.into()),
            state: State::Running,
            attempts: 1,
            max_attempts: 12,
            run_at: 0,
            lease_until: None,
            leased_by: None,
            last_error: None,
            created_at: 0,
            finished_at: None,
        }
    }

    fn handler() -> (Arc<Scripted>, WelcomeMailHandler) {
        let mailer = Arc::new(Scripted::default());
        let from = MailFrom::parse("Switchboard <noreply@chat.example.com>").unwrap();
        (Arc::clone(&mailer), WelcomeMailHandler::new(mailer, from))
    }

    fn alice() -> serde_json::Value {
        json!({"user_id": "u1", "username": "alice", "email": "alice@example.com"})
    }

    #[tokio::test]
    async fn a_welcome_job_sends_one_mail_whose_message_id_is_the_job_id() {
        let (mailer, handler) = handler();
        assert_eq!(handler.kind(), WELCOME_MAIL);
        handler.run(&job("0190-ab", alice())).await.unwrap();
        handler.run(&job("0190-ab", alice())).await.unwrap();
        let sent = mailer.sent.lock().unwrap();
        assert_eq!(sent.len(), 2);
        for mail in sent.iter() {
            assert_eq!(mail.message_id(), "<0190-ab@chat.example.com>");
            let to: Vec<String> = mail.envelope().to().iter().map(|a| a.to_string()).collect();
            assert_eq!(to, ["alice@example.com"]);
        }
    }

    #[tokio::test]
    async fn failures_are_permanent_or_transient_as_the_mail_error_says() {
        let (mailer, handler) = handler();
        for (err, permanent) in [
            (MailError::Rejected("550 no such user".into()), true),
            (MailError::Deferred("451 try later".into()), false),
            (MailError::Connection("refused".into()), false),
            (MailError::Timeout(std::time::Duration::from_secs(1)), false),
        ] {
            let code = err.code();
            mailer.next.lock().unwrap().push(err);
            let failure = handler.run(&job("j1", alice())).await.unwrap_err();
            match failure {
                JobFailure::Permanent(text) => assert!(permanent && text.starts_with(code)),
                JobFailure::Transient(text) => assert!(!permanent && text.starts_with(code)),
            }
        }
        assert!(mailer.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_malformed_payload_or_address_is_permanent() {
        let (mailer, handler) = handler();
        for payload in [
            json!(null),
            json!({"username": "alice"}),
            json!({"username": 7, "email": "alice@example.com"}),
            json!({"username": "alice", "email": "not an address"}),
        ] {
            let failure = handler.run(&job("j2", payload.clone())).await;
            assert!(
                matches!(failure, Err(JobFailure::Permanent(_))),
                "{payload}: {failure:?}"
            );
        }
        let bad_id = handler.run(&job("not a message id", alice())).await;
        assert!(
            matches!(bad_id, Err(JobFailure::Permanent(_))),
            "{bad_id:?}"
        );
        assert!(mailer.sent.lock().unwrap().is_empty());
    }
}
