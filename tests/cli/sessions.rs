//! `sessions`, `sessions end SID`, `sessions end-others`.

use serde_json::Value;
use switchboard_client::protocol::ErrorCode;
use switchboard_client::ClientError;

use crate::support::{Cli, TestServer, PASSWORD};

/// The session ids of a `sessions --json` answer, and the current one.
fn ids(list: &Value) -> (Vec<String>, Option<String>) {
    let sessions = list["sessions"].as_array().expect("a sessions array");
    let ids = sessions
        .iter()
        .map(|s| s["id"].as_str().expect("an id").to_owned())
        .collect();
    let current = sessions
        .iter()
        .find(|s| s["current"] == true)
        .map(|s| s["id"].as_str().expect("an id").to_owned());
    (ids, current)
}

fn refused(result: Result<impl std::fmt::Debug, ClientError>) -> bool {
    matches!(
        result,
        Err(ClientError::Api {
            code: ErrorCode::Unauthorized,
            ..
        })
    )
}

#[tokio::test]
async fn sessions_are_listed_and_ended() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let url = server.http_url();
    let mine = alice.credentials(&url)["refresh_token"]
        .as_str()
        .and_then(|t| t.split_once('.'))
        .map(|(sid, _)| sid.to_owned())
        .expect("a stored refresh token");
    let phone = server
        .api()
        .login(&alice.username, PASSWORD)
        .await
        .expect("a second login");

    // Both listed, this CLI's marked current: in JSON, and in a table.
    let (listed, current) = ids(&alice.run(&["sessions", "--json"]).await.ok().json());
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(current.as_deref(), Some(mine.as_str()));
    let other = listed
        .iter()
        .find(|id| **id != mine)
        .expect("the other session")
        .clone();
    let out = alice.run(&["sessions"]).await.ok();
    let header = out.stdout.lines().next().unwrap_or("");
    for column in ["CURRENT", "ID", "DEVICE", "CREATED", "LAST SEEN"] {
        assert!(header.contains(column), "{header}");
    }
    let marked = out
        .stdout
        .lines()
        .find(|line| line.starts_with('*'))
        .expect("a row marked *");
    assert!(marked.contains(&mine), "{}", out.stdout);

    // Ending the other: its token stops working; this one goes on.
    alice.run(&["sessions", "end", &other]).await.ok();
    let api = server.api();
    assert!(refused(api.with_token(&phone.access_token).me().await));
    let (listed, _) = ids(&alice.run(&["sessions", "--json"]).await.ok().json());
    assert_eq!(listed, vec![mine.clone()]);
    // Not a session of hers (ended already, or unknown): not found, 4.
    let out = alice.run(&["sessions", "end", &other]).await.fails_with(4);
    assert!(out.error_line().ends_with("(not_found)"), "{}", out.stderr);
    alice.run(&["sessions", "end", ".."]).await.fails_with(2);

    // end-others: two more logins end; this one goes on.
    let laptop = api.login(&alice.username, PASSWORD).await.expect("login");
    let tablet = api.login(&alice.username, PASSWORD).await.expect("login");
    let out = alice.run(&["sessions", "end-others"]).await.ok();
    assert!(out.stdout.contains("other"), "{}", out.stdout);
    for pair in [&laptop, &tablet] {
        assert!(refused(api.with_token(&pair.access_token).me().await));
    }
    let (listed, current) = ids(&alice.run(&["sessions", "--json"]).await.ok().json());
    assert_eq!((listed, current), (vec![mine.clone()], Some(mine.clone())));

    // Ending one's own session is a logout: the credentials go too.
    let out = alice
        .run(&["sessions", "end", &mine, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(out["current"], true);
    assert!(alice.credentials(&url).is_null(), "the entry is removed");
    let out = alice.run(&["sessions"]).await.fails_with(3);
    assert!(
        out.error_line().ends_with("(not_logged_in)"),
        "{}",
        out.stderr
    );
    Cli::new(&url)
        .run(&["sessions", "end-others"])
        .await
        .fails_with(3);
}
