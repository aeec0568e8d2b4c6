//! [`WebhookStore`] on PostgreSQL. Creations hold a transaction-level advisory lock, so the
//! count of [`MAX_ENDPOINTS`] holds across nodes; changes lock the endpoint's row. The
//! registry is reloaded after each commit under the store's reload lock.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use switchboard_webhooks::{Endpoint, Registry};

use super::{
    events_from_sql, events_to_sql, ChangeWebhook, CreateWebhook, EndpointPatch, EndpointSource,
    StoredEndpoint, WebhookStore, DISABLED_BY_ADMIN, MAX_ENDPOINTS,
};
use crate::store::{PgStore, StoreError};

/// Key of the advisory lock of creations and of the configuration sync (`SBWEBHK1` in ASCII).
const WEBHOOK_LOCK_KEY: i64 = 0x5342_5745_4248_4B31;

const COLUMNS: &str =
    "id, url, secret, events, enabled, disabled_reason, source, created_ts, updated_ts";

fn stored(row: &tokio_postgres::Row) -> Result<StoredEndpoint, StoreError> {
    Ok(StoredEndpoint {
        endpoint: Endpoint {
            id: row.get(0),
            url: row.get(1),
            secret: row.get(2),
            events: events_from_sql(row.get(3)),
            enabled: row.get(4),
        },
        disabled_reason: row.get(5),
        source: EndpointSource::parse(row.get(6))?,
        created_ts: row.get(7),
        updated_ts: row.get(8),
    })
}

async fn list(client: &impl GenericClient) -> Result<Vec<StoredEndpoint>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM auth.webhook_endpoints ORDER BY id");
    let rows = client.query(&sql, &[]).await?;
    rows.iter().map(stored).collect()
}

async fn get(
    client: &impl GenericClient,
    id: &str,
    lock: &str,
) -> Result<Option<StoredEndpoint>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM auth.webhook_endpoints WHERE id = $1 {lock}");
    let row = client.query_opt(&sql, &[&id]).await?;
    row.as_ref().map(stored).transpose()
}

impl PgStore {
    /// Reads the endpoints and replaces the registry, under the reload lock (so a reload that
    /// read an older list never replaces a newer one).
    pub(crate) async fn reload_registry(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.webhook_reload.lock().await;
        let endpoints = list(&self.pool.get().await?).await?;
        self.webhooks
            .replace(endpoints.into_iter().map(|s| s.endpoint).collect());
        Ok(())
    }
}

#[async_trait]
impl WebhookStore for PgStore {
    fn webhooks(&self) -> Registry {
        self.webhooks.clone()
    }

    async fn list_webhooks(&self) -> Result<Vec<StoredEndpoint>, StoreError> {
        list(&self.pool.get().await?).await
    }

