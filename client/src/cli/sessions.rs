//! `sessions`, `sessions end SID`, `sessions end-others`: the logged-in user's own sessions
//! (one per login: this CLI's, a browser's, another machine's).

use serde_json::json;
use switchboard_client::protocol::rest::SessionsQuery;

use super::error::CliError;
use super::output::{sanitise, table, utc};
use super::session::Session;
use super::Context;

/// `sessions`: every live session of the user, newest first; `*` marks this CLI's.
pub async fn list(ctx: &Context) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let mut query = SessionsQuery::default();
    let mut sessions = Vec::new();
    loop {
        let page = session
            .call(|api| {
                let query = query.clone();
                async move { api.sessions_page(&query).await }
            })
            .await?;
        sessions.extend(page.sessions);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    if ctx.out.json {
        return ctx.out.json(&json!({ "sessions": sessions }));
    }
    let rows: Vec<[String; 5]> = sessions
        .iter()
        .map(|s| {
            [
                if s.current { "*" } else { "" }.to_owned(),
                s.id.clone(),
                s.user_agent.as_deref().map_or_else(|| "-".into(), sanitise),
                utc(s.created_ts),
                utc(s.last_seen_ts),
            ]
        })
        .collect();
    ctx.out.text(&table(
        ["CURRENT", "ID", "DEVICE", "CREATED", "LAST SEEN"],
        &rows,
        &[false; 5],
    ))
}

/// `sessions end SID`: ends one session of the user. Ending this CLI's own is a logout: the
/// stored credentials are forgotten too.
pub async fn end(ctx: &Context, sid: &str) -> Result<(), CliError> {
    if sid.is_empty() || sid.chars().all(|c| c == '.') {
        return Err(CliError::Usage(format!("{sid:?} is not a session id")));
    }
    let mut session = Session::open(ctx)?;
    session
        .call(|api| async move { api.end_session(sid).await })
        .await?;
    let current = session.sid() == sid;
    if current {
        session.forget().await?;
    }
    if ctx.out.json {
        return ctx.out.json(&json!({ "ended": sid, "current": current }));
    }
    let note = if current {
        " (this one: logged out)"
    } else {
        ""
    };
    ctx.out.text(&format!("ended session {sid}{note}"))
}

/// `sessions end-others`: ends every session of the user but this CLI's ("log out other
/// devices").
pub async fn end_others(ctx: &Context) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    session
        .call(|api| async move { api.end_other_sessions().await })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&json!({ "ended_others": true }));
    }
    ctx.out.text("ended every other session; this one goes on")
}
