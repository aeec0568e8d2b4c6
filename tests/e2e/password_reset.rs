//! Password reset by mail end to end, in both configurations (embedded: auth in the hub;
//! scaled: the auth node sends the mail), against a real SMTP server on a free port (testkit's
//! [`SmtpSink`]): the mailed link's token sets the password, the old one is refused, every
//! session ends (the socket closes with 1008), the token works once, and a fourth request in an
//! hour sends nothing. (Each refusal, expiry included, is also in auth's `api` suite.)

use std::time::Duration;

use serde_json::json;
use switchboard_client::protocol::ErrorCode;
use switchboard_testkit::smtp::{Received, SmtpSink};

use crate::support::{api_err, closed, TestServer, PASSWORD};

const PUBLIC_URL: &str = "http://chat.test";
const NEW_PASSWORD: &str = "battery staple horse";

/// POSTs `body` to `path` on the hub; the status and the JSON body (null if none).
async fn post(
    server: &TestServer,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}{path}", server.http_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, json)
}

async fn ask(server: &TestServer, email: &str) {
    let (status, body) = post(server, "/v1/auth/password/reset", json!({ "email": email })).await;
    assert_eq!((status, body), (202, serde_json::Value::Null));
}

async fn confirm(server: &TestServer, token: &str, password: &str) -> (u16, serde_json::Value) {
    post(
        server,
        "/v1/auth/password/reset/confirm",
        json!({ "token": token, "password": password }),
    )
    .await
}

/// The recipient and the link's token of a reset mail, read from its decoded text part.
fn token_of(mail: &Received) -> (String, String) {
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.raw)
        .unwrap();
    let text = parsed.body_text(0).unwrap();
    let prefix = format!("{PUBLIC_URL}/#reset=");
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no link: {text}"))
        + prefix.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (mail.rcpt_to.join(","), token)
}

/// A hub (and auth node) mailing to `sink`, links on [`PUBLIC_URL`], mails unpaced.
async fn start(sink: &SmtpSink) -> TestServer {
    TestServer::start_with(&[
        "--smtp-url",
        &sink.url(),
        "--public-url",
        PUBLIC_URL,
        "--mail-rate-per-sec",
        "1000",
    ])
    .await
}

fn is_reset(mail: &Received) -> bool {
    mail.header("subject").as_deref() == Some(switchboard_auth::mail::RESET_SUBJECT)
}

/// The `n`th reset mail (the registrations' welcome mails are skipped): recipient and token.
async fn nth_mail(sink: &SmtpSink, n: usize) -> (String, String) {
    let mut total = n;
    loop {
        let got = sink.wait_for(total, Duration::from_secs(10)).await;
        let resets: Vec<&Received> = got.iter().filter(|m| is_reset(m)).collect();
        if resets.len() >= n {
            return token_of(resets[n - 1]);
        }
        total = got.len() + 1;
    }
}

#[tokio::test]
async fn a_mailed_link_resets_the_password_once_and_ends_every_session() {
    let sink = SmtpSink::start().await;
    let server = start(&sink).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let alice_email = format!("{}@example.com", alice.username);
    let mut socket = server.connect(&alice).await;

    ask(&server, &alice_email.to_uppercase()).await;
    let (to, token) = nth_mail(&sink, 1).await;
    assert_eq!(to, alice_email);
    assert_eq!(token.len(), 43);

    assert_eq!(confirm(&server, &token, NEW_PASSWORD).await.0, 204);
    // Every session ends: the open socket closes with 1008, the token is refused.
    assert_eq!(closed(&mut socket).await.1, Some(1008));
    assert_eq!(
        api_err(alice.api.me().await),
        (401, ErrorCode::Unauthorized)
    );
    let api = server.api();
    assert_eq!(
        api_err(api.login(&alice.username, PASSWORD).await),
        (401, ErrorCode::InvalidCredentials)
    );
    api.login(&alice.username, NEW_PASSWORD)
        .await
        .expect("the new password works");
    // Once only.
    let (status, body) = confirm(&server, &token, "another good password").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthorized")),
        "{body}"
    );

    // Two more requests in the hour are mailed; a fourth is answered alike but sends nothing:
    // the next mail is bob's.
    ask(&server, &alice_email).await;
    ask(&server, &alice_email).await;
    assert_eq!(nth_mail(&sink, 3).await.0, alice_email);
    ask(&server, &alice_email).await;
    let bob_email = format!("{}@example.com", bob.username);
    ask(&server, &bob_email).await;
    assert_eq!(nth_mail(&sink, 4).await.0, bob_email);
    // Bob's sessions were untouched by alice's reset.
    bob.api.me().await.expect("bob's session goes on");
}

#[tokio::test]
async fn bad_tokens_are_refused_through_the_hub() {
    let sink = SmtpSink::start().await;
    let server = start(&sink).await;
    let carol = server.user("carol").await;
    for (token, status, code) in [
        ("not-a-token", 400, "bad_request"),
        (&"A".repeat(43)[..], 401, "unauthorized"),
    ] {
        let (got, body) = confirm(&server, token, NEW_PASSWORD).await;
        assert_eq!(
            (got, &body["error"]["code"]),
            (status, &json!(code)),
            "{body}"
        );
    }
    let (status, body) = post(
        &server,
        "/v1/auth/password/reset",
        json!({ "email": "nope" }),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("bad_request")),
        "{body}"
    );
    carol.api.me().await.expect("nothing changed");
    server
        .api()
        .login(&carol.username, PASSWORD)
        .await
        .expect("the old password still works");
    assert!(!sink.received().iter().any(is_reset));
}
