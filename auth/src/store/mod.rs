//! [`AuthStore`]: persistence of users, sessions and refresh tokens. [`SqliteStore`] (embedded,
//! one file) and [`PgStore`] (PostgreSQL, schema `auth`, shared by every auth node).
//!
//! The store keeps no secrets in the clear: passwords as argon2id PHC strings, refresh tokens as
//! SHA-256 hashes. All times are seconds since the Unix epoch.
//!
//! **Deleted users** are tombstones: the row stays with `deleted_at` set and the e-mail address
//! and password hash wiped, so the username stays reserved (nobody can take over a deleted
//! user's name and appear as the author of their messages) and the user's revoked sessions
//! still load at start. Every lookup ([`AuthStore::user_by_username`], [`AuthStore::user_by_id`])
//! sees live users only; [`AuthStore::tombstone_by_username`] finds the tombstone. When the
//! operator frees deleted usernames ([`DeleteUser::free_username`]), the tombstone's username
//! becomes [`freed_username`] (not a valid username, so nobody can register it) and the name is
//! free for a new account.

mod postgres;
mod reset;
mod sqlite;
pub mod webhooks;

pub use postgres::PgStore;
pub use reset::{NewPasswordReset, PasswordReset, ResetPassword, ResetRequested, ResetStore};
pub use sqlite::SqliteStore;
pub use webhooks::WebhookStore;

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_jobs::{JobStore, NewJob};
use switchboard_protocol::rest::User;

/// Times are u64 in Rust and 64-bit signed integers in both databases; they stay far below
/// `i64::MAX`.
fn to_sql(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// A stored time back as u64; a negative value means the row was written by something else.
fn from_sql(t: i64, column: &'static str) -> Result<u64, StoreError> {
    u64::try_from(t).map_err(|_| StoreError::Corrupt { column })
}

/// The `user.registered` delivery jobs of a new user (none when no endpoint receives it).
pub(crate) fn registered_jobs(
    registry: &switchboard_webhooks::Registry,
    user: &UserRecord,
) -> Vec<NewJob> {
    use switchboard_webhooks::EventType;
    registry.jobs_for(
        EventType::UserRegistered,
        &user.id,
        switchboard_jobs::clock::now_ms(),
        || serde_json::json!({"user_id": user.id, "username": user.username, "email": user.email}),
    )
}

/// The `user.deleted` delivery jobs of a deleted user (`username` as it was before the
/// deletion).
pub(crate) fn deleted_jobs(
    registry: &switchboard_webhooks::Registry,
    user_id: &str,
    username: &str,
) -> Vec<NewJob> {
    use switchboard_webhooks::EventType;
    registry.jobs_for(
        EventType::UserDeleted,
        user_id,
        switchboard_jobs::clock::now_ms(),
        || serde_json::json!({"user_id": user_id, "username": username}),
    )
}

/// A stored user, including its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// uuid v7.
    pub id: String,
    /// Unique, already validated.
    pub username: String,
    /// Already validated.
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Registration time.
    pub created_at: u64,
    /// Time of the last successful login, if any.
    pub last_login_at: Option<u64>,
}

impl UserRecord {
    /// The API view of the user, with the e-mail address (for the user themself only).
    pub fn to_user(&self) -> User {
        User {
            id: self.id.clone(),
            username: self.username.clone(),
            email: Some(self.email.clone()),
            role: self.role.clone(),
            deleted: false,
        }
    }
}

/// A refresh token about to be stored.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// SHA-256 of the whole token string.
    pub hash: [u8; 32],
    /// After this it is rejected.
    pub expires_at: u64,
}

/// A session about to be created (at login), with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// uuid v7; the `sid` claim.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Login time.
    pub created_at: u64,
    /// `exp` of the access token issued with it.
    pub access_exp: u64,
    /// The first refresh token.
    pub refresh: NewRefreshToken,
    /// `User-Agent` of the login request, already cut to
    /// [`MAX_USER_AGENT_BYTES`](switchboard_protocol::limits::MAX_USER_AGENT_BYTES).
    pub user_agent: Option<String>,
}

/// A refresh: spend `presented`, store `next` in its place.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The session id written in the presented token.
    pub session_id: String,
    /// SHA-256 of the presented token.
    pub presented: [u8; 32],
    /// The replacement.
    pub next: NewRefreshToken,
    /// `exp` of the access token that will be issued if the rotation succeeds.
    pub access_exp: u64,
    /// Current time.
    pub now: u64,
}

/// What a [`Rotation`] did. Expected outcomes, not errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The presented token was live: it is now spent, `next` is stored, and the session's
    /// `access_exp` is raised. Issue tokens for this user.
    Rotated(UserRecord),
    /// The presented token had already been spent: the session is now revoked (persisted).
    /// `access_exp` is the latest `exp` of any access token of the session, so the caller can
    /// put the session in the in-memory revocation set until then.
    Reused {
        /// Latest access-token `exp` of the session.
        access_exp: u64,
    },
    /// Unknown, expired, belonging to another session, or the session is already revoked.
    /// Nothing changed.
    Rejected,
}

