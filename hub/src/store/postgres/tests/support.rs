//! Test fixtures: a client helper, the shared test services (a throwaway database, a private
//! PostgreSQL server: `switchboard_tests`), and a TCP proxy that can go silent (a network
//! partition).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the shared server listens (the proxy forwards there).
const SHARED_ADDR: &str = "127.0.0.1:5432";

/// A client on `url`, its connection driven by a spawned task.
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// A TCP relay to the shared PostgreSQL that can go silent: while frozen it accepts and keeps
/// connections but moves no byte either way, as a partitioned network would.
pub struct Proxy {
    pub addr: SocketAddr,
    open: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (open, gate) = watch::channel(true);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(SHARED_ADDR).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (up_read, up_write) = upstream.into_split();
                tokio::spawn(pump(in_read, up_write, gate.clone()));
                tokio::spawn(pump(up_read, in_write, gate.clone()));
            }
        });
        Self { addr, open, accept }
    }

    pub fn freeze(&self) {
        self.open.send_replace(false);
    }

    pub fn thaw(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to` while the gate is open; closes `to` when `from` ends.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut gate: watch::Receiver<bool>) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        if gate.wait_for(|open| *open).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if gate.wait_for(|open| *open).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

pub use switchboard_tests::private::PrivatePostgres;
pub use switchboard_tests::services::TestDatabase as TestDb;

/// The URL of `db` reached through `addr` (a [`Proxy`]).
pub fn url_via(db: &TestDb, addr: SocketAddr) -> String {
    format!("postgres://postgres@{addr}/{}", db.name)
}
