//! End-to-end tests: the real hub (`switchboard_hub::run`) on `127.0.0.1:0` with a fresh data
//! dir per test, driven over real sockets by `switchboard-client`.
//!
//! One binary, one module per area. `support` holds the harness. Every awaited event is bounded
//! by a timeout (`support::within`); no test sleeps to synchronise.

mod support;

mod admin;
mod attachments;
mod auth;
mod auth_hardening;
mod avatars;
mod catchup;
mod closes;
mod direct;
mod emoticons;
mod errors;
mod fragments;
mod history;
mod jobs;
mod key_source;
mod limits;
mod liveness;
mod log_secrets;
mod mail_flags;
mod messaging;
mod metrics;
mod network;
mod openapi;
mod password_reset;
mod plumbing;
mod presence;
mod presence_leave;
mod readiness;
mod restart;
mod resume;
mod room_list;
mod rooms;
mod seqs;
mod server_api;
mod slowloris;
mod sub_limits;
mod transport;
mod unread;
mod webhooks;
