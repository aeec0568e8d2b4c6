//! The server API (`/v1/server/*`) end to end, in both configurations: API keys made, listed
//! and revoked by the real `switchboard-hub api-key` command on the hub's store (its data dir,
//! or the PostgreSQL database with the scaled backend); a bot's posts seen live by a subscribed
//! user with `bot: true`, idempotent repeats, rooms, members, history, presence, disconnects,
//! and every refusal (401, 400, 403, 404, 413, 429).

use std::process::{Output, Stdio};

use reqwest::Method;
use serde_json::{json, Value};
use switchboard_client::protocol::close;
use switchboard_client::protocol::ws::{ClientFrame, Message, ServerFrame};

use crate::support::{closed, events_until_pong, next_event, unique_name, within, TestServer};

/// Runs `switchboard-hub api-key ARGS` on `server`'s store.
fn api_key_command(server: &TestServer, args: &[&str]) -> Output {
    let hub = switchboard_testkit::binary::binary("switchboard-hub", "switchboard-hub");
    let mut command = std::process::Command::new(hub);
    command
        .arg("api-key")
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null());
    if let Some(url) = server.database_url() {
        command.args(["--database-url", url]);
    }
    command.output().expect("run switchboard-hub api-key")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// A new key named `name`, from the binary.
fn create_key(server: &TestServer, name: &str) -> String {
    let out = api_key_command(server, &["create", name]);
    assert!(out.status.success(), "create: {out:?}");
    let text = stdout(&out);
    let key = text
        .lines()
        .find(|l| l.starts_with("sbk_"))
        .unwrap_or_else(|| panic!("no key printed: {text}"));
    key.to_owned()
}

/// `method path` on the server API with `key` (none: no `Authorization`) and an optional JSON
/// body: the status and the JSON answer (`Null` for an empty body).
async fn call(
    server: &TestServer,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut request = http.request(method, format!("{}{path}", server.http_url()));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = within("a server API answer", request.send())
        .await
        .expect("send");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (status, json)
}

