//! Webhooks on the auth side: the auth store is their control plane. The endpoints live in
//! the store (`webhook_endpoints`, see [`crate::store::webhooks`]), come from configuration
//! ([`WebhookConfig`], `--webhooks-file`: [`file`](mod@file)) or from admins (`/v1/admin/webhooks*`), and
//! reach the hubs through [`crate::Auth::webhooks`] (in-process, the live registry) or the
//! internal routes (`/v1/internal/webhooks*`, with the service token) and
//! [`crate::remote::RemoteWebhooks`].
//!
//! **Invariants:** a secret is shown once (in the answer that made it) and otherwise only to
//! holders of the service token; the admin list shows its last 4 characters. Every endpoint
//! in the store passed [`validate`] (with the node's [`AddrPolicy`]) when it was written.

pub mod file;
mod service;
pub mod validate;

use std::time::Duration;

use switchboard_webhooks::{AddrPolicy, Endpoint};

pub use file::{load_file, WebhookConfigFlags, WebhookFileError};
pub(crate) use service::spawn_reload;
pub use service::StoreDisabler;

/// Default [`WebhookConfig::reload_interval`].
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Shortest service token accepted (`--service-token`).
pub const MIN_SERVICE_TOKEN_BYTES: usize = 16;

/// `--service-token`; never shown by `Debug`. Its length (at least
/// [`MIN_SERVICE_TOKEN_BYTES`]) is checked by [`crate::Auth::open`], not by the flag's parser,
/// so that a refused token is not repeated in the parser's error.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceToken(pub String);

impl ServiceToken {
    /// The flag's parser (takes any string).
    ///
    /// # Errors
    /// Never.
    pub fn parse(s: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken(***)")
    }
}

/// The webhook settings of an auth service.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The configured endpoints (`--webhooks-file`), validated again at open and made the
    /// store's configured endpoints (`source = config`; those no longer listed are deleted).
    /// Every auth node of a cluster must be given the same list.
    pub endpoints: Vec<Endpoint>,
    /// Allow endpoint URLs on link-local and cloud-metadata addresses
    /// (`--webhook-allow-link-local`). Default off (SSRF). The one source of the URL policy:
    /// it replaces `delivery.policy`.
    pub allow_link_local: bool,
    /// How this node's workers deliver the auth store's webhook jobs (the user events):
    /// `--webhook-timeout-ms` and the bounds of `switchboard_webhooks::DeliveryConfig`.
    pub delivery: switchboard_webhooks::DeliveryConfig,
    /// How often the registry is reloaded from the store, so changes made by other nodes
    /// (another auth node's admin API, a hub's 410-disable) arrive. Default
    /// [`DEFAULT_RELOAD_INTERVAL`].
    pub reload_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            allow_link_local: false,
            delivery: switchboard_webhooks::DeliveryConfig::default(),
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }
}

impl WebhookConfig {
    /// Checks the configured endpoints as `--webhooks-file` would (for a configuration built
    /// in code, e.g. by the embedded hub).
    ///
    /// # Errors
    /// A message naming the first bad endpoint's id and the rule it breaks.
    pub fn check(&self) -> Result<(), String> {
        if self.endpoints.len() > crate::store::webhooks::MAX_ENDPOINTS {
            return Err(format!(
                "webhooks: more than {} endpoints",
                crate::store::webhooks::MAX_ENDPOINTS
            ));
        }
        if self.reload_interval.is_zero() {
            return Err("webhooks: the reload interval must be above 0".to_owned());
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.endpoints {
            if !seen.insert(e.id.as_str()) {
                return Err(format!("webhook endpoint {:?}: the id appears twice", e.id));
            }
            validate::endpoint(e, &self.policy())
                .map_err(|reason| format!("webhook endpoint {:?}: {reason}", e.id))?;
        }
        Ok(())
    }

    /// The URL policy of this configuration.
    pub fn policy(&self) -> AddrPolicy {
        AddrPolicy {
            allow_link_local: self.allow_link_local,
        }
    }

    /// The delivery settings, with this configuration's URL policy.
    pub fn delivery_config(&self) -> switchboard_webhooks::DeliveryConfig {
        switchboard_webhooks::DeliveryConfig {
            policy: self.policy(),
            ..self.delivery.clone()
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    /// Endpoint ids only: never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field(
                "endpoints",
                &self.endpoints.iter().map(|e| &e.id).collect::<Vec<_>>(),
            )
            .field("allow_link_local", &self.allow_link_local)
            .field("delivery", &self.delivery)
            .field("reload_interval", &self.reload_interval)
            .finish()
    }
}
