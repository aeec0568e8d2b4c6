//! The account menu (sessions) and the admin view, as a person sees and uses them.

use serde::Deserialize;
use serde_json::Value;

use super::driver::Browser;

/// A session as the account menu lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionShown {
    pub id: String,
    pub current: bool,
    /// The short name of the device, e.g. "Headless Chrome on Linux".
    pub device: String,
    /// The full user agent, when the login sent one.
    pub agent: Option<String>,
    /// "This device" on the current one.
    pub tag: Option<String>,
    /// Whether it has an End button.
    pub can_end: bool,
}

/// An account as the admin view lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserShown {
    pub id: String,
    pub username: String,
    pub email: String,
    pub role: String,
    pub last_login: String,
    /// The error shown in the row, empty if none.
    pub error: String,
}

const SESSIONS_JS: &str = r#"
return [...document.querySelectorAll('#session-list > li')].map(li => ({
  id: li.dataset.session,
  current: li.dataset.current === 'true',
  device: li.querySelector('.device').textContent,
  agent: li.querySelector('.agent') ? li.querySelector('.agent').textContent : null,
  tag: li.querySelector('.tag') ? li.querySelector('.tag').textContent : null,
  can_end: li.querySelector('button[data-session]') !== null,
}));"#;

const USERS_JS: &str = r#"
return [...document.querySelectorAll('#user-list > li')].map(li => ({
  id: li.dataset.user,
  username: li.querySelector('.username').textContent,
  email: li.querySelector('.email').textContent,
  role: li.querySelector('.role').textContent,
  last_login: li.querySelectorAll('.user-facts dd')[2].textContent,
  error: li.querySelector('.form-error').textContent,
}));"#;

impl Browser {
    /// Opens the account menu (if closed) and waits for its session list to be read.
    pub async fn open_account_menu(&self) {
        if !self.visible("account-panel").await {
            self.click("#account-toggle").await;
        }
        self.until("the session list", async || {
            let status = self.text("sessions-status").await;
            (status.ends_with(" session.") || status.ends_with(" sessions.")).then_some(())
        })
        .await;
    }

    /// Closes the account menu with its Close button.
    pub async fn close_account_menu(&self) {
        if self.visible("account-panel").await {
            self.click("#account-close").await;
        }
    }

    /// The sessions the account menu lists, newest first.
    pub async fn sessions(&self) -> Vec<SessionShown> {
        self.js(SESSIONS_JS, vec![]).await
    }

    /// Waits until the account menu lists `n` sessions; returns them.
    pub async fn until_sessions(&self, n: usize) -> Vec<SessionShown> {
        self.until(&format!("{n} sessions in the list"), async || {
            let shown = self.sessions().await;
            (shown.len() == n).then_some(shown)
        })
        .await
    }

    /// The accounts the admin view lists, in its order.
    pub async fn users(&self) -> Vec<UserShown> {
        self.js(USERS_JS, vec![]).await
    }

    /// Types `text` in the admin view's search box and waits until the list shows exactly
    /// `expected` (usernames, in order).
    pub async fn search_users(&self, text: &str, expected: &[&str]) -> Vec<UserShown> {
        let input = self.find("#admin-q").await;
        input.clear().await.expect("clear");
        if !text.is_empty() {
            input.send_keys(text).await.expect("type");
        } else {
            // Clearing fires no input event: the form's submit searches at once.
            let _: Value = self
                .js(
                    "document.getElementById('admin-search-form').requestSubmit(); return null;",
                    vec![],
                )
                .await;
        }
        self.until(&format!("the users {expected:?}"), async || {
            let shown = self.users().await;
            let names: Vec<&str> = shown.iter().map(|u| u.username.as_str()).collect();
            (names == expected && !self.text("admin-status").await.starts_with("Loading"))
                .then_some(shown)
        })
        .await
    }

    /// Clicks the button of `action` in the admin view's row of account `id`.
    pub async fn user_action(&self, id: &str, action: &str) {
        self.click(&format!(
            "#user-list li[data-user=\"{id}\"] button[data-action={action}]"
        ))
        .await;
    }

    /// The error shown in the row of account `id`, once there is one.
    pub async fn until_user_error(&self, id: &str) -> String {
        self.until(&format!("an error in the row of {id}"), async || {
            let row = self.users().await.into_iter().find(|u| u.id == id)?;
            (!row.error.is_empty()).then_some(row.error)
        })
        .await
    }
}
