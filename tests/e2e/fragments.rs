//! Unfinished fragmented messages (issue 10, item 13): a message may stay unfinished for at most
//! `--fragment-timeout-ms` (then close 1008), and the node's unfinished messages together hold at
//! most `--max-reassembly-bytes` (a fragment over it closes its connection with 1013).

use futures_util::{SinkExt, StreamExt};
use switchboard_client::protocol::close;
use switchboard_client::tungstenite::Message as WsMessage;

use crate::support::{closed, continuation, raw_greeted, text_frame, within, TestServer};

/// A `ping` frame padded to `len` bytes with its id, split after `first` bytes.
fn padded_ping(len: usize, first: usize) -> (String, String) {
    let head = r#"{"type":"ping","id":""#;
    let tail = r#""}"#;
    let text = format!("{head}{}{tail}", "p".repeat(len - head.len() - tail.len()));
    let (a, b) = text.split_at(first);
    (a.to_owned(), b.to_owned())
}

#[tokio::test]
async fn an_unfinished_fragmented_message_is_closed_with_1008_after_the_timeout() {
    let server = TestServer::start_with(&["--fragment-timeout-ms", "300"]).await;

    // Finished in time: answered.
    let mut ws = server.connect_anon().await;
    let (a, b) = padded_ping(100, 40);
    ws.send_raw(text_frame(a, false)).await.expect("first");
    ws.send_raw(continuation(b, true)).await.expect("last");
    assert!(matches!(
        crate::support::next_event(&mut ws).await,
        switchboard_client::protocol::ws::ServerFrame::Pong { .. }
    ));

    // Never finished (the socket stays otherwise alive: it answers pings): closed.
    let (a, _) = padded_ping(100, 40);
    ws.send_raw(text_frame(a, false)).await.expect("first");
    let (_, code) = closed(&mut ws).await;
    assert_eq!(code, Some(close::POLICY));
}

#[tokio::test]
async fn unfinished_messages_over_the_node_bound_close_with_1013_and_finished_ones_give_back() {
    let server = TestServer::start_with(&["--max-reassembly-bytes", "1000"]).await;
    let (a_first, a_rest) = padded_ping(700, 600);

    // A holds 600 bytes unfinished; its ping/pong proves the server has read the fragment.
    let (mut a, _) = raw_greeted(&server).await;
    a.send(text_frame(a_first.clone(), false)).await.unwrap();
    a.send(WsMessage::Ping("sync".into())).await.unwrap();
    within("A's pong", async {
        while let Some(m) = a.next().await {
            if matches!(m.expect("frame"), WsMessage::Pong(p) if &p[..] == b"sync") {
                return;
            }
        }
        panic!("A closed");
    })
    .await;

    // B's 600 would make 1,200 > 1,000: B is closed with 1013.
    let mut b = server.connect_anon().await;
    b.send_raw(text_frame(a_first.clone(), false))
        .await
        .unwrap();
    let (_, code) = closed(&mut b).await;
    assert_eq!(code, Some(close::TRY_AGAIN_LATER));

    // A finishes: answered, and its bytes are given back, so C fits.
    a.send(continuation(a_rest.clone(), true)).await.unwrap();
    within("A's reply", async {
        while let Some(m) = a.next().await {
            if let WsMessage::Text(t) = m.expect("frame") {
                assert!(t.contains(r#""type":"pong""#), "{t}");
                return;
            }
        }
        panic!("A closed");
    })
    .await;
    let mut c = server.connect_anon().await;
    c.send_raw(text_frame(a_first, false)).await.unwrap();
    c.send_raw(continuation(a_rest, true)).await.unwrap();
    assert!(matches!(
        crate::support::next_event(&mut c).await,
        switchboard_client::protocol::ws::ServerFrame::Pong { .. }
    ));
}
