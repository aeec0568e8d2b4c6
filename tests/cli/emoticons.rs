//! `emoticons`: the hub's custom emoticons, listed without logging in; `:shortcode:` in a
//! message stays text in `history`.

use crate::support::{Cli, TestServer};

#[tokio::test]
async fn emoticons_are_listed_without_a_login_and_stay_text_in_messages() {
    let server = TestServer::start().await;
    let anyone = Cli::new(&server.http_url());
    let empty = anyone.run(&["emoticons", "--json"]).await.ok().json();
    assert_eq!(empty, serde_json::json!({"emoticons": []}));

    // An admin uploads one over HTTP.
    let root = Cli::registered(&server, "root").await;
    server.promote(&root.username).await;
    let admin = server.login(&root.username, crate::support::PASSWORD).await;
    let png = switchboard_media::images::identicon("party", 32);
    let response = admin
        .request(reqwest::Method::PUT, "/v1/emoticons/party")
        .body(png)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 201);

    let listed = anyone.run(&["emoticons", "--json"]).await.ok().json();
    assert_eq!(listed["emoticons"][0]["shortcode"], "party");
    let out = anyone.run(&["emoticons"]).await.ok();
    let line = out.stdout.lines().nth(1).expect("a row");
    assert!(line.starts_with(":party:"), "{}", out.stdout);
    assert!(
        line.contains(&format!("{}/v1/media/", server.http_url())),
        "an absolute URL: {}",
        out.stdout
    );

    root.run(&["create", "fun"]).await.ok();
    root.run(&["send", "fun", "hi :party:"]).await.ok();
    let history = root.run(&["history", "fun"]).await.ok();
    assert!(history.stdout.contains("hi :party:"), "{}", history.stdout);
}
