//! [`Api`]: the HTTP API, one method per endpoint, returning the protocol's types.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use switchboard_protocol::rest::{
    AddMemberRequest, AdminUser, AdminUserList, AdminUserResponse, AdminUsersQuery, AvatarUrls,
    CreateRoomRequest, EditMessageRequest, LoginRequest, MeResponse, MessagePage,
    PostMessageRequest, PostMessageResponse, ReadRequest, RefreshRequest, RegisterRequest,
    RegisterResponse, Role, Room, RoomList, RoomsQuery, SessionList, SessionsQuery,
    SetEmailRequest, SetRoleRequest, TokenPair,
};
use switchboard_protocol::ws::{AttachmentInfo, Message};
use switchboard_protocol::Seq;

use crate::ClientError;

/// Upper bound on one HTTP request, connect to last body byte. Generous: registration and login
/// run argon2id on the server, which takes a while on a busy machine.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Query of `GET /v1/rooms/{id}/messages`. All fields optional; the default asks for the newest
/// page of the server's default size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only messages with a smaller seq.
    pub before: Option<Seq>,
    /// Only messages with a larger seq (the first `limit` of them).
    pub after: Option<Seq>,
    /// Page size, 1..=100 (server default 50).
    pub limit: Option<u32>,
}

/// A handle on one server's HTTP API, optionally authenticated with a bearer token.
///
/// Cheap to clone (the connection pool is shared). Every method maps a non-2xx answer to
/// [`ClientError::Api`] with the code from the JSON error body.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `http://host:port`, without a trailing slash.
    base: String,
    token: Option<String>,
}

impl Api {
    /// An anonymous handle on the server at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .expect("a client without TLS or proxies always builds");
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// The same server and connection pool, sending `token` as `Authorization: Bearer`.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// The same server and connection pool, without credentials.
    pub fn anonymous(&self) -> Self {
        Self {
            token: None,
            ..self.clone()
        }
    }

    /// Replaces (or with `None` removes) the bearer token.
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// The bearer token sent with each request, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A request to `path` (starting with `/`) with the bearer token applied: the escape hatch
    /// for requests the typed methods cannot express (malformed bodies, unknown routes).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    // --- auth -----------------------------------------------------------------------------

