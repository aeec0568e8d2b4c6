//! `avatar set FILE`, `avatar clear`: the logged-in user's avatar.

use std::io::Read;
use std::path::Path;

use serde_json::json;

use super::error::CliError;
use super::session::Session;
use super::Context;

/// The server's bound on an avatar upload (2 MiB). One byte more is read and sent, so that the
/// server refuses a larger file with its own `too_large`, while this process never holds more.
const MAX_AVATAR_BYTES: u64 = 2 * 1024 * 1024;

/// At most `limit` + 1 bytes of `path`.
fn read_prefix(path: &Path, limit: u64) -> Result<Vec<u8>, CliError> {
    let file_error = |source| CliError::File {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(file_error)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(file_error)?;
    Ok(bytes)
}

/// `avatar set FILE`: uploads FILE; prints the URLs of the two re-encoded sizes.
pub async fn set(ctx: &Context, file: &Path) -> Result<(), CliError> {
    let bytes = read_prefix(file, MAX_AVATAR_BYTES)?;
    let mut session = Session::open(ctx)?;
    let urls = session
        .call(|api| {
            let bytes = bytes.clone();
            async move { api.set_avatar(bytes).await }
        })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&urls);
    }
    ctx.out.text(&format!(
        "avatar set: {}{} (64 px), {}{} (256 px)",
        ctx.server, urls.small_url, ctx.server, urls.large_url
    ))
}

/// `avatar clear`: back to the generated avatar.
pub async fn clear(ctx: &Context) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    session
        .call(|api| async move { api.clear_avatar().await })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&json!({ "cleared": true }));
    }
    ctx.out
        .text("avatar cleared: the generated one is shown again")
}
