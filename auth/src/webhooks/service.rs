//! The webhook operations of [`Auth`]: the admin's list, create, change and delete; the
//! internal list and disable for hubs; the [`Disabler`] of the in-process delivery handler;
//! the periodic reload of the registry.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use switchboard_protocol::rest::{
    AdminWebhook, AdminWebhookList, CreateWebhookRequest, CreateWebhookResponse, InternalWebhook,
    InternalWebhookList, UpdateWebhookRequest, WebhookSource,
};
use switchboard_webhooks::{Disabler, Endpoint, Registry};

use super::validate;
use crate::error::AuthError;
use crate::store::webhooks::{
    ChangeWebhook, CreateWebhook, EndpointPatch, EndpointSource, StoredEndpoint, MAX_ENDPOINTS,
};
use crate::store::AuthStore;
use crate::Auth;

/// Random bytes of a generated secret (32 base64url characters).
const SECRET_RANDOM_BYTES: usize = 24;
/// Longest disable reason kept.
pub const MAX_REASON_BYTES: usize = 1000;

/// A new secret: `whsec_` and 32 base64url characters (192 random bits).
fn generate_secret() -> String {
    let mut bytes = [0u8; SECRET_RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn admin_view(s: StoredEndpoint) -> AdminWebhook {
    let secret = &s.endpoint.secret;
    let hint_start = secret.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    AdminWebhook {
        secret_hint: secret[hint_start..].to_owned(),
        id: s.endpoint.id,
        url: s.endpoint.url,
        events: s
            .endpoint
            .events
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        enabled: s.endpoint.enabled,
        disabled_reason: s.disabled_reason,
        source: match s.source {
            EndpointSource::Config => WebhookSource::Config,
            EndpointSource::Api => WebhookSource::Api,
        },
        created_ts: s.created_ts,
        updated_ts: s.updated_ts,
    }
}

/// The wire form of an endpoint for hubs (secret included).
pub(crate) fn internal_view(e: Endpoint) -> InternalWebhook {
    InternalWebhook {
        events: e.events.iter().map(|t| t.as_str().to_owned()).collect(),
        id: e.id,
        url: e.url,
        secret: e.secret,
        enabled: e.enabled,
    }
}

fn now_ms() -> i64 {
    switchboard_jobs::clock::now_ms()
}

impl Auth {
    /// The live registry of the webhook endpoints in the auth store (a cheap clone of the
    /// shared one): loaded at open, replaced after every change made on this node, and
    /// reloaded every [`crate::webhooks::WebhookConfig::reload_interval`] (changes made on other
    /// nodes). What the in-process hub enqueues deliveries with and its delivery handler reads.
    pub fn webhooks(&self) -> Registry {
        self.inner.store.webhooks()
    }

    /// Every endpoint, without secrets.
    pub(crate) async fn list_webhooks(&self) -> Result<AdminWebhookList, AuthError> {
        let all = self.inner.store.list_webhooks().await?;
        Ok(AdminWebhookList {
            webhooks: all.into_iter().map(admin_view).collect(),
        })
    }

    /// Validates and stores a new endpoint (source `api`); its secret is answered this once.
    pub(crate) async fn create_webhook(
        &self,
        req: CreateWebhookRequest,
    ) -> Result<CreateWebhookResponse, AuthError> {
        validate::id(&req.id).map_err(AuthError::BadRequest)?;
        validate::url(&req.url, &self.inner.cfg.webhooks.policy())
            .map_err(AuthError::BadRequest)?;
        let events = validate::events(&req.events).map_err(AuthError::BadRequest)?;
        let secret = match req.secret {
            Some(secret) => {
                validate::secret(&secret).map_err(AuthError::BadRequest)?;
                secret
            }
            None => generate_secret(),
        };
        let endpoint = Endpoint {
            id: req.id,
            url: req.url,
            secret: secret.clone(),
            events,
            enabled: true,
        };
        match self.inner.store.create_webhook(endpoint, now_ms()).await? {
            CreateWebhook::Created(stored) => {
                tracing::info!(endpoint = %stored.endpoint.id, "webhook endpoint created");
                Ok(CreateWebhookResponse {
                    webhook: admin_view(stored),
                    secret,
                })
            }
            CreateWebhook::IdTaken => Err(AuthError::Conflict(
                "a webhook endpoint with this id exists".to_owned(),
            )),
            CreateWebhook::TooMany => Err(AuthError::Conflict(format!(
                "at most {MAX_ENDPOINTS} webhook endpoints may exist; delete one first"
            ))),
        }
    }

    /// Validates and applies an admin's change.
    pub(crate) async fn update_webhook(
        &self,
        id: &str,
        req: UpdateWebhookRequest,
    ) -> Result<AdminWebhook, AuthError> {
        if let Some(url) = &req.url {
            validate::url(url, &self.inner.cfg.webhooks.policy()).map_err(AuthError::BadRequest)?;
        }
        let events = req
            .events
            .as_deref()
            .map(validate::events)
            .transpose()
            .map_err(AuthError::BadRequest)?;
        if let Some(secret) = &req.secret {
            validate::secret(secret).map_err(AuthError::BadRequest)?;
        }
        let patch = EndpointPatch {
            url: req.url,
            events,
            enabled: req.enabled,
            secret: req.secret,
        };
        match self.inner.store.update_webhook(id, patch, now_ms()).await? {
            ChangeWebhook::Done(stored) => {
                tracing::info!(endpoint = %id, enabled = stored.endpoint.enabled, "webhook endpoint changed");
                Ok(admin_view(stored))
            }
            ChangeWebhook::NotFound => Err(AuthError::NotFound("no such webhook endpoint")),
            ChangeWebhook::Configured => Err(configured()),
        }
    }

    /// Deletes an endpoint made over HTTP.
    pub(crate) async fn delete_webhook(&self, id: &str) -> Result<(), AuthError> {
        match self.inner.store.delete_webhook(id).await? {
            ChangeWebhook::Done(_) => {
                tracing::info!(endpoint = %id, "webhook endpoint deleted");
                Ok(())
            }
            ChangeWebhook::NotFound => Err(AuthError::NotFound("no such webhook endpoint")),
            ChangeWebhook::Configured => Err(configured()),
        }
    }

    /// Every endpoint with its secret, for hubs.
    pub(crate) async fn internal_webhooks(&self) -> Result<InternalWebhookList, AuthError> {
        let all = self.inner.store.list_webhooks().await?;
        Ok(InternalWebhookList {
            webhooks: all.into_iter().map(|s| internal_view(s.endpoint)).collect(),
        })
    }

    /// Disables an endpoint (a hub's receiver answered 410); `NotFound` for an unknown id.
    pub(crate) async fn disable_webhook(&self, id: &str, reason: &str) -> Result<(), AuthError> {
        let reason = cut(reason, MAX_REASON_BYTES);
        if self
            .inner
            .store
            .disable_webhook(id, reason, now_ms())
            .await?
        {
            tracing::warn!(endpoint = %id, reason, "webhook endpoint disabled");
            Ok(())
        } else {
            Err(AuthError::NotFound("no such webhook endpoint"))
        }
    }
}

fn configured() -> AuthError {
    AuthError::Conflict(
        "this endpoint comes from the configuration (--webhooks-file): only `enabled` may \
         change over HTTP; change the file and restart instead"
            .to_owned(),
    )
}

/// The in-process delivery handler's way to disable an endpoint (a receiver answered 410):
/// disabled in the store (for every node) and in this node's registry at once. An unknown
/// endpoint (deleted meanwhile) is nothing to do.
#[async_trait::async_trait]
impl Disabler for Auth {
    async fn disable(&self, endpoint: &str, reason: &str) -> Result<(), String> {
        match self.disable_webhook(endpoint, reason).await {
            Ok(()) | Err(AuthError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// [`Disabler`] over the store itself: what the auth service's own delivery handler is given
/// (it is built before the [`Auth`] it belongs to). Same behaviour as `Auth`'s.
pub struct StoreDisabler(pub Arc<dyn AuthStore>);

#[async_trait::async_trait]
impl Disabler for StoreDisabler {
    async fn disable(&self, endpoint: &str, reason: &str) -> Result<(), String> {
        let reason = cut(reason, MAX_REASON_BYTES);
        match self.0.disable_webhook(endpoint, reason, now_ms()).await {
            Ok(found) => {
                if found {
                    tracing::warn!(endpoint, reason, "webhook endpoint disabled");
                }
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Reloads the store's registry every `period`, until aborted (the service's drop). A failed
/// reload keeps the list it had and is logged.
pub(crate) fn spawn_reload(
    store: Arc<dyn AuthStore>,
    period: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // The first tick is immediate: the store loaded it at open.
        loop {
            tick.tick().await;
            if let Err(error) = store.reload_webhooks().await {
                tracing::warn!(%error, "reloading the webhook endpoints failed; keeping the old list");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_and_hints() {
        let s = generate_secret();
        assert!(s.starts_with("whsec_") && s.len() == 6 + 32, "{s}");
        assert_ne!(s, generate_secret());
        assert!(validate::secret(&s).is_ok());
        assert_eq!(cut("aé", 2), "a");
    }
}
