//! A hub for the CLI to talk to: `switchboard_hub::run` in-process on `127.0.0.1:0` with a
//! fresh data dir, embedded or scaled out (`SWITCHBOARD_TEST_BACKEND=scaled`: a fresh
//! PostgreSQL database, a fresh Redis prefix and a separate auth node), restartable on the
//! same port. Built from the e2e harness's `backend` and `inproc` modules.

use switchboard_client::Api;

#[path = "../../e2e/support/backend.rs"]
mod backend;
#[path = "../../e2e/support/inproc.rs"]
mod inproc;

use inproc::InProcessHub;

/// One running hub. Dropping it signals shutdown; [`TestServer::shutdown`] also waits.
pub struct TestServer {
    /// The scaled backend's services; `None` when embedded. Dropped after the hub.
    _scaled: Option<backend::ScaledEnv>,
    hub: InProcessHub,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A hub with extra flags (`--access-ttl-secs` goes to the auth node when scaled).
    pub async fn start_with(flags: &[&str]) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary data dir");
        let mut flags: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
        let scaled = backend::prepare(&mut flags).await;
        TestServer {
            _scaled: scaled,
            hub: InProcessHub::start(data_dir, flags).await,
        }
    }

    /// Signals shutdown (sockets are closed with 1012) and waits for the hub to stop.
    pub async fn shutdown(&mut self) {
        self.hub.stop().await;
    }

    /// Shuts down and starts again on the same data dir, flags and port.
    pub async fn restart(&mut self) {
        self.hub.stop().await;
        self.hub.launch().await;
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.hub.addr())
    }

    /// `ws://127.0.0.1:PORT/v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.hub.addr())
    }

    /// An anonymous REST handle.
    pub fn api(&self) -> Api {
        Api::new(&self.http_url())
    }
}
