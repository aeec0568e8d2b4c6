//! The auth service end to end: a real `Auth` on a temporary data directory (real SQLite, real
//! key file) or a fresh PostgreSQL database, driven through its router with
//! `tower::ServiceExt::oneshot`; Redis revocations with the machine's Redis; the remote key
//! source and directory against a node served over HTTP; the node's flags and binary.
//!
//! Tests written as `async fn name(backend: Backend)` run once per store: list them in a
//! [`backend_tests!`] call, which makes `name::sqlite` and `name::postgres`.

/// For each listed `async fn name(backend: Backend)`, a module `name` with the tests `sqlite`
/// and `postgres`. A test function missing from the list is dead code, which the lints refuse.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await;
            }
        }
    )*};
}

mod support;

mod accounts;
mod admin;
mod jobs;
mod key_sources;
mod mail;
mod node;
mod persistence;
mod plumbing;
mod redis_feed;
mod register_login;
mod remote;
mod reset;
mod schema;
mod sessions;
mod throttle;
mod tokens;
mod users;
mod webhooks_admin;
mod webhooks_config;
mod webhooks_delivery;
mod webhooks_internal;
mod webhooks_store;
mod welcome_mail;
