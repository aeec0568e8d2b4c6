//! [`Session`]: the logged-in user of one server, with access tokens that are always fresh.
//!
//! An access token is refreshed **before** it expires: when less than [`REFRESH_MARGIN_SECS`]
//! remain before its JWT `exp` (the server allows a few seconds of clock skew, not more), and
//! **once after a 401** (a token revoked or rejected for another reason, a clock far off).
//! Each refresh spends the stored refresh token and saves the rotated pair under the lock of
//! the credentials file (see `credentials`), so concurrent CLI processes share one session.

use std::future::Future;
use std::sync::Arc;

use switchboard_client::protocol::ErrorCode;
use switchboard_client::reconnect::TokenSource;
use switchboard_client::{Api, ClientError};
use tokio::sync::Mutex;

use super::credentials::{unix_now, Credentials, Store};
use super::error::CliError;
use super::Context;

/// Refresh an access token when it has less than this left, in seconds. Long enough for a
/// command (or a WebSocket handshake) to finish with it; a 15-minute token is thus refreshed
/// after 14.5 minutes. A token that lives less than this is refreshed on every use.
pub const REFRESH_MARGIN_SECS: u64 = 30;

/// A logged-in user of one server.
pub struct Session {
    /// The server's base URL: the key of its credentials.
    server: String,
    store: Store,
    credentials: Credentials,
    /// Anonymous handle on the server; requests get the current token added.
    api: Api,
}

/// A room named on the command line, resolved.
#[derive(Debug, Clone)]
pub struct RoomRef {
    pub id: String,
    /// The room's name, or the argument itself when it was not one of the user's rooms.
    pub name: String,
}

impl Session {
    /// The stored session for the context's server.
    ///
    /// # Errors
    /// [`CliError::NotLoggedIn`] when there is none.
    pub fn open(ctx: &Context) -> Result<Self, CliError> {
        Self::try_open(ctx)?.ok_or_else(|| CliError::NotLoggedIn {
            server: ctx.server.clone(),
        })
    }

    /// The stored session, or `None` when not logged in (for commands that also work
    /// anonymously on public rooms).
    pub fn try_open(ctx: &Context) -> Result<Option<Self>, CliError> {
        Ok(ctx
            .credentials
            .get(&ctx.server)?
            .map(|credentials| Session {
                server: ctx.server.clone(),
                store: ctx.credentials.clone(),
                credentials,
                api: Api::new(&ctx.server),
            }))
    }

    pub fn username(&self) -> &str {
        &self.credentials.username
    }

    /// The id of this session on the server (the `sid` of its tokens: the part of the refresh
    /// token before the dot).
    pub fn sid(&self) -> &str {
        let token = &self.credentials.refresh_token;
        token.split_once('.').map_or(token.as_str(), |(sid, _)| sid)
    }

    /// Forgets the stored session (after the server ended it), unless another process has
    /// replaced it meanwhile with a login of its own.
    pub async fn forget(&self) -> Result<(), CliError> {
        let lock = self.store.lock_async().await?;
        let stored = self.store.get(&self.server)?;
        if stored.is_some_and(|c| {
            c.refresh_token.split_once('.').map(|(sid, _)| sid) == Some(self.sid())
        }) {
            self.store.put(&lock, &self.server, None)?;
        }
        Ok(())
    }

    /// A current access token, refreshed first if it is about to expire.
    pub async fn access_token(&mut self) -> Result<String, CliError> {
        if expiring(&self.credentials) {
            self.refresh().await?;
        }
        Ok(self.credentials.access_token.clone())
    }

