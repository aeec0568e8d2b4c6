//! The shared handle every handler and connection task gets.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::fanout::Registry;
use crate::service::{Identity, Service};

/// Cheap to clone: everything is behind `Arc`s.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub service: Arc<Service>,
    pub registry: Arc<Registry>,
    pub verifier: switchboard_auth::Verifier,
    /// The browser Origin rule of WebSocket upgrades.
    pub origins: Arc<crate::ws::origin::OriginPolicy>,
    /// Anonymous and per-IP WebSocket slots.
    pub slots: Arc<crate::ws::slots::Slots>,
    /// Tracks WebSocket connection tasks, which outlive their HTTP request, so shutdown can
    /// wait for them.
    pub conns: TaskTracker,
    /// The hub's job queue (webhook deliveries), for the admin routes.
    pub jobs: Arc<dyn switchboard_jobs::JobStore>,
    /// Wakes this node's job workers (after an admin's retry).
    pub job_nudge: Arc<tokio::sync::Notify>,
    /// Avatars, emoticons and attachments.
    pub media: crate::media::Media,
}

impl AppState {
    /// Verifies an access token (signature, claims, revocation) into an identity.
    pub async fn authenticate(
        &self,
        token: &str,
    ) -> Result<Identity, switchboard_auth::TokenError> {
        let claims = self.verifier.verify(token).await?;
        // The request's or the connection's span names the user from here on.
        switchboard_kit::http::trace::record_user(&claims.name);
        Ok(Identity {
            id: claims.sub.into(),
            username: claims.name.into(),
            session: claims.sid.into(),
            role: claims.role,
            token: token.into(),
        })
    }
}
