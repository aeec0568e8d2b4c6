//! Browser tests: the page the hub serves at `/`, in headless Chromium driven over WebDriver
//! (chromedriver, one per test), against the real hub on `127.0.0.1:0` on either backend
//! (`SWITCHBOARD_TEST_BACKEND=embedded|scaled`). Two independent browser sessions play two
//! people (`bots`: a message posted through the server API shows a "bot" badge). Needs the
//! Debian packages `chromium` and `chromium-driver`.
//!
//! The screenshot of the conversation view is written to `target/screenshots/conversation.png`
//! (and a phone-sized one to `conversation-375.png`); those of the account menu's session list
//! and of the admin view to `sessions.png` (and `sessions-375.png`) and `admin.png`.

mod support;

mod accounts;
mod attachments;
mod avatars;
mod bots;
mod chat;
mod emoticons;
mod key_source;
mod media_tour;
mod network;
mod reset;
mod safety;
mod static_routes;
