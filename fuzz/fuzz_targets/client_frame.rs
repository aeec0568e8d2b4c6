//! `protocol::ws::decode_client_frame` on arbitrary bytes.
//!
//! Checks, besides "never panics":
//! - a frame that decodes re-encodes (`ClientFrame::to_json`) to JSON that decodes to the same
//!   frame, whose `type` is one of `CLIENT_FRAME_TYPES`;
//! - a refusal is `bad_request` or `unknown_type` (the latter only for an object whose `type` is
//!   a string we do not know), carries the `id` whenever the input is an object with a valid
//!   `id`, and its `error` frame serialises and reads back unchanged;
//! - the same bytes read as a `ServerFrame` (what clients decode) round-trip too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use switchboard_protocol::ws::{decode_client_frame, FrameId, ServerFrame, CLIENT_FRAME_TYPES};
use switchboard_protocol::ErrorCode;

fuzz_target!(|data: &[u8]| {
    let object = serde_json::from_slice::<Map<String, Value>>(data).ok();
    match decode_client_frame(data) {
        Ok(frame) => {
            let json = frame.to_json();
            let again = decode_client_frame(json.as_bytes())
                .unwrap_or_else(|e| panic!("{json} does not decode again: {e}"));
            assert_eq!(again, frame, "round trip through {json}");
            let value: Value = serde_json::from_str(&json).expect("to_json is JSON");
            let ty = value["type"].as_str().expect("a type");
            assert!(CLIENT_FRAME_TYPES.contains(&ty), "type {ty}");
            let id = value
                .get("id")
                .map(|v| serde_json::from_value::<FrameId>(v.clone()).expect("id"));
            assert_eq!(id.as_ref(), frame.id());
            let original_id = object
                .as_ref()
                .expect("a frame is an object")
                .get("id")
                .and_then(|v| serde_json::from_value::<FrameId>(v.clone()).ok());
            assert_eq!(frame.id(), original_id.as_ref(), "id kept");
        }
        Err(e) => {
            assert!(
                matches!(e.code, ErrorCode::BadRequest | ErrorCode::UnknownType),
                "code {:?}",
                e.code
            );
            if e.code == ErrorCode::UnknownType {
                let ty = object.as_ref().and_then(|o| o.get("type")?.as_str());
                assert!(
                    ty.is_some_and(|t| !CLIENT_FRAME_TYPES.contains(&t)),
                    "unknown_type for {ty:?}"
                );
            }
            if let Some(id) = object
                .as_ref()
                .and_then(|o| o.get("id"))
                .and_then(|v| serde_json::from_value::<FrameId>(v.clone()).ok())
            {
                assert_eq!(e.id, Some(id), "id recovered");
            }
            let reply = e.to_frame();
            let back: ServerFrame = serde_json::from_slice(&reply.to_bytes()).expect("reads back");
            assert_eq!(back, reply);
        }
    }
    if let Ok(server) = serde_json::from_slice::<ServerFrame>(data) {
        let bytes = server.to_bytes();
        let back: ServerFrame = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{} does not decode again: {e}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(back, server);
    }
});
