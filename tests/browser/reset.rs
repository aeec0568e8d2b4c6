//! Forgotten password in the browser: "Forgot password?" → the address → the same "we sent a
//! link" message → the mail (received by a real SMTP server, testkit's [`SmtpSink`]) → its
//! link opens the new-password form (the token leaves the address bar at once) → a too-short
//! password is refused → the new one is set → log in with it; the link used again says it has
//! expired or was used.

use serde_json::Value;
use switchboard_testkit::smtp::SmtpSink;

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name, WAIT};

const NEW_PASSWORD: &str = "battery staple horse";

/// The token of the reset link in a mail's decoded text part.
fn token_of(raw: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::default().parse(raw).unwrap();
    let text = parsed.body_text(0).unwrap();
    let start = text
        .find("/#reset=")
        .unwrap_or_else(|| panic!("no link: {text}"))
        + 8;
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
async fn forgot_password_mail_link_new_password_and_login() {
    let _turn = turn().await;
    let sink = SmtpSink::start().await;
    let hub = Hub::start_with(&["--smtp-url", &sink.url(), "--mail-rate-per-sec", "1000"]).await;
    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1280, 800).await;
    let name = unique_name("alice");

    alice.open(&hub.http_url()).await;
    alice.register(&name).await;
    alice.click("#logout").await;
    alice
        .until("the login form", async || {
            alice.visible("login-form").await.then_some(())
        })
        .await;

    alice.click("#forgot").await;
    assert!(alice.visible("forgot-card").await);
    assert!(!alice.visible("login-card").await);
    alice
        .fill("forgot-email", &format!("{name}@example.com"))
        .await;
    alice.click("#forgot-form button[type=submit]").await;
    alice
        .until("the confirmation", async || {
            alice.visible("forgot-sent").await.then_some(())
        })
        .await;
    assert!(alice
        .text("forgot-sent")
        .await
        .starts_with("If an account has this address"));

    // The welcome mail of the registration, then the reset mail (the mail lane keeps order).
    let mails = sink.wait_for(2, WAIT).await;
    let reset = &mails[1];
    assert_eq!(
        reset.header("subject").as_deref(),
        Some(switchboard_auth::mail::RESET_SUBJECT)
    );
    assert_eq!(reset.rcpt_to, [format!("{name}@example.com")]);
    let token = token_of(&reset.raw);
    let link = format!("{}/#reset={token}", hub.http_url());

    alice.open(&link).await;
    alice
        .until("the new-password form", async || {
            alice.visible("reset-card").await.then_some(())
        })
        .await;
    let hash: String = alice.js("return location.hash;", Vec::<Value>::new()).await;
    assert_eq!(hash, "", "the token is cleared from the address");

    alice.fill("reset-password", "short").await;
    alice.click("#reset-form button[type=submit]").await;
    alice
        .until("the short-password message", async || {
            alice
                .text("reset-error")
                .await
                .contains("at least 8")
                .then_some(())
        })
        .await;

    alice.fill("reset-password", NEW_PASSWORD).await;
    alice.click("#reset-form button[type=submit]").await;
    alice
        .until("the login form with the notice", async || {
            (alice.visible("login-card").await
                && alice
                    .text("auth-notice")
                    .await
                    .contains("password is changed"))
            .then_some(())
        })
        .await;

    alice.fill("login-username", &name).await;
    alice.fill("login-password", NEW_PASSWORD).await;
    alice.click("#login-form button[type=submit]").await;
    alice
        .until("the chat with the new password", async || {
            (alice.visible("chat-view").await && alice.text("me").await == name).then_some(())
        })
        .await;

    // The link works once: opened again, it says so.
    alice.open(&link).await;
    alice
        .until("the new-password form", async || {
            alice.visible("reset-card").await.then_some(())
        })
        .await;
    alice.fill("reset-password", "yet another password").await;
    alice.click("#reset-form button[type=submit]").await;
    alice
        .until("the used-link message", async || {
            alice
                .text("reset-error")
                .await
                .contains("expired or was already used")
                .then_some(())
        })
        .await;
}
