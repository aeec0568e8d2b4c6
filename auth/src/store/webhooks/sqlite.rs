//! [`WebhookStore`] on SQLite: one connection serialises every change, and the registry is
//! replaced on that connection right after the commit, so registry updates happen in commit
//! order.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension as _, Row, TransactionBehavior};
use switchboard_webhooks::{Endpoint, Registry};

use super::{
    events_from_sql, events_to_sql, ChangeWebhook, CreateWebhook, EndpointPatch, EndpointSource,
    StoredEndpoint, WebhookStore, DISABLED_BY_ADMIN, MAX_ENDPOINTS,
};
use crate::store::{SqliteStore, StoreError};

const COLUMNS: &str =
    "id, url, secret, events, enabled, disabled_reason, source, created_ts, updated_ts";

type RawRow = (
    String,
    String,
    String,
    String,
    bool,
    Option<String>,
    String,
    i64,
    i64,
);

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn stored(
    (id, url, secret, events, enabled, disabled_reason, source, created_ts, updated_ts): RawRow,
) -> Result<StoredEndpoint, StoreError> {
    Ok(StoredEndpoint {
        endpoint: Endpoint {
            id,
            url,
            secret,
            events: events_from_sql(&events),
            enabled,
        },
        disabled_reason,
        source: EndpointSource::parse(&source)?,
        created_ts,
        updated_ts,
    })
}

/// Every endpoint, by id.
pub(crate) fn list(conn: &Connection) -> Result<Vec<StoredEndpoint>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhook_endpoints ORDER BY id"
    ))?;
    let rows = stmt.query_map([], raw)?;
    rows.map(|row| stored(row?)).collect()
}

fn get(conn: &Connection, id: &str) -> Result<Option<StoredEndpoint>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM webhook_endpoints WHERE id = ?1"
        ))?
        .query_row([id], raw)
        .optional()?;
    row.map(stored).transpose()
}

/// Replaces `registry` with what `conn` holds.
pub(crate) fn reload(conn: &Connection, registry: &Registry) -> Result<(), StoreError> {
    let endpoints = list(conn)?.into_iter().map(|s| s.endpoint).collect();
    registry.replace(endpoints);
    Ok(())
}

#[async_trait]
impl WebhookStore for SqliteStore {
    fn webhooks(&self) -> Registry {
        self.webhooks.clone()
    }

    async fn list_webhooks(&self) -> Result<Vec<StoredEndpoint>, StoreError> {
        self.call(|conn| list(conn)).await
    }

    async fn create_webhook(
        &self,
        endpoint: Endpoint,
        now: i64,
    ) -> Result<CreateWebhook, StoreError> {
        let registry = self.webhooks.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let count: i64 =
                tx.query_row("SELECT count(*) FROM webhook_endpoints", [], |r| r.get(0))?;
            if get(&tx, &endpoint.id)?.is_some() {
                return Ok(CreateWebhook::IdTaken);
            }
            if count >= MAX_ENDPOINTS as i64 {
                return Ok(CreateWebhook::TooMany);
            }
            tx.execute(
                "INSERT INTO webhook_endpoints
                   (id, url, secret, events, enabled, source, created_ts, updated_ts)
                 VALUES (?1, ?2, ?3, ?4, 1, 'api', ?5, ?5)",
                params![
                    endpoint.id,
                    endpoint.url,
                    endpoint.secret,
                    events_to_sql(&endpoint.events),
                    now
                ],
            )?;
            let created = get(&tx, &endpoint.id)?.ok_or(StoreError::Corrupt {
                column: "webhook_endpoints.id",
            })?;
            tx.commit()?;
            reload(conn, &registry)?;
            Ok(CreateWebhook::Created(created))
        })
        .await
    }

    async fn update_webhook(
        &self,
        id: &str,
        patch: EndpointPatch,
        now: i64,
    ) -> Result<ChangeWebhook, StoreError> {
        let (id, registry) = (id.to_owned(), self.webhooks.clone());
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(current) = get(&tx, &id)? else {
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
            tx.execute(
                "UPDATE webhook_endpoints
                 SET url = ?2, secret = ?3, events = ?4, enabled = ?5, disabled_reason = ?6,
                     updated_ts = ?7
                 WHERE id = ?1",
                params![
                    id,
                    patch.url.unwrap_or(current.endpoint.url),
                    patch.secret.unwrap_or(current.endpoint.secret),
                    events_to_sql(&patch.events.unwrap_or(current.endpoint.events)),
                    enabled,
                    reason,
                    now
                ],
            )?;
            let updated = get(&tx, &id)?.ok_or(StoreError::Corrupt {
                column: "webhook_endpoints.id",
            })?;
            tx.commit()?;
            reload(conn, &registry)?;
            Ok(ChangeWebhook::Done(updated))
        })
        .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<ChangeWebhook, StoreError> {
        let (id, registry) = (id.to_owned(), self.webhooks.clone());
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(current) = get(&tx, &id)? else {
                return Ok(ChangeWebhook::NotFound);
            };
            if current.source == EndpointSource::Config {
                return Ok(ChangeWebhook::Configured);
            }
            tx.execute("DELETE FROM webhook_endpoints WHERE id = ?1", [&id])?;
            tx.commit()?;
            reload(conn, &registry)?;
            Ok(ChangeWebhook::Done(current))
        })
        .await
    }

    async fn disable_webhook(&self, id: &str, reason: &str, now: i64) -> Result<bool, StoreError> {
        let (id, reason, registry) = (id.to_owned(), reason.to_owned(), self.webhooks.clone());
        self.call(move |conn| {
            let changed = conn.execute(
                "UPDATE webhook_endpoints
                 SET enabled = 0, disabled_reason = coalesce(disabled_reason, ?2),
                     updated_ts = CASE WHEN enabled THEN ?3 ELSE updated_ts END
                 WHERE id = ?1",
                params![id, reason, now],
            )?;
            reload(conn, &registry)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn sync_config_webhooks(
        &self,
        endpoints: Vec<Endpoint>,
        now: i64,
    ) -> Result<(), StoreError> {
        let registry = self.webhooks.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids: Vec<&str> = endpoints.iter().map(|e| e.id.as_str()).collect();
            let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_owned());
            tx.execute(
                "DELETE FROM webhook_endpoints WHERE source = 'config'
                   AND id NOT IN (SELECT value FROM json_each(?1))",
                [ids],
            )?;
            for e in &endpoints {
                tx.execute(
                    "INSERT INTO webhook_endpoints
                       (id, url, secret, events, enabled, source, created_ts, updated_ts)
                     VALUES (?1, ?2, ?3, ?4, 1, 'config', ?5, ?5)
                     ON CONFLICT (id) DO UPDATE SET
                       url = excluded.url, secret = excluded.secret, events = excluded.events,
                       source = 'config',
                       updated_ts = CASE WHEN url = excluded.url AND secret = excluded.secret
                                          AND events = excluded.events AND source = 'config'
                                         THEN updated_ts ELSE excluded.updated_ts END",
                    params![e.id, e.url, e.secret, events_to_sql(&e.events), now],
                )?;
            }
            tx.commit()?;
            reload(conn, &registry)
        })
        .await
    }

    async fn reload_webhooks(&self) -> Result<(), StoreError> {
        let registry = self.webhooks.clone();
        self.call(move |conn| reload(conn, &registry)).await
    }
}
