//! The welcome mail end to end in one service: registration → the `welcome_mail` job → the
//! default handler → a real SMTP server on a free port (testkit's [`SmtpSink`]), on SQLite and
//! PostgreSQL. Delivery and content, order, a relay down for 5 s, a 451 then 250, and a 550
//! (dead after one attempt, delivered after an admin's retry). Real sockets and real time; the
//! retry backoff is shortened (the default's first retries come after 0.5 to 1 s, then 1 to 2 s,
//! then 2 to 4 s ...: the same behaviour, only slower). The cluster-wide rate with three nodes
//! and a node killed mid-send are in the cluster suite (`tests/cluster/mail.rs`).

use std::collections::HashSet;
use std::time::Duration;

use axum::http::StatusCode;
use mail_parser::MessageParser;
use switchboard_auth::jobs::WELCOME_MAIL;
use switchboard_auth::mail::{MailFrom, SmtpUrl, WELCOME_SUBJECT};
use switchboard_jobs::{Job, State};
use switchboard_kit::backoff::Backoff;
use switchboard_testkit::smtp::{Received, SmtpSink, Stage};

use crate::support::{assert_error, within, Backend, Harness};

backend_tests!(
    registration_sends_the_welcome_mail_with_the_job_id_as_message_id,
    mails_leave_in_registration_order,
    mails_wait_for_a_relay_that_is_down_and_none_is_lost,
    a_deferred_mail_is_delivered_once_on_retry,
    a_rejected_mail_dies_after_one_attempt_and_an_admin_retry_delivers_it,
    without_a_relay_the_welcome_mail_is_an_outbox_file,
);

/// Bound on waiting for mails in these tests.
const MAIL_WAIT: Duration = Duration::from_secs(20);

/// A harness sending to `sink` with workers, a fast mail rate (order and spacing with the
/// default rate are the cluster suite's) and a short retry backoff.
async fn harness(backend: Backend, sink: &SmtpSink) -> Harness {
    let url = SmtpUrl::parse(&sink.url()).unwrap();
    Harness::with_config(backend, |cfg| {
        cfg.jobs.workers = 2;
        cfg.jobs.poll = Duration::from_millis(50);
        // Retries within a second or two, yet the 12 default attempts last longer than the 5 s
        // outage (at least 8.9 s: each delay is drawn from the upper half of its step).
        cfg.jobs.backoff = Backoff::doubling(Duration::from_millis(250), Duration::from_secs(2));
        cfg.mail.smtp_url = Some(url);
        cfg.mail.from = MailFrom::parse("Switchboard <noreply@chat.example.com>").unwrap();
        cfg.mail.rate_per_sec = 50.0;
        cfg.mail.send_timeout = Duration::from_secs(5);
    })
    .await
}

