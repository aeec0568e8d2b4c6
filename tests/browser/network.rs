//! The page survives the network: a hub restart (with a message sent while the hub is down) and
//! access tokens that expire while the page is open.

use std::time::Duration;

use serde::Deserialize;
use switchboard_client::HistoryQuery;

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name, PASSWORD};

/// Bound on reconnecting after the hub is back: the page's backoff grows while the hub is down
/// (at most a few seconds here), then one attempt succeeds.
const RECONNECT_WAIT: Duration = Duration::from_secs(45);

#[tokio::test]
async fn a_hub_restart_loses_no_message_and_duplicates_none() {
    let _turn = turn().await;
    let mut hub = Hub::start().await;
    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1024, 768).await;
    let bob = driver.browser("bob", 1024, 768).await;
    let (alice_name, bob_name) = (unique_name("alice"), unique_name("bob"));
    let room = unique_name("ops");
    alice.open(&hub.http_url()).await;
    bob.open(&hub.http_url()).await;
    alice.register(&alice_name).await;
    bob.register(&bob_name).await;
    alice.create_room(&room, false).await;
    alice.add_member(&bob_name).await;
    bob.open_room(&room).await;
    alice.send("before the restart").await;
    bob.until_message("before the restart").await;

    // The hub goes down: both pages say so.
    hub.shutdown().await;
    for browser in [&alice, &bob] {
        browser
            .until_connection(RECONNECT_WAIT, "reconnecting")
            .await;
    }
    // Alice writes while it is down: the message waits, marked as sending.
    alice.send("sent while the hub was down").await;
    alice
        .until("the unsent message", async || {
            alice
                .messages()
                .await
                .into_iter()
                .find(|m| m.body == "sent while the hub was down")
                .filter(|m| m.seq.is_none() && m.pending.as_deref() == Some("sending…"))
        })
        .await;

    // Back up on the same port and data: both reconnect, resume, and the message goes out once.
    hub.launch().await;
    for browser in [&alice, &bob] {
        browser.until_connection(RECONNECT_WAIT, "online").await;
    }
    let delivered = bob.until_message("sent while the hub was down").await;
    alice.until_message("sent while the hub was down").await;
    bob.send("after the restart").await;
    alice.until_message("after the restart").await;

    let expected = [
        "before the restart",
        "sent while the hub was down",
        "after the restart",
    ];
    for browser in [&alice, &bob] {
        let shown = browser
            .until("every message once, none pending", async || {
                let shown = browser.messages().await;
                let bodies: Vec<&str> = shown.iter().map(|m| m.body.as_str()).collect();
                (bodies == expected && shown.iter().all(|m| m.pending.is_none())).then_some(shown)
            })
            .await;
        let seqs: Vec<u64> = shown.iter().filter_map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3], "{}: no gap, no duplicate", browser.name);
    }
    assert_eq!(delivered.seq, Some(2));
    assert_eq!(delivered.from, alice_name);

    // And the hub stored it once.
    let api = hub.login(&bob_name, PASSWORD).await;
    let stored = api
        .messages(&bob.until_room(&room).await.id, HistoryQuery::default())
        .await
        .expect("history");
    let bodies: Vec<&str> = stored.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, expected);

    alice.close().await;
    bob.close().await;
}

/// The session as the page keeps it in sessionStorage.
#[derive(Debug, Deserialize, PartialEq)]
struct Stored {
    access_token: String,
    refresh_token: String,
    issued_at: u64,
    expires_at: u64,
}

const STORED_JS: &str = "return JSON.parse(sessionStorage.getItem('switchboard.session'));";

#[tokio::test]
async fn access_tokens_are_refreshed_before_they_expire() {
    let _turn = turn().await;
    // Four-second access tokens: the page refreshes each one a second before it expires.
    let hub = Hub::start_with(&["--access-ttl-secs", "4"]).await;
    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1024, 768).await;
    alice.open(&hub.http_url()).await;
    alice.register(&unique_name("alice")).await;

    let mut previous: Stored = alice.js(STORED_JS, vec![]).await;
    for round in 1..=2 {
        let next = alice
            .until(&format!("refresh number {round}"), async || {
                let now: Stored = alice.js(STORED_JS, vec![]).await;
                (now.access_token != previous.access_token).then_some(now)
            })
            .await;
        assert_ne!(next.refresh_token, previous.refresh_token, "rotated");
        assert!(
            next.issued_at < previous.expires_at,
            "refreshed before the old token expired ({} >= {})",
            next.issued_at,
            previous.expires_at
        );
        previous = next;
    }

    // The page keeps working with the refreshed tokens, across a reload too.
    let room = unique_name("still");
    alice.create_room(&room, true).await;
    alice.send("still here").await;
    alice.until_message("still here").await;
    alice.reload().await;
    alice.until_message("still here").await;
    alice.close().await;
}
