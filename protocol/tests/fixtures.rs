//! Every example frame in `docs/PROTOCOL.md` is a fixture here: each must parse into the typed
//! frame and re-serialise to the same JSON value (so the document and the code cannot drift).

use std::path::Path;

use switchboard_protocol::ws::{decode_client_frame, ClientFrame, ServerFrame};
use switchboard_protocol::ErrorCode;

fn fixtures(dir: &str) -> Vec<(String, serde_json::Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&root).expect("fixture dir") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            value,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no fixtures in {}", root.display());
    out
}

#[test]
fn client_frames_round_trip() {
    for (name, value) in fixtures("client") {
        let text = serde_json::to_vec(&value).unwrap();
        let frame = decode_client_frame(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = serde_json::to_value(&frame).unwrap();
        assert_eq!(again, value, "{name} does not round-trip");
    }
}

#[test]
fn server_frames_round_trip() {
    for (name, value) in fixtures("server") {
        let frame: ServerFrame =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again: serde_json::Value = serde_json::from_slice(&frame.to_bytes()).unwrap();
        assert_eq!(again, value, "{name} does not round-trip");
    }
}

#[test]
fn every_client_type_has_a_fixture() {
    let names: Vec<String> = fixtures("client").into_iter().map(|(n, _)| n).collect();
    for t in switchboard_protocol::ws::CLIENT_FRAME_TYPES {
        assert!(
            names.iter().any(|n| n.starts_with(&format!("{t}."))),
            "no fixture for {t}"
        );
    }
}

fn check_err(input: &str, code: ErrorCode, id: Option<u64>) {
    let err = decode_client_frame(input.as_bytes()).expect_err(input);
    assert_eq!(err.code, code, "{input}: {err}");
    assert_eq!(err.id, id.map(Into::into), "{input}");
}

#[test]
fn decode_errors_are_classified() {
    check_err("{not json", ErrorCode::BadRequest, None);
    check_err(
        r#"{"type":"teleport","id":7}"#,
        ErrorCode::UnknownType,
        Some(7),
    );
    check_err(r#"{"id":3}"#, ErrorCode::BadRequest, Some(3));
    check_err(r#"{"type":"sub","id":9}"#, ErrorCode::BadRequest, Some(9));
    check_err(
        r#"{"type":"send","id":1,"room":"r","body":5}"#,
        ErrorCode::BadRequest,
        Some(1),
    );
    check_err(r#"{"type":17}"#, ErrorCode::BadRequest, None);
    check_err(r#"[1,2]"#, ErrorCode::BadRequest, None);
}

#[test]
fn string_ids_are_echoed() {
    let f = decode_client_frame(br#"{"type":"ping","id":"abc"}"#).unwrap();
    assert_eq!(
        f,
        ClientFrame::Ping {
            id: Some(switchboard_protocol::ws::FrameId::Str("abc".into()))
        }
    );
}
