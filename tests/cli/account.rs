//! `register`, `login`, `logout` and the credentials file.

use std::os::unix::fs::PermissionsExt;

use switchboard_client::protocol::ErrorCode;
use switchboard_client::ClientError;

use crate::support::{unique_name, Cli, TestServer, PASSWORD};

#[tokio::test]
async fn register_login_logout_with_a_private_credentials_file() {
    let server = TestServer::start().await;
    let url = server.http_url();
    let alice = Cli::registered(&server, "alice").await;

    // The file is created 0600 in a 0700 directory, and holds the pair for this server.
    let path = alice.credentials_path();
    let mode = std::fs::metadata(&path)
        .expect("credentials file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials.json must be private");
    let dir_mode = std::fs::metadata(alice.config_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "the config dir is not open to others");
    let stored = alice.credentials(&url);
    assert_eq!(stored["username"], alice.username.as_str());
    let token = alice.access_token();
    let me = server
        .api()
        .with_token(&token)
        .me()
        .await
        .expect("a valid token");
    assert_eq!(me.user.username, alice.username);

    alice.run(&["rooms"]).await.ok();

    // Logout revokes the session on the server and forgets it locally.
    let out = alice.run(&["logout"]).await.ok();
    assert!(out.stdout.contains("logged out"), "{}", out.stdout);
    assert!(alice.credentials(&url).is_null(), "the entry is removed");
    let revoked = server.api().with_token(&token).me().await;
    assert!(
        matches!(
            revoked,
            Err(ClientError::Api {
                code: ErrorCode::Unauthorized,
                ..
            })
        ),
        "the old token is revoked: {revoked:?}"
    );
    let out = alice.run(&["rooms"]).await.fails_with(3);
    assert!(
        out.error_line().ends_with("(not_logged_in)"),
        "{}",
        out.stderr
    );
    alice.run(&["logout"]).await.fails_with(3);

    // Log in again, the password from the environment this time; the file stays private.
    let out = alice
        .command(&["login", &alice.username, "--json"])
        .env("SWITCHBOARD_PASSWORD", PASSWORD)
        .output()
        .await
        .expect("login runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let login: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(login["user"], alice.username.as_str());
    assert_eq!(login["server"], url.as_str());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains(&alice.access_token()),
        "tokens are never printed"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    alice.run(&["rooms"]).await.ok();
}

#[tokio::test]
async fn a_wrong_password_or_none_at_all_fails_with_its_exit_code() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let stranger = Cli::new(&server.http_url());

    let out = stranger
        .run_stdin(
            &["login", &alice.username, "--password-stdin"],
            "wrong password\n",
        )
        .await
        .fails_with(3);
    assert!(
        out.error_line().starts_with("switchboard: ")
            && out.error_line().ends_with("(invalid_credentials)"),
        "one clear line: {:?}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1);
    assert!(!stranger.credentials_path().exists(), "nothing is stored");

    // No --password-stdin, no SWITCHBOARD_PASSWORD, stdin not a terminal: a usage error.
    let out = stranger
        .run(&["login", &alice.username])
        .await
        .fails_with(2);
    assert!(out.error_line().contains("password"), "{}", out.stderr);

    // A taken username is a conflict.
    let out = stranger
        .run_stdin(
            &["register", &alice.username, "--password-stdin", "--json"],
            PASSWORD,
        )
        .await
        .fails_with(8);
    let error = out.error_json();
    assert_eq!(error["error"]["code"], "username_taken");
    assert_eq!(error["error"]["exit_code"], 8);
}

#[tokio::test]
async fn one_credentials_file_holds_sessions_on_several_servers() {
    let first = TestServer::start().await;
    let second = TestServer::start().await;
    let (a, b) = (first.http_url(), second.http_url());
    // One config dir (one person), a different account on each server.
    let cli = Cli::new(&a);
    let (name_a, name_b) = (unique_name("ann"), unique_name("ben"));
    cli.run_stdin(&["register", &name_a, "--password-stdin"], PASSWORD)
        .await
        .ok();
    cli.run_stdin(
        &["--server", &b, "register", &name_b, "--password-stdin"],
        PASSWORD,
    )
    .await
    .ok();
    cli.run(&["create", "only-on-a"]).await.ok();
    cli.run(&["--server", &b, "create", "only-on-b"]).await.ok();

    let names = |out: serde_json::Value| -> Vec<String> {
        out["rooms"]
            .as_array()
            .expect("rooms")
            .iter()
            .map(|room| room["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(cli.run(&["rooms", "--json"]).await.ok().json()),
        ["only-on-a"]
    );
    let on_b = cli.run(&["--server", &b, "rooms", "--json"]).await.ok();
    assert_eq!(names(on_b.json()), ["only-on-b"]);
    assert_eq!(cli.credentials(&a)["username"], name_a.as_str());
    assert_eq!(cli.credentials(&b)["username"], name_b.as_str());

    // Logging out of one server leaves the other.
    cli.run(&["--server", &b, "logout"]).await.ok();
    assert!(cli.credentials(&b).is_null());
    cli.run(&["rooms"]).await.ok();
}
