//! A hub for the CLI to talk to: the e2e harness's in-process hub (`inproc`, on the backend its
//! `backend` module picks: embedded, or PostgreSQL + Redis + an auth node with
//! `SWITCHBOARD_TEST_BACKEND=scaled`), restartable on the same port.

#[path = "../../e2e/support/backend.rs"]
mod backend;
#[path = "../../e2e/support/inproc.rs"]
mod inproc;

/// One running hub. Dropping it signals shutdown; [`TestServer::shutdown`] also waits.
pub use inproc::InProcessHub as TestServer;
