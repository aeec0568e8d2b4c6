//! The hub under test: `switchboard_hub::run` in-process on `127.0.0.1:0` with a fresh data dir,
//! on the backend `SWITCHBOARD_TEST_BACKEND` names (the e2e suite's `backend` module). Unlike
//! the e2e harness it can stay down for a while ([`Hub::stop`], then [`Hub::start_again`] on the
//! same port and data), so a test can act in the browser while the hub is gone.

use switchboard_client::Api;

use super::backend;
use super::inproc::InProcessHub;

/// One hub (with its auth node, database and Redis prefix on the scaled backend). Dropping it
/// signals shutdown.
pub struct Hub {
    /// The scaled backend's services; kept across restarts, dropped after the hub.
    _scaled: Option<backend::ScaledEnv>,
    hub: InProcessHub,
}

impl Hub {
    /// A hub with extra flags (e.g. `--access-ttl-secs 4`).
    pub async fn start(flags: &[&str]) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary data dir");
        let mut flags: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
        let scaled = backend::prepare(&mut flags).await;
        Hub {
            _scaled: scaled,
            hub: InProcessHub::start(data_dir, flags).await,
        }
    }

    /// Starts the hub again on its port and data (after [`stop`](Self::stop)).
    pub async fn start_again(&mut self) {
        self.hub.launch().await;
    }

    /// Shuts the hub down (sockets closed with 1012) and waits until `run` has returned.
    pub async fn stop(&mut self) {
        self.hub.stop().await;
    }

    /// `http://127.0.0.1:PORT`: the page, and the REST API.
    pub fn url(&self) -> String {
        format!("http://{}", self.hub.addr())
    }

    /// A REST handle logged in as `username` (a session of its own).
    pub async fn login(&self, username: &str, password: &str) -> Api {
        let api = Api::new(&self.url());
        let tokens = api.login(username, password).await.expect("login");
        api.with_token(&tokens.access_token)
    }
}
