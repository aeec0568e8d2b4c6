//! `send --attach`, `history` listing attachments, and `download` (to the sent name, to `-o
//! PATH`, to stdout), with its refusals.

use crate::support::{Cli, TestServer};

/// A valid 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

#[tokio::test]
async fn files_are_attached_listed_and_downloaded() {
    let server = TestServer::start().await;
    let alice = Cli::registered(&server, "alice").await;
    let bob = Cli::registered(&server, "bob").await;
    let room = alice
        .run(&["create", "files", "--private", "--json"])
        .await
        .ok()
        .json();
    let room_id = room["id"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "line one\nline two\n").unwrap();
    let pic = dir.path().join("pic.png");
    std::fs::write(&pic, PNG).unwrap();

    let sent = alice
        .run(&[
            "send",
            "files",
            "see these",
            "--attach",
            notes.to_str().unwrap(),
            "--attach",
            pic.to_str().unwrap(),
            "--json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(sent["seq"], 1);
    let attachments = sent["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 2);
    assert_eq!(attachments[0]["name"], "notes.txt");
    assert_eq!(attachments[1]["type"], "image/png");
    let notes_id = attachments[0]["id"].as_str().unwrap();
    let out = alice
        .run(&["send", "files", "--attach", pic.to_str().unwrap()])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "sent #2 to files with 1 file");

    let history = alice.run(&["history", "files"]).await.ok().stdout;
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].ends_with("see these"), "{history}");
    assert_eq!(
        lines[1],
        format!("    attachment: notes.txt (18 B, text/plain; charset=utf-8) id {notes_id}")
    );
    assert!(
        lines[2].starts_with("    attachment: pic.png (69 B, image/png) id "),
        "{history}"
    );
    let page = alice.run(&["history", "files", "--json"]).await.ok().json();
    assert_eq!(page["messages"][0]["attachments"][0]["id"], notes_id);

    // Saved under its name, never over an existing file; -o PATH; -o - to stdout.
    let target = tempfile::tempdir().unwrap();
    let out = alice
        .run_in(target.path(), &["download", "files", notes_id])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "saved notes.txt (18 B)");
    let saved = std::fs::read(target.path().join("notes.txt")).unwrap();
    assert_eq!(saved, b"line one\nline two\n");
    alice
        .run_in(target.path(), &["download", "files", notes_id])
        .await
        .fails_with(1);
    let other = target.path().join("copy.txt");
    alice
        .run(&["download", "files", notes_id, "-o", other.to_str().unwrap()])
        .await
        .ok();
    assert_eq!(std::fs::read(&other).unwrap(), saved);
    let out = alice
        .run(&["download", room_id, notes_id, "-o", "-"])
        .await
        .ok();
    assert_eq!(out.stdout.as_bytes(), saved);

    // An unknown id, and a user not in the (private) room: not found (4).
    alice
        .run(&["download", "files", &"0".repeat(32), "-o", "-"])
        .await
        .fails_with(4);
    bob.run(&["download", room_id, notes_id, "-o", "-"])
        .await
        .fails_with(4);
    // More than ten files: refused before anything is uploaded.
    let mut args = vec!["send", "files"];
    let path = notes.to_str().unwrap();
    for _ in 0..11 {
        args.extend(["--attach", path]);
    }
    alice.run(&args).await.fails_with(2);
}
