//! The room list under load: the per-user quota of rooms created, and `GET /v1/rooms` paged
//! with a cursor while activity reorders the list.

use reqwest::Method;
use switchboard_client::protocol::rest::RoomsQuery;
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

#[tokio::test]
async fn a_walk_over_250_rooms_lists_each_once_while_activity_reorders_them() {
    const ROOMS: usize = 250;
    const PAGE: u32 = 30;
    let server = TestServer::start_with(&["--rooms-per-hour", "0"]).await;
    let alice = server.user("alice").await;
    for i in 0..ROOMS {
        alice
            .api
            .create_room(&format!("walk-{i}"), false)
            .await
            .expect("create");
    }
    // The order when the walk begins (nothing moves while it is read).
    let before: Vec<String> = alice
        .api
        .rooms()
        .await
        .expect("every page")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(before.len(), ROOMS);

    let mut walked: Vec<String> = Vec::new();
    let mut query = RoomsQuery {
        limit: Some(PAGE),
        cursor: None,
    };
    let mut pages = 0;
    loop {
        let page = alice.api.rooms_page(&query).await.expect("a page");
        pages += 1;
        assert!(page.rooms.len() <= PAGE as usize);
        walked.extend(page.rooms.into_iter().map(|r| r.id));
        let Some(cursor) = page.next_cursor else {
            break;
        };
        query.cursor = Some(cursor);
        // Between pages, rooms move to the top: the oldest one not listed yet, one from the
        // middle of what is still to come, and one already listed.
        let pending: Vec<String> = before
            .iter()
            .filter(|id| !walked.contains(id))
            .cloned()
            .collect();
        let movers = [
            pending.last(),
            pending.get(pending.len() / 2),
            walked.first(),
        ];
        for room in movers.into_iter().flatten() {
            alice
                .api
                .post_message(room, "bump", None)
                .await
                .expect("post");
        }
    }
    assert_eq!(pages, ROOMS.div_ceil(PAGE as usize));
    assert_eq!(
        walked, before,
        "each room once, in the order of the walk's start"
    );
    // A new walk sees the new order: the last room bumped is on top.
    let after = alice.api.rooms().await.expect("every page");
    assert_eq!(after.len(), ROOMS);
    assert!(after[0].last_seq > 0, "a bumped room leads: {:?}", after[0]);
}

#[tokio::test]
async fn room_pages_refuse_bad_limits_and_cursors() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    for i in 0..3 {
        alice
            .api
            .create_room(&format!("page-{i}"), true)
            .await
            .expect("create");
    }
    for limit in [0, 101] {
        let query = RoomsQuery {
            limit: Some(limit),
            cursor: None,
        };
        assert_eq!(
            api_err(alice.api.rooms_page(&query).await),
            (400, ErrorCode::BadRequest),
            "limit {limit}"
        );
    }
    for cursor in ["", "not a cursor", "bm90LmEuY3Vyc29y"] {
        let query = RoomsQuery {
            limit: None,
            cursor: Some(cursor.into()),
        };
        assert_eq!(
            api_err(alice.api.rooms_page(&query).await),
            (400, ErrorCode::BadRequest),
            "cursor {cursor:?}"
        );
    }
    // Without a limit: one page of up to 100, and no cursor when it is the last.
    let page = alice
        .api
        .rooms_page(&RoomsQuery::default())
        .await
        .expect("page");
    assert_eq!((page.rooms.len(), page.next_cursor), (3, None));
    let first = alice
        .api
        .rooms_page(&RoomsQuery {
            limit: Some(2),
            cursor: None,
        })
        .await
        .expect("page");
    let rest = alice
        .api
        .rooms_page(&RoomsQuery {
            limit: Some(2),
            cursor: first.next_cursor.clone(),
        })
        .await
        .expect("page");
    assert_eq!((first.rooms.len(), rest.rooms.len()), (2, 1));
    assert!(first.next_cursor.is_some() && rest.next_cursor.is_none());
    // Anonymous callers have no room list.
    assert_eq!(
        api_err(server.api().rooms_page(&RoomsQuery::default()).await),
        (401, ErrorCode::Unauthorized)
    );
}
