//! Files across nodes, and past the death of the node that took them: an avatar and an
//! attachment uploaded through one hub (blobs and index in PostgreSQL) are served by another
//! and by the load balancer after the first is killed, byte for byte; the message that
//! carries the attachment reaches a subscriber on the other hub with its metadata; and the
//! other hub's history lists it.

use reqwest::{Method, StatusCode};

use crate::support::{connect, full_history, next_message, within, Cluster};

/// `GET url` (with `token` if any): status, `Content-Type` and body.
async fn fetch(url: &str, token: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = within("a download", request.send())
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.bytes().await.expect("body").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_taken_by_a_killed_hub_are_served_by_the_others() {
    let mut cluster = Cluster::start(2).await;
    let alice = cluster.user("alice", &cluster.hub_http(0)).await;
    let bob = cluster.user("bob", &cluster.hub_http(1)).await;
    let room = alice.room_with(&[&bob]).await;
    let mut b = connect(&cluster.hub_ws(1), bob.token()).await;
    within("bob's sub", b.subscribe(&room.id, None))
        .await
        .expect("sub");

    // Through hub 1: an avatar, and a file sent with a message.
    let picture = switchboard_media::images::identicon("a picture", 256);
    let response = within(
        "the avatar upload",
        alice
            .api
            .request(Method::PUT, "/v1/auth/me/avatar")
            .body(picture)
            .send(),
    )
    .await
    .expect("uploaded");
    assert_eq!(response.status(), StatusCode::OK);
    let avatar: serde_json::Value = response.json().await.expect("JSON");
    let small_url = avatar["small_url"].as_str().expect("small_url").to_owned();
    let notes: Vec<u8> = (0..300_000u32).flat_map(|n| n.to_le_bytes()).collect();
    let file = within(
        "the attachment upload",
        alice
            .api
            .upload_attachment(&room.id, "numbers.bin", notes.clone()),
    )
    .await
    .expect("uploaded");
    let posted = within(
        "the post",
        alice.api.post_message_with(
            &room.id,
            "the numbers",
            None,
            std::slice::from_ref(&file.id),
        ),
    )
    .await
    .expect("posted");

    // Bob, on hub 2, hears the message with the file's metadata.
    let message = next_message(&mut b, &room.id).await;
    assert_eq!(message.seq, posted.seq);
    assert_eq!(message.attachments, vec![file.clone()]);

    cluster.kill_hub(0);

    // Hub 2 and the load balancer serve both, whole and by range.
    for base in [cluster.hub_http(1), cluster.lb_http()] {
        let (status, kind, bytes) = fetch(&format!("{base}{}", file.url), Some(bob.token())).await;
        assert_eq!(status, StatusCode::OK, "{base}");
        assert_eq!(kind, "application/octet-stream");
        assert!(bytes == notes, "the file, byte for byte, from {base}");
        let (status, _, bytes) = fetch(&format!("{base}{small_url}"), None).await;
        assert_eq!(status, StatusCode::OK, "{base}");
        assert_eq!(
            (bytes[..8]).to_vec(),
            b"\x89PNG\r\n\x1a\n".to_vec(),
            "a PNG from {base}"
        );
    }
    let ranged = within(
        "a range from hub 2",
        reqwest::Client::new()
            .get(format!("{}{}", cluster.hub_http(1), file.url))
            .bearer_auth(bob.token())
            .header("range", "bytes=600000-600003")
            .send(),
    )
    .await
    .expect("answered");
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        ranged.bytes().await.unwrap().to_vec(),
        150_000u32.to_le_bytes().to_vec(),
        "the chunk that holds byte 600000 (past the first 256 KiB chunk)"
    );

    // The redirect on hub 2 names the uploaded avatar; its history lists the file.
    let redirect = within(
        "the redirect",
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!(
                "{}/v1/users/{}/avatar",
                cluster.hub_http(1),
                alice.username
            ))
            .send(),
    )
    .await
    .expect("answered");
    assert_eq!(redirect.status(), StatusCode::FOUND);
    assert_eq!(redirect.headers()["location"], small_url.as_str());
    let history = full_history(&bob.api_at(&cluster.hub_http(1)), &room.id).await;
    let last = history.last().expect("a message");
    assert_eq!(last.attachments, vec![file]);
}
