//! The `admin` subcommand of `switchboard-auth` and of the hub binary (embedded auth): making
//! and unmaking admins from the command line. **The first admin is made here only:** no route
//! creates an account with the admin role, and the one route that changes roles
//! (`PUT /v1/admin/users/{id}/role`) needs an admin already, so a leaked user token or a bug in a
//! non-admin handler cannot grant admin rights; the first of them comes from someone who can
//! reach the database (the operator).
//!
//! - `admin create USERNAME --email E [--password-stdin]`: a **new** account with the admin
//!   role (the registration rules apply; an existing username is refused: use `promote`).
//! - `admin promote USERNAME` / `admin demote USERNAME`: changes the role of a live account.
//!
//! The command opens the auth store directly (SQLite in the data dir, or PostgreSQL with
//! `--database-url`), beside a running server if there is one. A role change here reaches the
//! user's tokens at their next refresh (at most the access-token lifetime later); the admin
//! routes of auth read the stored role, so they see it at once. (A demotion over HTTP also
//! ends the user's sessions, so it applies everywhere at once; see `accounts`.)

use std::io::{BufRead, IsTerminal as _};
use std::path::Path;
use std::sync::Arc;

use crate::error::AuthError;
use crate::password::Passwords;
use crate::store::{AuthStore, CreateUser, PgStore, SetRole, SqliteStore, UserKey, UserRecord};
use crate::tokens::{ROLE_ADMIN, ROLE_USER};
use crate::{datadir, unix_now, validate, DATABASE_FILE};

/// `admin ...`: what to do.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AdminCommand {
    /// Creates a new account with the admin role. The password is read from the terminal (twice,
    /// without echo) or, with --password-stdin, from the first line of standard input.
    Create {
        /// The new account's username (3-32 of a-z 0-9 _ . -).
        username: String,
        /// The new account's e-mail address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Gives an existing account the admin role.
    Promote {
        /// The account's username.
        username: String,
    },
    /// Gives an admin account the user role again.
    Demote {
        /// The account's username.
        username: String,
    },
}

/// Where the accounts are.
#[derive(Debug, Clone, Copy)]
pub struct StoreLocation<'a> {
    /// The data directory (SQLite `auth.db` in it without `database_url`).
    pub data_dir: &'a Path,
    /// PostgreSQL URL (schema `auth`), if the accounts live there.
    pub database_url: Option<&'a str>,
}

/// Runs `command` against the store at `at`; `input` is standard input (for
/// `--password-stdin`). Returns what to print on success.
///
/// # Errors
/// [`AuthError::BadRequest`] for an invalid username, e-mail or password, or a missing password;
/// [`AuthError::UsernameTaken`] when `create` names an existing (or reserved) username;
/// [`AuthError::UserNotFound`] when `promote` or `demote` names no live account; store,
/// data-dir and hashing failures as they come.
pub async fn run(
    command: &AdminCommand,
    at: StoreLocation<'_>,
    input: &mut dyn BufRead,
) -> Result<String, AuthError> {
    match command {
        AdminCommand::Create {
            username,
            email,
            password_stdin,
        } => {
            // Read and checked before opening anything, so a prompt is not kept waiting on a
            // migration and a bad input changes nothing.
            let password = read_password(*password_stdin, input)?;
            validate::username(username).map_err(AuthError::BadRequest)?;
            validate::email(email).map_err(AuthError::BadRequest)?;
            validate::password(&password).map_err(AuthError::BadRequest)?;
            let store = open_store(at).await?;
            // One slot and no queue: this process hashes one password.
            let passwords = Passwords::new(1, 0).await?;
            let user = UserRecord {
                id: uuid::Uuid::now_v7().to_string(),
                username: username.clone(),
                email: email.clone(),
                role: ROLE_ADMIN.to_owned(),
                password_hash: passwords.hash(password).await?,
                created_at: unix_now(),
                last_login_at: None,
            };
            // An admin made on the command line gets no welcome mail.
            match store.create_user(user.clone(), Vec::new()).await? {
                CreateUser::Created => {
                    Ok(format!("created admin {} (id {})", user.username, user.id))
                }
                CreateUser::UsernameTaken => Err(AuthError::UsernameTaken),
            }
        }
        AdminCommand::Promote { username } => {
            set_role(&*open_store(at).await?, username, ROLE_ADMIN).await
        }
        AdminCommand::Demote { username } => {
            set_role(&*open_store(at).await?, username, ROLE_USER).await
        }
    }
}

async fn set_role(store: &dyn AuthStore, username: &str, role: &str) -> Result<String, AuthError> {
    match store
        .set_role(UserKey::Username(username), role, None)
        .await?
    {
        SetRole::Updated(user) => Ok(format!("{} is now {role} (id {})", user.username, user.id)),
        SetRole::NotFound => Err(AuthError::UserNotFound),
        // Only with a caller, and the command line has none.
        SetRole::NotAdmin => Err(AuthError::Forbidden("admins only")),
    }
}

/// The store as [`crate::Auth::open`] opens it, without keys, Redis or throttles.
async fn open_store(at: StoreLocation<'_>) -> Result<Arc<dyn AuthStore>, AuthError> {
    Ok(match at.database_url {
        Some(url) => Arc::new(PgStore::connect(url).await?),
        None => {
            let dir = at.data_dir.to_owned();
            let private = dir.clone();
            tokio::task::spawn_blocking(move || datadir::secure_dir(&private))
                .await?
                .map_err(|source| AuthError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
            Arc::new(SqliteStore::open(&dir.join(DATABASE_FILE)).await?)
        }
    })
}

/// The password of `create`: the first line of `input` with `--password-stdin`, else a prompt
/// on the terminal (twice, echo off); a script without a terminal must pass `--password-stdin`.
fn read_password(from_stdin: bool, input: &mut dyn BufRead) -> Result<String, AuthError> {
    if from_stdin {
        let mut line = String::new();
        input
            .read_line(&mut line)
            .map_err(|e| AuthError::BadRequest(format!("cannot read the password: {e}")))?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            return Err(AuthError::BadRequest(
                "--password-stdin: no password on standard input".to_owned(),
            ));
        }
        return Ok(password.to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(AuthError::BadRequest(
            "no password: pass --password-stdin or run in a terminal".to_owned(),
        ));
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text)
            .map_err(|e| AuthError::BadRequest(format!("cannot read the password: {e}")))
    };
    let password = prompt("Password: ")?;
    if prompt("Password (again): ")? != password {
        return Err(AuthError::BadRequest(
            "the passwords do not match".to_owned(),
        ));
    }
    Ok(password)
}
