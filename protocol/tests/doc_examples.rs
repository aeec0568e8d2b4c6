//! Keeps `docs/PROTOCOL.md` and the fixtures in `tests/fixtures/` in step.
//!
//! # Marker convention
//! In `docs/PROTOCOL.md`, the line directly above the opening fence of every ```` ```json ````
//! code block is exactly one HTML comment:
//! - `<!-- fixture: DIR/NAME.json -->`: the block is the fixture `tests/fixtures/DIR/NAME.json`;
//!   both are parsed and must be equal as `serde_json::Value`.
//! - `<!-- example: WHAT -->`: a JSON example that is not a wire type of this crate (JWT header
//!   and claims, JWKS); it only has to be valid JSON.
//!
//! A `json` block without a marker fails the test, so no example can escape the check. Every
//! fixture file must be named by at least one `fixture:` marker. `client/` and `server/`
//! fixtures are round-tripped through their frame types by `tests/fixtures.rs`; `rest/` fixtures
//! are round-tripped through their REST types here (`rest_fixtures_round_trip`).
//!
//! The tables of error codes, close codes and limits are checked against the crate's constants,
//! and every `](#anchor)` link must name a heading of the document.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use switchboard_protocol::ws::{decode_client_frame, FrameId, Message};
use switchboard_protocol::{close, error::ErrorBody, limits, rest, ErrorCode};

const FIXTURE_MARKER: &str = "<!-- fixture:";
const EXAMPLE_MARKER: &str = "<!-- example:";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures_root() -> PathBuf {
    manifest_dir().join("tests/fixtures")
}

fn doc() -> String {
    let path = manifest_dir().join("../docs/PROTOCOL.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A ```` ```json ```` block of the document.
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// `Some("client/sub.json")` for a fixture marker, `None` for an example marker.
    fixture: Option<String>,
    text: String,
}

/// Every ```` ```json ```` block with its marker; panics on a block without one.
fn json_blocks(doc: &str) -> Vec<Block> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```json" {
            i += 1;
            continue;
        }
        let line = i + 1;
        let marker = if i > 0 { lines[i - 1].trim() } else { "" };
        let fixture = if let Some(rest) = marker.strip_prefix(FIXTURE_MARKER) {
            let name = rest
                .strip_suffix("-->")
                .unwrap_or_else(|| panic!("PROTOCOL.md:{}: unterminated marker", line - 1));
            Some(name.trim().to_owned())
        } else if marker.starts_with(EXAMPLE_MARKER) && marker.ends_with("-->") {
            None
        } else {
            panic!(
                "PROTOCOL.md:{line}: ```json block without a `{FIXTURE_MARKER} DIR/NAME.json -->` \
                 or `{EXAMPLE_MARKER} ... -->` line directly above it"
            );
        };
        let mut text = String::new();
        i += 1;
        while i < lines.len() && lines[i].trim_end() != "```" {
            text.push_str(lines[i]);
            text.push('\n');
            i += 1;
        }
        assert!(i < lines.len(), "PROTOCOL.md:{line}: unclosed code block");
        blocks.push(Block {
            line,
            fixture,
            text,
        });
        i += 1;
    }
    blocks
}

/// Every fixture file, as `DIR/NAME.json` relative to `tests/fixtures/`.
fn fixture_files() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in std::fs::read_dir(fixtures_root()).expect("fixtures dir") {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "json") {
                let rel = file.strip_prefix(fixtures_root()).unwrap();
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    assert!(!out.is_empty(), "no fixtures found");
    out
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn doc_examples_equal_their_fixtures() {
    let blocks = json_blocks(&doc());
    assert!(!blocks.is_empty(), "no json blocks in PROTOCOL.md");
    for block in &blocks {
        let value: Value = serde_json::from_str(&block.text)
            .unwrap_or_else(|e| panic!("PROTOCOL.md:{}: invalid JSON: {e}", block.line));
        if let Some(name) = &block.fixture {
            let path = fixtures_root().join(name);
            assert!(
                path.is_file(),
                "PROTOCOL.md:{}: no fixture {}",
                block.line,
                path.display()
            );
            assert_eq!(
                value,
                read_json(&path),
                "PROTOCOL.md:{}: example differs from fixture {name}",
                block.line
            );
        }
    }
}

#[test]
fn every_fixture_is_in_the_doc() {
    let referenced: BTreeSet<String> = json_blocks(&doc())
        .into_iter()
        .filter_map(|b| b.fixture)
        .collect();
    let missing: Vec<String> = fixture_files()
        .into_iter()
        .filter(|f| !referenced.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "fixtures not shown in PROTOCOL.md: {missing:?}"
    );
}

/// Parses `value` as `T` and checks that it re-serialises to the same JSON.
fn round_trip<T: Serialize + DeserializeOwned>(name: &str, value: &Value) {
    let typed: T =
        serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("rest/{name}: {e}"));
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(&again, value, "rest/{name} does not round-trip");
}