/// A revoked session whose access tokens may still be unexpired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSession {
    /// The session id.
    pub id: String,
    /// Latest access-token `exp` of the session.
    pub access_exp: u64,
}

/// Outcome of [`AuthStore::create_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateUser {
    /// Stored.
    Created,
    /// The username exists; nothing stored.
    UsernameTaken,
}

/// The username a tombstone takes when its name is freed: `~` is no username character, so
/// nobody can register it, and the id keeps it unique.
pub fn freed_username(user_id: &str) -> String {
    format!("~{user_id}")
}

/// What [`AuthStore::delete_user`] is asked to do.
#[derive(Debug, Clone)]
pub struct DeleteUser {
    /// The live user to delete.
    pub user_id: String,
    /// Deletion time (`deleted_at`, and `revoked_at` of the sessions it revokes).
    pub now: u64,
    /// Refuse ([`Deleted::Admin`]) when the user is an admin (every deletion over HTTP).
    pub refuse_admin: bool,
    /// Free the username for a new account (`--free-deleted-usernames`).
    pub free_username: bool,
}

/// Outcome of [`AuthStore::delete_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Deleted. The sessions this revoked (those not revoked before), for the caller to revoke
    /// in memory and announce: their sockets may be open whatever their tokens' `exp`.
    Deleted(Vec<RevokedSession>),
    /// No live user with this id; nothing changed.
    NotFound,
    /// The user is an admin and `refuse_admin` was set; nothing changed.
    Admin,
}

/// Outcome of [`AuthStore::set_role`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRole {
    /// Stored; the updated user.
    Updated(UserRecord),
    /// No live user is `who`; nothing changed.
    NotFound,
    /// `by` is no longer a live admin; nothing changed.
    NotAdmin,
}

/// Outcome of [`AuthStore::set_email`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetEmail {
    /// Stored; the updated user.
    Updated(UserRecord),
    /// No live user with this id.
    NotFound,
    /// Another live user has this address (compared ignoring ASCII case); nothing changed.
    Taken,
}

/// How a live user is named: by id (the API) or by username (the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey<'a> {
    /// The user id.
    Id(&'a str),
    /// The username.
    Username(&'a str),
}

impl UserKey<'_> {
    /// The column of `users` this key is compared with, and the value.
    pub(crate) fn column(&self) -> (&'static str, &str) {
        match self {
            Self::Id(id) => ("id", id),
            Self::Username(name) => ("username", name),
        }
    }
}

/// Which sessions of a user [`AuthStore::revoke_user_sessions`] revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sessions {
    /// This one session (if it is the user's and not revoked yet).
    One(String),
    /// Every session of the user but this one.
    AllBut(String),
    /// Every session of the user.
    All,
}

impl Sessions {
    /// The condition on `sessions.id` (`=` or `<>`) and its operand. [`Sessions::All`] is
    /// "every id but the empty one": no session id is empty (they are uuids), and one statement
    /// shape serves all three.
    pub(crate) fn id_condition(&self) -> (&'static str, &str) {
        match self {
            Self::One(sid) => ("=", sid),
            Self::AllBut(sid) => ("<>", sid),
            Self::All => ("<>", ""),
        }
    }
}

/// A live session as its owner sees it in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub id: String,
    /// `User-Agent` of the login.
    pub user_agent: Option<String>,
    /// Login time.
    pub created_at: u64,
    /// Last login or refresh.
    pub last_seen_at: u64,
}

