//! The `switchboard` CLI end to end: the real binary (built by `support::binary`) against a
//! real hub served in-process on `127.0.0.1:0`, on the configuration `SWITCHBOARD_TEST_BACKEND`
//! names (embedded by default, or scaled: PostgreSQL, Redis and a separate auth node).
//!
//! One module per area; `chat` runs in a pseudo-terminal. Every wait is bounded
//! (`support::within`); no test sleeps to synchronise.

mod support;

mod account;
mod admin;
mod attachments;
mod avatar;
mod chat;
mod emoticons;
mod errors;
mod messages;
mod refresh;
mod rooms;
mod sessions;
mod tail;