/// The job of `username`'s welcome mail. The lists are read one state after another while
/// workers move the job (a retry takes it from `running` back to `ready`), so a pass may miss it:
/// a few passes are made before giving up.
async fn job_of(h: &Harness, username: &str) -> Job {
    let store = h.auth.job_store();
    for _pass in 0..50 {
        for state in State::ALL {
            let jobs = store.list(state, None, 100).await.unwrap();
            if let Some(job) = jobs
                .into_iter()
                .find(|j| j.kind == WELCOME_MAIL && j.payload["username"] == username)
            {
                return job;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no welcome mail job for {username}");
}

/// Polls (bounded) until `username`'s job is in `state`; returns it.
async fn job_in_state(h: &Harness, username: &str, state: State) -> Job {
    within(&format!("{username}'s job to be {state:?}"), async {
        loop {
            let job = job_of(h, username).await;
            if job.state == state {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn message_id(mail: &Received) -> String {
    mail.header("Message-ID").expect("a Message-ID")
}

fn recipient(mail: &Received) -> String {
    mail.rcpt_to.join(",")
}

async fn registration_sends_the_welcome_mail_with_the_job_id_as_message_id(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink).await;
    h.register("alice").await;
    let got = sink.wait_for(1, MAIL_WAIT).await;
    let job = job_in_state(&h, "alice", State::Done).await;
    assert_eq!(job.attempts, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "noreply@chat.example.com");
    assert_eq!(recipient(&got[0]), "alice@example.com");
    let parsed = MessageParser::default().parse(&got[0].raw).unwrap();
    assert_eq!(parsed.subject(), Some(WELCOME_SUBJECT));
    let expected_id = format!("{}@chat.example.com", job.id);
    assert_eq!(parsed.message_id(), Some(expected_id.as_str()));
    let to = parsed.to().unwrap().first().unwrap();
    assert_eq!(
        (to.name(), to.address()),
        (Some("alice"), Some("alice@example.com"))
    );
    assert!(parsed.body_text(0).unwrap().contains("alice"));
    assert!(parsed.body_html(0).unwrap().contains("alice"));
    // Sent by SMTP, so nothing in the outbox.
    assert!(!h
        .env
        .data_dir()
        .join("outbox")
        .join(format!("{}.eml", job.id))
        .exists());
    h.auth.shutdown_jobs().await;
}

async fn mails_leave_in_registration_order(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink).await;
    let names: Vec<String> = (0..6).map(|i| format!("user{i}")).collect();
    for name in &names {
        h.register(name).await;
    }
    let got = sink.wait_for(names.len(), MAIL_WAIT).await;
    let order: Vec<String> = got.iter().map(recipient).collect();
    let expected: Vec<String> = names.iter().map(|n| format!("{n}@example.com")).collect();
    assert_eq!(order, expected);
    h.auth.shutdown_jobs().await;
}

async fn mails_wait_for_a_relay_that_is_down_and_none_is_lost(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    sink.stop().await;
    let h = harness(backend, &sink).await;
    let names = ["ann", "ben", "cat"];
    for name in names {
        h.register(name).await;
    }
    // The relay is down for 5 s: the first mail is tried and retried (connection refused, a
    // transient failure) and holds the lane, so the others wait behind it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let first = job_of(&h, "ann").await;
    assert!(first.attempts >= 2, "retried while down: {first:?}");
    assert!(
        first
            .last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("mail_connection"),
        "{first:?}"
    );
    assert_eq!(job_of(&h, "cat").await.attempts, 0, "waits in the lane");
    assert!(sink.received().is_empty());
    sink.restart().await;
    let got = sink.wait_for(names.len(), MAIL_WAIT).await;
    let order: Vec<String> = got.iter().map(recipient).collect();
    assert_eq!(order, names.map(|n| format!("{n}@example.com")));
    let ids: HashSet<String> = got.iter().map(message_id).collect();
    assert_eq!(ids.len(), names.len(), "no mail twice");
    for name in names {
        job_in_state(&h, name, State::Done).await;
    }
    h.auth.shutdown_jobs().await;
}

async fn a_deferred_mail_is_delivered_once_on_retry(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.fail_next(Stage::Data, 451, 1);
    let h = harness(backend, &sink).await;
    h.register("dora").await;
    let job = job_in_state(&h, "dora", State::Done).await;
    assert_eq!(job.attempts, 2, "{job:?}");
    assert_eq!(sink.data_attempts(), 2);
    let got = sink.received();
    assert_eq!(got.len(), 1, "one delivery");
    assert_eq!(
        message_id(&got[0]),
        format!("<{}@chat.example.com>", job.id)
    );
    h.auth.shutdown_jobs().await;
}

async fn a_rejected_mail_dies_after_one_attempt_and_an_admin_retry_delivers_it(backend: Backend) {
    let sink = SmtpSink::start().await;
    let h = harness(backend, &sink).await;
    let admin = h.admin_user("root").await;
    sink.wait_for(1, MAIL_WAIT).await; // root's own welcome mail
    sink.fail_always(Stage::Rcpt, 550);
    h.register("erin").await;
    let dead = job_in_state(&h, "erin", State::Dead).await;
    assert_eq!(dead.attempts, 1, "{dead:?}");

    let token = Some(admin.access_token.as_str());
    let page = h
        .request("GET", "/v1/admin/jobs?state=dead", token, None)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    let listed = &page.json["jobs"][0];
    assert_eq!(listed["id"], dead.id.as_str());
    assert_eq!(listed["attempts"], 1);
    let error = listed["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("mail_rejected") && error.contains("550"),
        "{error}"
    );

    // The relay is fixed; the admin retries; the mail goes out, with the same Message-ID it
    // would have had.
    sink.clear_script();
    let path = format!("/v1/admin/jobs/{}/retry", dead.id);
    let retried = h.request("POST", &path, token, None).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.json);
    let got = sink.wait_for(2, MAIL_WAIT).await;
    assert_eq!(recipient(&got[1]), "erin@example.com");
    assert_eq!(
        message_id(&got[1]),
        format!("<{}@chat.example.com>", dead.id)
    );
    job_in_state(&h, "erin", State::Done).await;
    let again = h.request("POST", &path, token, None).await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
    h.auth.shutdown_jobs().await;
}

async fn without_a_relay_the_welcome_mail_is_an_outbox_file(backend: Backend) {
    let h = Harness::with_config(backend, |cfg| {
        cfg.jobs.workers = 1;
        cfg.jobs.poll = Duration::from_millis(50);
    })
    .await;
    h.register("finn").await;
    let job = job_in_state(&h, "finn", State::Done).await;
    let file = h
        .env
        .data_dir()
        .join("outbox")
        .join(format!("{}.eml", job.id));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("Message-ID: <{}@localhost>", job.id)),
        "{text}"
    );
    assert!(text.contains("finn@example.com"), "{text}");
    h.auth.shutdown_jobs().await;
}

#[tokio::test]
async fn a_mail_rate_that_is_not_above_zero_is_refused_at_open() {
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let env = crate::support::Env::new(Backend::Sqlite, false).await;
        let mut cfg = env.config();
        cfg.mail.rate_per_sec = rate;
        let err = switchboard_auth::Auth::open(cfg).await.unwrap_err();
        assert!(
            matches!(err, switchboard_auth::AuthError::Config(_)),
            "{rate}: {err:?}"
        );
    }
}
