//! `admin users|set-email|delete|promote|demote`: an admin's happy paths, and every refusal
//! with its exit code (not logged in 3, unknown user 4, not an admin 5, a target that may not
//! change 8, a deletion not confirmed 2).

use serde_json::Value;

use crate::support::{unique_name, Cli, TestServer};

/// A user registered through the CLI and made admin as an operator does (the admin routes read
/// the stored role, so the CLI's session needs no new login).
async fn admin(server: &TestServer) -> Cli {
    let root = Cli::registered(server, "root").await;
    server.promote(&root.username).await;
    root
}

/// The `users` of an `admin users --json` answer with this username.
fn find<'a>(list: &'a Value, username: &str) -> Option<&'a Value> {
    list["users"]
        .as_array()
        .expect("a users array")
        .iter()
        .find(|u| u["username"] == username)
}

#[tokio::test]
async fn an_admin_lists_changes_promotes_demotes_and_deletes_users() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let bob = Cli::registered(&server, "bob").await;
    let carol = Cli::registered(&server, "carol").await;

    // The list: a table for people, the protocol's objects with --json, searchable, paged.
    let out = root.run(&["admin", "users"]).await.ok();
    let header = out.stdout.lines().next().unwrap_or("");
    for column in ["USERNAME", "ID", "ROLE", "EMAIL", "CREATED", "LAST LOGIN"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(out.stdout.contains(&bob.username), "{}", out.stdout);
    let list = root
        .run(&["admin", "users", "--query", &bob.username, "--json"])
        .await
        .ok()
        .json();
    let found = find(&list, &bob.username).expect("bob is found");
    assert_eq!(found["role"], "user");
    assert!(find(&list, &carol.username).is_none(), "{list}");
    let bob_id = found["id"].as_str().expect("an id").to_owned();
    let page = root
        .run(&["admin", "users", "--limit", "1", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(page["users"].as_array().map(Vec::len), Some(1), "{page}");
    assert!(page["next_cursor"].is_string(), "{page}");
    let out = root.run(&["admin", "users", "--limit", "1"]).await.ok();
    assert!(out.stdout.contains("--all"), "{}", out.stdout);
    let all = root
        .run(&["admin", "users", "--limit", "1", "--all", "--json"])
        .await
        .ok()
        .json();
    for name in [&root.username, &bob.username, &carol.username] {
        assert!(find(&all, name).is_some(), "{name} missing from {all}");
    }
    assert!(all["next_cursor"].is_null(), "{all}");

    // set-email, by username and by id.
    let out = root
        .run(&[
            "admin",
            "set-email",
            &bob.username,
            "bob@example.org",
            "--json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(out["user"]["email"], "bob@example.org");
    let out = root
        .run(&["admin", "set-email", &bob_id, "bob@example.net"])
        .await
        .ok();
    assert!(out.stdout.contains("bob@example.net"), "{}", out.stdout);

    // promote: bob's session opens the admin routes at once.
    let out = root.run(&["admin", "promote", &bob.username]).await.ok();
    assert!(out.stdout.contains("is now admin"), "{}", out.stdout);
    bob.run(&["admin", "users"]).await.ok();
    // An admin is never deleted (conflict, 8) and never demotes themself (8).
    let out = root
        .run(&["admin", "delete", &bob.username, "--yes", "--json"])
        .await
        .fails_with(8);
    assert_eq!(out.error_json()["error"]["code"], "forbidden_target");
    let out = root
        .run(&["admin", "demote", &root.username])
        .await
        .fails_with(8);
    assert!(
        out.error_line().ends_with("(forbidden_target)"),
        "{}",
        out.stderr
    );
    // demote: bob's sessions end (his next command must log in again).
    let out = root
        .run(&["admin", "demote", &bob.username, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(out["user"]["role"], "user");
    bob.run(&["rooms"]).await.fails_with(3);

    // delete: confirmation first; without a terminal only --yes will do (usage, 2).
    let out = root
        .run(&["admin", "delete", &carol.username])
        .await
        .fails_with(2);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    carol.run(&["rooms"]).await.ok();
    let out = root
        .run(&["admin", "delete", &carol.username, "--yes"])
        .await
        .ok();
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    carol.run(&["rooms"]).await.fails_with(3);
    let list = root
        .run(&["admin", "users", "--query", &carol.username, "--json"])
        .await
        .ok()
        .json();
    assert!(find(&list, &carol.username).is_none(), "{list}");
}

#[tokio::test]
async fn admin_commands_refuse_with_their_exit_codes() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let bob = Cli::registered(&server, "bob").await;
    let nobody = unique_name("nobody");

    // Not logged in: 3.
    let anonymous = Cli::new(&server.http_url());
    for args in [
        &["admin", "users"][..],
        &["admin", "promote", &bob.username],
        &["admin", "demote", &bob.username],
        &["admin", "set-email", &bob.username, "x@example.com"],
        &["admin", "delete", &bob.username, "--yes"],
    ] {
        let out = anonymous.run(args).await.fails_with(3);
        assert!(
            out.error_line().ends_with("(not_logged_in)"),
            "{}",
            out.stderr
        );
    }
    // Not an admin: 5, and nothing changes.
    for args in [
        &["admin", "users"][..],
        &["admin", "promote", &bob.username],
        &["admin", "demote", &root.username],
        &["admin", "set-email", &root.username, "x@example.com"],
        &["admin", "delete", &root.username, "--yes"],
    ] {
        let out = bob.run(args).await.fails_with(5);
        assert!(out.error_line().ends_with("(forbidden)"), "{}", out.stderr);
    }
    let list = root
        .run(&["admin", "users", "--query", &root.username, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(find(&list, &root.username).unwrap()["role"], "admin");
    // No such user (by name or id): 4.
    for args in [
        &["admin", "promote", &nobody][..],
        &["admin", "demote", &nobody],
        &["admin", "set-email", &nobody, "x@example.com"],
        &["admin", "delete", &nobody, "--yes"],
        &["admin", "promote", "0190a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"],
    ] {
        let out = root.run(args).await.fails_with(4);
        assert!(
            out.error_line().ends_with("(user_not_found)"),
            "{}",
            out.stderr
        );
    }
    // Bad values: the server's bad_request (1), or the CLI's usage (2).
    root.run(&["admin", "set-email", &bob.username, "not-an-address"])
        .await
        .fails_with(1);
    root.run(&["admin", "users", "--query", "NOT VALID"])
        .await
        .fails_with(1);
    root.run(&["admin", "users", "--limit", "0"])
        .await
        .fails_with(2);
    root.run(&["admin", "promote", ".."]).await.fails_with(2);
}
