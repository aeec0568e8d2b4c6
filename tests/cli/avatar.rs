//! `avatar set FILE` and `avatar clear`: the upload reaches the hub (the avatar redirect names
//! it, then the identicon again), and refusals print the server's code (`too_large`,
//! `unsupported_media_type`) or the CLI's (`file`, `not_logged_in`).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};

use crate::support::{Cli, TestServer};

/// Where `username`'s avatar redirect points (64 px).
async fn location(server: &TestServer, username: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(format!("{}/v1/users/{username}/avatar", server.http_url()))
        .send()
        .await
        .expect("the avatar redirect");
    assert_eq!(resp.status(), 302);
    resp.headers()["location"].to_str().unwrap().to_owned()
}

fn png() -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgba8(RgbaImage::from_pixel(20, 20, Rgba([0, 128, 255, 255])))
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[tokio::test]
async fn avatar_set_and_clear() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("me.png");
    std::fs::write(&file, png()).unwrap();
    let file = file.to_str().unwrap();
    let identicon = location(&server, &alice.username).await;
    assert!(identicon.starts_with("/v1/identicons/"), "{identicon}");

    let out = alice.run(&["avatar", "set", file, "--json"]).await.ok();
    let urls = out.json();
    let small = urls["small_url"].as_str().expect("small_url").to_owned();
    assert!(small.starts_with("/v1/media/"), "{urls}");
    assert_eq!(location(&server, &alice.username).await, small);
    let out = alice.run(&["avatar", "set", file]).await.ok();
    assert!(
        out.stdout.starts_with("avatar set: http://"),
        "{}",
        out.stdout
    );

    alice.run(&["avatar", "clear"]).await.ok();
    assert_eq!(location(&server, &alice.username).await, identicon);

    // Refusals, with the server's code.
    let svg = dir.path().join("x.svg");
    std::fs::write(&svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
    let out = alice
        .run(&["avatar", "set", svg.to_str().unwrap()])
        .await
        .fails_with(1);
    assert!(
        out.error_line().ends_with("(unsupported_media_type)"),
        "{}",
        out.stderr
    );
    let big = dir.path().join("big.png");
    let mut bytes = png();
    bytes.resize(3 * 1024 * 1024, 0);
    std::fs::write(&big, bytes).unwrap();
    let out = alice
        .run(&["avatar", "set", big.to_str().unwrap(), "--json"])
        .await
        .fails_with(1);
    assert_eq!(out.error_json()["error"]["code"], "too_large");
    let out = alice
        .run(&["avatar", "set", "/no/such/file.png"])
        .await
        .fails_with(1);
    assert!(out.error_line().ends_with("(file)"), "{}", out.stderr);

    // Not logged in.
    let stranger = Cli::new(&server.http_url());
    stranger.run(&["avatar", "set", file]).await.fails_with(3);
}
