//! The hub under test: the e2e harness's in-process hub (`inproc`, on the backend
//! `SWITCHBOARD_TEST_BACKEND` names). It can stay down for a while ([`Hub::shutdown`], then
//! [`Hub::launch`] on the same port and data), so a test can act in the browser while the hub
//! is gone.

use switchboard_client::Api;

/// One hub (with its auth node, database and Redis prefix on the scaled backend). Dropping it
/// signals shutdown.
pub use super::inproc::InProcessHub as Hub;

impl Hub {
    /// A REST handle logged in as `username` (a session of its own).
    pub async fn login(&self, username: &str, password: &str) -> Api {
        let api = self.api();
        let tokens = api.login(username, password).await.expect("login");
        api.with_token(&tokens.access_token)
    }
}
