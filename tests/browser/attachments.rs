//! Attachments in the page: files picked with the attach button are uploaded (the tray shows
//! them done), sent with a message, and shown under it to the other member: an image as its
//! thumbnail (fetched with the token: the room is private), a text file as a link. The
//! screenshot is written to `target/screenshots/attachments.png`.

use serde_json::Value;

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name};

/// A valid 4×3 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03, 0x08, 0x02, 0x00, 0x00, 0x00, 0x3b, 0x96, 0x39,
    0x91, 0x00, 0x00, 0x00, 0x2a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x0d, 0xc7, 0x31, 0x01, 0x00,
    0x30, 0x0c, 0xc3, 0x30, 0x03, 0x2b, 0x88, 0xc0, 0xe9, 0x69, 0x28, 0x01, 0x51, 0x80, 0x9b, 0x3e,
    0x01, 0x0e, 0x2e, 0x1e, 0x42, 0x9c, 0xb8, 0xf1, 0xf2, 0x53, 0xa7, 0x6e, 0xbd, 0xfa, 0x00, 0xe3,
    0xb7, 0x0d, 0xf9, 0x6c, 0x6c, 0xcb, 0xd2, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// The attachments shown under the message with this body: (name label, thumbnail loaded).
const SHOWN_JS: &str = "
const item = [...document.querySelectorAll('#messages li.message')]
  .find((li) => (li.querySelector('.body') || {}).textContent === arguments[0]);
if (!item) return null;
return [...item.querySelectorAll('.attachments li')].map((li) => {
  const img = li.querySelector('img');
  return [li.querySelector('.attachment-name').textContent,
          !!img && img.complete && img.naturalWidth > 0];
});";

#[tokio::test]
async fn files_are_attached_sent_and_shown_with_a_thumbnail() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1280, 800).await;
    let bob = driver.browser("bob", 1280, 800).await;
    let (alice_name, bob_name) = (unique_name("alice"), unique_name("bob"));
    let room = unique_name("files");
    alice.open(&hub.http_url()).await;
    bob.open(&hub.http_url()).await;
    alice.register(&alice_name).await;
    bob.register(&bob_name).await;
    alice.create_room(&room, false).await;
    alice.add_member(&bob_name).await;
    bob.until_room(&room).await;
    bob.open_room(&room).await;

    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("sunset.png");
    std::fs::write(&picture, PNG).unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "remember the milk\n").unwrap();
    let input = alice.find("#attach-input").await;
    let paths = format!("{}\n{}", picture.display(), notes.display());
    input.send_keys(&paths).await.expect("pick the files");
    alice
        .until("both uploads done", async || {
            let done: usize = alice
                .js(
                    "return document.querySelectorAll('#attach-tray .tray-item.done').length;",
                    vec![],
                )
                .await;
            (done == 2).then_some(())
        })
        .await;
    alice.send("two files").await;
    alice.until_message("two files").await;

    let shown = bob
        .until("the files under the message", async || {
            let shown: Option<Vec<(String, bool)>> =
                bob.js(SHOWN_JS, vec![Value::from("two files")]).await;
            // In the order the uploads ended, which two at once may end in either.
            let mut shown = shown.filter(|s| s.len() == 2)?;
            shown.sort();
            shown[1].1.then_some(shown)
        })
        .await;
    assert_eq!(shown[0], ("notes.txt (18 B)".to_owned(), false));
    assert_eq!(shown[1].0, format!("sunset.png ({} B)", PNG.len()));
    let tray_empty: bool = alice
        .js(
            "return document.getElementById('attach-tray').hidden;",
            vec![],
        )
        .await;
    assert!(tray_empty, "the tray is emptied once sent");
    bob.screenshot("attachments.png").await;
    alice.close().await;
    bob.close().await;
}
