//! User text is shown as text: markup in a message or a room name is never parsed.

use serde_json::Value;

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name};

/// Message bodies that would run script or add elements if they were parsed as HTML.
const HOSTILE: [&str; 3] = [
    "<img src=x onerror=\"document.title='pwned'\">",
    "<script>document.title='pwned'</script>",
    "<b>bold?</b> & &amp; <a href=\"javascript:alert(1)\">link</a>",
];

#[tokio::test]
async fn markup_in_messages_and_room_names_is_shown_as_text() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1024, 768).await;
    let bob = driver.browser("bob", 1024, 768).await;
    let bob_name = unique_name("bob");
    alice.open(&hub.http_url()).await;
    bob.open(&hub.http_url()).await;
    alice.register(&unique_name("alice")).await;
    bob.register(&bob_name).await;

    let room = format!(
        "<i>{}</i><img src=x onerror=\"document.title='pwned'\">",
        unique_name("r")
    );
    alice.create_room(&room, false).await;
    alice.add_member(&bob_name).await;
    bob.open_room(&room).await;
    for body in HOSTILE {
        alice.send(body).await;
    }
    for browser in [&alice, &bob] {
        browser
            .until("the hostile messages, as text", async || {
                let shown = browser.messages().await;
                let bodies: Vec<&str> = shown.iter().map(|m| m.body.as_str()).collect();
                (bodies == HOSTILE).then_some(())
            })
            .await;
        let injected: u64 = browser
            .js(
                // The avatars are the page's own images (src from the page, alt empty).
                "return document.querySelectorAll('#messages img:not(.avatar), #messages script, \
                 #messages b, #messages a, #room-list i, #room-list img, #room-title *').length;",
                vec![],
            )
            .await;
        assert_eq!(injected, 0, "{}: no element from user text", browser.name);
        let title: String = browser.js("return document.title;", vec![]).await;
        assert_eq!(title, "Switchboard", "{}: no script ran", browser.name);
        assert_eq!(browser.text("room-title").await, room);
    }
    let announced: Value = bob
        .js(
            "return document.getElementById('announcer').textContent;",
            vec![],
        )
        .await;
    assert!(
        announced
            .as_str()
            .is_some_and(|text| text.contains("<script>")),
        "new messages are announced to screen readers, as text: {announced}"
    );
    alice.close().await;
    bob.close().await;
}
