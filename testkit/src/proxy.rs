//! A TCP proxy on `127.0.0.1:0` in front of one server (the machine's Redis or PostgreSQL), for
//! tests of a network fault seen by one client only, without disturbing anyone else using the
//! shared server. Two faults:
//! - [`Proxy::cut`]: every proxied connection is closed and new ones are refused (closed at
//!   once) until [`Proxy::restore`]: the server "went away".
//! - [`Proxy::freeze`]: connections (and new ones) stay open but no byte moves either way until
//!   [`Proxy::thaw`]: a network partition, or a hung server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Bytes flow.
    Open,
    /// Connections are kept, bytes wait.
    Frozen,
    /// Connections are closed, new ones refused.
    Cut,
}

/// The proxy; dropping it closes everything it holds.
pub struct Proxy {
    /// Where clients connect instead of the server.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: JoinHandle<()>,
    /// One task per proxied connection; each ends (closing both sides) on [`Mode::Cut`].
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// A proxy to `target` (e.g. [`crate::services::REDIS_ADDR`]), open.
    ///
    /// # Panics
    /// If `target` is not a socket address or no loopback port can be bound.
    pub async fn start(target: &str) -> Self {
        let target: SocketAddr = target
            .parse()
            .unwrap_or_else(|err| panic!("proxy target {target}: {err}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (mode, _) = watch::channel(Mode::Open);
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (modes, tasks) = (mode.subscribe(), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *modes.borrow() == Mode::Cut {
                    continue; // dropped: the connection is closed at once
                }
                let modes = modes.clone();
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    relay(client, server, modes).await;
                });
                tasks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(task);
            }
        });
        Self {
            addr,
            mode,
            accept,
            conns,
        }
    }

    /// The `redis://` URL of the proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Closes every proxied connection (returning once they are closed) and refuses new ones.
    pub async fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
        let open: Vec<_> = self
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for conn in open {
            let _ = conn.await;
        }
    }

    /// Accepts and forwards connections again after [`Proxy::cut`].
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }

    /// Stops moving bytes: connections, old and new, stay open but silent.
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Frozen);
    }

    /// Moves bytes again after [`Proxy::freeze`], including those that waited.
    pub fn thaw(&self) {
        self.mode.send_replace(Mode::Open);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Relays both ways until either side closes or the proxy is cut; dropping the streams closes
/// both sides.
async fn relay(client: TcpStream, server: TcpStream, mut modes: watch::Receiver<Mode>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream = pump(client_read, server_write, modes.clone());
    let downstream = pump(server_read, client_write, modes.clone());
    let both = async { tokio::join!(upstream, downstream) };
    tokio::select! {
        _ = both => {}
        _ = modes.wait_for(|mode| *mode == Mode::Cut) => {}
    }
}

/// Copies `from` to `to` while the proxy is open (waiting while it is frozen); shuts `to`'s
/// writing side when `from` ends.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut modes: watch::Receiver<Mode>) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        if !flowing(&mut modes).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !flowing(&mut modes).await || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// Waits while the proxy is frozen; false once it is cut (or gone).
async fn flowing(modes: &mut watch::Receiver<Mode>) -> bool {
    match modes.wait_for(|mode| *mode != Mode::Frozen).await {
        Ok(mode) => *mode == Mode::Open,
        Err(_) => false,
    }
}
