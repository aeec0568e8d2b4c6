//! `rooms`, `create`, `invite`, `dm`.

use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::json;
use switchboard_client::protocol::rest::Room;
use switchboard_client::protocol::Millis;
use switchboard_client::{Api, ClientError, HistoryQuery};

use super::error::CliError;
use super::output::{sanitise, table, utc};
use super::session::Session;
use super::Context;

/// How many rooms' newest messages `rooms` fetches at once.
const ACTIVITY_FETCHES: usize = 8;

/// `rooms`: the user's rooms, newest activity first (the server's order), with the unread count
/// and the time of the newest message.
///
/// The room list carries no timestamp, so the last activity is the `ts` of each room's newest
/// message: one `limit=1` history request per non-empty room, a few at a time.
pub async fn list(ctx: &Context) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let rooms = session.call(|api| async move { api.rooms().await }).await?;
    let api = Api::new(&ctx.server).with_token(session.access_token().await?);
    let activity: Vec<Option<Millis>> = stream::iter(&rooms)
        .map(|room| last_activity(&api, room))
        .buffered(ACTIVITY_FETCHES)
        .try_collect()
        .await?;
    if ctx.out.json {
        let rooms: Vec<_> = rooms
            .iter()
            .zip(&activity)
            .map(|(room, last)| {
                let mut value = serde_json::to_value(room).expect("a room serialises");
                value["last_activity"] = json!(last);
                value
            })
            .collect();
        return ctx.out.json(&json!({ "rooms": rooms }));
    }
    let rows: Vec<[String; 4]> = rooms
        .iter()
        .zip(&activity)
        .map(|(room, last)| {
            [
                sanitise(&room.name),
                room.id.clone(),
                room.unread.unwrap_or(0).to_string(),
                last.map_or_else(|| "-".into(), utc),
            ]
        })
        .collect();
    ctx.out.text(&table(
        ["NAME", "ID", "UNREAD", "LAST ACTIVITY"],
        &rows,
        &[false, false, true, false],
    ))
}

/// The `ts` of `room`'s newest message; `None` for an empty room.
async fn last_activity(api: &Api, room: &Room) -> Result<Option<Millis>, ClientError> {
    if room.last_seq == 0 {
        return Ok(None);
    }
    let query = HistoryQuery {
        limit: Some(1),
        ..HistoryQuery::default()
    };
    let page = api.messages(&room.id, query).await?;
    Ok(page.last().map(|message| message.ts))
}

/// `create NAME [--private]`.
pub async fn create(ctx: &Context, name: &str, public: bool) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let room = session
        .call(|api| async move { api.create_room(name, public).await })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&room);
    }
    let kind = if room.public { "public" } else { "private" };
    ctx.out.text(&format!(
        "created {kind} room {} ({})",
        sanitise(&room.name),
        room.id
    ))
}

/// `invite ROOM USER`.
pub async fn invite(ctx: &Context, room: &str, user: &str) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let room = session.resolve_room(room).await?;
    let id = room.id.as_str();
    session
        .call(|api| async move { api.add_member(id, user).await })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&json!({ "room": room.id, "user": user }));
    }
    ctx.out
        .text(&format!("added {user} to {}", sanitise(&room.name)))
}

/// `dm USER`: the direct room with USER.
pub async fn direct(ctx: &Context, user: &str) -> Result<(), CliError> {
    let mut session = Session::open(ctx)?;
    let room = session
        .call(|api| async move { api.direct(user).await })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&room);
    }
    ctx.out.text(&format!(
        "direct room {} ({})",
        sanitise(&room.name),
        room.id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = [
            ["general".to_string(), "id1".into(), "12".into(), "-".into()],
            ["x".to_string(), "longer-id".into(), "0".into(), "t".into()],
        ];
        assert_eq!(
            table(
                ["NAME", "ID", "N", "LAST"],
                &rows,
                &[false, false, true, false]
            ),
            "NAME     ID          N  LAST\n\
             general  id1        12  -\n\
             x        longer-id   0  t"
        );
    }
}
