//! `emoticons`: the hub's custom emoticons. Anyone may list them, so no session is needed.
//! Message bodies are never rewritten: `:shortcode:` stays text in the CLI.

use serde_json::json;
use switchboard_client::Api;

use super::error::CliError;
use super::output::{sanitise, table};
use super::Context;

/// Prints every emoticon: its `:shortcode:` and the absolute URL of its image.
pub async fn list(ctx: &Context) -> Result<(), CliError> {
    let emoticons = Api::new(&ctx.server).emoticons().await?;
    if ctx.out.json {
        return ctx.out.json(&json!({ "emoticons": emoticons }));
    }
    let rows: Vec<[String; 2]> = emoticons
        .iter()
        .map(|e| {
            [
                format!(":{}:", sanitise(&e.shortcode)),
                format!("{}{}", ctx.server, sanitise(&e.url)),
            ]
        })
        .collect();
    ctx.out
        .text(&table(["SHORTCODE", "URL"], &rows, &[false, false]))
}
