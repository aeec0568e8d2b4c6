//! WebSocket close codes used by the hub on `/v1/ws`.
//!
//! Codes below 4000 are the RFC 6455 ones; 4000–4999 are Switchboard's own. A client should
//! reconnect (with backoff, keeping its credentials) after 1001, 1011, 1012, 1013 and 4000; it
//! should not reconnect with the same credentials after 1008 (obtain a new token first), nor
//! resend what caused 1007 or 1009.

/// Normal closure, e.g. in answer to the client's close.
pub const NORMAL: u16 = 1000;
/// The server is going away (not used for restarts, see [`RESTARTING`]).
pub const GOING_AWAY: u16 = 1001;
/// The peer broke the WebSocket protocol (bad opcode, reserved bits, unmasked frame, ...).
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text message was not valid UTF-8.
pub const INVALID_UTF8: u16 = 1007;
/// Policy violation: no `hello` in time, a first frame that is not `hello`, a rejected token,
/// a session that was revoked (logout, refresh-token reuse), or a fragmented message left
/// unfinished for longer than the fragment timeout.
pub const POLICY: u16 = 1008;
/// A frame or reassembled message exceeded the size limit.
pub const TOO_BIG: u16 = 1009;
/// An internal error on the server.
pub const INTERNAL: u16 = 1011;
/// The node is restarting (graceful shutdown); reconnect, possibly to another node.
pub const RESTARTING: u16 = 1012;
/// Try again later: the token in `hello` cannot be checked now (the node cannot fetch the auth
/// node's keys: the token was not judged, unlike [`POLICY`]), or the node holds as many bytes of
/// unfinished fragmented messages as it allows (`--max-reassembly-bytes`). Reconnect with
/// backoff and the same credentials.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// The client did not read fast enough: its outbound queue filled up. Reconnect and resume with
/// `since`; nothing acknowledged is lost.
pub const SLOW_CONSUMER: u16 = 4000;
/// A backend closed the user's connections through the server API (`POST
/// /v1/server/disconnect`), on every node. The session is not revoked: a client may reconnect
/// with its credentials (keeping a user out is revoking their sessions or deleting the account).
pub const DISCONNECTED: u16 = 4001;