    async fn create_webhook(
        &self,
        endpoint: Endpoint,
        now: i64,
    ) -> Result<CreateWebhook, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WEBHOOK_LOCK_KEY])
            .await?;
        if get(&tx, &endpoint.id, "").await?.is_some() {
            return Ok(CreateWebhook::IdTaken);
        }
        let count: i64 = tx
            .query_one("SELECT count(*) FROM auth.webhook_endpoints", &[])
            .await?
            .get(0);
        if count >= MAX_ENDPOINTS as i64 {
            return Ok(CreateWebhook::TooMany);
        }
        let sql = format!(
            "INSERT INTO auth.webhook_endpoints
               (id, url, secret, events, enabled, source, created_ts, updated_ts)
             VALUES ($1, $2, $3, $4, TRUE, 'api', $5, $5) RETURNING {COLUMNS}"
        );
        let row = tx
            .query_one(
                &sql,
                &[
                    &endpoint.id,
                    &endpoint.url,
                    &endpoint.secret,
                    &events_to_sql(&endpoint.events),
                    &now,
                ],
            )
            .await?;
        let created = stored(&row)?;
        tx.commit().await?;
        drop(client);
        self.reload_registry().await?;
        Ok(CreateWebhook::Created(created))
    }

    async fn update_webhook(
        &self,
        id: &str,
        patch: EndpointPatch,
        now: i64,
    ) -> Result<ChangeWebhook, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(current) = get(&tx, id, "FOR UPDATE").await? else {
            return Ok(ChangeWebhook::NotFound);
        };
        if current.source == EndpointSource::Config && patch.touches_settings() {
            return Ok(ChangeWebhook::Configured);
        }
        let (enabled, reason) = match patch.enabled {
            None => (current.endpoint.enabled, current.disabled_reason.clone()),
            Some(true) => (true, None),
            Some(false) if !current.endpoint.enabled => (false, current.disabled_reason),
            Some(false) => (false, Some(DISABLED_BY_ADMIN.to_owned())),
        };
        let sql = format!(
            "UPDATE auth.webhook_endpoints
             SET url = $2, secret = $3, events = $4, enabled = $5, disabled_reason = $6,
                 updated_ts = $7
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row = tx
            .query_one(
                &sql,
                &[
                    &id,
                    &patch.url.unwrap_or(current.endpoint.url),
                    &patch.secret.unwrap_or(current.endpoint.secret),
                    &events_to_sql(&patch.events.unwrap_or(current.endpoint.events)),
                    &enabled,
                    &reason,
                    &now,
                ],
            )
            .await?;
        let updated = stored(&row)?;
        tx.commit().await?;
        drop(client);
        self.reload_registry().await?;
        Ok(ChangeWebhook::Done(updated))
    }

    async fn delete_webhook(&self, id: &str) -> Result<ChangeWebhook, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(current) = get(&tx, id, "FOR UPDATE").await? else {
            return Ok(ChangeWebhook::NotFound);
        };
        if current.source == EndpointSource::Config {
            return Ok(ChangeWebhook::Configured);
        }
        tx.execute("DELETE FROM auth.webhook_endpoints WHERE id = $1", &[&id])
            .await?;
        tx.commit().await?;
        drop(client);
        self.reload_registry().await?;
        Ok(ChangeWebhook::Done(current))
    }

    async fn disable_webhook(&self, id: &str, reason: &str, now: i64) -> Result<bool, StoreError> {
        let changed = self
            .pool
            .get()
            .await?
            .execute(
                "UPDATE auth.webhook_endpoints
                 SET enabled = FALSE, disabled_reason = coalesce(disabled_reason, $2),
                     updated_ts = CASE WHEN enabled THEN $3 ELSE updated_ts END
                 WHERE id = $1",
                &[&id, &reason, &now],
            )
            .await?;
        self.reload_registry().await?;
        Ok(changed == 1)
    }

    async fn sync_config_webhooks(
        &self,
        endpoints: Vec<Endpoint>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WEBHOOK_LOCK_KEY])
            .await?;
        let ids: Vec<&str> = endpoints.iter().map(|e| e.id.as_str()).collect();
        tx.execute(
            "DELETE FROM auth.webhook_endpoints WHERE source = 'config' AND id <> ALL($1)",
            &[&ids],
        )
        .await?;
        for e in &endpoints {
            tx.execute(
                "INSERT INTO auth.webhook_endpoints AS w
                   (id, url, secret, events, enabled, source, created_ts, updated_ts)
                 VALUES ($1, $2, $3, $4, TRUE, 'config', $5, $5)
                 ON CONFLICT (id) DO UPDATE SET
                   url = excluded.url, secret = excluded.secret, events = excluded.events,
                   source = 'config',
                   updated_ts = CASE WHEN w.url = excluded.url AND w.secret = excluded.secret
                                      AND w.events = excluded.events AND w.source = 'config'
                                     THEN w.updated_ts ELSE excluded.updated_ts END",
                &[&e.id, &e.url, &e.secret, &events_to_sql(&e.events), &now],
            )
            .await?;
        }
        tx.commit().await?;
        drop(client);
        self.reload_registry().await
    }

    async fn reload_webhooks(&self) -> Result<(), StoreError> {
        self.reload_registry().await
    }
}