#[test]
fn rest_fixtures_round_trip() {
    let dir = fixtures_root().join("rest");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("rest fixture dir") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let value = read_json(&path);
        // The part of the name before the first dot says which type the body is.
        match name.split('.').next().unwrap() {
            "register" if name.contains(".request") => {
                round_trip::<rest::RegisterRequest>(&name, &value)
            }
            "register" => round_trip::<rest::RegisterResponse>(&name, &value),
            "login" => round_trip::<rest::LoginRequest>(&name, &value),
            "refresh" => round_trip::<rest::RefreshRequest>(&name, &value),
            "token_pair" => round_trip::<rest::TokenPair>(&name, &value),
            "me" => round_trip::<rest::MeResponse>(&name, &value),
            "create_room" => round_trip::<rest::CreateRoomRequest>(&name, &value),
            "room" => round_trip::<rest::Room>(&name, &value),
            "room_list" => round_trip::<rest::RoomList>(&name, &value),
            "add_member" => round_trip::<rest::AddMemberRequest>(&name, &value),
            "message_page" => round_trip::<rest::MessagePage>(&name, &value),
            "message" => round_trip::<Message>(&name, &value),
            "post_message" if name.contains(".request") => {
                round_trip::<rest::PostMessageRequest>(&name, &value)
            }
            "post_message" => round_trip::<rest::PostMessageResponse>(&name, &value),
            "edit_message" => round_trip::<rest::EditMessageRequest>(&name, &value),
            "read" => round_trip::<rest::ReadRequest>(&name, &value),
            "error" => round_trip::<ErrorBody>(&name, &value),
            "presence" => round_trip::<rest::PresenceList>(&name, &value),
            "set_email" => round_trip::<rest::SetEmailRequest>(&name, &value),
            "user" => round_trip::<rest::UserResponse>(&name, &value),
            "change_password" => round_trip::<rest::ChangePasswordRequest>(&name, &value),
            "password_reset" => round_trip::<rest::PasswordResetRequest>(&name, &value),
            "password_reset_confirm" => round_trip::<rest::PasswordResetConfirm>(&name, &value),
            "admin_user_list" => round_trip::<rest::AdminUserList>(&name, &value),
            "admin_user" => round_trip::<rest::AdminUserResponse>(&name, &value),
            "set_role" => round_trip::<rest::SetRoleRequest>(&name, &value),
            "session_list" => round_trip::<rest::SessionList>(&name, &value),
            "admin_job_list" => round_trip::<rest::AdminJobList>(&name, &value),
            "admin_job" => round_trip::<rest::AdminJobResponse>(&name, &value),
            other => panic!("rest/{name}: no type for prefix {other:?}; add it to this test"),
        }
        seen += 1;
    }
    assert!(seen > 0, "no rest fixtures");
}

