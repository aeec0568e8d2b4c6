//! Avatars in the page: a run of consecutive messages by one author shows one avatar and one
//! name (the later ones of the run are `continued`), the avatar is the author's identicon
//! through the redirect (a 64 px image, loaded), and the account menu uploads a picture (the
//! menu's image then names the new content-addressed URL) or shows the server's refusal.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use serde_json::Value;
use switchboard_tests::wait::PASSWORD;

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name};

/// Per message of the list: its body, whether it has an avatar (and its loaded width), and
/// whether it continues a run.
const AVATARS_JS: &str = r#"
return [...document.querySelectorAll('#messages > li')].map(li => {
  const img = li.querySelector(':scope > img.avatar');
  return {
    body: (li.querySelector('.body') || {textContent: ''}).textContent,
    avatar: img ? img.getAttribute('src') : null,
    width: img && img.complete ? img.naturalWidth : 0,
    continued: li.classList.contains('continued'),
  };
});"#;

#[tokio::test]
async fn a_run_of_messages_shows_one_avatar_and_a_picture_can_be_uploaded() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1280, 800).await;
    let name = unique_name("alice");
    alice.open(&hub.http_url()).await;
    alice.register(&name).await;
    let room = unique_name("pictures");
    alice.create_room(&room, false).await;
    let room = alice.until_room(&room).await;
    let bob = unique_name("bob");
    hub.api()
        .register(&bob, &format!("{bob}@example.com"), PASSWORD)
        .await
        .expect("register bob");
    let bob_api = hub.login(&bob, PASSWORD).await;
    alice.add_member(&bob).await;

    alice.send("first of a run").await;
    alice.send("second of a run").await;
    alice.until_message("second of a run").await;
    // Another author starts a run of their own, and so does alice after them.
    bob_api
        .post_message(&room.id, "from bob", None)
        .await
        .expect("bob posts");
    alice.until_message("from bob").await;
    alice.send("alice again").await;
    alice.until_message("alice again").await;

    let mine = format!("/v1/users/{name}/avatar?size=64");
    let shown: Vec<Value> = alice
        .until("one avatar per run, loaded", async || {
            let shown: Vec<Value> = alice.js(AVATARS_JS, vec![]).await;
            (shown.len() == 4
                && shown
                    .iter()
                    .all(|m| m["avatar"].is_null() || m["width"] == 64))
            .then_some(shown)
        })
        .await;
    let runs: Vec<(&str, Option<&str>, bool)> = shown
        .iter()
        .map(|m| {
            (
                m["body"].as_str().unwrap(),
                m["avatar"].as_str(),
                m["continued"].as_bool().unwrap(),
            )
        })
        .collect();
    let bobs = format!("/v1/users/{bob}/avatar?size=64");
    assert_eq!(
        runs,
        [
            ("first of a run", Some(mine.as_str()), false),
            ("second of a run", None, true),
            ("from bob", Some(bobs.as_str()), false),
            ("alice again", Some(mine.as_str()), false),
        ]
    );

    // The account menu: a refused file shows the server's reason, a picture is taken.
    alice.open_account_menu().await;
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("x.svg");
    std::fs::write(&svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
    let input = alice.find("#avatar-file").await;
    input
        .send_keys(svg.to_str().unwrap())
        .await
        .expect("choose a file");
    let error = alice
        .until("the refusal", async || {
            let text = alice.text("avatar-error").await;
            (!text.is_empty()).then_some(text)
        })
        .await;
    assert!(error.contains("not a PNG, JPEG, WebP or GIF"), "{error}");

    let png = dir.path().join("me.png");
    let mut bytes = Cursor::new(Vec::new());
    DynamicImage::ImageRgba8(RgbaImage::from_pixel(30, 30, Rgba([200, 40, 40, 255])))
        .write_to(&mut bytes, ImageFormat::Png)
        .unwrap();
    std::fs::write(&png, bytes.into_inner()).unwrap();
    let input = alice.find("#avatar-file").await;
    input
        .send_keys(png.to_str().unwrap())
        .await
        .expect("choose a file");
    alice
        .until("the new picture in the menu", async || {
            let src: String = alice
                .js(
                    "return document.getElementById('my-avatar').getAttribute('src') || '';",
                    vec![],
                )
                .await;
            src.starts_with("/v1/media/").then_some(())
        })
        .await;
    assert_eq!(alice.text("avatar-error").await, "");
    // The messages shown get it too: a new URL, the 64 px upload loaded.
    alice
        .until("the new picture beside the messages", async || {
            let shown: Vec<Value> = alice.js(AVATARS_JS, vec![]).await;
            let first = &shown[0];
            (first["avatar"] == format!("{mine}&v=1") && first["width"] == 64).then_some(())
        })
        .await;
    alice.screenshot("avatars.png").await;
}
