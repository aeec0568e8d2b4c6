//! HAProxy passes the real client address to the hubs with the PROXY protocol (v2, from the
//! template's `source` address, the only one the hubs trust): a per-IP cap counts each client
//! behind the load balancer on its own, instead of everyone as HAProxy's address.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{within, Cluster, ClusterOptions};

const UPGRADE: &str = "GET /v1/ws HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A WebSocket upgrade through HAProxy from the loopback address `source`: the response's
/// status, and the socket (held open, so the connection keeps counting).
async fn upgrade_from(cluster: &Cluster, source: [u8; 4]) -> (u16, TcpStream) {
    let lb: std::net::SocketAddr = cluster
        .lb_http()
        .trim_start_matches("http://")
        .parse()
        .expect("HAProxy's address");
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind((source, 0).into())
        .expect("bind a loopback source address");
    let mut stream = within("connect to HAProxy", socket.connect(lb))
        .await
        .expect("connect");
    stream.write_all(UPGRADE.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    within("the upgrade's answer", async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    })
    .await;
    let status = std::str::from_utf8(&head)
        .ok()
        .and_then(|h| h.strip_prefix("HTTP/1.1 "))
        .and_then(|h| h.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(&head)));
    (status, stream)
}

#[tokio::test]
async fn a_hub_behind_haproxy_counts_each_client_address_on_its_own() {
    let cluster = Cluster::start_with(ClusterOptions {
        hubs: 1,
        hub_flags: vec!["--max-connections-per-ip".into(), "2".into()],
        ..ClusterOptions::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let (status, stream) = upgrade_from(&cluster, [127, 0, 0, 1]).await;
        assert_eq!(status, 101);
        held.push(stream);
    }
    let (status, _) = upgrade_from(&cluster, [127, 0, 0, 1]).await;
    assert_eq!(
        status, 429,
        "the third connection of 127.0.0.1 is over its cap"
    );
    // Another client behind the same HAProxy is not: the hub sees its own address.
    let (status, _other) = upgrade_from(&cluster, [127, 0, 0, 3]).await;
    assert_eq!(status, 101, "127.0.0.3 has a cap of its own");
}