    /// Runs `request` with a current token; if the server answers 401, refreshes once and runs
    /// it again. `request` must therefore be safe to repeat (a post carries a `client_msg_id`).
    pub async fn call<T, F, Fut>(&mut self, request: F) -> Result<T, CliError>
    where
        F: Fn(Api) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let token = self.access_token().await?;
        match request(self.api.with_token(&token)).await {
            Err(err) if err.code() == Some(ErrorCode::Unauthorized) => {
                tracing::debug!("access token refused; refreshing once");
                self.refresh().await?;
                let api = self.api.with_token(&self.credentials.access_token);
                Ok(request(api).await?)
            }
            other => Ok(other?),
        }
    }

    /// Replaces the access token (and the refresh token) with a new pair, unless another
    /// process did so meanwhile, in which case its pair is adopted.
    ///
    /// # Errors
    /// [`CliError::SessionEnded`] when the server refuses the refresh token (the session was
    /// revoked, or it expired); [`CliError::NotLoggedIn`] when the credentials were removed
    /// (a `logout` meanwhile).
    async fn refresh(&mut self) -> Result<(), CliError> {
        let used = self.credentials.access_token.clone();
        let lock = self.store.lock_async().await?;
        let stored = self
            .store
            .get(&self.server)?
            .ok_or_else(|| CliError::NotLoggedIn {
                server: self.server.clone(),
            })?;
        if stored.access_token != used && !expiring(&stored) {
            self.credentials = stored;
            return Ok(());
        }
        match self.api.refresh(&stored.refresh_token).await {
            Ok(pair) => {
                let fresh = Credentials::from_pair(&pair);
                self.store.put(&lock, &self.server, Some(fresh.clone()))?;
                self.credentials = fresh;
                Ok(())
            }
            Err(err) if err.code() == Some(ErrorCode::Unauthorized) => {
                Err(CliError::SessionEnded {
                    server: self.server.clone(),
                    user: stored.username,
                    reason: err.to_string(),
                })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// `room` as given on the command line: one of the user's rooms by id, else by name, else
    /// taken for a room id as it is (a public room the user is not in, or one that does not
    /// exist: the server answers `not_found` for those).
    ///
    /// # Errors
    /// [`CliError::AmbiguousRoom`] when several of the user's rooms have that name.
    pub async fn resolve_room(&mut self, room: &str) -> Result<RoomRef, CliError> {
        let rooms = self.call(|api| async move { api.rooms().await }).await?;
        if let Some(found) = rooms.iter().find(|r| r.id == room) {
            return Ok(RoomRef {
                id: found.id.clone(),
                name: found.name.clone(),
            });
        }
        let named: Vec<_> = rooms.iter().filter(|r| r.name == room).collect();
        match named.as_slice() {
            [] => Ok(RoomRef {
                id: room.to_owned(),
                name: room.to_owned(),
            }),
            [one] => Ok(RoomRef {
                id: one.id.clone(),
                name: one.name.clone(),
            }),
            several => Err(CliError::AmbiguousRoom {
                name: room.to_owned(),
                ids: several.iter().map(|r| r.id.clone()).collect(),
            }),
        }
    }
}

/// Whether `credentials`' access token should be refreshed before use.
fn expiring(credentials: &Credentials) -> bool {
    unix_now().saturating_add(REFRESH_MARGIN_SECS) >= credentials.expires_at
}

/// Access tokens for a [`ReconnectingClient`](switchboard_client::ReconnectingClient): asked
/// before each connection attempt, so a reconnect after a long outage presents a fresh token.
/// `None` connects anonymously.
pub fn token_source(session: Option<Arc<Mutex<Session>>>) -> impl TokenSource {
    move || {
        let session = session.clone();
        async move {
            let Some(session) = session else {
                return Ok(None);
            };
            let mut session = session.lock().await;
            session
                .access_token()
                .await
                .map(Some)
                .map_err(into_client_error)
        }
    }
}

/// A [`CliError`] from the token source as the [`ClientError`] the reconnecting client
/// expects: a lost session as a 401 (which ends the client), a transport error as itself (which
/// is retried), anything else as final.
fn into_client_error(err: CliError) -> ClientError {
    match err {
        CliError::Client(err) => err,
        err @ (CliError::NotLoggedIn { .. } | CliError::SessionEnded { .. }) => ClientError::Api {
            status: 401,
            code: ErrorCode::Unauthorized,
            message: err.to_string(),
        },
        other => ClientError::Protocol(other.to_string()),
    }
}
