//! The server API across nodes: a disconnect through one hub closes the user's sockets on
//! every hub within a second (the broker's control channel), a bot's post through one hub
//! reaches a subscriber on another marked `bot: true`, and a key revoked from the command line
//! is refused at once by every hub (each request reads the key from the shared store).

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_client::protocol::close;
use switchboard_client::protocol::ws::ClientFrame;

use crate::support::{closed_within, connect, next_message, within, Cluster};

/// How soon every node must close a disconnected user's sockets.
const DISCONNECT_LIMIT: Duration = Duration::from_secs(1);

/// `POST base path` with the API key and a JSON body: the status.
async fn post(base: &str, key: &str, path: &str, body: serde_json::Value) -> u16 {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let response = within(
        "a server API answer",
        http.post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send(),
    )
    .await
    .expect("send");
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_api_reaches_every_node() {
    let cluster = Cluster::start(2).await;
    let made = cluster.api_key(&["create", "backend"]);
    let key = made
        .lines()
        .find(|l| l.starts_with("sbk_"))
        .expect("a key")
        .to_owned();
    let alice = cluster.user("alice", &cluster.lb_http()).await;
    let bob = cluster.user("bob", &cluster.lb_http()).await;
    let room = alice.room_with(&[]).await;

    // A bot's post through hub 1 reaches alice's subscription on hub 2.
    let mut on_hub2 = connect(&cluster.hub_ws(1), alice.token()).await;
    within(
        "sub",
        on_hub2.request(ClientFrame::Sub {
            id: None,
            room: room.id.clone(),
            since: None,
        }),
    )
    .await
    .expect("sub");
    let body = json!({"room": room.id, "body": "hello from the backend", "idempotency_key": "c-1"});
    assert_eq!(
        post(&cluster.hub_http(0), &key, "/v1/server/publish", body).await,
        201
    );
    let message = next_message(&mut on_hub2, &room.id).await;
    assert_eq!((message.from.as_str(), message.bot), ("backend", true));

    // A disconnect through hub 1 closes alice's sockets on both hubs, not bob's.
    let mut on_hub1 = connect(&cluster.hub_ws(0), alice.token()).await;
    let mut bob_on_hub2 = connect(&cluster.hub_ws(1), bob.token()).await;
    let sent = Instant::now();
    let status = post(
        &cluster.hub_http(0),
        &key,
        "/v1/server/disconnect",
        json!({"user": alice.username}),
    )
    .await;
    assert_eq!(status, 204);
    let (code1, code2) = tokio::join!(
        closed_within(&mut on_hub1, DISCONNECT_LIMIT),
        closed_within(&mut on_hub2, DISCONNECT_LIMIT),
    );
    eprintln!("both sockets closed {:?} after the request", sent.elapsed());
    assert_eq!(
        code1,
        Some(close::DISCONNECTED),
        "hub1 closes alice's socket"
    );
    assert_eq!(
        code2,
        Some(close::DISCONNECTED),
        "hub2 closes alice's socket"
    );
    within("ping", bob_on_hub2.ping())
        .await
        .expect("another user's socket stays open");

    // Revoked from the command line: refused at once through either hub.
    cluster.api_key(&["revoke", "backend"]);
    for i in 0..2 {
        let body = json!({"room": room.id, "body": "after revoke", "idempotency_key": "c-2"});
        assert_eq!(
            post(&cluster.hub_http(i), &key, "/v1/server/publish", body).await,
            401,
            "hub{} refuses a revoked key",
            i + 1
        );
    }
}

/// With a separate auth node, the server API looks users up through the auth node's internal
/// route (the service token): a user no hub has seen yet can be added to a room, and a
/// disconnect of a username nobody has is `404 user_not_found`, as with the embedded auth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_api_finds_users_no_hub_has_seen() {
    let cluster = Cluster::start(1).await;
    let made = cluster.api_key(&["create", "backend"]);
    let key = made
        .lines()
        .find(|l| l.starts_with("sbk_"))
        .expect("a key")
        .to_owned();
    let alice = cluster.user("alice", &cluster.lb_http()).await;
    let carol = cluster.user("carol", &cluster.lb_http()).await;
    let room = alice.room_with(&[]).await;
    let hub = cluster.hub_http(0);
    let path = format!("/v1/server/rooms/{}/members", room.id);
    assert_eq!(
        post(&hub, &key, &path, json!({"username": carol.username})).await,
        204,
        "carol, who never joined a room, is found"
    );
    let members = alice.api.room(&room.id).await.expect("room").members;
    assert!(
        members
            .as_ref()
            .is_some_and(|m| m.contains(&carol.username)),
        "{members:?}"
    );
    assert_eq!(
        post(
            &hub,
            &key,
            &path,
            json!({"username": "nobody_has_this_name"})
        )
        .await,
        404
    );
    assert_eq!(
        post(
            &hub,
            &key,
            "/v1/server/disconnect",
            json!({"user": "nobody_has_this_name"})
        )
        .await,
        404
    );
    assert_eq!(
        post(
            &hub,
            &key,
            "/v1/server/disconnect",
            json!({"user": carol.username})
        )
        .await,
        204
    );
}
