//! [`SqliteStore`]: the embedded [`AuthStore`] (one SQLite file, WAL mode).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension as _, Row, TransactionBehavior};
use switchboard_jobs::{enqueue_sqlite, JobStore, NewJob, SqliteJobs};
use switchboard_kit::migrate::{Ledger, Schema};

use super::{
    freed_username, from_sql, to_sql, AuthStore, CreateUser, DeleteUser, Deleted, NewSession,
    RevokedSession, RotateOutcome, Rotation, SessionRecord, Sessions, SetEmail, SetRole,
    StoreError, UserKey, UserRecord,
};
use crate::tokens::ROLE_ADMIN;

/// Schema migrations, applied in order by the shared runner (`switchboard_kit::migrate`).
/// Versions are the file-name prefixes.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/auth/sqlite/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/auth/sqlite/0002_user_deletion.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/auth/sqlite/0003_accounts.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/auth/sqlite/0004_jobs.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/auth/sqlite/0005_password_reset.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/auth/sqlite/0006_webhooks.sql"),
    ),
];

/// The auth SQLite schema. Its ledger is `schema_migrations (version, applied_at)`, `applied_at`
/// in Unix seconds; files from before the ledger counted versions in `PRAGMA user_version`,
/// which the runner adopts and keeps in step (so older releases still refuse a newer file).
pub(crate) const SCHEMA: Schema = Schema {
    name: "auth",
    migrations: MIGRATIONS,
    ledger: Ledger {
        table: "schema_migrations",
        applied_column: "applied_at",
        user_version: true,
    },
    // Unused on SQLite.
    lock_key: super::postgres::MIGRATION_LOCK_KEY,
};

/// How long a statement waits for a lock held by another connection to the same file (another
/// process, or a second `Auth` opened on the same directory) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite-backed [`AuthStore`].
///
/// One connection behind a `std::sync::Mutex`, used only inside `spawn_blocking`: SQLite
/// calls block, so they never run on an async worker thread, and the mutex is never held across
/// an `.await`. One connection serialises all auth queries, which is plenty for logins and
/// refreshes (the hot path, token verification, never touches the database) and makes every
/// method trivially atomic.
///
/// A panic while the lock is held poisons it; the poison is ignored because a panicking
/// transaction is rolled back when it is dropped, leaving the database consistent.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// The job queue on a connection of its own to the same file (claims take the file's
    /// write lock with `BEGIN IMMEDIATE`, not this mutex).
    jobs: SqliteJobs,
    /// The webhook endpoints of this file, replaced after each change (see
    /// [`super::WebhookStore`]).
    pub(super) webhooks: switchboard_webhooks::Registry,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, switches it to WAL mode and applies
    /// pending migrations. Also drops expired refresh tokens (a spent one is kept until then
    /// for reuse detection; after that presenting it is merely "unknown").
    ///
    /// # Errors
    /// [`StoreError`] if the file cannot be opened or migrated.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        let now = crate::unix_now();
        let file = path.clone();
        let webhooks = switchboard_webhooks::Registry::new();
        let registry = webhooks.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, StoreError> {
            let path = file;
            // Created 0600 first, so SQLite's -wal and -shm (which copy its mode) are too.
            crate::datadir::secure_file(&path).map_err(StoreError::Io)?;
            let mut conn = Connection::open(&path)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // Safe with WAL: a crash may lose the last commits but never corrupts the file.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            switchboard_kit::migrate::sqlite::migrate(&mut conn, &SCHEMA, to_sql(now))?;
            conn.execute(
                "DELETE FROM refresh_tokens WHERE expires_at < ?1",
                [to_sql(now)],
            )?;
            super::webhooks::sqlite::reload(&conn, &registry)?;
            Ok(conn)
        })
        .await??;
        let jobs = SqliteJobs::open(&path).await.map_err(StoreError::Jobs)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            jobs,
            webhooks,
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await?
    }
}

pub(super) const USER_COLUMNS: &str =
    "id, username, email, role, password_hash, created_at, last_login_at";

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<(UserRecord, i64, Option<i64>)> {
    Ok((
        UserRecord {
            id: row.get(0)?,
            username: row.get(1)?,
            email: row.get(2)?,
            role: row.get(3)?,
            password_hash: row.get(4)?,
            created_at: 0,
            last_login_at: None,
        },
        row.get(5)?,
        row.get(6)?,
    ))
}

