//! Test fixtures, from the shared test services (`switchboard_testkit`): a client on a URL, a
//! throwaway database, a private PostgreSQL server, a TCP proxy that can go silent.

pub use switchboard_testkit::services::{connect as client, TestDatabase as TestDb, PG_ADDR};
pub use switchboard_testkit::{PrivatePostgres, Proxy};
