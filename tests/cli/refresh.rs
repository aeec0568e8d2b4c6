//! Access tokens are refreshed: before they expire (short-lived tokens here), and once after a
//! 401; the rotated pair is saved; a session the server ended needs a new login (exit 3).

use std::time::Duration;

use switchboard_client::protocol::ErrorCode;

use crate::support::{interrupt, next_json_line, within, within_for, Cli, TestServer};

/// Waits until the server refuses `token` (its `exp`, plus the server's clock leeway, has
/// passed), asking the server itself: that is the event the test needs.
async fn until_refused(server: &TestServer, token: &str) {
    let api = server.api().with_token(token);
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    within_for(
        Duration::from_secs(30),
        "the access token to expire",
        async {
            loop {
                poll.tick().await;
                match api.me().await {
                    Ok(_) => continue,
                    Err(err) if err.code() == Some(ErrorCode::Unauthorized) => return,
                    Err(err) => panic!("unexpected {err}"),
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn commands_and_a_running_tail_outlive_the_access_token() {
    let mut server = TestServer::start_with(&["--access-ttl-secs", "1"]).await;
    let url = server.http_url();
    let alice = Cli::registered(&server, "alice").await;
    alice.run(&["create", "clock"]).await.ok();
    let (mut tail, mut lines) = alice.spawn(&["tail", "clock", "--since", "0", "--json"]);
    alice.run(&["send", "clock", "tick"]).await.ok();
    assert_eq!(next_json_line(&mut lines, "tick").await["body"], "tick");

    let before = alice.credentials(&url);
    until_refused(&server, before["access_token"].as_str().unwrap()).await;
    // The stored token is dead; the command refreshes first and saves the new pair.
    alice.run(&["rooms"]).await.ok();
    let after = alice.credentials(&url);
    assert_ne!(after["access_token"], before["access_token"]);
    assert_ne!(after["refresh_token"], before["refresh_token"], "rotated");
    assert!(after["expires_at"].as_u64() > before["expires_at"].as_u64());

    // The running tail reconnects after a restart long after its token expired: it asks for a
    // fresh one (the session in the file, rotated by the other process meanwhile).
    until_refused(&server, after["access_token"].as_str().unwrap()).await;
    server.restart().await;
    alice.run(&["send", "clock", "tock"]).await.ok();
    assert_eq!(next_json_line(&mut lines, "tock").await["body"], "tock");
    interrupt(&tail);
    let status = within("tail to exit", tail.wait()).await.expect("wait");
    assert_eq!(status.code(), Some(0));
    // Every refresh, by either process, used the current refresh token: the session is alive.
    alice.run(&["rooms"]).await.ok();
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_a_revoked_session_exits_3() {
    let server = TestServer::start().await;
    let url = server.http_url();
    let alice = Cli::registered(&server, "alice").await;

    // A token the server refuses although its recorded expiry is far away.
    let path = alice.credentials_path();
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    file["servers"][&url]["access_token"] = "not-a-valid-token".into();
    file["servers"][&url]["expires_at"] = 4_000_000_000u64.into();
    std::fs::write(&path, file.to_string()).unwrap();

    alice.run(&["create", "retry"]).await.ok();
    let fresh = alice.access_token();
    assert_ne!(fresh, "not-a-valid-token");
    server
        .api()
        .with_token(&fresh)
        .me()
        .await
        .expect("the saved token works");

    // The session ends on the server (say, a logout from elsewhere): the refresh is refused.
    server
        .api()
        .with_token(&fresh)
        .logout()
        .await
        .expect("logout");
    let out = alice.run(&["rooms"]).await.fails_with(3);
    assert!(
        out.error_line().ends_with("(session_ended)"),
        "{}",
        out.stderr
    );
    assert!(out.error_line().contains("log in again"), "{}", out.stderr);
}
