//! Two people chat in two browsers: registration, a room, a member added, live messages both
//! ways, typing, presence, read state, an edit and a deletion seen on the other side, history
//! after a reload, the phone-sized layout; paging back through history, rooms ordered by
//! activity, a direct conversation, leaving a room, and logging out.

use serde_json::Value;
use switchboard_client::Api;

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name, PASSWORD, WAIT};

#[tokio::test]
async fn two_people_chat_live_edit_delete_and_reload() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1280, 800).await;
    let bob = driver.browser("bob", 1280, 800).await;
    let (alice_name, bob_name) = (unique_name("alice"), unique_name("bob"));
    let room = unique_name("general");

    alice.open(&hub.http_url()).await;
    bob.open(&hub.http_url()).await;
    alice.register(&alice_name).await;
    bob.register(&bob_name).await;

    // Alice creates a private room and adds Bob; Bob's room list picks it up.
    alice.create_room(&room, false).await;
    alice.add_member(&bob_name).await;
    bob.until_room(&room).await;

    // A message to a room Bob has not opened shows as unread.
    alice.send("hello bob").await;
    alice.until_message("hello bob").await;
    bob.until("one unread message", async || {
        let shown = bob.rooms().await.into_iter().find(|r| r.name == room)?;
        (shown.unread == 1).then_some(())
    })
    .await;

    // Bob opens it: the message is there, the room is read, Alice sees that.
    bob.open_room(&room).await;
    bob.until_message("hello bob").await;
    bob.until("the room to be read", async || {
        let shown = bob.rooms().await.into_iter().find(|r| r.name == room)?;
        (shown.unread == 0 && shown.current).then_some(())
    })
    .await;
    alice
        .until("Bob's read receipt", async || {
            (alice.text("seen").await == format!("Seen by {bob_name}")).then_some(())
        })
        .await;

    // Presence: each sees the other online in the room.
    if !alice.visible("room-details").await {
        alice.click("#toggle-details").await;
    }
    alice
        .until("Bob online", async || {
            let selector = format!("#member-list li[data-user=\"{bob_name}\"]");
            let online: Option<String> = alice
                .js(
                    "const e = document.querySelector(arguments[0]); return e ? e.dataset.online : null;",
                    vec![Value::from(selector)],
                )
                .await;
            (online.as_deref() == Some("true")).then_some(())
        })
        .await;

    // Typing, then a live message from Bob.
    bob.fill("composer", "hi al").await;
    alice
        .until("the typing indicator", async || {
            (alice.text("typing").await == format!("{bob_name} is typing…")).then_some(())
        })
        .await;
    bob.send("hi alice").await;
    alice.until_message("hi alice").await;
    alice
        .until("the typing indicator to clear", async || {
            alice.text("typing").await.is_empty().then_some(())
        })
        .await;

    // Alice edits her first message and deletes a third one; Bob sees both.
    alice.send("a typo here").await;
    let typo = bob.until_message("a typo here").await;
    let first = alice.until_message("hello bob").await;
    let first_seq = first.seq.expect("stored");
    alice
        .click(&format!(
            "#messages li[data-seq=\"{first_seq}\"] button[data-action=edit]"
        ))
        .await;
    let editor = alice.find(&format!("#edit-{first_seq}")).await;
    editor.clear().await.expect("clear");
    editor
        .send_keys(&format!(
            "hello bob, edited{}",
            char::from(fantoccini::key::Key::Enter)
        ))
        .await
        .expect("type the edit");
    let typo_seq = typo.seq.expect("stored");
    alice
        .click(&format!(
            "#messages li[data-seq=\"{typo_seq}\"] button[data-action=delete]"
        ))
        .await;
    alice
        .click(&format!(
            "#messages li[data-seq=\"{typo_seq}\"] button[data-action=confirm-delete]"
        ))
        .await;
    bob.until("the edit and the deletion", async || {
        let shown = bob.messages().await;
        let edited = shown
            .iter()
            .any(|m| m.seq == Some(first_seq) && m.body == "hello bob, edited" && m.edited);
        let deleted = shown
            .iter()
            .any(|m| m.seq == Some(typo_seq) && m.deleted && m.body == "Message deleted");
        (edited && deleted).then_some(())
    })
    .await;

    // Every seq once, in order, on both sides.
    let expected = vec![
        (alice_name.clone(), "hello bob, edited".to_owned()),
        (bob_name.clone(), "hi alice".to_owned()),
        (alice_name.clone(), "Message deleted".to_owned()),
    ];
    for browser in [&alice, &bob] {
        let shown = browser
            .until("the three messages", async || {
                let shown = browser.messages().await;
                let pairs: Vec<_> = shown
                    .iter()
                    .map(|m| (m.from.clone(), m.body.clone()))
                    .collect();
                (pairs == expected).then_some(shown)
            })
            .await;
        let seqs: Vec<u64> = shown.iter().filter_map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3], "{}: seqs as shown", browser.name);
    }
    let shot = alice.screenshot("conversation.png").await;
    assert!(shot.exists());

    // A reload keeps the login and the open room, and loads the history again.
    let before = bob.messages().await;
    bob.reload().await;
    bob.until("the history after a reload", async || {
        (bob.messages().await == before).then_some(())
    })
    .await;
    assert_eq!(bob.text("room-title").await, room);
    let listed = bob.until_room(&room).await;
    assert_eq!(listed.unread, 0, "the read mark is kept by the server");

    // Phone-sized: one pane at a time, nothing wider than the screen.
    bob.client
        .set_window_size(375, 740)
        .await
        .expect("resize to 375px");
    bob.until("the narrow layout", async || {
        let fits: bool = bob
            .js(
                "return window.innerWidth <= 400 && \
                 document.documentElement.scrollWidth <= window.innerWidth && \
                 getComputedStyle(document.getElementById('sidebar')).display === 'none' && \
                 document.getElementById('composer').getBoundingClientRect().right <= window.innerWidth;",
                vec![],
            )
            .await;
        fits.then_some(())
    })
    .await;
    bob.screenshot("conversation-375.png").await;
    bob.click("#back").await;
    bob.until("the room list instead of the conversation", async || {
        let shown: bool = bob
            .js(
                "const shown = (id) => getComputedStyle(document.getElementById(id)).display !== 'none'; \
                 return shown('sidebar') && !shown('conversation');",
                vec![],
            )
            .await;
        shown.then_some(())
    })
    .await;

    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn paging_back_activity_order_direct_rooms_leaving_and_logout() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let driver = Driver::start().await;
    // Alice only posts, over REST; Bob reads in a browser.
    let alice_name = unique_name("alice");
    Api::new(&hub.http_url())
        .register(&alice_name, &format!("{alice_name}@example.com"), PASSWORD)
        .await
        .expect("register alice");
    let alice = hub.login(&alice_name, PASSWORD).await;
    let bob = driver.browser("bob", 1024, 768).await;
    let bob_name = unique_name("bob");
    bob.open(&hub.http_url()).await;
    bob.register(&bob_name).await;

    let old = alice
        .create_room(&unique_name("old"), false)
        .await
        .expect("room");
    let busy = alice
        .create_room(&unique_name("busy"), true)
        .await
        .expect("room");
    for room in [&busy, &old] {
        alice
            .add_member(&room.id, &bob_name)
            .await
            .expect("add bob");
    }
    for i in 1..=60 {
        alice
            .post_message(&busy.id, &format!("message {i}"), None)
            .await
            .expect("post");
    }
    let listed = bob
        .until("both rooms, busy first with 60 unread", async || {
            let rooms = bob.rooms().await;
            let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
            (names == [busy.name.as_str(), old.name.as_str()] && rooms[0].unread == 60)
                .then_some(rooms)
        })
        .await;
    assert_eq!(listed[1].unread, 0);

    // New activity moves a room to the top.
    alice
        .post_message(&old.id, "news", None)
        .await
        .expect("post");
    bob.until("old to move up with 1 unread", async || {
        let rooms = bob.rooms().await;
        (rooms.first()?.name == old.name && rooms[0].unread == 1).then_some(())
    })
    .await;

    // The newest page first; scrolling up loads the rest.
    bob.open_room(&busy.name).await;
    let first_page = bob
        .until("the newest page", async || {
            let shown = bob.messages().await;
            (shown.len() == 50).then_some(shown)
        })
        .await;
    assert_eq!(first_page[0].seq, Some(11));
    assert_eq!(first_page[49].body, "message 60");
    bob.scroll_to_top().await;
    let all = bob
        .until_for(WAIT, "every page", async || {
            let shown = bob.messages().await;
            (shown.len() == 60).then_some(shown)
        })
        .await;
    let seqs: Vec<u64> = all.iter().filter_map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
    assert!(all
        .iter()
        .enumerate()
        .all(|(i, m)| m.body == format!("message {}", i + 1)));
    bob.until("the start of the conversation", async || {
        bob.text("history-status")
            .await
            .contains("beginning")
            .then_some(())
    })
    .await;

    // A direct conversation, started from the page, named after the peer.
    bob.fill("direct-username", &alice_name).await;
    bob.click("#direct-form button[type=submit]").await;
    bob.until("the direct conversation", async || {
        (bob.text("room-title").await == alice_name).then_some(())
    })
    .await;
    let direct = alice.direct(&bob_name).await.expect("the same direct room");
    alice
        .post_message(&direct.id, "psst", None)
        .await
        .expect("post");
    bob.until_message("psst").await;

    // Leaving a room removes it, here and on the server.
    bob.open_room(&old.name).await;
    bob.click("#toggle-details").await;
    bob.click("#leave").await;
    bob.until("old to leave the list", async || {
        let rooms = bob.rooms().await;
        (!rooms.iter().any(|r| r.name == old.name)).then_some(())
    })
    .await;
    let api = hub.login(&bob_name, PASSWORD).await;
    let rooms = api.rooms().await.expect("rooms");
    assert!(rooms.iter().all(|r| r.id != old.id), "left on the server");

    // Logging out ends the session: back to the login form, tokens gone and revoked.
    let stored: Value = bob
        .js(
            "return JSON.parse(sessionStorage.getItem('switchboard.session'));",
            vec![],
        )
        .await;
    let refresh_token = stored["refresh_token"].as_str().expect("a refresh token");
    bob.click("#logout").await;
    bob.until("the login form", async || {
        bob.visible("auth-view").await.then_some(())
    })
    .await;
    let left: Value = bob
        .js(
            "return sessionStorage.getItem('switchboard.session');",
            vec![],
        )
        .await;
    assert_eq!(left, Value::Null);
    let refused = Api::new(&hub.http_url()).refresh(refresh_token).await;
    assert!(refused.is_err(), "the session is revoked");
    bob.close().await;
}

#[tokio::test]
async fn the_room_list_shows_every_page_of_a_long_list() {
    // More rooms than one page of `GET /v1/rooms` holds (100).
    const ROOMS: usize = 105;
    let _turn = turn().await;
    let hub = Hub::start_with(&["--rooms-per-hour", "0"]).await;
    let driver = Driver::start().await;
    let alice_name = unique_name("alice");
    Api::new(&hub.http_url())
        .register(&alice_name, &format!("{alice_name}@example.com"), PASSWORD)
        .await
        .expect("register alice");
    let alice = hub.login(&alice_name, PASSWORD).await;
    let bob = driver.browser("bob", 1024, 768).await;
    let bob_name = unique_name("bob");
    bob.open(&hub.http_url()).await;
    bob.register(&bob_name).await;
    for i in 0..ROOMS {
        let room = alice
            .create_room(&format!("many-{i}"), false)
            .await
            .expect("room");
        alice
            .add_member(&room.id, &bob_name)
            .await
            .expect("add bob");
    }
    bob.until("every room in the list", async || {
        (bob.rooms().await.len() == ROOMS).then_some(())
    })
    .await;
}
