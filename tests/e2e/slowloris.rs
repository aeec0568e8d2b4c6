//! Connections that hold the hub's sockets without finishing requests (issue 10, item 2): idle
//! sockets, half-sent request heads, idle keep-alive connections, and more of them than the
//! node has room for (`--max-http-connections`) or descriptors for (`ulimit -n`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{within, TestServer};

/// Opens a TCP connection to `addr`.
pub async fn tcp(addr: std::net::SocketAddr) -> TcpStream {
    within("connect", TcpStream::connect(addr))
        .await
        .expect("connect")
}

/// Reads until the peer closes (EOF or reset) and returns what came; fails after `WAIT`.
pub async fn read_to_close(what: &str, stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    within(what, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}

/// The status code of a raw HTTP/1.1 response, if `bytes` start with one.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.parse().ok()
}

/// `GET /healthz` on a fresh connection (`Connection: close`); its status.
pub async fn healthz(addr: std::net::SocketAddr) -> Option<u16> {
    let mut stream = tcp(addr).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    status_of(&read_to_close("the /healthz answer", &mut stream).await)
}

const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Slow: ";

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_within_the_timeouts() {
    let server = TestServer::start_with(&[
        "--header-read-timeout-ms",
        "300",
        "--keep-alive-timeout-ms",
        "200",
    ])
    .await;
    let mut silent = tcp(server.addr()).await;
    let mut half = tcp(server.addr()).await;
    half.write_all(HALF_HEAD).await.expect("half a head");
    let mut kept = tcp(server.addr()).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .expect("a keep-alive request");

    // Each read ends with the server's close (a 408 may precede it); none waits for WAIT.
    read_to_close("the silent connection to close", &mut silent).await;
    let half_answer = read_to_close("the half-sent head to close", &mut half).await;
    assert_ne!(status_of(&half_answer), Some(200));
    let kept_answer = read_to_close("the idle keep-alive connection to close", &mut kept).await;
    assert_eq!(status_of(&kept_answer), Some(200), "served before idling");
    assert_eq!(healthz(server.addr()).await, Some(200));
}

#[tokio::test]
async fn healthz_answers_while_more_waiting_connections_than_the_cap_are_held() {
    const CAP: usize = 8;
    let server = TestServer::start_with(&["--max-http-connections", &CAP.to_string()]).await;
    let mut held = Vec::new();
    for i in 0..3 * CAP {
        let mut stream = tcp(server.addr()).await;
        if i % 2 == 1 {
            stream.write_all(HALF_HEAD).await.expect("half a head");
        }
        held.push(stream);
    }
    assert_eq!(healthz(server.addr()).await, Some(200));
    // Every connection beyond the cap evicted one that waited longer, oldest first.
    for (i, stream) in held.iter_mut().take(2 * CAP).enumerate() {
        read_to_close(&format!("held connection {i} to be evicted"), stream).await;
    }
    assert_eq!(healthz(server.addr()).await, Some(200));
}

#[tokio::test]
async fn healthz_answers_while_slow_request_bodies_fill_the_cap() {
    const CAP: usize = 4;
    let server = TestServer::start_with(&[
        "--max-http-connections",
        &CAP.to_string(),
        "--header-read-timeout-ms",
        "300",
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut stream = tcp(server.addr()).await;
        stream
            .write_all(
                b"POST /v1/auth/register HTTP/1.1\r\nHost: hub\r\n\
                  Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
            )
            .await
            .expect("a request whose body never comes");
        held.push(stream);
    }
    // Requests being served are evicted only once busy for longer than the header-read timeout:
    // until then a newcomer finds the table full and is closed at once, so this polls.
    within("a /healthz answer", async {
        while healthz(server.addr()).await != Some(200) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    read_to_close("the oldest slow request to be evicted", &mut held[0]).await;
}

/// The hub binary under `ulimit -n 256`, its log lines collected.
struct LimitedHub {
    child: std::process::Child,
    log: Arc<Mutex<Vec<String>>>,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for LimitedHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The descriptor limit the hub binary runs under.
const FD_LIMIT: usize = 256;

async fn start_limited_hub(flags: &[&str]) -> LimitedHub {
    let dir = tempfile::tempdir().expect("data dir");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\""))
        .arg(switchboard_tests::binary::binary(
            "switchboard-hub",
            "switchboard-hub",
        ))
        // No metrics listener (its default address is fixed; tests run at once).
        .args([
            "--metrics-listen",
            "off",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(flags)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the hub");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let stdout = child.stdout.take().expect("stdout");
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Switchboard is running at http://") {
                let addr = rest.split_once('/').map_or(rest, |(addr, _)| addr);
                if let (Some(tx), Ok(addr)) = (tx.take(), addr.parse()) {
                    let _ = tx.send(addr);
                }
            }
            lines.lock().unwrap().push(line);
        }
    });
    let stderr = child.stderr.take().expect("stderr");
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let addr = within("the hub to listen", rx)
        .await
        .expect("the hub prints its address");
    LimitedHub {
        child,
        log,
        addr,
        _dir: dir,
    }
}

#[tokio::test]
async fn healthz_answers_when_idle_sockets_exhaust_the_descriptors() {
    let hub = start_limited_hub(&[]).await;
    let mut held = Vec::new();
    for _ in 0..FD_LIMIT + 64 {
        held.push(tcp(hub.addr).await);
    }
    assert_eq!(healthz(hub.addr).await, Some(200));
    assert_eq!(healthz(hub.addr).await, Some(200));
    let log = hub.log.lock().unwrap().clone();
    let accept_errors = log.iter().filter(|l| l.contains("accept error")).count();
    // At most one warning a second: the test runs for a few seconds at most.
    assert!(
        accept_errors <= 5,
        "the accept loop spins: {accept_errors} accept errors logged:\n{}",
        log.join("\n")
    );
    drop(held);
}
