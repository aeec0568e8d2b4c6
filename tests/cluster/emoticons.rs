//! Custom emoticons across nodes: an emoticon uploaded through one hub is listed (with the same
//! ETag) and served by another (one blob store and index in PostgreSQL), and every socket on
//! the other hub, anonymous or not, hears the change (the `emoticons` frame on the broker's
//! control channel).

use reqwest::{Method, StatusCode};
use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::{Api, Connection};

use crate::support::{connect, within, Cluster, PASSWORD};

/// The next `emoticons` frame on `conn` (other events are skipped): its ETag.
async fn next_emoticons(conn: &mut Connection) -> String {
    within("an emoticons frame", async {
        loop {
            match conn.next_event().await {
                Ok(ServerFrame::Emoticons { etag }) => return etag,
                Ok(_) => {}
                Err(err) => panic!("expected an emoticons frame, got {err}"),
            }
        }
    })
    .await
}

/// `GET base/v1/emoticons`: the ETag and the body.
async fn list(base: &str) -> (String, serde_json::Value) {
    let response = within("the list", reqwest::get(format!("{base}/v1/emoticons")))
        .await
        .expect("listed");
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    (etag, response.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emoticon_added_on_one_hub_reaches_every_socket_of_another() {
    let cluster = Cluster::start(2).await;
    let root = cluster.user("root", &cluster.hub_http(0)).await;
    cluster.promote(&root.username).await;
    let tokens = Api::new(&cluster.hub_http(0))
        .login(&root.username, PASSWORD)
        .await
        .expect("login");
    let admin = Api::new(&cluster.hub_http(0)).with_token(&tokens.access_token);
    let bob = cluster.user("bob", &cluster.hub_http(1)).await;

    // On hub 2: bob's socket and an anonymous one, subscribed to nothing.
    let mut user = connect(&cluster.hub_ws(1), bob.token()).await;
    let (mut anon, _) = within(
        "anonymous welcome",
        Connection::connect(&cluster.hub_ws(1), None),
    )
    .await
    .expect("anonymous connect");

    let png = switchboard_media::images::identicon("party", 64);
    let response = within(
        "the upload",
        admin
            .request(Method::PUT, "/v1/emoticons/party")
            .body(png)
            .send(),
    )
    .await
    .expect("uploaded");
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: serde_json::Value = response.json().await.expect("JSON");

    let (tag, listed) = list(&cluster.hub_http(1)).await;
    assert_eq!(listed["emoticons"], serde_json::json!([created]));
    assert_eq!(
        list(&cluster.hub_http(0)).await.0,
        tag,
        "one tag on every node"
    );
    for conn in [&mut user, &mut anon] {
        assert_eq!(format!("\"{}\"", next_emoticons(conn).await), tag);
    }
    let url = created["url"].as_str().expect("a url");
    let image = within(
        "the image from hub 2",
        reqwest::get(format!("{}{url}", cluster.hub_http(1))),
    )
    .await
    .expect("served");
    assert_eq!(image.status(), StatusCode::OK);
    assert_eq!(image.headers()["content-type"], "image/png");

    // Removed through hub 1: hub 2's sockets hear it too.
    let response = within(
        "the delete",
        admin.request(Method::DELETE, "/v1/emoticons/party").send(),
    )
    .await
    .expect("deleted");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (tag, _) = list(&cluster.hub_http(1)).await;
    for conn in [&mut user, &mut anon] {
        assert_eq!(format!("\"{}\"", next_emoticons(conn).await), tag);
    }
}
