//! The auth routes end to end: a real `Auth` on a temporary data directory (real SQLite, real
//! key file), driven through its router with `tower::ServiceExt::oneshot`.

mod support;

mod persistence;
mod register_login;
mod sessions;
mod tokens;
