//! [`PgStore`]: the shared [`AuthStore`] on PostgreSQL (deadpool-postgres), tables in schema
//! `auth`, so that every auth node (and every hub with in-process auth) uses the same users and
//! sessions, and the auth tables can live in the hub's database without clashing with it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts,
};
use switchboard_jobs::{enqueue_pg, JobStore, NewJob, PgJobs};
use switchboard_kit::migrate::{Ledger, Schema};
use tokio_postgres::NoTls;

use super::{
    freed_username, from_sql, to_sql, AuthStore, CreateUser, DeleteUser, Deleted, NewSession,
    RevokedSession, RotateOutcome, Rotation, SessionRecord, Sessions, SetEmail, SetRole,
    StoreError, UserKey, UserRecord,
};
use crate::tokens::ROLE_ADMIN;

/// The schema of the job queue's tables (`auth.jobs`, `auth.job_lanes`).
pub(crate) const JOBS_SCHEMA: &str = "auth";

/// Key of the transaction-level advisory lock taken by [`AuthStore::set_email`] (`SBAUTHEM` in
/// ASCII), so that two changes to the same address cannot both pass the "taken" check.
const EMAIL_LOCK_KEY: i64 = 0x5342_4155_5448_454D;

/// Schema migrations, applied in order by the shared runner (`switchboard_kit::migrate`).
/// Versions are the file-name prefixes.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/auth/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/auth/postgres/0002_accounts.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/auth/postgres/0003_jobs.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/auth/postgres/0004_password_reset.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/auth/postgres/0005_webhooks.sql"),
    ),
];

/// Key of the transaction-level advisory lock held while migrating: `SBAUTHM1` in ASCII. It
/// serialises auth nodes (and hubs with in-process auth) that start together on a fresh
/// database. It must differ from the hub's migration lock key, or an auth node and a hub node
/// sharing a database would wait on each other for no reason.
pub const MIGRATION_LOCK_KEY: i64 = 0x5342_4155_5448_4D31;

/// The auth PostgreSQL schema: tables and ledger (`auth.schema_migrations (version,
/// applied_at)`, `applied_at` in Unix seconds) in schema `auth`.
pub(crate) const SCHEMA: Schema = Schema {
    name: "auth",
    migrations: MIGRATIONS,
    ledger: Ledger {
        table: "auth.schema_migrations",
        applied_column: "applied_at",
        user_version: false,
    },
    lock_key: MIGRATION_LOCK_KEY,
};

/// Most connections per pool. Auth queries are short (token verification never touches the
/// database), so a few connections serve many logins; the argon2 semaphore is the real bound.
const POOL_SIZE: usize = 8;

/// How long a query waits for a connection (and a new connection for the server) before it
/// fails with [`StoreError::Pool`], which the client sees as `503 unavailable`.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL-backed [`AuthStore`].
///
/// **Atomicity:** every method runs in one transaction. Where two requests can race on the
/// same rows, the locks are taken in one order (user, then refresh token, then session):
/// [`AuthStore::rotate_refresh`] locks the presented token `FOR UPDATE` before touching the
/// session, so of two concurrent refreshes with one token exactly one rotates and the other
/// sees a spent token; [`AuthStore::create_session`] updates the user row (its last login)
/// first, so a login racing an account deletion either finishes first (and its session is
/// revoked by the deletion) or sees the user gone, and concurrent logins of one user queue on
/// that row instead of deadlocking.
#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: Pool,
    /// The job queue in schema `auth`, on the same pool.
    jobs: PgJobs,
    /// The webhook endpoints of the database, replaced after each change and on
    /// [`super::WebhookStore::reload_webhooks`].
    pub(super) webhooks: switchboard_webhooks::Registry,
    /// Held while the registry is reloaded (read and replaced).
    pub(super) webhook_reload: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), applies pending migrations under the
    /// advisory lock [`MIGRATION_LOCK_KEY`], and drops expired refresh tokens.
    ///
    /// # Errors
    /// [`StoreError`] if the URL is malformed, the server cannot be reached, a migration fails,
    /// or the schema is newer than this binary knows ([`StoreError::Migration`] with
    /// `MigrateError::SchemaTooNew`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut pool_cfg = PoolConfig::new(POOL_SIZE);
        pool_cfg.timeouts = Timeouts {
            wait: Some(POOL_TIMEOUT),
            create: Some(POOL_TIMEOUT),
            recycle: Some(POOL_TIMEOUT),
        };
        let cfg = deadpool_postgres::Config {
            url: Some(url.to_owned()),
            manager: Some(ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            }),
            pool: Some(pool_cfg),
            ..deadpool_postgres::Config::default()
        };
        let pool = cfg.create_pool(Some(Runtime::Tokio1), NoTls)?;
        let store = Self {
            jobs: PgJobs::new(pool.clone(), JOBS_SCHEMA),
            pool,
            webhooks: switchboard_webhooks::Registry::new(),
            webhook_reload: Arc::new(tokio::sync::Mutex::new(())),
        };
        store.migrate().await?;
        store
            .pool
            .get()
            .await?
            .execute(
                "DELETE FROM auth.refresh_tokens WHERE expires_at < $1",
                &[&to_sql(crate::unix_now())],
            )
            .await?;
        store.reload_registry().await?;
        Ok(store)
    }

    /// Applies pending migrations under [`MIGRATION_LOCK_KEY`].
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let now = to_sql(crate::unix_now());
        switchboard_kit::migrate::postgres::migrate(&mut client, &SCHEMA, now).await?;
        Ok(())
    }
}