/// Claims the document makes about optional request fields and decoding.
#[test]
fn documented_defaults_and_decoding() {
    // `public` is optional on room creation and defaults to false.
    let req: rest::CreateRoomRequest = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
    assert!(!req.public);
    // `deleted` absent means false.
    let m: Message =
        serde_json::from_str(r#"{"room":"r","seq":1,"from":"a","body":"b","ts":1}"#).unwrap();
    assert!(!m.deleted);
    // The server ignores unknown fields in client frames (additive versioning).
    let f = decode_client_frame(br#"{"type":"ping","id":1,"future":true}"#).unwrap();
    assert_eq!(f.id(), Some(&FrameId::Num(1)));
    // An id that is neither a non-negative integer nor a string makes the frame malformed.
    for bad in [
        r#"{"type":"ping","id":-1}"#,
        r#"{"type":"ping","id":1.5}"#,
        r#"{"type":"ping","id":{}}"#,
    ] {
        let err = decode_client_frame(bad.as_bytes()).expect_err(bad);
        assert_eq!(err.code, ErrorCode::BadRequest, "{bad}");
        assert_eq!(err.id, None, "{bad}");
    }
}

/// The cells of every Markdown table row in the document, trimmed, without the outer pipes.
fn table_rows(doc: &str) -> Vec<Vec<String>> {
    doc.lines()
        .filter(|l| l.starts_with('|') && l.ends_with('|'))
        .map(|l| {
            l[1..l.len() - 1]
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The first table row whose first cell is `first`.
fn row<'a>(rows: &'a [Vec<String>], first: &str) -> Option<&'a Vec<String>> {
    rows.iter().find(|r| r.first().is_some_and(|c| c == first))
}

/// Every error code; the match makes this fail to compile when a variant is added.
fn all_error_codes() -> Vec<ErrorCode> {
    use ErrorCode::*;
    let all = vec![
        BadRequest,
        UnknownType,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        TooLarge,
        UsernameTaken,
        InvalidCredentials,
        UserNotFound,
        Conflict,
        HistoryExpired,
        CatchupTooLarge,
        TooManySubscriptions,
        ForbiddenTarget,
        EmailTaken,
        UnsupportedMediaType,
        RangeNotSatisfiable,
        Unavailable,
        Internal,
    ];
    for code in &all {
        match code {
            BadRequest | UnknownType | Unauthorized | Forbidden | NotFound | RateLimited
            | TooLarge | UsernameTaken | InvalidCredentials | UserNotFound | Conflict
            | HistoryExpired | CatchupTooLarge | TooManySubscriptions | ForbiddenTarget
            | EmailTaken | UnsupportedMediaType | RangeNotSatisfiable | Unavailable | Internal => {}
        }
    }
    all
}

#[test]
fn error_code_table_is_complete() {
    let doc = doc();
    let rows = table_rows(&doc);
    for code in all_error_codes() {
        let r = row(&rows, &format!("`{code}`"))
            .unwrap_or_else(|| panic!("error code `{code}` missing from the table"));
        assert_eq!(
            r[1],
            code.http_status().to_string(),
            "HTTP status of `{code}`"
        );
    }
}

#[test]
fn close_code_table_is_complete() {
    let doc = doc();
    let rows = table_rows(&doc);
    for code in [
        close::NORMAL,
        close::GOING_AWAY,
        close::PROTOCOL_ERROR,
        close::INVALID_UTF8,
        close::POLICY,
        close::TOO_BIG,
        close::INTERNAL,
        close::RESTARTING,
        close::TRY_AGAIN_LATER,
        close::SLOW_CONSUMER,
        close::DISCONNECTED,
    ] {
        assert!(
            row(&rows, &code.to_string()).is_some(),
            "close code {code} missing from the table"
        );
    }
}

#[test]
fn limits_table_matches_the_constants() {
    let doc = doc();
    let rows = table_rows(&doc);
    let expected: [(&str, u64); 15] = [
        ("MAX_BODY_BYTES", limits::MAX_BODY_BYTES as u64),
        (
            "DEFAULT_MAX_FRAME_BYTES",
            limits::DEFAULT_MAX_FRAME_BYTES as u64,
        ),
        (
            "DEFAULT_ECHO_MAX_MESSAGE_BYTES",
            limits::DEFAULT_ECHO_MAX_MESSAGE_BYTES as u64,
        ),
        ("MAX_HISTORY_LIMIT", limits::MAX_HISTORY_LIMIT.into()),
        (
            "DEFAULT_HISTORY_LIMIT",
            limits::DEFAULT_HISTORY_LIMIT.into(),
        ),
        ("HELLO_TIMEOUT_MS", limits::HELLO_TIMEOUT_MS),
        ("DEFAULT_RATE_PER_SEC", limits::DEFAULT_RATE_PER_SEC.into()),
        ("DEFAULT_RATE_BURST", limits::DEFAULT_RATE_BURST.into()),
        (
            "MAX_CLIENT_MSG_ID_BYTES",
            limits::MAX_CLIENT_MSG_ID_BYTES as u64,
        ),
        ("MAX_ROOM_NAME_CHARS", limits::MAX_ROOM_NAME_CHARS as u64),
        ("MIN_PASSWORD_CHARS", limits::MIN_PASSWORD_CHARS as u64),
        ("MAX_PASSWORD_BYTES", limits::MAX_PASSWORD_BYTES as u64),
        ("MAX_ACCOUNT_PAGE", limits::MAX_ACCOUNT_PAGE.into()),
        ("DEFAULT_ACCOUNT_PAGE", limits::DEFAULT_ACCOUNT_PAGE.into()),
        ("MAX_USER_AGENT_BYTES", limits::MAX_USER_AGENT_BYTES as u64),
    ];
    for (name, value) in expected {
        let r = row(&rows, &format!("`{name}`"))
            .unwrap_or_else(|| panic!("limit `{name}` missing from the table"));
        assert_eq!(r[1], value.to_string(), "value of `{name}`");
    }
}
