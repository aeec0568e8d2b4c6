//! `register`, `login`, `logout`.

use serde_json::json;
use switchboard_client::protocol::ErrorCode;
use switchboard_client::Api;

use super::credentials::Credentials;
use super::error::CliError;
use super::{password, Context};

/// `register USER [--email E] [--password-stdin]`: creates the account, then logs in.
pub async fn register(
    ctx: &Context,
    user: &str,
    email: Option<String>,
    password_stdin: bool,
) -> Result<(), CliError> {
    let password = password::read(password_stdin, true)?;
    // The hub wants an address of the form x@y.z and sends no mail; `.invalid` is reserved
    // (RFC 2606), so the placeholder can never reach anyone.
    let email = email.unwrap_or_else(|| format!("{user}@users.switchboard.invalid"));
    let api = Api::new(&ctx.server);
    let registered = api.register(user, &email, &password).await?;
    log_in(ctx, &api, user, &password).await?;
    if ctx.out.json {
        ctx.out
            .json(&json!({ "server": ctx.server, "user": registered.user }))
    } else {
        ctx.out.text(&format!(
            "registered {user} on {} and logged in",
            ctx.server
        ))
    }
}

/// `login USER [--password-stdin]`.
pub async fn login(ctx: &Context, user: &str, password_stdin: bool) -> Result<(), CliError> {
    let password = password::read(password_stdin, false)?;
    let api = Api::new(&ctx.server);
    let credentials = log_in(ctx, &api, user, &password).await?;
    if ctx.out.json {
        ctx.out.json(&json!({
            "server": ctx.server,
            "user": credentials.username,
            "expires_at": credentials.expires_at,
        }))
    } else {
        ctx.out
            .text(&format!("logged in to {} as {user}", ctx.server))
    }
}

/// Logs in and stores the pair for the server (replacing an earlier login there).
async fn log_in(
    ctx: &Context,
    api: &Api,
    user: &str,
    password: &str,
) -> Result<Credentials, CliError> {
    let pair = api.login(user, password).await?;
    let credentials = Credentials::from_pair(&pair);
    let lock = ctx.credentials.lock_async().await?;
    ctx.credentials
        .put(&lock, &ctx.server, Some(credentials.clone()))?;
    Ok(credentials)
}

/// `logout`: revokes the session on the server, then forgets it. A session the server no
/// longer accepts (expired, revoked) is forgotten all the same; when the server cannot be
/// reached the credentials are kept, so that the logout can be retried.
pub async fn logout(ctx: &Context) -> Result<(), CliError> {
    let lock = ctx.credentials.lock_async().await?;
    let Some(credentials) = ctx.credentials.get(&ctx.server)? else {
        return Err(CliError::NotLoggedIn {
            server: ctx.server.clone(),
        });
    };
    let api = Api::new(&ctx.server);
    // An expired access token cannot log out: trade the refresh token for a pair first (it
    // is spent either way once the session ends).
    let outcome = match api.with_token(&credentials.access_token).logout().await {
        Err(err) if err.code() == Some(ErrorCode::Unauthorized) => {
            match api.refresh(&credentials.refresh_token).await {
                Ok(pair) => api.with_token(&pair.access_token).logout().await,
                Err(err) => Err(err),
            }
        }
        other => other,
    };
    match outcome {
        Ok(()) => {}
        // Nothing left to revoke.
        Err(err) if err.code() == Some(ErrorCode::Unauthorized) => {}
        Err(err) => return Err(err.into()),
    }
    ctx.credentials.put(&lock, &ctx.server, None)?;
    drop(lock);
    if ctx.out.json {
        ctx.out.json(&json!({
            "server": ctx.server,
            "user": credentials.username,
            "logged_out": true,
        }))
    } else {
        ctx.out.text(&format!(
            "logged out {} from {}",
            credentials.username, ctx.server
        ))
    }
}