/// A row of [`user_from_row`] with its times checked.
pub(super) fn user_times(
    (mut user, created_at, last_login_at): (UserRecord, i64, Option<i64>),
) -> Result<UserRecord, StoreError> {
    user.created_at = from_sql(created_at, "users.created_at")?;
    user.last_login_at = last_login_at
        .map(|t| from_sql(t, "users.last_login_at"))
        .transpose()?;
    Ok(user)
}

pub(super) fn user_where(
    conn: &Connection,
    condition: &str,
    value: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM users WHERE {condition} = ?1 AND deleted_at IS NULL");
    let found = conn
        .prepare_cached(&sql)?
        .query_row([value], user_from_row)
        .optional()?;
    found.map(user_times).transpose()
}

#[async_trait]
impl AuthStore for SqliteStore {
    async fn create_user(
        &self,
        user: UserRecord,
        jobs: Vec<NewJob>,
    ) -> Result<CreateUser, StoreError> {
        let registry = self.webhooks.clone();
        self.call(move |conn| {
            // Immediate, as every write here: the job queue writes the file too.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = tx.execute(
                "INSERT INTO users (id, username, email, role, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (username) DO NOTHING",
                params![
                    user.id,
                    user.username,
                    user.email,
                    user.role,
                    user.password_hash,
                    to_sql(user.created_at)
                ],
            )?;
            if inserted != 1 {
                return Ok(CreateUser::UsernameTaken);
            }
            for job in jobs.iter().chain(&super::registered_jobs(&registry, &user)) {
                enqueue_sqlite(&tx, job)?;
            }
            tx.commit()?;
            Ok(CreateUser::Created)
        })
        .await
    }

    fn job_store(&self) -> Arc<dyn JobStore> {
        Arc::new(self.jobs.clone())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let username = username.to_owned();
        self.call(move |conn| user_where(conn, "username", &username))
            .await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let id = id.to_owned();
        self.call(move |conn| user_where(conn, "id", &id)).await
    }

    async fn create_session(&self, s: NewSession) -> Result<bool, StoreError> {
        self.call(move |conn| {
            // Immediate: a deferred transaction that reads, then writes, fails at once with
            // SQLITE_BUSY (no busy wait) when the job queue's connection wrote in between.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if user_where(&tx, "id", &s.user_id)?.is_none() {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO sessions (id, user_id, created_at, access_exp, user_agent, last_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?3)",
                params![
                    s.id,
                    s.user_id,
                    to_sql(s.created_at),
                    to_sql(s.access_exp),
                    s.user_agent
                ],
            )?;
            tx.execute(
                "UPDATE users SET last_login_at = ?1 WHERE id = ?2",
                params![to_sql(s.created_at), s.user_id],
            )?;
            tx.execute(
                "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    s.refresh.hash,
                    s.id,
                    to_sql(s.created_at),
                    to_sql(s.refresh.expires_at)
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn rotate_refresh(&self, r: Rotation) -> Result<RotateOutcome, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let token: Option<(String, i64, Option<i64>)> = tx
                .query_row(
                    "SELECT session_id, expires_at, used_at FROM refresh_tokens WHERE hash = ?1",
                    [&r.presented],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let Some((session_id, expires_at, used_at)) = token else {
                return Ok(RotateOutcome::Rejected);
            };
            if session_id != r.session_id {
                return Ok(RotateOutcome::Rejected);
            }
            if used_at.is_some() {
                let access_exp = revoke(&tx, &session_id, r.now)?.unwrap_or(0);
                tx.commit()?;
                return Ok(RotateOutcome::Reused { access_exp });
            }
            let (user_id, revoked_at): (String, Option<i64>) = tx.query_row(
                "SELECT user_id, revoked_at FROM sessions WHERE id = ?1",
                [&session_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            if revoked_at.is_some() || from_sql(expires_at, "refresh_tokens.expires_at")? <= r.now {
                return Ok(RotateOutcome::Rejected);
            }
            tx.execute(
                "UPDATE refresh_tokens SET used_at = ?1 WHERE hash = ?2",
                params![to_sql(r.now), r.presented],
            )?;
            tx.execute(
                "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    r.next.hash,
                    session_id,
                    to_sql(r.now),
                    to_sql(r.next.expires_at)
                ],
            )?;
            tx.execute(
                "UPDATE sessions SET access_exp = max(access_exp, ?1), last_seen_at = ?2
                 WHERE id = ?3",
                params![to_sql(r.access_exp), to_sql(r.now), session_id],
            )?;
            // Deletion revokes the sessions first, so this is only a belt and braces check.
            let Some(user) = user_where(&tx, "id", &user_id)? else {
                return Ok(RotateOutcome::Rejected);
            };
            tx.commit()?;
            Ok(RotateOutcome::Rotated(user))
        })
        .await
    }

    async fn revoke_session(&self, session_id: &str, now: u64) -> Result<Option<u64>, StoreError> {
        let session_id = session_id.to_owned();
        self.call(move |conn| revoke(conn, &session_id, now)).await
    }

    async fn delete_user(&self, delete: DeleteUser) -> Result<Deleted, StoreError> {
        let registry = self.webhooks.clone();
        self.call(move |conn| delete_user(conn, &delete, &registry))
            .await
    }

    async fn tombstone_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let username = username.to_owned();
        self.call(move |conn| {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = ?1 AND deleted_at IS NOT NULL"
            );
            let found = conn
                .prepare_cached(&sql)?
                .query_row([username], user_from_row)
                .optional()?;
            found.map(user_times).transpose()
        })
        .await
    }

    async fn set_role(
        &self,
        who: UserKey<'_>,
        role: &str,
        by: Option<&str>,
    ) -> Result<SetRole, StoreError> {
        let (column, value) = who.column();
        let (value, role, by) = (value.to_owned(), role.to_owned(), by.map(str::to_owned));
        self.call(move |conn| {
            // IMMEDIATE: the write lock first, so the caller's role read below is the latest.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(by) = &by {
                let caller = user_where(&tx, "id", by)?;
                if caller.is_none_or(|c| c.role != ROLE_ADMIN) {
                    return Ok(SetRole::NotAdmin);
                }
            }
            tx.execute(
                &format!("UPDATE users SET role = ?1 WHERE {column} = ?2 AND deleted_at IS NULL"),
                params![role, value],
            )?;
            let user = user_where(&tx, column, &value)?;
            tx.commit()?;
            Ok(user.map_or(SetRole::NotFound, SetRole::Updated))
        })
        .await
    }

    async fn list_users(
        &self,
        after: Option<&str>,
        contains: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let (after, contains) = (after.map(str::to_owned), contains.map(str::to_owned));
        self.call(move |conn| {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users
                 WHERE deleted_at IS NULL AND (?1 IS NULL OR id > ?1)
                   AND (?2 IS NULL OR instr(username, ?2) > 0)
                 ORDER BY id LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![after, contains, limit], user_from_row)?;
            rows.map(|row| user_times(row?)).collect()
        })
        .await
    }

    async fn set_email(&self, user_id: &str, email: &str) -> Result<SetEmail, StoreError> {
        let (user_id, email) = (user_id.to_owned(), email.to_owned());
        self.call(move |conn| {
            // One connection serialises every write, so the check and the update cannot race.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if user_where(&tx, "id", &user_id)?.is_none() {
                return Ok(SetEmail::NotFound);
            }
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower(?1)
                                AND id <> ?2 AND deleted_at IS NULL)",
                params![email, user_id],
                |row| row.get(0),
            )?;
            if taken {
                return Ok(SetEmail::Taken);
            }
            tx.execute(
                "UPDATE users SET email = ?1 WHERE id = ?2",
                params![email, user_id],
            )?;
            let user = user_where(&tx, "id", &user_id)?;
            tx.commit()?;
            Ok(user.map_or(SetEmail::NotFound, SetEmail::Updated))
        })
        .await
    }

    async fn set_password(&self, user_id: &str, password_hash: &str) -> Result<bool, StoreError> {
        let (user_id, hash) = (user_id.to_owned(), password_hash.to_owned());
        self.call(move |conn| {
            let changed = conn.execute(
                "UPDATE users SET password_hash = ?1 WHERE id = ?2 AND deleted_at IS NULL",
                params![hash, user_id],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn sessions(
        &self,
        user_id: &str,
        now: u64,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let (user_id, before) = (user_id.to_owned(), before.map(str::to_owned));
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT s.id, s.user_agent, s.created_at, coalesce(s.last_seen_at, s.created_at)
                 FROM sessions s
                 WHERE s.user_id = ?1 AND s.revoked_at IS NULL AND (?2 IS NULL OR s.id < ?2)
                   AND EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id
                               AND t.used_at IS NULL AND t.expires_at > ?3)
                 ORDER BY s.id DESC LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![user_id, before, to_sql(now), limit], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            rows.map(|row| {
                let (id, user_agent, created_at, last_seen_at) = row?;
                Ok(SessionRecord {
                    id,
                    user_agent,
                    created_at: from_sql(created_at, "sessions.created_at")?,
                    last_seen_at: from_sql(last_seen_at, "sessions.last_seen_at")?,
                })
            })
            .collect()
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        which: Sessions,
        now: u64,
    ) -> Result<Vec<RevokedSession>, StoreError> {
        let user_id = user_id.to_owned();
        self.call(move |conn| {
            let (op, sid) = which.id_condition();
            let sql = format!(
                "UPDATE sessions SET revoked_at = ?1
                 WHERE user_id = ?2 AND revoked_at IS NULL AND id {op} ?3
                 RETURNING id, access_exp"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![to_sql(now), user_id, sid], revoked_from_row)?;
            rows.map(|row| revoked_session(row?)).collect()
        })
        .await
    }

    async fn revoked_sessions(&self, exp_after: u64) -> Result<Vec<RevokedSession>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, access_exp FROM sessions
                 WHERE revoked_at IS NOT NULL AND access_exp > ?1",
            )?;
            let rows = stmt.query_map([to_sql(exp_after)], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            rows.map(|row| {
                let (id, access_exp) = row?;
                Ok(RevokedSession {
                    id,
                    access_exp: from_sql(access_exp, "sessions.access_exp")?,
                })
            })
            .collect()
        })
        .await
    }
}

