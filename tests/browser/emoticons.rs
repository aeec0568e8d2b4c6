//! Custom emoticons on the page: `:party:` in a message shows the emoticon's image (alt text
//! `:party:`), an unknown shortcode stays text, an emoticon added while the page is open is
//! used at once (the live `emoticons` frame), and the picker inserts a shortcode into the
//! message box. The screenshot is `target/screenshots/emoticons.png`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name, PASSWORD};

/// The body's pieces of the message whose body text starts with `arguments[0]`: text as
/// strings, images as `{alt, src}`.
const BODY_JS: &str = r#"
const li = [...document.querySelectorAll('#messages > li[data-seq]')]
  .find(li => (li.querySelector('.body') || {textContent: ''}).textContent.startsWith(arguments[0]));
if (!li) return null;
return [...li.querySelector('.body').childNodes].map(n =>
  n.nodeType === Node.TEXT_NODE ? n.textContent
    : {tag: n.tagName.toLowerCase(), alt: n.getAttribute('alt'), cls: n.className,
       src: n.getAttribute('src'), loaded: n.complete && n.naturalWidth > 0});"#;

/// An admin's REST client: registered, promoted, logged in again (so the token says admin).
async fn admin_token(hub: &Hub) -> String {
    let name = unique_name("root");
    let api = hub.api();
    api.register(&name, &format!("{name}@example.com"), PASSWORD)
        .await
        .expect("register");
    hub.promote(&name).await;
    api.login(&name, PASSWORD)
        .await
        .expect("login")
        .access_token
}

async fn upload(hub: &Hub, token: &str, code: &str) {
    let png = switchboard_media::images::identicon(code, 64);
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(
            Method::PUT,
            format!("{}/v1/emoticons/{code}", hub.http_url()),
        )
        .bearer_auth(token)
        .body(png)
        .send()
        .await
        .expect("upload")
        .status();
    assert_eq!(status, 201, "upload of {code}");
}

#[tokio::test]
async fn shortcodes_show_as_images_and_the_picker_inserts_them() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let root = admin_token(&hub).await;
    upload(&hub, &root, "party").await;

    let driver = Driver::start().await;
    let alice = driver.browser("alice", 1024, 768).await;
    alice.open(&hub.http_url()).await;
    alice.register(&unique_name("alice")).await;
    alice.create_room(&unique_name("fun"), false).await;

    alice.send("hi :party: and :nope:").await;
    let pieces: Value = alice
        .until("the message with its emoticon", async || {
            let pieces: Value = alice.js(BODY_JS, vec![json!("hi ")]).await;
            let loaded = pieces
                .as_array()
                .and_then(|p| p.get(1))
                .is_some_and(|img| img["loaded"] == json!(true));
            loaded.then_some(pieces)
        })
        .await;
    let pieces = pieces.as_array().expect("pieces");
    assert_eq!(pieces.len(), 3, "{pieces:?}");
    assert_eq!(pieces[0], json!("hi "));
    assert_eq!(pieces[1]["tag"], "img");
    assert_eq!(pieces[1]["alt"], ":party:");
    assert_eq!(pieces[1]["cls"], "emoticon");
    assert!(
        pieces[1]["src"]
            .as_str()
            .is_some_and(|s| s.starts_with("/v1/media/")),
        "{pieces:?}"
    );
    assert_eq!(
        pieces[2],
        json!(" and :nope:"),
        "an unknown shortcode stays text"
    );

    // Added while the page is open: the live frame brings it, and the message shown already
    // with `:wave:` as text is drawn again with the image.
    alice.send("then :wave:").await;
    alice
        .until("the message with :wave: as text", async || {
            let pieces: Value = alice.js(BODY_JS, vec![json!("then ")]).await;
            (pieces == json!(["then :wave:"])).then_some(())
        })
        .await;
    upload(&hub, &root, "wave").await;
    alice
        .until("the :wave: image, live", async || {
            let pieces: Value = alice.js(BODY_JS, vec![json!("then ")]).await;
            (pieces.get(1).is_some_and(|img| img["alt"] == ":wave:")).then_some(())
        })
        .await;

    // The picker: open it, choose :wave:, and the shortcode is in the message box.
    alice.fill("composer", "look").await;
    alice.click("#emoticon-toggle").await;
    alice
        .until("the picker's choices", async || {
            let n: u64 = alice
                .js(
                    "return document.querySelectorAll('#emoticon-picker button').length;",
                    vec![],
                )
                .await;
            (n == 2).then_some(())
        })
        .await;
    alice.screenshot("emoticons.png").await;
    alice
        .click("#emoticon-picker button[data-shortcode='wave']")
        .await;
    let typed: String = alice
        .js("return document.getElementById('composer').value;", vec![])
        .await;
    assert_eq!(typed, "look :wave: ");
    assert!(!alice.visible("emoticon-picker").await, "the picker closed");
    alice.close().await;
}
