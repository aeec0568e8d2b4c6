//! What a person does on the chat page, and what they see: every query reads the DOM the page
//! rendered (text, `data-*` attributes), not the page's internal state.

use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::Locator;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::driver::Browser;
use super::{PASSWORD, WAIT};

/// How often a condition is polled while a test waits for it.
const POLL: Duration = Duration::from_millis(50);

/// A message as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Shown {
    /// None while it is pending (not yet seen back from the server).
    pub seq: Option<u64>,
    pub from: String,
    pub body: String,
    pub edited: bool,
    pub deleted: bool,
    /// "sending…", "sent" or "not sent" while pending.
    pub pending: Option<String>,
}

/// A room as the room list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomShown {
    pub id: String,
    pub name: String,
    pub unread: u64,
    pub current: bool,
}

const MESSAGES_JS: &str = r#"
return [...document.querySelectorAll('#messages > li')].map(li => ({
  seq: li.dataset.seq ? Number(li.dataset.seq) : null,
  from: li.dataset.from || '',
  body: (li.querySelector('.body') || {textContent: ''}).textContent,
  edited: li.querySelector('.edited') !== null,
  deleted: li.classList.contains('deleted'),
  pending: li.dataset.pending ? li.querySelector('.state').textContent : null,
}));"#;

const ROOMS_JS: &str = r#"
return [...document.querySelectorAll('#room-list button[data-room]')].map(b => ({
  id: b.dataset.room,
  name: b.querySelector('.room-name').textContent,
  unread: Number(b.dataset.unread),
  current: b.getAttribute('aria-current') === 'page',
}));"#;

impl Browser {
    /// Polls `probe` until it returns `Some`, for at most `limit`; panics naming `what` (with
    /// the page's console) when it does not.
    pub async fn until_for<T>(
        &self,
        limit: Duration,
        what: &str,
        mut probe: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            if Instant::now() > deadline {
                let console = self.console().await.join("\n  ");
                panic!(
                    "{}: timed out after {limit:?} waiting for {what}\n console:\n  {console}",
                    self.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`Browser::until_for`] with the default [`WAIT`].
    pub async fn until<T>(&self, what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
        self.until_for(WAIT, what, probe).await
    }

    /// Runs `script` in the page and decodes its result.
    pub async fn js<T: DeserializeOwned>(&self, script: &str, args: Vec<Value>) -> T {
        let value = self
            .client
            .execute(script, args)
            .await
            .unwrap_or_else(|err| panic!("{}: script failed: {err}\n{script}", self.name));
        serde_json::from_value(value)
            .unwrap_or_else(|err| panic!("{}: unexpected script result: {err}", self.name))
    }

    /// Whether the element with this id is shown (no `hidden` on it or an ancestor).
    pub async fn visible(&self, id: &str) -> bool {
        self.js(
            "const e = document.getElementById(arguments[0]); return !!e && e.closest('[hidden]') === null;",
            vec![Value::from(id)],
        )
        .await
    }

    /// The text of the element with this id.
    pub async fn text(&self, id: &str) -> String {
        self.js(
            "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
            vec![Value::from(id)],
        )
        .await
    }

    /// Replaces the content of the input with this id by `text`, as typed.
    pub async fn fill(&self, id: &str, text: &str) {
        let input = self.find(&format!("#{id}")).await;
        input.clear().await.expect("clear");
        input.send_keys(text).await.expect("type");
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("{}: no element {css}: {err}", self.name))
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|err| panic!("{}: click {css}: {err}", self.name));
    }

