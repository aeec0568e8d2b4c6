//! The hub under test: the shared in-process hub (`switchboard_tests::inproc`, on the backend
//! `SWITCHBOARD_TEST_BACKEND` names). It can stay down for a while ([`Hub::shutdown`], then
//! [`Hub::launch`] on the same port and data), so a test can act in the browser while the hub
//! is gone.

/// One hub (with its auth node, database and Redis prefix on the scaled backend). Dropping it
/// signals shutdown.
pub use switchboard_tests::inproc::InProcessHub as Hub;
