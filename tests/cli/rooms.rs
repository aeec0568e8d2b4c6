//! `rooms`, `create`, `invite`, `dm`, and room names on the command line.

use serde_json::Value;

use crate::support::{Cli, TestServer};

/// The room named `name` in a `rooms --json` answer.
fn room<'a>(rooms: &'a Value, name: &str) -> &'a Value {
    rooms["rooms"]
        .as_array()
        .expect("a rooms array")
        .iter()
        .find(|room| room["name"] == name)
        .unwrap_or_else(|| panic!("no room {name:?} in {rooms}"))
}

#[tokio::test]
async fn create_invite_and_list_rooms_with_unread_counts_and_activity() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let bob = Cli::registered(&server, "bob").await;

    let plans = alice.run(&["create", "plans", "--json"]).await.ok().json();
    assert_eq!(plans["public"], true, "public unless --private: {plans}");
    assert_eq!(plans["kind"], "group");
    let secret = alice
        .run(&["create", "secret", "--private", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(secret["public"], false);
    let out = alice.run(&["create", "notes"]).await.ok();
    assert!(
        out.stdout.starts_with("created public room notes ("),
        "{}",
        out.stdout
    );

    // ROOM by name (for the inviter) and by id.
    let out = alice.run(&["invite", "plans", &bob.username]).await.ok();
    assert_eq!(
        out.stdout.trim(),
        format!("added {} to plans", bob.username)
    );
    let secret_id = secret["id"].as_str().unwrap();
    let invited = alice
        .run(&["invite", secret_id, &bob.username, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(invited["room"], secret_id);

    alice.run(&["send", "plans", "first"]).await.ok();
    let posted = alice
        .run(&["send", "plans", "second", "--json"])
        .await
        .ok()
        .json();

    let listed = bob.run(&["rooms", "--json"]).await.ok().json();
    let names: Vec<&str> = listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| room["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["plans", "secret"], "newest activity first");
    let plans_row = room(&listed, "plans");
    assert_eq!(plans_row["id"], plans["id"]);
    assert_eq!(plans_row["unread"], 2);
    assert_eq!(
        plans_row["last_activity"], posted["ts"],
        "the newest message's time"
    );
    assert_eq!(room(&listed, "secret")["last_activity"], Value::Null);

    // The table for people: a header and one row per room.
    let table = bob.run(&["rooms"]).await.ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in ["NAME", "ID", "UNREAD", "LAST ACTIVITY"] {
        assert!(lines[0].contains(column), "{table}");
    }
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..3],
        ["plans", plans["id"].as_str().unwrap(), "2"],
        "{table}"
    );
}

#[tokio::test]
async fn a_direct_room_is_the_same_for_both_users() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let bob = Cli::registered(&server, "bob").await;

    let from_alice = alice
        .run(&["dm", &bob.username, "--json"])
        .await
        .ok()
        .json();
    let from_bob = bob
        .run(&["dm", &alice.username, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(from_alice["id"], from_bob["id"]);
    assert_eq!(from_alice["kind"], "direct");
    let mut pair = [alice.username.clone(), bob.username.clone()];
    pair.sort();
    assert_eq!(from_alice["name"], pair.join(","));

    // The direct room works by its name like any other.
    let name = pair.join(",");
    bob.run(&["send", &name, "hi"]).await.ok();
    let page = alice.run(&["history", &name, "--json"]).await.ok().json();
    assert_eq!(page["messages"][0]["body"], "hi");
    assert_eq!(page["messages"][0]["from"], bob.username.as_str());
}

#[tokio::test]
async fn an_ambiguous_room_name_is_a_usage_error_naming_the_ids() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let one = alice.run(&["create", "twin", "--json"]).await.ok().json();
    let two = alice.run(&["create", "twin", "--json"]).await.ok().json();
    let out = alice.run(&["history", "twin"]).await.fails_with(2);
    for room in [&one, &two] {
        assert!(
            out.stderr.contains(room["id"].as_str().unwrap()),
            "{}",
            out.stderr
        );
    }
    assert!(
        out.error_line().ends_with("(ambiguous_room)"),
        "{}",
        out.stderr
    );
    // By id it is unambiguous.
    alice
        .run(&["send", one["id"].as_str().unwrap(), "by id"])
        .await
        .ok();
}

#[tokio::test]
async fn rooms_lists_every_page_of_a_long_room_list() {
    // More rooms than one page of `GET /v1/rooms` holds (100).
    const ROOMS: usize = 105;
    let server = TestServer::start_with(&["--rooms-per-hour", "0"]).await;
    let alice = Cli::registered(&server, "alice").await;
    let api = server.api().with_token(alice.access_token());
    for i in 0..ROOMS {
        api.create_room(&format!("many-{i}"), false)
            .await
            .expect("create");
    }
    let listed = alice.run(&["rooms", "--json"]).await.ok().json();
    let mut names: Vec<&str> = listed["rooms"]
        .as_array()
        .expect("a rooms array")
        .iter()
        .map(|room| room["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names.len(), ROOMS, "every page");
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ROOMS, "each room once");
}