/// The columns [`user_from_row`] reads, in order.
pub(super) const USER_COLUMNS: &str =
    "id, username, email, role, password_hash, created_at, last_login_at";

pub(super) fn user_from_row(row: &tokio_postgres::Row) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.get(0),
        username: row.get(1),
        email: row.get(2),
        role: row.get(3),
        password_hash: row.get(4),
        created_at: from_sql(row.get(5), "users.created_at")?,
        last_login_at: row
            .get::<_, Option<i64>>(6)
            .map(|t| from_sql(t, "users.last_login_at"))
            .transpose()?,
    })
}

/// The live user whose `column` equals `value`; `lock` is appended to the query (e.g.
/// `FOR SHARE`).
pub(super) async fn user_where(
    client: &impl GenericClient,
    column: &str,
    value: &str,
    lock: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM auth.users WHERE {column} = $1 AND deleted_at IS NULL {lock}"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let Some(row) = client.query_opt(&stmt, &[&value]).await? else {
        return Ok(None);
    };
    user_from_row(&row).map(Some)
}

pub(super) fn rows_to_revoked(
    rows: &[tokio_postgres::Row],
) -> Result<Vec<RevokedSession>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(RevokedSession {
                id: row.get(0),
                access_exp: from_sql(row.get(1), "sessions.access_exp")?,
            })
        })
        .collect()
}

/// Marks a session revoked (keeping an earlier revocation time) and returns its `access_exp`.
async fn revoke(
    client: &impl GenericClient,
    session_id: &str,
    now: u64,
) -> Result<Option<u64>, StoreError> {
    let row = client
        .query_opt(
            "UPDATE auth.sessions SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2
             RETURNING access_exp",
            &[&to_sql(now), &session_id],
        )
        .await?;
    row.map(|r| from_sql(r.get(0), "sessions.access_exp"))
        .transpose()
}

