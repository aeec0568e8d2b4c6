//! [`ResetStore`] on PostgreSQL. A request holds a transaction-level advisory lock on its
//! address (so the count and the insert of concurrent requests on any node are serialised per
//! address); a reset locks the user row, then the token row.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use switchboard_jobs::enqueue_pg;

use super::{NewPasswordReset, PasswordReset, ResetPassword, ResetRequested, ResetStore};
use crate::store::postgres::{
    rows_to_revoked, user_from_row, user_where, JOBS_SCHEMA, USER_COLUMNS,
};
use crate::store::{to_sql, PgStore, StoreError, UserRecord};

/// First key of the per-address advisory lock (`SBPR` in ASCII); the second is the hash of the
/// address, so different addresses rarely wait on each other.
const RESET_LOCK_CLASS: i32 = 0x5342_5052;

/// The live user of an unspent, unexpired token.
async fn token_user(
    client: &impl GenericClient,
    hash: &[u8],
    now: i64,
) -> Result<Option<UserRecord>, StoreError> {
    let row = client
        .query_opt(
            "SELECT user_id FROM auth.password_resets
             WHERE hash = $1 AND used_at IS NULL AND expires_at > $2",
            &[&hash, &now],
        )
        .await?;
    match row {
        Some(row) => user_where(client, "id", &row.get::<_, String>(0), "").await,
        None => Ok(None),
    }
}

#[async_trait]
impl ResetStore for PgStore {
    async fn request_password_reset(
        &self,
        req: NewPasswordReset,
    ) -> Result<ResetRequested, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&RESET_LOCK_CLASS, &req.email],
        )
        .await?;
        let window_start = to_sql(req.window_start);
        tx.execute(
            "DELETE FROM auth.password_resets WHERE email = $1 AND created_at <= $2",
            &[&req.email, &window_start],
        )
        .await?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM auth.users
             WHERE lower(email) = $1 AND deleted_at IS NULL ORDER BY id COLLATE \"C\" LIMIT 1"
        );
        let user = match tx.query_opt(&sql, &[&req.email]).await? {
            Some(row) => Some(user_from_row(&row)?),
            None => None,
        };
        let count: i64 = tx
            .query_one(
                "SELECT count(*) FROM auth.password_resets WHERE email = $1 AND created_at > $2",
                &[&req.email, &window_start],
            )
            .await?
            .get(0);
        let Some(user) = user else {
            tx.commit().await?;
            return Ok(ResetRequested::NoAccount);
        };
        if count >= i64::from(req.max_in_window) {
            tx.commit().await?;
            return Ok(ResetRequested::Throttled);
        }
        tx.execute(
            "INSERT INTO auth.password_resets (hash, user_id, email, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &&req.hash[..],
                &user.id,
                &req.email,
                &to_sql(req.now),
                &to_sql(req.expires_at),
            ],
        )
        .await?;
        for job in &req.jobs {
            enqueue_pg(&*tx, JOBS_SCHEMA, job).await?;
        }
        tx.commit().await?;
        Ok(ResetRequested::Issued(user))
    }

    async fn password_reset_user(
        &self,
        hash: [u8; 32],
        now: u64,
    ) -> Result<Option<UserRecord>, StoreError> {
        let client = self.pool.get().await?;
        token_user(&client, &hash, to_sql(now)).await
    }

    async fn reset_password(&self, reset: ResetPassword) -> Result<PasswordReset, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let now = to_sql(reset.now);
        // Lock order: the user row first, then their token rows (every change to a user's
        // tokens holds the user row), so two resets of one user queue instead of deadlocking.
        let Some(row) = tx
            .query_opt(
                "SELECT user_id FROM auth.password_resets WHERE hash = $1",
                &[&&reset.hash[..]],
            )
            .await?
        else {
            return Ok(PasswordReset::Invalid);
        };
        let user_id: String = row.get(0);
        let Some(user) = user_where(&tx, "id", &user_id, "FOR UPDATE").await? else {
            return Ok(PasswordReset::Invalid);
        };
        let live = tx
            .query_opt(
                "SELECT 1 FROM auth.password_resets
                 WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 FOR UPDATE",
                &[&&reset.hash[..], &now],
            )
            .await?;
        if live.is_none() {
            return Ok(PasswordReset::Invalid);
        }
        tx.execute(
            "UPDATE auth.users SET password_hash = $1 WHERE id = $2",
            &[&reset.password_hash, &user.id],
        )
        .await?;
        tx.execute(
            "UPDATE auth.password_resets SET used_at = $1
             WHERE user_id = $2 AND used_at IS NULL AND expires_at > $1",
            &[&now, &user.id],
        )
        .await?;
        let rows = tx
            .query(
                "UPDATE auth.sessions SET revoked_at = $1
                 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id, access_exp",
                &[&now, &user.id],
            )
            .await?;
        let ended = rows_to_revoked(&rows)?;
        tx.commit().await?;
        Ok(PasswordReset::Reset {
            user_id: user.id,
            ended,
        })
    }
}
