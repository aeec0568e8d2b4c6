//! The wire format's hot paths: the hub decodes every client frame, serialises every event once,
//! and every client decodes every event it receives.
//!
//! Run with `cargo bench -p switchboard-protocol --bench frames` (add `-- --quick` for a short
//! run). Throughput is in bytes of JSON text.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard_protocol::ws::{decode_client_frame, Message, ServerFrame};

/// A chat line of about 100 bytes, the message size of the issue's fanout target.
const BODY: &str = "Meeting moved to 3pm in the small room; bring the Q3 numbers and the draft of the launch plan, please";

/// An access token of the size the hub issues (EdDSA JWT with the auth crate's claims, about
/// 400 bytes): decoding only copies it as a string, so its content does not matter.
fn token() -> String {
    let header = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6IlJ2b2R4bmNCUHJBN2k4RW1ZV0dRSGJjNkZ6N3RGVjdXVnpGRFVhbWtDN0EifQ";
    let claims = "eyJpc3MiOiJzd2l0Y2hib2FyZCIsImF1ZCI6InN3aXRjaGJvYXJkIiwic3ViIjoiMDE5YTM1ZTctN2QxYi03YzZmLTk0NjMtMGUzZjQ4NWM2YjkxIiwic2lkIjoiMDE5YTM1ZTctN2QxYy03MjQxLWI4YjItNTM5YWZmZDk5NjE0IiwianRpIjoiMDE5YTM1ZTctN2QxYy03MjQxLWI4YjItNTNhMDk4NmI2ZjJhIiwiZXhwIjoxNzYzNzgwOTAwLCJpYXQiOjE3NjM3ODAwMDAsIm5hbWUiOiJhbGljZSIsInJvbGUiOiJ1c2VyIn0";
    let signature =
        "Hw0QqyhK3m1t8c9G7KQbV0yJdQ2Yb3TQp6yq8HkOe3lS2p0xWk9ZrWq1M3a5c7e9g1i3k5m7o9q1s3u5w7y9AA";
    format!("{header}.{claims}.{signature}")
}

/// The client frames a session sends most: `hello` once, `sub` per room, `send` per message.
fn client_frames() -> Vec<(&'static str, String)> {
    vec![
        (
            "send",
            format!(
                r#"{{"type":"send","id":3,"room":"01JD8X0ROOM","body":"{BODY}","client_msg_id":"c-7f3a"}}"#
            ),
        ),
        (
            "sub",
            r#"{"type":"sub","id":1,"room":"01JD8X0ROOM","since":41}"#.to_owned(),
        ),
        (
            "hello",
            format!(r#"{{"type":"hello","token":"{}"}}"#, token()),
        ),
    ]
}

/// A live `message` event as the hub fans it out.
fn message_frame() -> ServerFrame {
    ServerFrame::Message(Message {
        room: "01JD8X0ROOM".to_owned(),
        seq: 43,
        from: "alice".to_owned(),
        body: BODY.to_owned(),
        ts: 1_763_780_000_000,
        client_msg_id: Some("c-7f3a".to_owned()),
        edited_ts: None,
        deleted: false,
        bot: false,
        attachments: Vec::new(),
    })
}

fn decode_client(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_client_frame");
    for (name, text) in client_frames() {
        decode_client_frame(text.as_bytes()).expect("the bench's frames are valid");
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| decode_client_frame(black_box(text.as_bytes())))
        });
    }
    group.finish();
}

fn encode_message(c: &mut Criterion) {
    let frame = message_frame();
    let mut group = c.benchmark_group("encode_server_frame");
    group.throughput(Throughput::Bytes(frame.to_bytes().len() as u64));
    group.bench_function("message", |b| b.iter(|| black_box(&frame).to_bytes()));
    group.finish();
}

fn decode_message(c: &mut Criterion) {
    // What `switchboard_client::Connection::next_frame` does with each text message.
    let text = String::from_utf8(message_frame().to_bytes().to_vec()).expect("JSON is UTF-8");
    let mut group = c.benchmark_group("decode_server_frame");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("message", |b| {
        b.iter(|| serde_json::from_str::<ServerFrame>(black_box(&text)).expect("a server frame"))
    });
    group.finish();
}

criterion_group!(benches, decode_client, encode_message, decode_message);
criterion_main!(benches);