pub(super) fn revoked_from_row(row: &Row<'_>) -> rusqlite::Result<(String, i64)> {
    Ok((row.get(0)?, row.get(1)?))
}

pub(super) fn revoked_session(
    (id, access_exp): (String, i64),
) -> Result<RevokedSession, StoreError> {
    Ok(RevokedSession {
        id,
        access_exp: from_sql(access_exp, "sessions.access_exp")?,
    })
}

/// See [`AuthStore::delete_user`].
fn delete_user(
    conn: &mut Connection,
    d: &DeleteUser,
    registry: &switchboard_webhooks::Registry,
) -> Result<Deleted, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(user) = user_where(&tx, "id", &d.user_id)? else {
        return Ok(Deleted::NotFound);
    };
    if d.refuse_admin && user.role == ROLE_ADMIN {
        return Ok(Deleted::Admin);
    }
    for job in &super::deleted_jobs(registry, &user.id, &user.username) {
        enqueue_sqlite(&tx, job)?;
    }
    let username = if d.free_username {
        freed_username(&user.id)
    } else {
        user.username
    };
    tx.execute(
        "UPDATE users SET deleted_at = ?1, email = '', password_hash = '', username = ?2
         WHERE id = ?3",
        params![to_sql(d.now), username, d.user_id],
    )?;
    tx.execute(
        "DELETE FROM refresh_tokens
         WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?1)",
        [&d.user_id],
    )?;
    let sessions = {
        let mut stmt = tx.prepare(
            "UPDATE sessions SET revoked_at = ?1
             WHERE user_id = ?2 AND revoked_at IS NULL RETURNING id, access_exp",
        )?;
        let rows = stmt.query_map(params![to_sql(d.now), d.user_id], revoked_from_row)?;
        rows.map(|row| revoked_session(row?))
            .collect::<Result<Vec<_>, _>>()?
    };
    tx.commit()?;
    Ok(Deleted::Deleted(sessions))
}

/// Marks a session revoked (keeping an earlier revocation time) and returns its `access_exp`.
fn revoke(conn: &Connection, session_id: &str, now: u64) -> Result<Option<u64>, StoreError> {
    let access_exp: Option<i64> = conn
        .query_row(
            "UPDATE sessions SET revoked_at = coalesce(revoked_at, ?1) WHERE id = ?2
             RETURNING access_exp",
            params![to_sql(now), session_id],
            |row| row.get(0),
        )
        .optional()?;
    access_exp
        .map(|t| from_sql(t, "sessions.access_exp"))
        .transpose()
}
