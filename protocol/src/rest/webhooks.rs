//! JSON bodies of the webhook endpoints' administration (`/v1/admin/webhooks*`) and of the
//! internal routes hubs call on the auth node (`/v1/internal/webhooks*`).

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Where an endpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WebhookSource {
    /// The auth node's `--webhooks-file`: re-applied at every start; over HTTP only `enabled`
    /// may change.
    Config,
    /// Made with `POST /v1/admin/webhooks`.
    Api,
}

/// An endpoint as an admin sees it: never its secret, only the secret's last 4 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminWebhook {
    /// `[a-z0-9_-]{1,64}`.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives (wire names, e.g. `message.created`).
    pub events: Vec<String>,
    /// False once a receiver answered 410 Gone or an admin disabled it.
    pub enabled: bool,
    /// Why it is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub source: WebhookSource,
    /// The last 4 characters of the secret.
    pub secret_hint: String,
    pub created_ts: Millis,
    pub updated_ts: Millis,
}

/// `GET /v1/admin/webhooks` answer: every endpoint (at most 100), by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminWebhookList {
    pub webhooks: Vec<AdminWebhook>,
}

/// `POST /v1/admin/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateWebhookRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9_-]{1,64}$"))]
    pub id: String,
    /// `http` or `https`, at most 2048 bytes; link-local and cloud-metadata addresses are
    /// refused unless the node allows them.
    pub url: String,
    /// At least one event type.
    pub events: Vec<String>,
    /// The HMAC key, 16 to 256 bytes; absent: the server makes one (`whsec_` and 32
    /// base64url characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 16, max_length = 256))]
    pub secret: Option<String>,
}

/// `POST /v1/admin/webhooks` answer (201): the endpoint and, this once, its whole secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateWebhookResponse {
    pub webhook: AdminWebhook,
    /// The secret: shown only in this answer.
    pub secret: String,
}

/// `PATCH /v1/admin/webhooks/{id}`: each field present replaces the stored one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateWebhookRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// `true` re-enables (clearing the reason), `false` disables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 16, max_length = 256))]
    pub secret: Option<String>,
}

/// `PATCH /v1/admin/webhooks/{id}` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminWebhookResponse {
    pub webhook: AdminWebhook,
}

/// An endpoint as a hub needs it for deliveries (`GET /v1/internal/webhooks`), secret
/// included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalWebhook {
    pub id: String,
    pub url: String,
    /// The HMAC key.
    pub secret: String,
    pub events: Vec<String>,
    pub enabled: bool,
}

/// `GET /v1/internal/webhooks` answer: every endpoint, enabled or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InternalWebhookList {
    pub webhooks: Vec<InternalWebhook>,
}

/// `POST /v1/internal/webhooks/{id}/disable`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisableWebhookRequest {
    /// Why (e.g. `receiver answered 410 Gone`), at most 1000 bytes.
    pub reason: String,
}
