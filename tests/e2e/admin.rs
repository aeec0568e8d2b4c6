//! Accounts administration end to end, in both configurations: admins made from the command
//! line, deleting a user (sockets closed within a second, messages kept, tombstone), moderation
//! of messages, and the hub binary's `admin` command.

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::protocol::{close, ErrorCode};
use switchboard_client::Api;

use crate::support::{
    api_err, closed, events_until_pong, next_event, unique_name, within, TestServer, TestUser,
    PASSWORD,
};

/// How soon every socket of a deleted user or an ended session must close.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(1);

/// `method path` with `api`'s token and an optional JSON body: the status and the JSON answer
/// (`Null` for an empty body).
pub(crate) async fn call(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = api.request(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = within("a REST answer", request.send()).await.expect("send");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (status, json)
}

/// A new user made admin from the command line, logged in afterwards (so the token carries the
/// role).
pub(crate) async fn admin(server: &TestServer) -> TestUser {
    let user = server.user("admin").await;
    server.promote(&user.username).await;
    let tokens = server
        .api()
        .login(&user.username, PASSWORD)
        .await
        .expect("login");
    assert_eq!(tokens.user.role, "admin");
    TestUser {
        api: server.api().with_token(&tokens.access_token),
        tokens,
        ..user
    }
}

#[tokio::test]
async fn deleting_a_user_closes_their_sockets_and_keeps_their_messages() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = carol.room_with(false, &[&bob]).await;
    let posted = bob
        .api
        .post_message(&room.id, "remember me", None)
        .await
        .expect("post");
    // Two sessions of bob, each with a socket.
    let mut first = server.connect(&bob).await;
    let other = server
        .api()
        .login(&bob.username, PASSWORD)
        .await
        .expect("login");
    let (mut second, _) = within(
        "welcome",
        switchboard_client::Connection::connect(&server.ws_url(), Some(&other.access_token)),
    )
    .await
    .expect("connect");
    let mut watcher = server.connect(&carol).await;

    // A user cannot delete anyone; anonymous callers even less.
    let path = format!("/v1/admin/users/{}", bob.user.id);
    let (status, body) = call(&carol.api, Method::DELETE, &path, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = call(&server.api(), Method::DELETE, &path, None).await;
    assert_eq!(status, 401);
    within("pong", first.ping())
        .await
        .expect("bob still connected");

    let (status, body) = call(&root.api, Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    let deleted_at = Instant::now();
    for socket in [&mut first, &mut second] {
        let (_, code) = closed(socket).await;
        assert_eq!(code, Some(close::POLICY));
    }
    assert!(
        deleted_at.elapsed() <= REVOCATION_DEADLINE,
        "sockets closed after {:?}",
        deleted_at.elapsed()
    );
    assert_eq!(api_err(bob.api.me().await), (401, ErrorCode::Unauthorized));
    let refresh = server.api().refresh(&other.refresh_token).await;
    assert_eq!(api_err(refresh), (401, ErrorCode::Unauthorized));

    // Others stay connected; bob's message stays, under his name; his name is a tombstone.
    events_until_pong(&mut watcher).await;
    let history = carol
        .api
        .messages(&room.id, Default::default())
        .await
        .expect("history");
    let kept = history
        .iter()
        .find(|m| m.seq == posted.seq)
        .expect("the message is kept");
    assert_eq!(
        (kept.from.as_str(), kept.body.as_str()),
        (bob.username.as_str(), "remember me")
    );
    let (status, lookup) = call(
        &carol.api,
        Method::GET,
        &format!("/v1/users/{}", bob.username),
        None,
    )
    .await;
    assert_eq!(status, 200, "{lookup}");
    assert_eq!(lookup["user"]["deleted"], true, "{lookup}");
    // A deleted user can no longer be added to a room or written to.
    let added = carol.api.add_member(&room.id, &bob.username).await;
    assert_eq!(api_err(added), (404, ErrorCode::UserNotFound));
    assert_eq!(
        api_err(carol.api.direct(&bob.username).await),
        (404, ErrorCode::UserNotFound)
    );
    // The name stays reserved.
    let taken = server
        .api()
        .register(&bob.username, "new@example.com", PASSWORD)
        .await;
    assert_eq!(api_err(taken), (409, ErrorCode::UsernameTaken));
    // Admins are never deleted over HTTP.
    let (status, body) = call(
        &root.api,
        Method::DELETE,
        &format!("/v1/admin/users/{}", root.user.id),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("forbidden_target"))
    );
}

#[tokio::test]
async fn deleting_oneself_closes_every_socket_of_the_user() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mut socket = server.connect(&alice).await;
    let other = server
        .api()
        .login(&alice.username, PASSWORD)
        .await
        .expect("login");
    let (mut other_socket, _) = within(
        "welcome",
        switchboard_client::Connection::connect(&server.ws_url(), Some(&other.access_token)),
    )
    .await
    .expect("connect");
    let (status, body) = call(&alice.api, Method::DELETE, "/v1/auth/me", None).await;
    assert_eq!(status, 204, "{body}");
    let deleted_at = Instant::now();
    for socket in [&mut socket, &mut other_socket] {
        let (_, code) = closed(socket).await;
        assert_eq!(code, Some(close::POLICY));
    }
    assert!(
        deleted_at.elapsed() <= REVOCATION_DEADLINE,
        "{:?}",
        deleted_at.elapsed()
    );
}