/// Asserts an error answer: `status` with `{"error":{"code": code}}`.
#[track_caller]
fn refused((status, body): (u16, Value), want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// The next `message` event on `conn`, skipping membership and other events.
async fn next_message(conn: &mut switchboard_client::Connection) -> Message {
    loop {
        if let ServerFrame::Message(m) = next_event(conn).await {
            return m;
        }
    }
}

async fn subscribe(conn: &mut switchboard_client::Connection, room: &str) {
    within(
        "sub",
        conn.request(ClientFrame::Sub {
            id: None,
            room: room.to_owned(),
            since: None,
        }),
    )
    .await
    .expect("sub");
}

#[tokio::test]
async fn server_api_keys_are_made_listed_and_revoked_by_the_binary() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    let presence = format!("/v1/server/rooms/{}/presence", room.id);

    let key = create_key(&server, "backend");
    assert_eq!(key.len(), 4 + 16 + 1 + 43, "{key}");
    let other = create_key(&server, "other-backend");
    let (status, _) = call(&server, Some(&key), Method::GET, &presence, None).await;
    assert_eq!(status, 200);

    // `list` names every key with its id and dates, never a key.
    let out = api_key_command(&server, &["list"]);
    assert!(out.status.success(), "{out:?}");
    let listed = stdout(&out);
    assert!(listed.contains("backend\t"), "{listed}");
    assert!(listed.contains("other-backend\t"), "{listed}");
    assert!(!listed.contains("sbk_"), "a key is never listed: {listed}");
    let id = &key[4..20];
    let line = listed
        .lines()
        .find(|l| l.starts_with("backend\t"))
        .expect("backend's line");
    assert!(line.contains(id), "{line}");
    assert!(
        !line.ends_with("never"),
        "a used key has a last use: {line}"
    );

    // Refusals of the command: a taken or invalid name, an unknown key to revoke.
    for args in [
        &["create", "backend"][..],
        &["create", "Bad Name"][..],
        &["revoke", "nobody"][..],
    ] {
        let out = api_key_command(&server, args);
        assert!(!out.status.success(), "{args:?} must fail: {out:?}");
    }

    // Revoked by name: refused at once; the other key still works. Then revoked by id.
    let out = api_key_command(&server, &["revoke", "backend"]);
    assert!(out.status.success(), "{out:?}");
    refused(
        call(&server, Some(&key), Method::GET, &presence, None).await,
        401,
        "unauthorized",
    );
    let (status, _) = call(&server, Some(&other), Method::GET, &presence, None).await;
    assert_eq!(status, 200);
    let out = api_key_command(&server, &["revoke", &other[4..20]]);
    assert!(out.status.success(), "{out:?}");
    refused(
        call(&server, Some(&other), Method::GET, &presence, None).await,
        401,
        "unauthorized",
    );
    // A new key of a revoked key's name is a new key.
    let again = create_key(&server, "backend");
    assert_ne!(again, key);
    let (status, _) = call(&server, Some(&again), Method::GET, &presence, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn server_api_refuses_missing_wrong_and_user_credentials() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    let key = create_key(&server, "backend");
    let presence = format!("/v1/server/rooms/{}/presence", room.id);

    // Same id, another secret: the hash differs.
    let mut wrong = key.clone();
    let last = if wrong.ends_with('A') { 'B' } else { 'A' };
    wrong.pop();
    wrong.push(last);
    let unknown_id = format!("sbk_0000000000000000_{}", &key[21..]);
    for credential in [
        None,
        Some(wrong.as_str()),
        Some(unknown_id.as_str()),
        Some("sbk_nonsense"),
        Some(alice.token()),
    ] {
        for (method, path, body) in [
            (Method::GET, presence.clone(), None),
            (
                Method::POST,
                "/v1/server/publish".to_owned(),
                Some(json!({"room": room.id, "body": "hi", "idempotency_key": "k"})),
            ),
            (
                Method::POST,
                "/v1/server/disconnect".to_owned(),
                Some(json!({"user": alice.username})),
            ),
        ] {
            refused(
                call(&server, credential, method, &path, body).await,
                401,
                "unauthorized",
            );
        }
    }
    // A malformed Authorization header.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http
        .get(format!("{}{presence}", server.http_url()))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // An API key is no user token either.
    let (status, _) = call(&server, Some(&key), Method::GET, "/v1/rooms", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn server_api_publish_reaches_subscribers_as_a_bot_once_per_idempotency_key() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let key = create_key(&server, "backend");
    let mut conn = server.connect(&alice).await;
    subscribe(&mut conn, &room.id).await;

    let publish = |body: &str, idem: &str, bot: Option<&str>| {
        let mut req = json!({"room": room.id, "body": body, "idempotency_key": idem});
        if let Some(bot) = bot {
            req["as"] = json!(bot);
        }
        req
    };
    let (status, first) = call(
        &server,
        Some(&key),
        Method::POST,
        "/v1/server/publish",
        Some(publish("deploy done", "evt-1", None)),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["from"], "backend");
    let live = next_message(&mut conn).await;
    assert_eq!(live.body, "deploy done");
    assert_eq!(live.from, "backend");
    assert!(live.bot, "{live:?}");
    assert_eq!(json!(live.seq), first["seq"]);

    // The same key again: the first answer, nothing stored, nothing delivered.
    let (status, repeat) = call(
        &server,
        Some(&key),
        Method::POST,
        "/v1/server/publish",
        Some(publish("deploy done (again)", "evt-1", None)),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(repeat["seq"], first["seq"]);
    assert_eq!(repeat["ts"], first["ts"]);
    let between = events_until_pong(&mut conn).await;
    assert!(
        !between.iter().any(|f| matches!(f, ServerFrame::Message(_))),
        "{between:?}"
    );

    // Another bot through the same key.
    let (status, other) = call(
        &server,
        Some(&key),
        Method::POST,
        "/v1/server/publish",
        Some(publish("beep", "evt-1", Some("helper-bot"))),
    )
    .await;
    assert_eq!(status, 201, "{other}");
    assert_eq!(other["from"], "helper-bot");
    let live = next_message(&mut conn).await;
    assert_eq!((live.from.as_str(), live.bot), ("helper-bot", true));

    // History, for the user and for the server API, marks the bots; the room lists them.
    let history = alice
        .api
        .messages(&room.id, Default::default())
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|m| m.bot));
    let (status, page) = call(
        &server,
        Some(&key),
        Method::GET,
        &format!("/v1/server/rooms/{}/messages?limit=1", room.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"][0]["from"], "helper-bot");
    assert_eq!(page["messages"][0]["bot"], true);
    let members = alice.api.room(&room.id).await.expect("room").members;
    assert!(
        members.iter().flatten().any(|m| m.as_str() == "backend"),
        "{members:?}"
    );
    // A user's own message carries no marker.
    alice
        .api
        .post_message(&room.id, "thanks", None)
        .await
        .expect("post");
    let mine = next_message(&mut conn).await;
    assert!(!mine.bot);
}

#[tokio::test]
async fn server_api_manages_rooms_members_and_reads_history_and_presence() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    // With a remote auth node the hub finds users it has seen in a room (docs/PROTOCOL.md).
    alice.room_with(false, &[]).await;
    let key = create_key(&server, "backend");

    let (status, room) = call(
        &server,
        Some(&key),
        Method::POST,
        "/v1/server/rooms",
        Some(json!({"name": "Support", "public": false, "as": "support-bot"})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let id = room["id"].as_str().expect("an id").to_owned();
    let members = format!("/v1/server/rooms/{id}/members");

    let (status, _) = call(
        &server,
        Some(&key),
        Method::POST,
        &members,
        Some(json!({"username": alice.username})),
    )
    .await;
    assert_eq!(status, 204);
    // Again: nothing changes.
    let (status, _) = call(
        &server,
        Some(&key),
        Method::POST,
        &members,
        Some(json!({"username": alice.username})),
    )
    .await;
    assert_eq!(status, 204);
    let rooms = alice.api.rooms().await.expect("rooms");
    assert!(rooms.iter().any(|r| r.id == id), "alice is in the room");
    let seen = alice.api.room(&id).await.expect("room").members;
    assert_eq!(
        seen,
        Some(vec!["support-bot".to_owned(), alice.username.clone()])
    );

    let mut conn = server.connect(&alice).await;
    subscribe(&mut conn, &id).await;
    let (status, presence) = call(
        &server,
        Some(&key),
        Method::GET,
        &format!("/v1/server/rooms/{id}/presence"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(presence["users"], json!([alice.username]));

    // History pages as the user route does.
    for n in 1..=3 {
        alice
            .api
            .post_message(&id, &format!("m{n}"), None)
            .await
            .expect("post");
    }
    let history = |query: &'static str| {
        let (server, key, id) = (&server, &key, &id);
        async move {
            let (status, page) = call(
                server,
                Some(key),
                Method::GET,
                &format!("/v1/server/rooms/{id}/messages{query}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["body"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(history("").await, ["m1", "m2", "m3"]);
    assert_eq!(history("?limit=2").await, ["m2", "m3"]);
    assert_eq!(history("?before=3&limit=1").await, ["m2"]);
    assert_eq!(history("?after=1").await, ["m2", "m3"]);

    // Removed from a private room: the member hears it, then the subscription ends.
    let (status, _) = call(
        &server,
        Some(&key),
        Method::DELETE,
        &members,
        Some(json!({"username": alice.username})),
    )
    .await;
    assert_eq!(status, 204);
    loop {
        match next_event(&mut conn).await {
            ServerFrame::MemberLeft { user, .. } if user == alice.username => break,
            _ => {}
        }
    }
    let rooms = alice.api.rooms().await.expect("rooms");
    assert!(!rooms.iter().any(|r| r.id == id), "alice left the room");
    // Removing a non-member changes nothing.
    let (status, _) = call(
        &server,
        Some(&key),
        Method::DELETE,
        &members,
        Some(json!({"username": alice.username})),
    )
    .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn server_api_disconnect_closes_every_socket_of_the_user() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let key = create_key(&server, "backend");
    let mut first = server.connect(&alice).await;
    let mut second = server.connect(&alice).await;
    let mut bobs = server.connect(&bob).await;

    let (status, body) = call(
        &server,
        Some(&key),
        Method::POST,
        "/v1/server/disconnect",
        Some(json!({"user": alice.username})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    for conn in [&mut first, &mut second] {
        let (_, code) = closed(conn).await;
        assert_eq!(code, Some(close::DISCONNECTED));
    }
    // Others stay; the user may come back.
    events_until_pong(&mut bobs).await;
    let mut again = server.connect(&alice).await;
    events_until_pong(&mut again).await;

    refused(
        call(
            &server,
            Some(&key),
            Method::POST,
            "/v1/server/disconnect",
            Some(json!({"user": "Not A Name"})),
        )
        .await,
        400,
        "bad_request",
    );
    let nobody = call(
        &server,
        Some(&key),
        Method::POST,
        "/v1/server/disconnect",
        Some(json!({"user": unique_name("nobody")})),
    )
    .await;
    // Both configurations: the embedded auth, or the auth node's internal route (the hubs'
    // service token), knows there is no such account.
    refused(nobody, 404, "user_not_found");
}

#[tokio::test]
async fn server_api_refuses_bad_input_with_a_code() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[]).await;
    let direct = alice.api.direct(&bob.username).await.expect("direct");
    let key = create_key(&server, "backend");
    let k = Some(key.as_str());
    let publish = |room: &str, body: &str, idem: &str| {
        Some(json!({"room": room, "body": body, "idempotency_key": idem}))
    };
    let post = Method::POST;
    let cases: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        // 400
        (
            post.clone(),
            "/v1/server/publish".into(),
            Some(json!({"room": room.id})),
            400,
            "bad_request",
        ),
        (
            post.clone(),
            "/v1/server/publish".into(),
            publish(&room.id, "  ", "k"),
            400,
            "bad_request",
        ),
        (
            post.clone(),
            "/v1/server/publish".into(),
            publish(&room.id, "hi", ""),
            400,
            "bad_request",
        ),
        (
            post.clone(),
            "/v1/server/publish".into(),
            publish(&room.id, "hi", &"k".repeat(65)),
            400,
            "bad_request",
        ),
        (
            post.clone(),
            "/v1/server/publish".into(),
            Some(json!({"room": room.id, "body": "hi", "idempotency_key": "k", "as": "Bad Bot"})),
            400,
            "bad_request",
        ),
        (
            post.clone(),
            "/v1/server/publish".into(),
            Some(json!({"room": room.id, "body": "hi", "idempotency_key": "k", "extra": 1})),
            400,
            "bad_request",
        ),
        (
            post.clone(),
            "/v1/server/rooms".into(),
            Some(json!({"name": " "})),
            400,
            "bad_request",
        ),
        (
            post.clone(),
            "/v1/server/rooms".into(),
            Some(json!({"name": "x".repeat(81)})),
            400,
            "bad_request",
        ),
        (
            post.clone(),
            format!("/v1/server/rooms/{}/members", room.id),
            Some(json!({})),
            400,
            "bad_request",
        ),
        (
            Method::GET,
            format!("/v1/server/rooms/{}/messages?limit=0", room.id),
            None,
            400,
            "bad_request",
        ),
        (
            Method::GET,
            format!("/v1/server/rooms/{}/messages?limit=101", room.id),
            None,
            400,
            "bad_request",
        ),
        (
            Method::GET,
            format!("/v1/server/rooms/{}/messages?before=x", room.id),
            None,
            400,
            "bad_request",
        ),
        (
            post.clone(),
            "/v1/server/disconnect".into(),
            Some(json!({"who": "x"})),
            400,
            "bad_request",
        ),
        // 403: direct rooms are their users'.
        (
            post.clone(),
            "/v1/server/publish".into(),
            publish(&direct.id, "hi", "k"),
            403,
            "forbidden",
        ),
        (
            Method::GET,
            format!("/v1/server/rooms/{}/messages", direct.id),
            None,
            403,
            "forbidden",
        ),
        (
            Method::GET,
            format!("/v1/server/rooms/{}/presence", direct.id),
            None,
            403,
            "forbidden",
        ),
        (
            post.clone(),
            format!("/v1/server/rooms/{}/members", direct.id),
            Some(json!({"username": alice.username})),
            403,
            "forbidden",
        ),
        // 404
        (
            post.clone(),
            "/v1/server/publish".into(),
            publish("no-such-room", "hi", "k"),
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/server/rooms/no-such-room/messages".into(),
            None,
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/server/rooms/no-such-room/presence".into(),
            None,
            404,
            "not_found",
        ),
        (
            post.clone(),
            "/v1/server/rooms/no-such-room/members".into(),
            Some(json!({"username": alice.username})),
            404,
            "not_found",
        ),
        (
            Method::DELETE,
            "/v1/server/rooms/no-such-room/members".into(),
            Some(json!({"username": alice.username})),
            404,
            "not_found",
        ),
        (
            post.clone(),
            format!("/v1/server/rooms/{}/members", room.id),
            Some(json!({"username": unique_name("nobody")})),
            404,
            "user_not_found",
        ),
        (
            Method::DELETE,
            format!("/v1/server/rooms/{}/members", room.id),
            Some(json!({"username": unique_name("nobody")})),
            404,
            "user_not_found",
        ),
        (
            Method::GET,
            "/v1/server/nothing".into(),
            None,
            404,
            "not_found",
        ),
        // 413
        (
            post.clone(),
            "/v1/server/publish".into(),
            publish(&room.id, &"x".repeat(4097), "k"),
            413,
            "too_large",
        ),
        (
            post.clone(),
            "/v1/server/publish".into(),
            publish(&room.id, &"x".repeat(3 << 20), "k"),
            413,
            "too_large",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let what = format!(
            "{method} {path} {}",
            body.as_ref()
                .map_or(String::new(), |b| b.to_string().chars().take(120).collect())
        );
        let (got, answer) = call(&server, k, method, &path, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
    }
    // Nothing was stored by any of them.
    let history = alice
        .api
        .messages(&room.id, Default::default())
        .await
        .expect("history");
    assert!(history.is_empty(), "{history:?}");
}

#[tokio::test]
async fn server_api_requests_are_limited_per_key() {
    let server = TestServer::start_with(&[
        "--server-api-rate-per-sec",
        "0",
        "--server-api-rate-burst",
        "2",
    ])
    .await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    let key = create_key(&server, "busy");
    let other = create_key(&server, "quiet");
    let presence = format!("/v1/server/rooms/{}/presence", room.id);
    for _ in 0..2 {
        let (status, _) = call(&server, Some(&key), Method::GET, &presence, None).await;
        assert_eq!(status, 200);
    }
    refused(
        call(&server, Some(&key), Method::GET, &presence, None).await,
        429,
        "rate_limited",
    );
    refused(
        call(
            &server,
            Some(&key),
            Method::POST,
            "/v1/server/publish",
            Some(json!({"room": room.id, "body": "x", "idempotency_key": "k"})),
        )
        .await,
        429,
        "rate_limited",
    );
    // Another key has its own allowance.
    let (status, _) = call(&server, Some(&other), Method::GET, &presence, None).await;
    assert_eq!(status, 200);
}

/// A repeated `idempotency_key` is answered from the store: after a restart too, and the key
/// and the key's bot survive it.
#[tokio::test]
async fn server_api_idempotency_survives_a_restart() {
    let mut server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    let key = create_key(&server, "backend");
    let body = json!({"room": room.id, "body": "once", "idempotency_key": "restart-1"});
    let (status, first) = call(
        &server,
        Some(&key),
        Method::POST,
        "/v1/server/publish",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    server.restart().await;
    let (status, again) = call(
        &server,
        Some(&key),
        Method::POST,
        "/v1/server/publish",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!((&again["seq"], &again["ts"]), (&first["seq"], &first["ts"]));
    let history = alice
        .api
        .messages(&room.id, Default::default())
        .await
        .expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
}
