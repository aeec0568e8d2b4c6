//! [`ResetStore`] on SQLite: one connection serialises every write, so each method's
//! transaction (`BEGIN IMMEDIATE`) sees no concurrent change.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};
use switchboard_jobs::enqueue_sqlite;

use super::{NewPasswordReset, PasswordReset, ResetPassword, ResetRequested, ResetStore};
use crate::store::sqlite::{
    revoked_from_row, revoked_session, user_from_row, user_times, user_where, USER_COLUMNS,
};
use crate::store::{to_sql, SqliteStore, StoreError, UserRecord};

/// The oldest live user whose address is `email` ignoring ASCII case.
fn user_by_email(conn: &Connection, email: &str) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users
         WHERE lower(email) = ?1 AND deleted_at IS NULL ORDER BY id LIMIT 1"
    );
    let found = conn
        .prepare_cached(&sql)?
        .query_row([email], user_from_row)
        .optional()?;
    found.map(user_times).transpose()
}

/// The live user of an unspent, unexpired token.
fn token_user(conn: &Connection, hash: &[u8], now: i64) -> Result<Option<UserRecord>, StoreError> {
    let user_id: Option<String> = conn
        .prepare_cached(
            "SELECT user_id FROM password_resets
             WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        )?
        .query_row(params![hash, now], |row| row.get(0))
        .optional()?;
    match user_id {
        Some(id) => user_where(conn, "id", &id),
        None => Ok(None),
    }
}

#[async_trait]
impl ResetStore for SqliteStore {
    async fn request_password_reset(
        &self,
        req: NewPasswordReset,
    ) -> Result<ResetRequested, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let window_start = to_sql(req.window_start);
            tx.execute(
                "DELETE FROM password_resets WHERE email = ?1 AND created_at <= ?2",
                params![req.email, window_start],
            )?;
            let user = user_by_email(&tx, &req.email)?;
            let count: i64 = tx.query_row(
                "SELECT count(*) FROM password_resets WHERE email = ?1 AND created_at > ?2",
                params![req.email, window_start],
                |row| row.get(0),
            )?;
            let Some(user) = user else {
                tx.commit()?;
                return Ok(ResetRequested::NoAccount);
            };
            if count >= i64::from(req.max_in_window) {
                tx.commit()?;
                return Ok(ResetRequested::Throttled);
            }
            tx.execute(
                "INSERT INTO password_resets (hash, user_id, email, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &req.hash[..],
                    user.id,
                    req.email,
                    to_sql(req.now),
                    to_sql(req.expires_at)
                ],
            )?;
            for job in &req.jobs {
                enqueue_sqlite(&tx, job)?;
            }
            tx.commit()?;
            Ok(ResetRequested::Issued(user))
        })
        .await
    }

    async fn password_reset_user(
        &self,
        hash: [u8; 32],
        now: u64,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.call(move |conn| token_user(conn, &hash, to_sql(now)))
            .await
    }

    async fn reset_password(&self, reset: ResetPassword) -> Result<PasswordReset, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = to_sql(reset.now);
            let Some(user) = token_user(&tx, &reset.hash, now)? else {
                return Ok(PasswordReset::Invalid);
            };
            tx.execute(
                "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                params![reset.password_hash, user.id],
            )?;
            // Spends this token and voids every other unspent one of the user.
            tx.execute(
                "UPDATE password_resets SET used_at = ?1
                 WHERE user_id = ?2 AND used_at IS NULL AND expires_at > ?1",
                params![now, user.id],
            )?;
            let ended = {
                let mut stmt = tx.prepare_cached(
                    "UPDATE sessions SET revoked_at = ?1
                     WHERE user_id = ?2 AND revoked_at IS NULL RETURNING id, access_exp",
                )?;
                let rows = stmt.query_map(params![now, user.id], revoked_from_row)?;
                rows.map(|row| revoked_session(row?))
                    .collect::<Result<Vec<_>, _>>()?
            };
            tx.commit()?;
            Ok(PasswordReset::Reset {
                user_id: user.id,
                ended,
            })
        })
        .await
    }
}
