//! The room list under load: the per-user quota of rooms created, and `GET /v1/rooms` paged
//! with a cursor while activity reorders the list.

use reqwest::Method;
use switchboard_client::protocol::ErrorCode;

use crate::support::{api_err, unique_name, TestServer};

#[tokio::test]
async fn creating_rooms_beyond_the_hourly_quota_gets_429_with_retry_after() {
    let server = TestServer::start_with(&["--rooms-per-hour", "3"]).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    for _ in 0..3 {
        alice
            .api
            .create_room(&unique_name("room"), false)
            .await
            .expect("within the quota");
    }
    let (status, code) = api_err(alice.api.create_room("one too many", false).await);
    assert_eq!((status, code), (429, ErrorCode::RateLimited));
    // The raw answer says when to come back: one room per 20 minutes refills the quota.
    let raw = alice
        .api
        .request(Method::POST, "/v1/rooms")
        .json(&serde_json::json!({"name": "still too many"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(raw.status().as_u16(), 429);
    let retry_after: u64 = raw
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!(
        (1..=20 * 60).contains(&retry_after),
        "Retry-After {retry_after} s"
    );
    // Refused requests created nothing, and bob has a quota of his own.
    assert_eq!(alice.api.rooms().await.expect("list").len(), 3);
    bob.api
        .create_room("bob's", true)
        .await
        .expect("bob is not limited by alice");
}
