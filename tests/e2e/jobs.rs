//! The job queue and the welcome mail through the hub, in both configurations (embedded: auth
//! mounted in the hub, whose process sends the mails; scaled: forwarded to the auth node, which
//! sends them): the admin routes list a registration's welcome mail and keep their refusal
//! codes; without `--smtp-url` the mail is a file in the outbox of the process that runs auth;
//! with `--smtp-url` it reaches a real SMTP server.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use switchboard_tests::smtp::SmtpSink;

use crate::admin::{admin, call};
use crate::support::{within, TestServer, TestUser};

#[tokio::test]
async fn admins_see_the_welcome_mail_of_a_registration() {
    // No workers: the mail stays ready to be looked at.
    let server = TestServer::start_with(&["--job-workers", "0"]).await;
    let root = admin(&server).await;
    let bob = server.user("bob").await;
    let (status, page) = call(
        &root.api,
        Method::GET,
        "/v1/admin/jobs?state=ready&limit=100",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let mails: Vec<_> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["payload"]["username"] == bob.username.as_str())
        .collect();
    assert_eq!(mails.len(), 1, "{page}");
    assert_eq!(mails[0]["kind"], "welcome_mail");
    assert_eq!(
        mails[0]["payload"]["email"],
        format!("{}@example.com", bob.username)
    );
    let id = mails[0]["id"].as_str().unwrap();

    let (status, body) = call(
        &root.api,
        Method::POST,
        &format!("/v1/admin/jobs/{id}/retry"),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("conflict")),
        "{body}"
    );
    let (status, body) = call(&bob.api, Method::GET, "/v1/admin/jobs", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    let (status, body) = call(&server.api(), Method::GET, "/v1/admin/jobs", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
    let (status, body) = call(&root.api, Method::GET, "/v1/admin/jobs?state=gone", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("bad_request")),
        "{body}"
    );
}

/// Polls the admin list (bounded) until `username`'s welcome mail is done; returns the job.
async fn done_welcome_mail(root: &TestUser, username: &str) -> Value {
    within(&format!("{username}'s welcome mail to be done"), async {
        loop {
            let (status, page) = call(
                &root.api,
                Method::GET,
                "/v1/admin/jobs?state=done&limit=100",
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            let found = page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|job| job["payload"]["username"] == username)
                .cloned();
            if let Some(job) = found {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

#[tokio::test]
async fn without_a_relay_the_welcome_mail_is_an_eml_file_in_the_outbox() {
    let server = TestServer::start_with(&["--job-poll-ms", "50"]).await;
    let root = admin(&server).await;
    let bob = server.user("bob").await;
    let job = done_welcome_mail(&root, &bob.username).await;
    assert_eq!(job["kind"], "welcome_mail");
    assert_eq!(job["attempts"], 1);
    let id = job["id"].as_str().unwrap();
    let file = server
        .auth_data_dir()
        .join("outbox")
        .join(format!("{id}.eml"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(
        text.contains(&format!("Message-ID: <{id}@localhost>")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}@example.com", bob.username)),
        "{text}"
    );
    assert!(text.contains("Subject: Welcome to Switchboard"), "{text}");
}

#[tokio::test]
async fn with_a_relay_the_welcome_mail_reaches_it() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let server = TestServer::start_with(&[
        "--smtp-url",
        &url,
        "--mail-from",
        "Switchboard <noreply@chat.example.com>",
        "--mail-rate-per-sec",
        "20",
        "--job-poll-ms",
        "50",
    ])
    .await;
    let root = admin(&server).await;
    let bob = server.user("bob").await;
    let got = sink.wait_for(2, Duration::from_secs(20)).await;
    let to: Vec<String> = got.iter().map(|mail| mail.rcpt_to.join(",")).collect();
    assert_eq!(
        to,
        [
            format!("{}@example.com", root.username),
            format!("{}@example.com", bob.username)
        ]
    );
    let job = done_welcome_mail(&root, &bob.username).await;
    assert_eq!(
        got[1].header("Message-ID").unwrap(),
        format!("<{}@chat.example.com>", job["id"].as_str().unwrap())
    );
    assert!(!server
        .auth_data_dir()
        .join("outbox")
        .join(format!("{}.eml", job["id"].as_str().unwrap()))
        .exists());
}
