//! What the hub trusts about where a connection comes from (issue 10, items 10, 12 and 14): the
//! browser Origin of an upgrade, the slots of anonymous connections and of one client IP, the
//! PROXY protocol header of a trusted load balancer, and oversized REST bodies.

use switchboard_client::protocol::ErrorCode;
use switchboard_client::tungstenite::client::IntoClientRequest;
use switchboard_client::tungstenite::http::header;
use switchboard_client::{ClientError, Connection};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::slowloris::{read_to_close, status_of, tcp};
use crate::support::{within, TestServer};

fn refusal(result: Result<Connection, ClientError>) -> (u16, ErrorCode) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        Err(other) => panic!("expected a JSON refusal, got {other:?}"),
        Ok(_) => panic!("expected a refusal, got an upgrade"),
    }
}

// --- Origin (item 10) --------------------------------------------------------------------------

#[tokio::test]
async fn a_foreign_scheme_and_a_rebinding_host_are_refused() {
    let server = TestServer::start().await;
    let url = server.ws_url();
    let port = server.addr().port();

    let evil_scheme = format!("evil://127.0.0.1:{port}");
    let result = Connection::connect_raw(&url, &[("Origin", &evil_scheme)]).await;
    assert_eq!(
        refusal(result),
        (403, ErrorCode::Forbidden),
        "{evil_scheme}"
    );

    // A DNS-rebinding page: its host name now resolves to the hub, and it controls both headers.
    let rebind = format!("rebind.attacker.example:{port}");
    let origin = format!("http://{rebind}");
    let mut request = url.as_str().into_client_request().expect("request");
    for (name, value) in [
        (header::HOST, rebind.as_str()),
        (header::ORIGIN, origin.as_str()),
        (header::SEC_WEBSOCKET_PROTOCOL, "switchboard.v1"),
    ] {
        request
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    let result = Connection::connect_request(request).await;
    assert_eq!(refusal(result), (403, ErrorCode::Forbidden), "{origin}");

    // The page's own origin still works, by either loopback name.
    for own in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let mut ws = Connection::connect_raw(&url, &[("Origin", &own)])
            .await
            .unwrap_or_else(|e| panic!("{own} refused: {e}"));
        within("welcome", ws.hello(None)).await.expect("welcome");
    }
}

#[tokio::test]
async fn public_urls_name_the_origins_a_browser_may_use() {
    let server = TestServer::start_with(&["--public-url", "https://chat.example.com"]).await;
    let url = server.ws_url();
    let mut ws = Connection::connect_raw(&url, &[("Origin", "https://chat.example.com")])
        .await
        .expect("the public origin");
    within("welcome", ws.hello(None)).await.expect("welcome");
    let listen = format!("http://{}", server.addr());
    for origin in [
        "https://chat.example.com:8443",
        "evil://chat.example.com",
        "https://rebind.attacker.example",
        listen.as_str(),
    ] {
        let result = Connection::connect_raw(&url, &[("Origin", origin)]).await;
        assert_eq!(refusal(result), (403, ErrorCode::Forbidden), "{origin}");
    }
}

// --- Slots (item 12) ---------------------------------------------------------------------------

#[tokio::test]
async fn anonymous_connections_have_their_own_cap() {
    let server = TestServer::start_with(&["--max-anonymous-connections", "2"]).await;
    let alice = server.user("alice").await;
    let _a = server.connect_anon().await;
    let mut pending = Connection::connect_raw(&server.ws_url(), &[])
        .await
        .expect("the second anonymous upgrade");
    let third = Connection::connect(&server.ws_url(), None).await;
    assert_eq!(
        refusal(third.map(|(c, _)| c)),
        (503, ErrorCode::Unavailable)
    );

    // A token on the upgrade is not anonymous.
    let bearer = format!("Bearer {}", alice.token());
    let mut with_header = Connection::connect_raw(&server.ws_url(), &[("Authorization", &bearer)])
        .await
        .expect("an authenticated upgrade");
    within("welcome", with_header.hello(None))
        .await
        .expect("welcome");

    // A `hello` with a token gives the anonymous slot back.
    within("welcome", pending.hello(Some(alice.token())))
        .await
        .expect("welcome");
    let _again = server.connect_anon().await;
}

#[tokio::test]
async fn connections_per_client_ip_are_capped() {
    let server = TestServer::start_with(&["--max-connections-per-ip", "2"]).await;
    let first = server.connect_anon().await;
    let _second = server.connect_anon().await;
    let third = Connection::connect(&server.ws_url(), None).await;
    assert_eq!(
        refusal(third.map(|(c, _)| c)),
        (429, ErrorCode::RateLimited)
    );
    first.close().await.expect("close");
    // The slot comes back when the connection's task ends, shortly after the close handshake.
    let mut admitted = false;
    for _ in 0..50 {
        if Connection::connect(&server.ws_url(), None).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(admitted, "a freed slot is usable again");
}

// --- PROXY protocol (item 12) ------------------------------------------------------------------

const UPGRADE: &str = "GET /v1/ws HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// Sends `prefix` then a WebSocket upgrade; the response's status (the socket stays open).
async fn upgrade_after(server: &TestServer, prefix: &[u8]) -> (Option<u16>, TcpStream) {
    let mut stream = tcp(server.addr()).await;
    stream.write_all(prefix).await.expect("write");
    stream.write_all(UPGRADE.as_bytes()).await.expect("write");
    let head = within("the upgrade's answer", read_head(&mut stream)).await;
    (status_of(&head), stream)
}

/// Reads up to the end of a response head (or the close).
async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    got
}

fn proxy_v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 8080\r\n").into_bytes()
}

#[tokio::test]
async fn a_trusted_proxy_header_sets_the_client_ip() {
    let server = TestServer::start_with(&[
        "--proxy-protocol-from",
        "127.0.0.1",
        "--max-connections-per-ip",
        "1",
    ])
    .await;
    let (status, _held) = upgrade_after(&server, &proxy_v1("203.0.113.5")).await;
    assert_eq!(status, Some(101));
    // The same client again is over its cap, although the TCP peer is the same as before...
    let (status, _) = upgrade_after(&server, &proxy_v1("203.0.113.5")).await;
    assert_eq!(status, Some(429));
    // ...while another client behind the same balancer gets in.
    let (status, _also_held) = upgrade_after(&server, &proxy_v1("203.0.113.6")).await;
    assert_eq!(status, Some(101));
    // A trusted peer must send the header: a bare request is closed unanswered.
    let mut bare = tcp(server.addr()).await;
    bare.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_to_close("the bare request", &mut bare).await, b"");
}

#[tokio::test]
async fn a_proxy_header_from_an_untrusted_address_is_not_parsed() {
    let server = TestServer::start_with(&["--max-connections-per-ip", "1"]).await;
    let mut stream = tcp(server.addr()).await;
    stream
        .write_all(&proxy_v1("203.0.113.5"))
        .await
        .expect("write");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .expect("write");
    let answer = read_to_close("the answer to a spoofed header", &mut stream).await;
    assert!(
        matches!(status_of(&answer), None | Some(400)),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

// --- 413 (item 14) -----------------------------------------------------------------------------

#[tokio::test]
async fn a_rest_body_over_the_limit_is_413_too_large() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let name = "x".repeat(3 << 20);
    let body = serde_json::json!({ "name": name, "public": true }).to_string();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/rooms", server.http_url()))
        .bearer_auth(alice.token())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the request is answered");
    assert_eq!(response.status().as_u16(), 413);
    let body: serde_json::Value = response.json().await.expect("our JSON body");
    assert_eq!(body["error"]["code"], "too_large", "{body}");
}
