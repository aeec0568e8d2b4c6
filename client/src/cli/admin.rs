//! `admin users|set-email|delete|promote|demote`: account administration, for admins (the
//! server refuses everyone else with `forbidden`, exit 5).
//!
//! USER is a username or a user id. A username is found with the list's search (`q`) and an
//! exact match; anything else is sent as an id, so an unknown user is the server's
//! `user_not_found` (exit 4) either way.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};

use serde_json::json;
use switchboard_client::protocol::limits::MAX_ACCOUNT_PAGE;
use switchboard_client::protocol::rest::{AdminUser, AdminUsersQuery, Role};

use super::error::CliError;
use super::output::{sanitise, table, utc};
use super::session::Session;
use super::Context;

/// The longest search the server takes (a username's length).
const MAX_QUERY_CHARS: usize = 32;

/// `admin users [--query Q] [--limit N] [--all]`: one page of accounts, oldest first (every
/// page with `--all`, `--limit` being the page size then).
pub async fn users(
    ctx: &Context,
    query: Option<String>,
    limit: Option<u32>,
    all: bool,
) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let mut q = AdminUsersQuery {
        limit,
        cursor: None,
        q: query,
    };
    let mut users = Vec::new();
    let next_cursor = loop {
        let page = session
            .call(|api| {
                let q = q.clone();
                async move { api.admin_users(&q).await }
            })
            .await?;
        users.extend(page.users);
        match page.next_cursor {
            Some(cursor) if all => q.cursor = Some(cursor),
            other => break other,
        }
    };
    if ctx.out.json {
        return ctx
            .out
            .json(&json!({ "users": users, "next_cursor": next_cursor }));
    }
    let rows: Vec<[String; 6]> = users
        .iter()
        .map(|u| {
            [
                sanitise(&u.username),
                u.id.clone(),
                sanitise(&u.role),
                sanitise(&u.email),
                utc(u.created_ts),
                u.last_login_ts.map_or_else(|| "-".into(), utc),
            ]
        })
        .collect();
    let mut text = table(
        ["USERNAME", "ID", "ROLE", "EMAIL", "CREATED", "LAST LOGIN"],
        &rows,
        &[false; 6],
    );
    if next_cursor.is_some() {
        text.push_str("\n(more users: use --all, or narrow with --query)");
    }
    ctx.out.text(&text)
}

/// `admin set-email USER EMAIL`.
pub async fn set_email(ctx: &Context, user: &str, email: &str) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let id = resolve(&mut session, user).await?;
    let updated = session
        .call(|api| {
            let id = id.clone();
            async move { api.admin_set_email(&id, email).await }
        })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&json!({ "user": updated }));
    }
    ctx.out.text(&format!(
        "{}: e-mail address is now {}",
        sanitise(&updated.username),
        sanitise(&updated.email)
    ))
}

/// `admin promote USER` / `admin demote USER`. A demotion ends the user's sessions (the
/// server's doing); demoting oneself is refused (`forbidden_target`, exit 8).
pub async fn set_role(ctx: &Context, user: &str, role: Role) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let id = resolve(&mut session, user).await?;
    let updated: AdminUser = session
        .call(|api| {
            let id = id.clone();
            async move { api.admin_set_role(&id, role).await }
        })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&json!({ "user": updated }));
    }
    let ended = if role == Role::User {
        " (their sessions have ended)"
    } else {
        ""
    };
    ctx.out.text(&format!(
        "{} is now {}{ended}",
        sanitise(&updated.username),
        role.as_str()
    ))
}

/// `admin delete USER [--yes]`: asks on the terminal first unless `--yes`; without a terminal
/// and without `--yes` it refuses (usage, exit 2) before asking the server anything.
pub async fn delete(ctx: &Context, user: &str, yes: bool) -> Result<(), CliError> {
    if !yes && !io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "delete asks for confirmation on a terminal; pass --yes to delete without asking"
                .into(),
        ));
    }
    let mut session = Session::open(ctx)?;
    let id = resolve(&mut session, user).await?;
    if !yes && !confirm(&format!("Delete user {} (id {id})? [y/N] ", sanitise(user)))? {
        return Err(CliError::Usage("not confirmed; nothing was deleted".into()));
    }
    session
        .call(|api| {
            let id = id.clone();
            async move { api.admin_delete_user(&id).await }
        })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&json!({ "deleted": { "id": id } }));
    }
    ctx.out
        .text(&format!("deleted {} (id {id})", sanitise(user)))
}

/// The id of the account USER names: the live account with exactly this username (found with
/// the list's search), else USER itself taken as an id.
async fn resolve(session: &mut Session, user: &str) -> Result<String, CliError> {
    if user.is_empty() || user.chars().all(|c| c == '.') {
        // Not a username, and as a path segment it would mean "here" or "up".
        return Err(CliError::Usage(format!("{user:?} names no user")));
    }
    let searchable = user.chars().count() <= MAX_QUERY_CHARS
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if !searchable {
        return Ok(user.to_owned());
    }
    let mut query = AdminUsersQuery {
        limit: Some(MAX_ACCOUNT_PAGE),
        cursor: None,
        q: Some(user.to_owned()),
    };
    // The search narrows to names containing USER; the exact one is among them.
    loop {
        let page = session
            .call(|api| {
                let query = query.clone();
                async move { api.admin_users(&query).await }
            })
            .await?;
        if let Some(found) = page.users.iter().find(|u| u.username == user) {
            return Ok(found.id.clone());
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(user.to_owned()),
        }
    }
}

/// Asks `question` on stderr and reads the answer from stdin: yes for `y` or `yes`.
fn confirm(question: &str) -> Result<bool, CliError> {
    let mut err = io::stderr().lock();
    write!(err, "{question}")
        .and_then(|()| err.flush())
        .map_err(CliError::Terminal)?;
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(CliError::Stdin)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