/// `PUT /v1/admin/users/{id}/role` through the hub (proxied to the auth node when scaled): a
/// promotion gives moderation at the next login; a demotion closes every socket of the user
/// within a second and their old tokens stop working; an admin never demotes themself.
#[tokio::test]
async fn admins_promote_and_demote_over_http_and_a_demotion_closes_the_sockets() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let bob = server.user("bob").await;
    let path = format!("/v1/admin/users/{}/role", bob.user.id);

    // Refusals: anonymous 401, a user 403, oneself 409, a bad role 400, nobody 404.
    let (status, _) = call(
        &server.api(),
        Method::PUT,
        &path,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = call(&bob.api, Method::PUT, &path, Some(json!({"role": "admin"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let own = format!("/v1/admin/users/{}/role", root.user.id);
    let (status, body) = call(&root.api, Method::PUT, &own, Some(json!({"role": "user"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("forbidden_target"))
    );
    let (status, body) = call(&root.api, Method::PUT, &path, Some(json!({"role": "god"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, body) = call(
        &root.api,
        Method::PUT,
        "/v1/admin/users/no-such-id/role",
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("user_not_found"))
    );

    // Promoted: a new login carries the role.
    let (status, body) = call(
        &root.api,
        Method::PUT,
        &path,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "admin");
    let tokens = server
        .api()
        .login(&bob.username, PASSWORD)
        .await
        .expect("login");
    assert_eq!(tokens.user.role, "admin");
    let promoted = TestUser {
        api: server.api().with_token(&tokens.access_token),
        tokens,
        ..bob
    };
    let mut first = server.connect(&promoted).await;
    let mut second = server.connect(&promoted).await;

    // Demoted: both sockets close with 1008 within a second; the token is dead.
    let (status, body) = call(&root.api, Method::PUT, &path, Some(json!({"role": "user"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "user");
    let demoted_at = Instant::now();
    for socket in [&mut first, &mut second] {
        let (_, code) = closed(socket).await;
        assert_eq!(code, Some(close::POLICY));
    }
    assert!(
        demoted_at.elapsed() <= REVOCATION_DEADLINE,
        "sockets closed after {:?}",
        demoted_at.elapsed()
    );
    assert_eq!(
        api_err(promoted.api.me().await),
        (401, ErrorCode::Unauthorized)
    );
    let again = server
        .api()
        .login(&promoted.username, PASSWORD)
        .await
        .expect("login");
    assert_eq!(again.user.role, "user");
}

#[tokio::test]
async fn admins_delete_any_message_and_subscribers_see_moderation() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let dave = server.user("dave").await;
    // A private room the admin is not a member of.
    let room = alice.room_with(false, &[&bob]).await;
    let first = bob
        .api
        .post_message(&room.id, "spam", None)
        .await
        .expect("post");
    let second = bob
        .api
        .post_message(&room.id, "more", None)
        .await
        .expect("post");
    let mut watcher = server.connect(&alice).await;
    within("sub", watcher.subscribe(&room.id, None))
        .await
        .expect("sub");

    let path = |seq: u64| format!("/v1/rooms/{}/messages/{seq}", room.id);
    // A member who is not the author, and a stranger, may not.
    let (status, body) = call(&alice.api, Method::DELETE, &path(first.seq), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, body) = call(&dave.api, Method::DELETE, &path(first.seq), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert!(
        events_until_pong(&mut watcher).await.is_empty(),
        "nothing deleted"
    );

    let (status, body) = call(&root.api, Method::DELETE, &path(first.seq), None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        next_event(&mut watcher).await,
        ServerFrame::Deleted {
            room: room.id.clone(),
            seq: first.seq,
            moderated: true,
        }
    );
    let history = alice
        .api
        .messages(&room.id, Default::default())
        .await
        .expect("history");
    let gone = history
        .iter()
        .find(|m| m.seq == first.seq)
        .expect("tombstone");
    assert!(gone.deleted && gone.body.is_empty(), "{gone:?}");
    // Twice, or a message or room that does not exist: 404.
    for (room_id, seq) in [
        (room.id.as_str(), first.seq),
        (room.id.as_str(), 999),
        ("no-such-room", 1),
    ] {
        let (status, body) = call(
            &root.api,
            Method::DELETE,
            &format!("/v1/rooms/{room_id}/messages/{seq}"),
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{room_id} {seq}"
        );
    }
    // The author's own deletion is no moderation.
    bob.api
        .delete_message(&room.id, second.seq)
        .await
        .expect("delete own");
    assert_eq!(
        next_event(&mut watcher).await,
        ServerFrame::Deleted {
            room: room.id.clone(),
            seq: second.seq,
            moderated: false,
        }
    );
}

#[tokio::test]
async fn a_password_change_and_ended_sessions_close_their_sockets() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mut current = server.connect(&alice).await;
    let login = |agent: &'static str| {
        let url = format!("{}/v1/auth/login", server.http_url());
        let username = alice.username.clone();
        async move {
            let pair: switchboard_client::protocol::rest::TokenPair = reqwest::Client::new()
                .post(url)
                .header(reqwest::header::USER_AGENT, agent)
                .json(&json!({"username": username, "password": PASSWORD}))
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("a token pair");
            pair
        }
    };
    let connect = |token: String| {
        let url = server.ws_url();
        async move {
            within(
                "welcome",
                switchboard_client::Connection::connect(&url, Some(&token)),
            )
            .await
            .expect("connect")
            .0
        }
    };
    let phone = login("Phone/1").await;
    let mut phone_socket = connect(phone.access_token.clone()).await;

    // The session list shows the user agent, through the hub in both configurations.
    let (status, list) = call(&alice.api, Method::GET, "/v1/auth/sessions", None).await;
    assert_eq!(status, 200, "{list}");
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    assert_eq!(sessions[0]["user_agent"], "Phone/1");
    assert_eq!(sessions[0]["current"], false);
    assert_eq!(sessions[1]["current"], true);

    // Ending the phone's session closes its socket.
    let phone_sid = sessions[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &alice.api,
        Method::DELETE,
        &format!("/v1/auth/sessions/{phone_sid}"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let ended = Instant::now();
    assert_eq!(closed(&mut phone_socket).await.1, Some(close::POLICY));
    assert!(
        ended.elapsed() <= REVOCATION_DEADLINE,
        "{:?}",
        ended.elapsed()
    );

    // A password change closes every other session's sockets, and only those.
    let laptop = login("Laptop/1").await;
    let mut laptop_socket = connect(laptop.access_token.clone()).await;
    let new_password = "a new and long passphrase";
    let (status, body) = call(
        &alice.api,
        Method::POST,
        "/v1/auth/me/password",
        Some(json!({"current": "not it", "new": new_password})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (status, body) = call(
        &alice.api,
        Method::POST,
        "/v1/auth/me/password",
        Some(json!({"current": PASSWORD, "new": new_password})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let changed = Instant::now();
    assert_eq!(closed(&mut laptop_socket).await.1, Some(close::POLICY));
    assert!(
        changed.elapsed() <= REVOCATION_DEADLINE,
        "{:?}",
        changed.elapsed()
    );
    within("pong", current.ping())
        .await
        .expect("the current session goes on");
    server
        .api()
        .login(&alice.username, new_password)
        .await
        .expect("the new password logs in");

    // Logging out the other devices.
    let tablet = server
        .api()
        .login(&alice.username, new_password)
        .await
        .expect("login");
    let mut tablet_socket = connect(tablet.access_token.clone()).await;
    let (status, body) = call(&alice.api, Method::DELETE, "/v1/auth/sessions", None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(closed(&mut tablet_socket).await.1, Some(close::POLICY));
    within("pong", current.ping())
        .await
        .expect("the current session goes on");
}

#[tokio::test]
async fn single_session_logins_close_the_earlier_sockets() {
    let server = TestServer::start_with(&["--single-session"]).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut first = server.connect(&alice).await;
    let mut bystander = server.connect(&bob).await;
    let second = server
        .api()
        .login(&alice.username, PASSWORD)
        .await
        .expect("login");
    assert_eq!(closed(&mut first).await.1, Some(close::POLICY));
    assert_eq!(
        api_err(alice.api.me().await),
        (401, ErrorCode::Unauthorized)
    );
    server
        .api()
        .with_token(&second.access_token)
        .me()
        .await
        .expect("the new session works");
    within("pong", bystander.ping())
        .await
        .expect("other users are untouched");
}

/// `switchboard-hub admin ...` on the hub's own accounts (its data dir, or the database its auth
/// node shares with the scaled backend).
#[tokio::test]
async fn the_hub_binary_makes_and_unmakes_admins() {
    let server = TestServer::start().await;
    let hub = switchboard_testkit::binary::binary("switchboard-hub", "switchboard-hub");
    let run = |args: &[&str], stdin: &str| {
        let mut command = std::process::Command::new(&hub);
        command
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(server.data_dir())
            .env_remove("DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = server.database_url() {
            command.args(["--database-url", url]);
        }
        let mut child = command.spawn().expect("run switchboard-hub admin");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().expect("wait")
    };
    let root = unique_name("root");
    let email = format!("{root}@example.com");
    let made = run(
        &["create", &root, "--email", &email, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(String::from_utf8_lossy(&made.stdout).contains(&root));
    let tokens = server.api().login(&root, PASSWORD).await.expect("login");
    assert_eq!(tokens.user.role, "admin");

    let again = run(
        &["create", &root, "--email", &email, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("taken"),
        "{again:?}"
    );
    let nobody = run(&["promote", "nobody-here"], "");
    assert!(!nobody.status.success());

    let demoted = run(&["demote", &root], "");
    assert!(demoted.status.success(), "{demoted:?}");
    let tokens = server.api().login(&root, PASSWORD).await.expect("login");
    assert_eq!(tokens.user.role, "user");
}