    /// Opens the page and waits for the login form or, with a stored session, the chat.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("load the page");
        self.until("the page to start", async || {
            (self.visible("auth-view").await || self.visible("chat-view").await).then_some(())
        })
        .await;
    }

    /// Reloads the page (the session stays in sessionStorage) and waits for the chat.
    pub async fn reload(&self) {
        self.client.refresh().await.expect("reload");
        self.until_online().await;
    }

    /// Registers `username` through the form (which then logs in) and waits for the chat.
    pub async fn register(&self, username: &str) {
        self.fill("register-username", username).await;
        self.fill("register-email", &format!("{username}@example.com"))
            .await;
        self.fill("register-password", PASSWORD).await;
        self.click("#register-form button[type=submit]").await;
        self.until(&format!("{username} to be logged in"), async || {
            (self.visible("chat-view").await && self.text("me").await == username).then_some(())
        })
        .await;
        self.until_online().await;
    }

    /// Logs `username` in through the form and waits for the chat.
    pub async fn login(&self, username: &str) {
        self.fill("login-username", username).await;
        self.fill("login-password", PASSWORD).await;
        self.click("#login-form button[type=submit]").await;
        self.until(&format!("{username} to be logged in"), async || {
            (self.visible("chat-view").await && self.text("me").await == username).then_some(())
        })
        .await;
        self.until_online().await;
    }

    /// The connection indicator's state: connecting, online, reconnecting or stopped.
    pub async fn connection(&self) -> String {
        self.js(
            "return document.getElementById('conn-status').dataset.state;",
            vec![],
        )
        .await
    }

    pub async fn until_connection(&self, limit: Duration, state: &str) {
        self.until_for(
            limit,
            &format!("the connection to be {state}"),
            async || (self.connection().await == state).then_some(()),
        )
        .await;
    }

    pub async fn until_online(&self) {
        self.until_connection(WAIT, "online").await;
    }

    /// The room list, in its order.
    pub async fn rooms(&self) -> Vec<RoomShown> {
        self.js(ROOMS_JS, vec![]).await
    }

    /// Waits until the room list shows `name` (the list is re-read every few seconds, which is
    /// how a person learns that someone added them to a room); returns it.
    pub async fn until_room(&self, name: &str) -> RoomShown {
        self.until(&format!("room {name} in the list"), async || {
            self.rooms()
                .await
                .into_iter()
                .find(|room| room.name == name)
        })
        .await
    }

    /// Clicks `name` in the room list and waits for its conversation.
    pub async fn open_room(&self, name: &str) {
        let room = self.until_room(name).await;
        self.click(&format!("#room-list button[data-room=\"{}\"]", room.id))
            .await;
        self.until(&format!("conversation {name}"), async || {
            (self.visible("room-view").await && self.text("room-title").await == name).then_some(())
        })
        .await;
    }

    /// Creates a room through the sidebar form; the page opens it.
    pub async fn create_room(&self, name: &str, public: bool) {
        self.fill("room-name", name).await;
        let checkbox = self.find("#room-public").await;
        if checkbox.is_selected().await.expect("checkbox state") != public {
            checkbox.click().await.expect("tick public");
        }
        self.click("#create-room-form button[type=submit]").await;
        self.until(&format!("conversation {name}"), async || {
            (self.text("room-title").await == name).then_some(())
        })
        .await;
    }

    /// Adds `username` to the open room through the members panel.
    pub async fn add_member(&self, username: &str) {
        if !self.visible("room-details").await {
            self.click("#toggle-details").await;
        }
        self.fill("add-member-username", username).await;
        self.click("#add-member-form button[type=submit]").await;
        self.until(&format!("{username} among the members"), async || {
            let selector = format!("#member-list li[data-user=\"{username}\"]");
            let found: bool = self
                .js(
                    "return document.querySelector(arguments[0]) !== null;",
                    vec![Value::from(selector)],
                )
                .await;
            found.then_some(())
        })
        .await;
    }

    /// Types `text` in the message box and presses Enter.
    pub async fn send(&self, text: &str) {
        self.fill("composer", text).await;
        let enter = char::from(Key::Enter).to_string();
        self.find("#composer")
            .await
            .send_keys(&enter)
            .await
            .expect("press Enter");
    }

    /// The open conversation's messages, in the order shown.
    pub async fn messages(&self) -> Vec<Shown> {
        self.js(MESSAGES_JS, vec![]).await
    }

    /// Waits until the conversation shows a stored message with this body; returns it.
    pub async fn until_message(&self, body: &str) -> Shown {
        self.until(&format!("message {body:?}"), async || {
            self.messages()
                .await
                .into_iter()
                .find(|m| m.body == body && m.seq.is_some())
        })
        .await
    }

    /// Scrolls the message list to its top (as a person paging back would).
    pub async fn scroll_to_top(&self) {
        let _: Value = self
            .js(
                "const s = document.getElementById('scroller'); s.scrollTop = 0; \
                 s.dispatchEvent(new Event('scroll')); return null;",
                vec![],
            )
            .await;
    }
}