/// Persistence of the auth service.
///
/// **Contract:** each method is atomic. [`rotate_refresh`] in particular spends a token and
/// stores its replacement in one transaction, so two concurrent refreshes with the same token
/// cannot both succeed: one rotates, the other sees a spent token (and revokes the session, as
/// reuse detection demands).
///
/// [`rotate_refresh`]: AuthStore::rotate_refresh
///
/// Password-reset tokens are the supertrait [`ResetStore`]'s, webhook endpoints
/// [`WebhookStore`]'s.
///
/// **User events:** [`create_user`] enqueues a `user.registered` delivery job per endpoint of
/// the store's registry ([`WebhookStore::webhooks`]) that receives it (data `{user_id,
/// username, email}`), and [`delete_user`] a `user.deleted` one (`{user_id, username}`), in
/// their transactions: the jobs exist exactly when the change committed.
///
/// [`create_user`]: AuthStore::create_user
/// [`delete_user`]: AuthStore::delete_user
#[async_trait]
pub trait AuthStore: ResetStore + WebhookStore + Send + Sync + 'static {
    /// Stores a user unless the username is taken, and enqueues `jobs` (the welcome mail) and
    /// the `user.registered` deliveries in the same transaction: they exist exactly when the
    /// user was created.
    async fn create_user(
        &self,
        user: UserRecord,
        jobs: Vec<NewJob>,
    ) -> Result<CreateUser, StoreError>;

    /// The job queue in this store (tables `jobs` and `job_lanes`), for the workers and the
    /// admin routes.
    fn job_store(&self) -> Arc<dyn JobStore>;

    /// The user with this username.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The user with this id.
    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Creates a session with its first refresh token. Returns `false`, storing nothing, when
    /// the user no longer exists (deleted while logging in).
    async fn create_session(&self, session: NewSession) -> Result<bool, StoreError>;

    /// Spends a refresh token and stores its replacement, or detects reuse (see
    /// [`RotateOutcome`]).
    async fn rotate_refresh(&self, rotation: Rotation) -> Result<RotateOutcome, StoreError>;

    /// Marks the session revoked (idempotent; the first revocation time is kept). Its refresh
    /// tokens stop working. Returns the session's latest access-token `exp`, or `None` if there
    /// is no such session.
    async fn revoke_session(&self, session_id: &str, now: u64) -> Result<Option<u64>, StoreError>;

    /// Revoked sessions whose latest access-token `exp` is after `exp_after`.
    async fn revoked_sessions(&self, exp_after: u64) -> Result<Vec<RevokedSession>, StoreError>;

    /// Deletes a live user: leaves the tombstone described in the module docs (freeing the
    /// username if asked), revokes every session of theirs and drops their refresh tokens, in
    /// one transaction; or refuses an admin (see [`DeleteUser`]).
    async fn delete_user(&self, delete: DeleteUser) -> Result<Deleted, StoreError>;

    /// The tombstone of a deleted user who still holds `username` (usernames not freed).
    async fn tombstone_by_username(&self, username: &str)
        -> Result<Option<UserRecord>, StoreError>;

    /// Sets the role of the live user `who`, if `by` (the id of the admin asking; `None` for
    /// the operator's command line) is a live admin **at that moment**: the check and the
    /// change are one transaction that holds both rows, so two admins demoting each other at
    /// once cannot both succeed (the second finds its caller demoted).
    async fn set_role(
        &self,
        who: UserKey<'_>,
        role: &str,
        by: Option<&str>,
    ) -> Result<SetRole, StoreError>;

    /// At most `limit` live users with an id above `after` (byte order; ids are uuid v7, so
    /// this is registration order), in that order; with `contains`, only those whose username
    /// contains it.
    async fn list_users(
        &self,
        after: Option<&str>,
        contains: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError>;

    /// Changes the e-mail address of a live user, unless another live user has it.
    async fn set_email(&self, user_id: &str, email: &str) -> Result<SetEmail, StoreError>;

    /// Replaces the password hash of a live user; `false` if there is none.
    async fn set_password(&self, user_id: &str, password_hash: &str) -> Result<bool, StoreError>;

    /// At most `limit` live sessions of the user (not revoked, with an unspent refresh token
    /// that expires after `now`) with an id below `before`, newest (highest id) first.
    async fn sessions(
        &self,
        user_id: &str,
        now: u64,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Revokes sessions of the user (see [`Sessions`]) that are not revoked yet, at `now`, in
    /// one statement. Returns those it revoked (empty if none matched, e.g. a session of
    /// another user).
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        which: Sessions,
        now: u64,
    ) -> Result<Vec<RevokedSession>, StoreError>;
}

/// A storage failure: `unavailable` to the client when the database cannot be reached
/// ([`StoreError::is_unavailable`]), otherwise an internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (or the URL is malformed).
    #[error("postgres")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had within the pool's timeouts.
    #[error("postgres connection pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The PostgreSQL pool could not be built from the URL.
    #[error("cannot create the postgres connection pool")]
    CreatePool(#[from] deadpool_postgres::CreatePoolError),
    /// The schema could not be brought up to date, or the database was migrated by a newer
    /// release than this one (`MigrateError::SchemaTooNew`): refuse to touch it.
    #[error("migration")]
    Migration(#[from] switchboard_kit::migrate::MigrateError),
    /// The job queue's connection could not be opened.
    #[error("job queue")]
    Jobs(#[source] switchboard_jobs::JobError),
    /// The database file could not be created private (mode 0600) before opening it.
    #[error("cannot create the database file")]
    Io(#[source] std::io::Error),
    /// The blocking task running the query panicked.
    #[error("database task failed")]
    Task(#[from] tokio::task::JoinError),
    /// A stored value does not fit its type (e.g. a negative time).
    #[error("corrupt value in column {column}")]
    Corrupt {
        /// The column.
        column: &'static str,
    },
}

impl StoreError {
    /// Whether the database is unreachable right now (rather than the request or the data
    /// being at fault): a connection could not be had, or it broke mid-query. The client may
    /// retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Postgres(e) => e.is_closed(),
            Self::Migration(e) => e.is_unavailable(),
            _ => false,
        }
    }
}
