//! A bot's message (posted by a backend through the server API) shows a "bot" badge next to
//! its author; a person's message does not.

use std::process::Stdio;

use serde_json::{json, Value};

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name};

/// The badge of the message with this body (`None`: no badge).
const BADGE_JS: &str = r#"
const li = [...document.querySelectorAll('#messages > li')]
  .find(li => (li.querySelector('.body') || {}).textContent === arguments[0]);
const badge = li && li.querySelector('.meta .bot-badge');
return badge ? badge.textContent : null;"#;

/// A new API key from `switchboard-hub api-key create`, on `hub`'s store.
fn api_key(hub: &Hub, name: &str) -> String {
    let mut command = std::process::Command::new(switchboard_tests::binary::binary(
        "switchboard-hub",
        "switchboard-hub",
    ));
    command
        .args(["api-key", "create", name, "--data-dir"])
        .arg(hub.data_dir())
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null());
    if let Some(url) = hub.database_url() {
        command.args(["--database-url", url]);
    }
    let out = command.output().expect("run switchboard-hub api-key");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .find(|l| l.starts_with("sbk_"))
        .expect("a key")
        .to_owned()
}

#[tokio::test]
async fn a_bots_message_shows_a_bot_badge() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1280, 800).await;
    let room = unique_name("alerts");
    alice.open(&hub.http_url()).await;
    alice.register(&unique_name("alice")).await;
    alice.create_room(&room, false).await;
    let shown = alice.until_room(&room).await;
    alice.send("hello from a person").await;
    alice.until_message("hello from a person").await;

    let key = api_key(&hub, "deploy-bot");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http
        .post(format!("{}/v1/server/publish", hub.http_url()))
        .bearer_auth(&key)
        .json(&json!({"room": shown.id, "body": "deployed v1.4", "idempotency_key": "d-1"}))
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 201);

    let message = alice.until_message("deployed v1.4").await;
    assert_eq!(message.from, "deploy-bot");
    let badge: Value = alice.js(BADGE_JS, vec![json!("deployed v1.4")]).await;
    assert_eq!(badge, json!("bot"));
    let none: Value = alice.js(BADGE_JS, vec![json!("hello from a person")]).await;
    assert_eq!(none, Value::Null, "a person's message has no badge");
}