    /// `POST /v1/auth/register`. The answer's `user` is the new account.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> Result<RegisterResponse, ClientError> {
        let body = RegisterRequest {
            username: username.into(),
            email: email.into(),
            password: password.into(),
        };
        self.json(self.request(Method::POST, "/v1/auth/register").json(&body))
            .await
    }

    /// `POST /v1/auth/login`. Does not change this handle's token; use [`Api::with_token`].
    pub async fn login(&self, username: &str, password: &str) -> Result<TokenPair, ClientError> {
        let body = LoginRequest {
            username: username.into(),
            password: password.into(),
        };
        self.json(self.request(Method::POST, "/v1/auth/login").json(&body))
            .await
    }

    /// `POST /v1/auth/refresh`: spends `refresh_token` and returns a new pair.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ClientError> {
        let body = RefreshRequest {
            refresh_token: refresh_token.into(),
        };
        self.json(self.request(Method::POST, "/v1/auth/refresh").json(&body))
            .await
    }

    /// `POST /v1/auth/logout`: revokes the session of this handle's token.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.empty(self.request(Method::POST, "/v1/auth/logout"))
            .await
    }

    /// `GET /v1/auth/me`.
    pub async fn me(&self) -> Result<MeResponse, ClientError> {
        self.json(self.request(Method::GET, "/v1/auth/me")).await
    }

    /// `GET /.well-known/jwks.json`. Returned as plain JSON: this crate does not verify tokens.
    pub async fn jwks(&self) -> Result<serde_json::Value, ClientError> {
        self.json(self.request(Method::GET, "/.well-known/jwks.json"))
            .await
    }

    // --- sessions (the caller's own) ----------------------------------------------------

    /// `GET /v1/auth/sessions?limit=&cursor=`: one page of the caller's live sessions, newest
    /// first, the current one marked.
    pub async fn sessions_page(&self, query: &SessionsQuery) -> Result<SessionList, ClientError> {
        self.json(self.request(Method::GET, "/v1/auth/sessions").query(query))
            .await
    }

    /// `DELETE /v1/auth/sessions/{sid}`: ends one session of the caller (the current one too,
    /// like a logout); `not_found` if it is not a live session of theirs.
    pub async fn end_session(&self, sid: &str) -> Result<(), ClientError> {
        let path = format!("/v1/auth/sessions/{}", segment(sid));
        self.empty(self.request(Method::DELETE, &path)).await
    }

    /// `DELETE /v1/auth/sessions`: ends every session of the caller but the current one.
    pub async fn end_other_sessions(&self) -> Result<(), ClientError> {
        self.empty(self.request(Method::DELETE, "/v1/auth/sessions"))
            .await
    }

    // --- administration (admins only) ---------------------------------------------------

    /// `GET /v1/admin/users?limit=&cursor=&q=`: one page of live accounts, oldest first.
    pub async fn admin_users(&self, query: &AdminUsersQuery) -> Result<AdminUserList, ClientError> {
        self.json(self.request(Method::GET, "/v1/admin/users").query(query))
            .await
    }

    /// `PATCH /v1/admin/users/{id}`: changes an account's e-mail address.
    pub async fn admin_set_email(&self, id: &str, email: &str) -> Result<AdminUser, ClientError> {
        let body = SetEmailRequest {
            email: email.into(),
        };
        let path = format!("/v1/admin/users/{}", segment(id));
        let answer: AdminUserResponse = self
            .json(self.request(Method::PATCH, &path).json(&body))
            .await?;
        Ok(answer.user)
    }

    /// `PUT /v1/admin/users/{id}/role`: promotes or demotes an account (a demotion ends its
    /// sessions; demoting oneself is refused with `forbidden_target`).
    pub async fn admin_set_role(&self, id: &str, role: Role) -> Result<AdminUser, ClientError> {
        let path = format!("/v1/admin/users/{}/role", segment(id));
        let answer: AdminUserResponse = self
            .json(
                self.request(Method::PUT, &path)
                    .json(&SetRoleRequest { role }),
            )
            .await?;
        Ok(answer.user)
    }

    /// `DELETE /v1/admin/users/{id}`: deletes an account (never an admin: `forbidden_target`).
    pub async fn admin_delete_user(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/admin/users/{}", segment(id));
        self.empty(self.request(Method::DELETE, &path)).await
    }

    // --- rooms ----------------------------------------------------------------------------

    /// `POST /v1/rooms`: a group room with the caller as its first member.
    pub async fn create_room(&self, name: &str, public: bool) -> Result<Room, ClientError> {
        let body = CreateRoomRequest {
            name: name.into(),
            public,
        };
        self.json(self.request(Method::POST, "/v1/rooms").json(&body))
            .await
    }

    /// `GET /v1/rooms`, every page: the caller's rooms, newest activity first (as of the first
    /// page), with `unread` and `read_seq`. Each room the caller is in throughout is listed
    /// once, even if activity reorders the rooms meanwhile (PROTOCOL.md, `GET /v1/rooms`).
    pub async fn rooms(&self) -> Result<Vec<Room>, ClientError> {
        let mut rooms = Vec::new();
        let mut query = RoomsQuery::default();
        loop {
            let page = self.rooms_page(&query).await?;
            rooms.extend(page.rooms);
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(rooms),
            }
        }
    }

    /// `GET /v1/rooms?limit=&cursor=`: one page of the caller's rooms, with the cursor of the
    /// next (none on the last).
    pub async fn rooms_page(&self, query: &RoomsQuery) -> Result<RoomList, ClientError> {
        self.json(self.request(Method::GET, "/v1/rooms").query(query))
            .await
    }

    /// `GET /v1/rooms/{id}`, with `members`.
    pub async fn room(&self, room: &str) -> Result<Room, ClientError> {
        self.json(self.request(Method::GET, &format!("/v1/rooms/{room}")))
            .await
    }

    /// `POST /v1/rooms/{id}/members` (idempotent).
    pub async fn add_member(&self, room: &str, username: &str) -> Result<(), ClientError> {
        let body = AddMemberRequest {
            username: username.into(),
        };
        let path = format!("/v1/rooms/{room}/members");
        self.empty(self.request(Method::POST, &path).json(&body))
            .await
    }

    /// `POST /v1/rooms/{id}/leave`.
    pub async fn leave(&self, room: &str) -> Result<(), ClientError> {
        self.empty(self.request(Method::POST, &format!("/v1/rooms/{room}/leave")))
            .await
    }

    /// `POST /v1/direct/{username}`: the one direct room of the caller and `username`.
    pub async fn direct(&self, username: &str) -> Result<Room, ClientError> {
        self.json(self.request(Method::POST, &format!("/v1/direct/{username}")))
            .await
    }

    // --- messages -------------------------------------------------------------------------

    /// `GET /v1/rooms/{id}/messages`: a page in ascending seq order.
    pub async fn messages(
        &self,
        room: &str,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, ClientError> {
        let mut params = Vec::new();
        if let Some(before) = query.before {
            params.push(format!("before={before}"));
        }
        if let Some(after) = query.after {
            params.push(format!("after={after}"));
        }
        if let Some(limit) = query.limit {
            params.push(format!("limit={limit}"));
        }
        let mut path = format!("/v1/rooms/{room}/messages");
        if !params.is_empty() {
            path = format!("{path}?{}", params.join("&"));
        }
        let page: MessagePage = self.json(self.request(Method::GET, &path)).await?;
        Ok(page.messages)
    }

    /// `POST /v1/rooms/{id}/messages`. A repeated `client_msg_id` returns the first answer.
    pub async fn post_message(
        &self,
        room: &str,
        body: &str,
        client_msg_id: Option<&str>,
    ) -> Result<PostMessageResponse, ClientError> {
        self.post_message_with(room, body, client_msg_id, &[]).await
    }

    /// `POST /v1/rooms/{id}/messages` carrying attachments (ids from
    /// [`upload_attachment`](Self::upload_attachment); `body` may then be empty).
    pub async fn post_message_with(
        &self,
        room: &str,
        body: &str,
        client_msg_id: Option<&str>,
        attachments: &[String],
    ) -> Result<PostMessageResponse, ClientError> {
        let request = PostMessageRequest {
            body: body.into(),
            client_msg_id: client_msg_id.map(Into::into),
            attachments: attachments.to_vec(),
        };
        let path = format!("/v1/rooms/{room}/messages");
        self.json(self.request(Method::POST, &path).json(&request))
            .await
    }

    // --- attachments ----------------------------------------------------------------------

    /// `POST /v1/rooms/{id}/attachments`: uploads `bytes` as a file named `name` (sent as
    /// `Content-Disposition: attachment; filename*=UTF-8''...`). The answer names its id, to
    /// send with a message.
    pub async fn upload_attachment(
        &self,
        room: &str,
        name: &str,
        bytes: impl Into<reqwest::Body>,
    ) -> Result<AttachmentInfo, ClientError> {
        let path = format!("/v1/rooms/{}/attachments", segment(room));
        let disposition = format!("attachment; filename*=UTF-8''{}", segment(name));
        let request = self
            .request(Method::POST, &path)
            .header(reqwest::header::CONTENT_DISPOSITION, disposition)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        self.json(request).await
    }

    /// `GET /v1/rooms/{id}/attachments/{attachment_id}`: the answer, to read with
    /// `chunk()` (a large file is never held whole).
    pub async fn download_attachment(
        &self,
        room: &str,
        id: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let path = format!("/v1/rooms/{}/attachments/{}", segment(room), segment(id));
        send(self.request(Method::GET, &path)).await
    }

    /// `PATCH /v1/rooms/{id}/messages/{seq}` (author only): the edited message.
    pub async fn edit_message(
        &self,
        room: &str,
        seq: Seq,
        body: &str,
    ) -> Result<Message, ClientError> {
        let request = EditMessageRequest { body: body.into() };
        let path = format!("/v1/rooms/{room}/messages/{seq}");
        self.json(self.request(Method::PATCH, &path).json(&request))
            .await
    }

    /// `DELETE /v1/rooms/{id}/messages/{seq}` (author only).
    pub async fn delete_message(&self, room: &str, seq: Seq) -> Result<(), ClientError> {
        let path = format!("/v1/rooms/{room}/messages/{seq}");
        self.empty(self.request(Method::DELETE, &path)).await
    }

    /// `POST /v1/rooms/{id}/read`: moves the caller's read mark forward (never back).
    pub async fn mark_read(&self, room: &str, seq: Seq) -> Result<(), ClientError> {
        let path = format!("/v1/rooms/{room}/read");
        self.empty(self.request(Method::POST, &path).json(&ReadRequest { seq }))
            .await
    }

    /// `GET /v1/rooms/{id}/presence`: who is online in the room, on any node.
    pub async fn presence(&self, room: &str) -> Result<Vec<String>, ClientError> {
        let path = format!("/v1/rooms/{room}/presence");
        let list: switchboard_protocol::rest::PresenceList =
            self.json(self.request(Method::GET, &path)).await?;
        Ok(list.users)
    }

    // --- avatars --------------------------------------------------------------------------

    /// `PUT /v1/auth/me/avatar`: uploads `image` (PNG, JPEG, WebP or GIF, at most 2 MiB) as
    /// the caller's avatar; the answer names its two re-encoded sizes.
    pub async fn set_avatar(&self, image: Vec<u8>) -> Result<AvatarUrls, ClientError> {
        let request = self
            .request(Method::PUT, "/v1/auth/me/avatar")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(image);
        self.json(request).await
    }

    /// `DELETE /v1/auth/me/avatar`: back to the generated identicon.
    pub async fn clear_avatar(&self) -> Result<(), ClientError> {
        self.empty(self.request(Method::DELETE, "/v1/auth/me/avatar"))
            .await
    }

    /// `GET /v1/emoticons` (no token needed): the hub's custom emoticons, by shortcode.
    pub async fn emoticons(
        &self,
    ) -> Result<Vec<switchboard_protocol::rest::Emoticon>, ClientError> {
        let list: switchboard_protocol::rest::EmoticonList = self
            .json(self.request(Method::GET, "/v1/emoticons"))
            .await?;
        Ok(list.emoticons)
    }

    // --- plumbing -------------------------------------------------------------------------

    /// Sends `request` and decodes a 2xx JSON answer.
    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ClientError> {
        let response = send(request).await?;
        let bytes = response.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|err| {
            ClientError::Protocol(format!(
                "undecodable answer ({err}): {:?}",
                String::from_utf8_lossy(&bytes)
            ))
        })
    }

    /// Sends `request` and expects 204 No Content.
    async fn empty(&self, request: RequestBuilder) -> Result<(), ClientError> {
        let response = send(request).await?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "expected 204 No Content, got {other}"
            ))),
        }
    }
}

/// `value` as one path segment: RFC 3986 unreserved characters as they are, every other byte
/// percent-encoded, so `/`, `?` and `#` in an argument stay inside the segment. (A segment that
/// is all dots, `.` or `..`, is still a dot segment to the URL parser, encoded or not: callers
/// that take ids from people refuse those first, as the CLI does.)
fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Sends `request`; a non-2xx answer becomes an error.
async fn send(request: RequestBuilder) -> Result<reqwest::Response, ClientError> {
    let response = request.send().await?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(ClientError::from_response(response).await)
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(
            segment("0190a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"),
            "0190a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"
        );
        assert_eq!(segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
