//! The Switchboard wire format, shared by the hub, the auth node, the Rust client, the bench
//! and the tests. `docs/PROTOCOL.md` is the normative description; every example in it is a
//! fixture in `tests/fixtures/` that the tests of this crate parse and re-serialise.
//!
//! # Layout
//! - [`ws`]: WebSocket frames, client → server ([`ws::ClientFrame`]) and server → client
//!   ([`ws::ServerFrame`]), and [`ws::decode_client_frame`], the one place a client frame is parsed.
//! - [`rest`]: JSON bodies of the HTTP API.
//! - [`error`]: [`ErrorCode`], the stable error codes, with their HTTP status.
//! - [`close`]: the WebSocket close codes the hub uses.
//! - [`limits`]: size limits and defaults both sides must agree on.
//! - [`seq`]: the range of seqs a client may send, checked where frames and requests are decoded.
//! - `openapi` (feature `openapi`): the finishing pass of the OpenAPI documents; with the
//!   feature, the REST types derive `utoipa::ToSchema` (queries and paths `utoipa::IntoParams`).
//!
//! **Invariant:** this crate does no I/O and knows nothing of storage or transport; it is the
//! only crate that defines wire `Serialize`/`Deserialize` types. Protocol v1 is additive-only:
//! new optional fields and new frame types may appear, existing ones never change meaning.

pub mod close;
pub mod error;
pub mod limits;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod rest;
pub mod seq;
pub mod ws;

pub use error::ErrorCode;

/// The WebSocket subprotocol name of this protocol version.
pub const SUBPROTOCOL: &str = "switchboard.v1";

/// Milliseconds since the Unix epoch, the unit of every `ts` field.
pub type Millis = i64;

/// A message's position in its room: unique and strictly increasing per room, starting at 1,
/// never above [`seq::MAX_SEQ`] (2^63 − 1); a larger one from a client is `bad_request`.
pub type Seq = u64;
