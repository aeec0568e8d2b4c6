//! The harness of the end-to-end (`e2e/`), CLI (`cli/`), browser (`browser/`), cluster
//! (`cluster/`) and compose (`compose/`) test binaries of this crate, in one library so that no
//! suite includes another's files.
//!
//! - [`inproc`]: the hub run in-process, on the backend [`backend`] picks
//!   (`SWITCHBOARD_TEST_BACKEND=embedded|scaled`).
//! - [`wait`]: bounded waits and test users' names.
//! - [`jwks`]: a fake JWKS server that answers what a test tells it to.
//! - [`services`], [`private`], [`proxy`], [`binary`], [`smtp`]: the shared test services, from
//!   `switchboard-testkit` (a crate of its own so that the hub's and auth's own tests can use
//!   them without depending on this crate, which depends on them; see its documentation).

pub mod backend;
pub mod inproc;
pub mod jwks;
pub mod wait;

pub use switchboard_testkit::{binary, private, proxy, services, smtp, webhook};
