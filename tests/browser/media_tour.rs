//! The media tour of the README (`docs/media.png` is a copy of its screenshot): two people in a
//! room, one with an uploaded picture and one with the generated identicon, a run of messages
//! under one avatar, a custom emoticon in a body, and an image attachment shown as its
//! thumbnail. It checks that each of these is on the page before it takes the screenshot
//! `target/screenshots/media.png`.

use reqwest::Method;
use serde_json::Value;

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name, PASSWORD};

/// What the page shows: avatars loaded, emoticons loaded, attachment thumbnails loaded.
const SHOWN_JS: &str = "
const loaded = (sel) => [...document.querySelectorAll(sel)]
  .filter((img) => img.complete && img.naturalWidth > 0).length;
return [loaded('#messages img.avatar'), loaded('#messages img.emoticon'),
        loaded('#messages .attachments img')];";

/// A 320×200 PNG: a sky-to-sea gradient with a sun.
fn picture() -> Vec<u8> {
    let img = image::RgbImage::from_fn(320, 200, |x, y| {
        let (dx, dy) = (x as f32 - 220.0, y as f32 - 90.0);
        if dx * dx + dy * dy < 900.0 {
            image::Rgb([255, 200, 60])
        } else if y < 120 {
            image::Rgb([250 - (y as u8) / 2, 140 + (y as u8) / 3, 90 + (y as u8)])
        } else {
            image::Rgb([30, 70 + ((y - 120) as u8), 140])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn avatars_emoticons_and_an_image_attachment_in_one_room() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    // An admin adds the emoticon `:wave:`.
    let root = unique_name("root");
    let api = hub.api();
    api.register(&root, &format!("{root}@example.com"), PASSWORD)
        .await
        .expect("register");
    hub.promote(&root).await;
    let token = api
        .login(&root, PASSWORD)
        .await
        .expect("login")
        .access_token;
    let status = http()
        .request(Method::PUT, format!("{}/v1/emoticons/wave", hub.http_url()))
        .bearer_auth(&token)
        .body(switchboard_media::images::identicon("wave", 128))
        .send()
        .await
        .expect("emoticon")
        .status();
    assert_eq!(status, 201);

    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1100, 860).await;
    let bob = driver.browser("bob", 1100, 860).await;
    let (alice_name, bob_name) = (unique_name("alice"), unique_name("bob"));
    let room = unique_name("holiday");
    alice.open(&hub.http_url()).await;
    bob.open(&hub.http_url()).await;
    alice.register(&alice_name).await;
    bob.register(&bob_name).await;
    // Alice has a picture (the API, as `switchboard avatar set` does); Bob his identicon.
    let alice_token = hub
        .api()
        .login(&alice_name, PASSWORD)
        .await
        .expect("login")
        .access_token;
    let status = http()
        .request(Method::PUT, format!("{}/v1/auth/me/avatar", hub.http_url()))
        .bearer_auth(&alice_token)
        .body(picture())
        .send()
        .await
        .expect("avatar")
        .status();
    assert_eq!(status, 200);
    alice.create_room(&room, false).await;
    alice.add_member(&bob_name).await;
    bob.until_room(&room).await;
    bob.open_room(&room).await;

    // (A body with an emoticon is not plain text on the page: the checks below find it.)
    alice.send("Back from the coast :wave:").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sunset.png");
    std::fs::write(&file, picture()).unwrap();
    alice
        .find("#attach-input")
        .await
        .send_keys(&file.display().to_string())
        .await
        .expect("pick the file");
    alice
        .until("the upload done", async || {
            let done: usize = alice
                .js(
                    "return document.querySelectorAll('#attach-tray .tray-item.done').length;",
                    vec![],
                )
                .await;
            (done == 1).then_some(())
        })
        .await;
    alice.send("The last evening").await;
    alice.until_message("The last evening").await;
    bob.send("Gorgeous! :wave:").await;

    let shown: Vec<u64> = bob
        .until("avatars, emoticons and the thumbnail loaded", async || {
            let shown: Value = bob.js(SHOWN_JS, vec![]).await;
            let shown: Vec<u64> = serde_json::from_value(shown).ok()?;
            // Two runs (Alice's two messages, then Bob's): two avatars.
            (shown == [2, 2, 1]).then_some(shown)
        })
        .await;
    assert_eq!(shown, [2, 2, 1]);
    bob.screenshot("media.png").await;
    alice.close().await;
    bob.close().await;
}