#[async_trait]
impl AuthStore for PgStore {
    async fn create_user(
        &self,
        user: UserRecord,
        jobs: Vec<NewJob>,
    ) -> Result<CreateUser, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .execute(
                "INSERT INTO auth.users (id, username, email, role, password_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (username) DO NOTHING",
                &[
                    &user.id,
                    &user.username,
                    &user.email,
                    &user.role,
                    &user.password_hash,
                    &to_sql(user.created_at),
                ],
            )
            .await?;
        if inserted != 1 {
            return Ok(CreateUser::UsernameTaken);
        }
        for job in jobs
            .iter()
            .chain(&super::registered_jobs(&self.webhooks, &user))
        {
            enqueue_pg(&*tx, JOBS_SCHEMA, job).await?;
        }
        tx.commit().await?;
        Ok(CreateUser::Created)
    }

    fn job_store(&self) -> Arc<dyn JobStore> {
        Arc::new(self.jobs.clone())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        user_where(&self.pool.get().await?, "username", username, "").await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        user_where(&self.pool.get().await?, "id", id, "").await
    }

    async fn create_session(&self, s: NewSession) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Locks the user row first (lock order) and checks that the user is live, in one step;
        // concurrent logins of one user queue here rather than upgrading shared locks (which
        // would deadlock).
        let live = tx
            .execute(
                "UPDATE auth.users SET last_login_at = $1 WHERE id = $2 AND deleted_at IS NULL",
                &[&to_sql(s.created_at), &s.user_id],
            )
            .await?;
        if live == 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO auth.sessions (id, user_id, created_at, access_exp, user_agent, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $3)",
            &[
                &s.id,
                &s.user_id,
                &to_sql(s.created_at),
                &to_sql(s.access_exp),
                &s.user_agent,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO auth.refresh_tokens (hash, session_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
            &[
                &&s.refresh.hash[..],
                &s.id,
                &to_sql(s.created_at),
                &to_sql(s.refresh.expires_at),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_refresh(&self, r: Rotation) -> Result<RotateOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let token = tx
            .query_opt(
                "SELECT session_id, expires_at, used_at FROM auth.refresh_tokens
                 WHERE hash = $1 FOR UPDATE",
                &[&&r.presented[..]],
            )
            .await?;
        let Some(token) = token else {
            return Ok(RotateOutcome::Rejected);
        };
        let (session_id, expires_at, used_at): (String, i64, Option<i64>) =
            (token.get(0), token.get(1), token.get(2));
        if session_id != r.session_id {
            return Ok(RotateOutcome::Rejected);
        }
        if used_at.is_some() {
            let access_exp = revoke(&tx, &session_id, r.now).await?.unwrap_or(0);
            tx.commit().await?;
            return Ok(RotateOutcome::Reused { access_exp });
        }
        let session = tx
            .query_one(
                "SELECT user_id, revoked_at FROM auth.sessions WHERE id = $1",
                &[&session_id],
            )
            .await?;
        let (user_id, revoked_at): (String, Option<i64>) = (session.get(0), session.get(1));
        if revoked_at.is_some() || from_sql(expires_at, "refresh_tokens.expires_at")? <= r.now {
            return Ok(RotateOutcome::Rejected);
        }
        tx.execute(
            "UPDATE auth.refresh_tokens SET used_at = $1 WHERE hash = $2",
            &[&to_sql(r.now), &&r.presented[..]],
        )
        .await?;
        tx.execute(
            "INSERT INTO auth.refresh_tokens (hash, session_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
            &[
                &&r.next.hash[..],
                &session_id,
                &to_sql(r.now),
                &to_sql(r.next.expires_at),
            ],
        )
        .await?;
        tx.execute(
            "UPDATE auth.sessions SET access_exp = greatest(access_exp, $1), last_seen_at = $2
             WHERE id = $3",
            &[&to_sql(r.access_exp), &to_sql(r.now), &session_id],
        )
        .await?;
        // Deletion revokes the sessions first, so this is only a belt and braces check.
        let Some(user) = user_where(&tx, "id", &user_id, "").await? else {
            return Ok(RotateOutcome::Rejected);
        };
        tx.commit().await?;
        Ok(RotateOutcome::Rotated(user))
    }

    async fn revoke_session(&self, session_id: &str, now: u64) -> Result<Option<u64>, StoreError> {
        revoke(&self.pool.get().await?, session_id, now).await
    }

    async fn revoked_sessions(&self, exp_after: u64) -> Result<Vec<RevokedSession>, StoreError> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT id, access_exp FROM auth.sessions
                 WHERE revoked_at IS NOT NULL AND access_exp > $1",
                &[&to_sql(exp_after)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RevokedSession {
                    id: row.get(0),
                    access_exp: from_sql(row.get(1), "sessions.access_exp")?,
                })
            })
            .collect()
    }

    async fn delete_user(&self, d: DeleteUser) -> Result<Deleted, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Lock order as documented on the type: user row, then tokens, then sessions.
        let Some(user) = user_where(&tx, "id", &d.user_id, "FOR UPDATE").await? else {
            return Ok(Deleted::NotFound);
        };
        if d.refuse_admin && user.role == ROLE_ADMIN {
            return Ok(Deleted::Admin);
        }
        for job in &super::deleted_jobs(&self.webhooks, &user.id, &user.username) {
            enqueue_pg(&*tx, JOBS_SCHEMA, job).await?;
        }
        let username = if d.free_username {
            freed_username(&user.id)
        } else {
            user.username
        };
        tx.execute(
            "UPDATE auth.users SET deleted_at = $1, email = '', password_hash = '', username = $2
             WHERE id = $3",
            &[&to_sql(d.now), &username, &d.user_id],
        )
        .await?;
        tx.execute(
            "DELETE FROM auth.refresh_tokens
             WHERE session_id IN (SELECT id FROM auth.sessions WHERE user_id = $1)",
            &[&d.user_id],
        )
        .await?;
        let rows = tx
            .query(
                "UPDATE auth.sessions SET revoked_at = $1
                 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id, access_exp",
                &[&to_sql(d.now), &d.user_id],
            )
            .await?;
        let sessions = rows_to_revoked(&rows)?;
        tx.commit().await?;
        Ok(Deleted::Deleted(sessions))
    }

    async fn tombstone_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM auth.users WHERE username = $1 AND deleted_at IS NOT NULL"
        );
        let row = self.pool.get().await?.query_opt(&sql, &[&username]).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn set_role(
        &self,
        who: UserKey<'_>,
        role: &str,
        by: Option<&str>,
    ) -> Result<SetRole, StoreError> {
        let (column, value) = who.column();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if let Some(by) = by {
            // Both rows locked in id order in one statement (no deadlock between two admins
            // changing each other), then the caller's role read as it is now.
            let sql = format!(
                "SELECT id, role FROM auth.users
                 WHERE deleted_at IS NULL AND (id = $1 OR {column} = $2)
                 ORDER BY id COLLATE \"C\" FOR UPDATE"
            );
            let rows = tx.query(&sql, &[&by, &value]).await?;
            let caller_is_admin = rows
                .iter()
                .any(|row| row.get::<_, &str>(0) == by && row.get::<_, &str>(1) == ROLE_ADMIN);
            if !caller_is_admin {
                return Ok(SetRole::NotAdmin);
            }
        }
        let sql = format!(
            "UPDATE auth.users SET role = $1 WHERE {column} = $2 AND deleted_at IS NULL
             RETURNING {USER_COLUMNS}"
        );
        let row = tx.query_opt(&sql, &[&role, &value]).await?;
        let user = row.as_ref().map(user_from_row).transpose()?;
        tx.commit().await?;
        Ok(user.map_or(SetRole::NotFound, SetRole::Updated))
    }

    async fn list_users(
        &self,
        after: Option<&str>,
        contains: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        // `COLLATE "C"`: byte order, as in SQLite, whatever the database's locale.
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM auth.users
             WHERE deleted_at IS NULL
               AND ($1::text IS NULL OR id COLLATE \"C\" > $1::text)
               AND ($2::text IS NULL OR strpos(username, $2::text) > 0)
             ORDER BY id COLLATE \"C\" LIMIT $3"
        );
        let rows = self
            .pool
            .get()
            .await?
            .query(&sql, &[&after, &contains, &i64::from(limit)])
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_email(&self, user_id: &str, email: &str) -> Result<SetEmail, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Serialises changes of e-mail addresses, so two cannot both see an address free.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EMAIL_LOCK_KEY])
            .await?;
        if user_where(&tx, "id", user_id, "FOR UPDATE")
            .await?
            .is_none()
        {
            return Ok(SetEmail::NotFound);
        }
        let taken: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM auth.users WHERE lower(email) = lower($1)
                                AND id <> $2 AND deleted_at IS NULL)",
                &[&email, &user_id],
            )
            .await?
            .get(0);
        if taken {
            return Ok(SetEmail::Taken);
        }
        let sql =
            format!("UPDATE auth.users SET email = $1 WHERE id = $2 RETURNING {USER_COLUMNS}");
        let row = tx.query_one(&sql, &[&email, &user_id]).await?;
        let user = user_from_row(&row)?;
        tx.commit().await?;
        Ok(SetEmail::Updated(user))
    }

    async fn set_password(&self, user_id: &str, password_hash: &str) -> Result<bool, StoreError> {
        let changed = self
            .pool
            .get()
            .await?
            .execute(
                "UPDATE auth.users SET password_hash = $1 WHERE id = $2 AND deleted_at IS NULL",
                &[&password_hash, &user_id],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn sessions(
        &self,
        user_id: &str,
        now: u64,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT s.id, s.user_agent, s.created_at, coalesce(s.last_seen_at, s.created_at)
                 FROM auth.sessions s
                 WHERE s.user_id = $1 AND s.revoked_at IS NULL
                   AND ($2::text IS NULL OR s.id COLLATE \"C\" < $2::text)
                   AND EXISTS (SELECT 1 FROM auth.refresh_tokens t WHERE t.session_id = s.id
                               AND t.used_at IS NULL AND t.expires_at > $3)
                 ORDER BY s.id COLLATE \"C\" DESC LIMIT $4",
                &[&user_id, &before, &to_sql(now), &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SessionRecord {
                    id: row.get(0),
                    user_agent: row.get(1),
                    created_at: from_sql(row.get(2), "sessions.created_at")?,
                    last_seen_at: from_sql(row.get(3), "sessions.last_seen_at")?,
                })
            })
            .collect()
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        which: Sessions,
        now: u64,
    ) -> Result<Vec<RevokedSession>, StoreError> {
        let (op, sid) = which.id_condition();
        let sql = format!(
            "UPDATE auth.sessions SET revoked_at = $1
             WHERE user_id = $2 AND revoked_at IS NULL AND id {op} $3
             RETURNING id, access_exp"
        );
        let rows = self
            .pool
            .get()
            .await?
            .query(&sql, &[&to_sql(now), &user_id, &sid])
            .await?;
        rows_to_revoked(&rows)
    }
}
