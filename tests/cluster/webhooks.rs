//! Webhooks across nodes: the auth node holds the endpoints, each hub reads them with the
//! service token and delivers the events its store commits. Messages posted to one room
//! through two hubs at once arrive at the receiver in seq order (a room's deliveries take
//! their ids under the room's row lock), the first delivery's failures holding the rest back.

use std::time::Duration;

use serde_json::json;
use switchboard_tests::webhook::{Request, WebhookSink};
use switchboard_webhooks::sign;

use crate::support::{unique_name, within, Cluster, TestUser};

const SECRET: &str = "whsec_cluster_0123456789abcdef";
const DELIVERY_WAIT: Duration = Duration::from_secs(30);

/// An admin's token through HAProxy.
async fn admin(cluster: &Cluster) -> TestUser {
    let user = cluster.user("root", &cluster.lb_http()).await;
    cluster.promote(&user.username).await;
    let tokens = user
        .api
        .login(&user.username, crate::support::PASSWORD)
        .await
        .expect("login");
    TestUser {
        api: user.api.with_token(&tokens.access_token),
        tokens,
        ..user
    }
}

/// Creates rooms through hub `i` until `sink` receives the `room.created` of one.
async fn await_hub_knows(owner: &TestUser, cluster: &Cluster, i: usize, sink: &WebhookSink) {
    let api = owner.api_at(&cluster.hub_http(i));
    within("the hub to know the endpoint", async {
        loop {
            let room = api
                .create_room(&unique_name("probe"), false)
                .await
                .expect("create a probe room");
            let seen = tokio::time::timeout(
                Duration::from_millis(500),
                sink.wait_until(Duration::from_secs(3600), "the probe", |rs| {
                    rs.iter()
                        .any(|r| r.json()["data"]["room"] == room.id.as_str())
                }),
            )
            .await;
            if seen.is_ok() {
                return;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_messages_through_two_hubs_arrive_in_seq_order() {
    let cluster = Cluster::start(2).await;
    let root = admin(&cluster).await;
    let sink = WebhookSink::start().await;
    let response = root
        .api
        .request(reqwest::Method::POST, "/v1/admin/webhooks")
        .json(&json!({
            "id": "backend",
            "url": sink.url("/events"),
            "events": ["message.created", "room.created", "user.registered"],
            "secret": SECRET,
        }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 201);
    let alice = cluster.user("alice", &cluster.lb_http()).await;
    for i in 0..2 {
        await_hub_knows(&alice, &cluster, i, &sink).await;
    }
    let room = alice.room_with(&[]).await;
    sink.wait_until(
        DELIVERY_WAIT,
        "the room's creation and alice's registration",
        |rs| {
            rs.iter()
                .any(|r| r.json()["data"]["room"] == room.id.as_str())
                && rs.iter().any(|r| {
                    r.json()["type"] == "user.registered"
                        && r.json()["data"]["username"] == alice.username.as_str()
                })
        },
    )
    .await;

    // The first message's delivery fails once; 20 messages are posted through both hubs at once.
    sink.answer_next(&[503]);
    const EACH: usize = 10;
    let posts = (0..2).map(|i| {
        let api = alice.api_at(&cluster.hub_http(i));
        let room = room.id.clone();
        async move {
            for n in 0..EACH {
                api.post_message(&room, &format!("hub{i} #{n}"), None)
                    .await
                    .expect("post");
            }
        }
    });
    futures_util::future::join_all(posts).await;

    let is_message = |r: &Request| {
        let e = r.json();
        e["type"] == "message.created" && e["data"]["room"] == room.id.as_str()
    };
    let requests = sink
        .wait_until(DELIVERY_WAIT, "20 messages delivered", |rs| {
            rs.iter()
                .filter(|r| is_message(r) && r.status == Some(200))
                .count()
                >= 2 * EACH
        })
        .await;
    let seqs: Vec<u64> = requests
        .iter()
        .filter(|r| is_message(r) && r.status == Some(200))
        .map(|r| r.json()["data"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=2 * EACH as u64).collect::<Vec<_>>(),
        "in seq order, once each"
    );
    assert!(
        requests
            .iter()
            .any(|r| is_message(r) && r.status == Some(503)),
        "the first attempt failed"
    );
    // The user event came from the auth node, signed with the same secret.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(requests
        .iter()
        .any(|r| r.json()["type"] == "user.registered"
            && r.json()["data"]["username"] == alice.username.as_str()));
    for r in &requests {
        let header = r.header(sign::SIGNATURE_HEADER).expect("signed");
        assert!(sign::verify(SECRET.as_bytes(), header, &r.body, now, 300));
    }
}
