//! Receivers that hang, stream forever or trickle: an attempt stays within its time and bytes.

use super::*;

#[tokio::test]
async fn a_receiver_that_never_answers_is_transient_within_the_timeout() {
    let (held_tx, mut held) = mpsc::unbounded_channel();
    let addr = raw_receiver(move |socket| {
        let held_tx = held_tx.clone();
        async move {
            // Keep the connection open, say nothing.
            let _ = held_tx.send(socket);
        }
    })
    .await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(300));
    let why = transient(run_one(&h, &registry).await);
    assert!(why.contains("no answer within 300 ms"), "{why}");
    assert!(held.try_recv().is_ok(), "the receiver got the request");
}

/// A receiver that answers `code` with a chunked body of `x` that never ends, written as fast
/// as the client reads (`pause` zero) or a byte per `pause`; reports how many body bytes it
/// wrote once a write fails (the client dropped the connection).
async fn endless(code: u16, pause: Duration) -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = raw_receiver(move |mut socket| {
        let tx = tx.clone();
        async move {
            let head = format!("HTTP/1.1 {code} X\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n");
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk: &[u8] = if pause.is_zero() {
                b"2000\r\n"
            } else {
                b"1\r\n"
            };
            let len = if pause.is_zero() { 0x2000 } else { 1 };
            let body = vec![b'x'; len];
            let mut written = 0;
            loop {
                let frame = [chunk, &body, b"\r\n"].concat();
                if socket.write_all(&frame).await.is_err() {
                    let _ = tx.send(written);
                    return;
                }
                written += len;
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }
    })
    .await;
    (addr, rx)
}

#[tokio::test]
async fn an_endless_body_is_read_only_up_to_the_cap() {
    let (addr, mut closed) = endless(200, Duration::ZERO).await;
    let registry = registry_with(format!("http://{addr}/"));
    let cap = 16 * 1024;
    let (h, _) = handler(
        &registry,
        DeliveryConfig {
            max_response_bytes: cap,
            ..cfg(10_000)
        },
    );
    // The status decided: delivered, without waiting for the body's (absent) end.
    run_one(&h, &registry).await.unwrap();
    // The handler dropped the connection: the receiver's writes fail.
    let written = tokio::time::timeout(Duration::from_secs(20), closed.recv())
        .await
        .expect("the connection was closed")
        .unwrap();
    assert!(written >= cap, "{written}");

    // The reader itself keeps at most the cap.
    let client = reqwest::Client::new();
    let mut response = client.get(format!("http://{addr}/")).send().await.unwrap();
    let read =
        body::read_capped(&mut response, cap, Instant::now() + Duration::from_secs(10)).await;
    assert_eq!(read.bytes.len(), cap);
    assert!(read.truncated && !read.timed_out);
}

#[tokio::test]
async fn an_endless_error_body_is_transient_and_quoted_within_bounds() {
    let (addr, _closed) = endless(503, Duration::ZERO).await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(10_000));
    let why = transient(run_one(&h, &registry).await);
    assert!(
        why.starts_with("receiver answered 503 Service Unavailable: xxx"),
        "{why}"
    );
    assert!(why.len() <= body::QUOTED_BODY_BYTES + 100, "{}", why.len());
}

#[tokio::test]
async fn a_body_that_trickles_forever_ends_at_the_timeout() {
    let (addr, mut closed) = endless(500, Duration::from_millis(20)).await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(300));
    let why = transient(run_one(&h, &registry).await);
    assert!(why.starts_with("receiver answered 500"), "{why}");
    tokio::time::timeout(Duration::from_secs(20), closed.recv())
        .await
        .expect("the connection was closed");
}
