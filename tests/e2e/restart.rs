//! Durability: a restart on the same data dir keeps users, sessions and revocations, signing
//! keys, rooms and memberships, messages (with edits and tombstones), read marks and
//! idempotency keys.

use switchboard_client::protocol::close;
use switchboard_client::protocol::ErrorCode;
use switchboard_client::{Connection, HistoryQuery};

use crate::support::{api_err, closed, within, TestServer, PASSWORD};

#[tokio::test]
async fn data_survives_a_restart_on_the_same_data_dir() {
    let mut server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    for body in ["one", "two", "three"] {
        alice
            .api
            .post_message(&room.id, body, None)
            .await
            .expect("post");
    }
    alice
        .api
        .edit_message(&room.id, 2, "two, edited")
        .await
        .expect("edit");
    alice.api.delete_message(&room.id, 3).await.expect("delete");
    let keyed = alice
        .api
        .post_message(&room.id, "four", Some("k-4"))
        .await
        .expect("post");
    bob.api.mark_read(&room.id, 1).await.expect("read");
    let direct = alice.api.direct(&bob.username).await.expect("direct");
    // A second session that gets revoked before the restart.
    let revoked = server
        .api()
        .login(&alice.username, PASSWORD)
        .await
        .expect("login");
    server
        .api()
        .with_token(&revoked.access_token)
        .logout()
        .await
        .expect("logout");

    let history_before = alice
        .api
        .messages(&room.id, HistoryQuery::default())
        .await
        .unwrap();
    let jwks_before = server.api().jwks().await.expect("jwks");
    let rooms_before = bob.api.rooms().await.expect("rooms");

    server.restart().await;
    let api = server.api();

    // Accounts, keys and sessions.
    api.login(&alice.username, PASSWORD)
        .await
        .expect("alice logs in");
    let wrong = api.login(&bob.username, "wrong password").await;
    assert_eq!(api_err(wrong), (401, ErrorCode::InvalidCredentials));
    assert_eq!(
        api.jwks().await.expect("jwks"),
        jwks_before,
        "the signing key is kept"
    );
    let me = alice.api.me().await;
    assert_eq!(
        me.expect("a pre-restart access token still works")
            .user
            .username,
        alice.username
    );
    let api_revoked = api.with_token(&revoked.access_token).me().await;
    assert_eq!(
        api_err(api_revoked),
        (401, ErrorCode::Unauthorized),
        "revocation is kept"
    );
    let refreshed = api.refresh(&bob.tokens.refresh_token).await;
    let bob_api = api.with_token(&refreshed.expect("a pre-restart refresh token").access_token);

    // Rooms, membership, read marks.
    let shown = bob_api.room(&room.id).await.expect("room");
    let mut members = shown.members.expect("members");
    members.sort();
    let mut expected = vec![alice.username.clone(), bob.username.clone()];
    expected.sort();
    assert_eq!(members, expected);
    assert_eq!(bob_api.rooms().await.expect("rooms"), rooms_before);
    let listed = rooms_before
        .iter()
        .find(|r| r.id == room.id)
        .expect("listed");
    assert_eq!(listed.read_seq, Some(1));
    assert_eq!(
        bob_api.direct(&alice.username).await.expect("direct").id,
        direct.id
    );

    // Messages, with edits and tombstones; seqs continue; idempotency keys still match.
    let history_after = bob_api
        .messages(&room.id, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history_after, history_before);
    let again = alice.api.post_message(&room.id, "four?", Some("k-4")).await;
    assert_eq!(again.expect("repeat after restart"), keyed);
    let next = alice
        .api
        .post_message(&room.id, "five", None)
        .await
        .expect("post");
    assert_eq!(next.seq, keyed.seq + 1);

    // Live traffic works on the new instance, and catch-up sees the old messages.
    let (mut ws, welcome) = within(
        "welcome",
        Connection::connect(&server.ws_url(), Some(alice.token())),
    )
    .await
    .expect("connect with a pre-restart token");
    assert_eq!(
        welcome.user.map(|u| u.username),
        Some(alice.username.clone())
    );
    let (caught_up, last_seq) = within("sub", ws.subscribe(&room.id, Some(0)))
        .await
        .expect("sub");
    assert_eq!(last_seq, next.seq);
    assert_eq!(&caught_up[..history_before.len()], &history_before[..]);
}

#[tokio::test]
async fn a_restart_closes_sockets_with_1012_and_clients_resume_with_since() {
    let mut server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let mut ws = server.connect(&alice).await;
    within("sub", ws.subscribe(&room.id, None))
        .await
        .expect("sub");
    let ack = within("ack", ws.send_message(&room.id, "before", None))
        .await
        .expect("ack");

    let ((), (_, code)) = tokio::join!(server.restart(), closed(&mut ws));
    assert_eq!(code, Some(close::RESTARTING));

    // The resume path: reconnect and subscribe with the highest seq seen.
    let missed = alice
        .api
        .post_message(&room.id, "while away", None)
        .await
        .expect("post");
    let (mut ws, _) = within(
        "welcome",
        Connection::connect(&server.ws_url(), Some(alice.token())),
    )
    .await
    .expect("reconnect");
    let (caught_up, last_seq) = within("sub", ws.subscribe(&room.id, Some(ack.seq)))
        .await
        .expect("sub");
    assert_eq!(last_seq, missed.seq);
    assert_eq!(
        caught_up.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [missed.seq]
    );
    assert_eq!(caught_up[0].body, "while away");
}
