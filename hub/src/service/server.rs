//! The rules of the server API (`/v1/server/*`): what a backend holding an API key may do.
//!
//! **Bots.** A backend posts as a bot: an [`Identity`] with id `bot:<name>` (see
//! [`crate::store::BOT_ID_PREFIX`]; never a user's id, which is a UUID) and the bot's name as
//! its username. A bot has no account and no row of its own: it exists once it has posted or
//! owns a room, as a member of rooms (`members`) and as the author of messages
//! (`messages.sender_id`), from which every message it wrote reads as `bot: true`. It is made a
//! member of a room the first time it posts there (announced with `member_joined`, like any
//! member). Its sends go through the same path as a user's ([`Service::post`]): validated,
//! limited per bot by the per-user send limit, stored, acknowledged after the commit, fanned
//! out on every node.
//!
//! **Rooms.** The server API reads and manages every group room, public or private, without
//! being a member; direct rooms are refused (`forbidden`): they belong to their two users.

use switchboard_protocol::rest::Room;

use super::{check_history_limit, Ack, Identity, Service};
use crate::error::{Error, Result};
use crate::store::{Page, RoomRecord, UserRef, BOT_ID_PREFIX, KIND_DIRECT};

/// The role of a bot's identity (it matches no role of auth, so no admin rule applies).
const ROLE_BOT: &str = "bot";

impl Service {
    /// The identity of the bot `name`, acting through the API key `key_id`.
    ///
    /// # Errors
    /// `bad_request` when `name` is not a valid name (the rules of usernames).
    pub fn bot(name: &str, key_id: &str) -> Result<Identity> {
        crate::apikeys::valid_name(name).map_err(Error::BadRequest)?;
        Ok(Identity {
            id: format!("{BOT_ID_PREFIX}{name}").into(),
            username: name.into(),
            session: format!("apikey:{key_id}").into(),
            role: ROLE_BOT.to_owned(),
            token: "".into(),
        })
    }

    /// The group room `room`, for the server API.
    ///
    /// # Errors
    /// `not_found` for no such room, `forbidden` for a direct room.
    async fn server_room(&self, room: &str) -> Result<RoomRecord> {
        let rec = self
            .store
            .room(room)
            .await?
            .ok_or(Error::NotFound("room not found"))?;
        if rec.kind == KIND_DIRECT {
            return Err(Error::Forbidden(
                "direct rooms belong to their two users, not to the server API",
            ));
        }
        Ok(rec)
    }

    /// Posts `body` into `room` as `bot`, making the bot a member first if it is not one. A
    /// repeated `idempotency_key` (for this room and bot) answers with the first message's ack
    /// and stores nothing.
    ///
    /// # Errors
    /// `not_found` (room), `forbidden` (direct room), and the refusals of [`Service::post`].
    pub async fn server_publish(
        &self,
        bot: &Identity,
        room: &str,
        body: String,
        idempotency_key: String,
    ) -> Result<Ack> {
        self.server_room(room).await?;
        if self.store.membership(room, &bot.id).await?.is_none() {
            self.join_as_member(room, &bot.user_ref()).await?;
        }
        self.post(bot, room, body, Some(idempotency_key), Vec::new())
            .await
    }

    /// The user named `username`, for the server API (which has no user token to present to a
    /// remote auth node: see [`super::UserDirectory::find_without_token`]).
    ///
    /// # Errors
    /// `user_not_found` when no such user is found.
    async fn server_user(&self, username: &str) -> Result<UserRef> {
        let found = match self.users.find_without_token(username).await? {
            Some(answer) => answer,
            None => self.store.known_user(username).await?,
        };
        found.ok_or_else(|| Error::UserNotFound(username.to_owned()))
    }

    /// The user named `username`, for routes that anyone may call without a token (the avatar
    /// redirect): the directory is asked as for the server API.
    ///
    /// # Errors
    /// `user_not_found` when no such user is found (any string that is not a username too).
    pub async fn user_named(&self, username: &str) -> Result<UserRef> {
        self.server_user(username).await
    }

    /// Creates a group room owned by `bot`, its first member.
    ///
    /// # Errors
    /// As [`Service::create_room`] (the room quota is the bot's).
    pub async fn server_create_room(
        &self,
        bot: &Identity,
        name: &str,
        public: bool,
    ) -> Result<Room> {
        self.create_room(bot, name, public).await
    }

    /// Adds the user `username` to a group room (idempotent).
    ///
    /// # Errors
    /// `not_found` (room), `forbidden` (direct room), `user_not_found`.
    pub async fn server_add_member(&self, room: &str, username: &str) -> Result<()> {
        self.server_room(room).await?;
        let user = self.server_user(username).await?;
        self.join_as_member(room, &user).await
    }

    /// Removes the user `username` from a group room (idempotent); in a private room their
    /// subscriptions end too, as when they leave.
    ///
    /// # Errors
    /// `not_found` (room), `forbidden` (direct room), `user_not_found`.
    pub async fn server_remove_member(&self, room: &str, username: &str) -> Result<()> {
        let rec = self.server_room(room).await?;
        let user = self.server_user(username).await?;
        if self.store.remove_member(room, &user.id).await? {
            let who = Identity {
                id: user.id.as_str().into(),
                username: user.username.as_str().into(),
                session: "".into(),
                role: String::new(),
                token: "".into(),
            };
            self.publish_member_left(room, &who, None, (!rec.public).then(|| who.id.clone()));
        }
        Ok(())
    }

    /// A page of a group room's history, whoever may read it.
    ///
    /// # Errors
    /// `bad_request` for a `limit` outside 1–100, `not_found`, `forbidden` (direct room).
    pub async fn server_history(
        &self,
        room: &str,
        page: Page,
    ) -> Result<Vec<switchboard_protocol::ws::Message>> {
        check_history_limit(page.limit)?;
        self.server_room(room).await?;
        let messages = self.store.messages(room, page).await?;
        self.with_attachments(room, messages).await
    }

    /// Who is online in a group room.
    ///
    /// # Errors
    /// `not_found`, `forbidden` (direct room).
    pub async fn server_presence(&self, room: &str) -> Result<Vec<String>> {
        self.server_room(room).await?;
        Ok(self.presence.list(room).await)
    }

    /// Closes every connection of the user `username` on every node (close code 4001).
    ///
    /// # Errors
    /// `bad_request` for a string that is no username, `user_not_found` when the directory
    /// says nobody has it (with a remote auth node, which the hub cannot ask without a user's
    /// token, any valid username is accepted).
    pub async fn server_disconnect(&self, username: &str) -> Result<usize> {
        crate::apikeys::valid_name(username).map_err(Error::BadRequest)?;
        if let Some(None) = self.users.find_without_token(username).await? {
            return Err(Error::UserNotFound(username.to_owned()));
        }
        Ok(self.fanout.disconnect(username))
    }

    /// The API key `key` if it is live (see [`crate::apikeys::check`]).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn api_key(
        &self,
        key: &str,
        now: switchboard_protocol::Millis,
    ) -> Result<Option<crate::store::ApiKeyRecord>> {
        Ok(crate::apikeys::check(&*self.store, key, now).await?)
    }

    /// The server API's per-key request limit: takes one request from `key_id`'s allowance.
    ///
    /// # Errors
    /// `rate_limited` when there is none.
    pub fn server_request(&self, key_id: &str) -> Result<()> {
        if let Some(limits) = &self.server_limits {
            if !limits.take(&key_id.into()) {
                self.metrics()
                    .rate_limited(crate::metrics::Limit::ServerApi);
                return Err(Error::RateLimited);
            }
        }
        Ok(())
    }
}
