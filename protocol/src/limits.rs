//! Limits and defaults that the hub enforces and clients should respect.

/// Longest message body, in bytes of UTF-8. Longer bodies get `too_large` and are not stored.
pub const MAX_BODY_BYTES: usize = 4 * 1024;
/// Default largest WebSocket message (after reassembly of fragments) on `/v1/ws`.
/// A larger one closes the connection with close code 1009.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Default largest message on the echo endpoint (`/v1/echo`), which exists for conformance suites.
pub const DEFAULT_ECHO_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Largest page of history a single request returns.
pub const MAX_HISTORY_LIMIT: u32 = 100;
/// History page size when the request names none.
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;
/// Largest page of `GET /v1/rooms`.
pub const MAX_ROOM_PAGE: u32 = 100;
/// `GET /v1/rooms` page size when the request names none.
pub const DEFAULT_ROOM_PAGE: u32 = 100;
/// Time a new connection has to send `hello` before it is closed with 1008.
pub const HELLO_TIMEOUT_MS: u64 = 10_000;
/// Default sustained rate of client frames per connection, per second.
pub const DEFAULT_RATE_PER_SEC: u32 = 20;
/// Default burst of client frames per connection.
pub const DEFAULT_RATE_BURST: u32 = 40;
/// Longest `client_msg_id`, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;
/// Longest room name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 80;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in bytes (bounds the cost of hashing).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Largest page of `GET /v1/admin/users`, `GET /v1/admin/jobs` and `GET /v1/auth/sessions`.
pub const MAX_ACCOUNT_PAGE: u32 = 100;
/// `GET /v1/admin/users`, `GET /v1/admin/jobs` and `GET /v1/auth/sessions` page size when the
/// request names none.
pub const DEFAULT_ACCOUNT_PAGE: u32 = 50;
/// Longest `User-Agent` kept for a session, in bytes; a longer one is cut (at a character
/// boundary).
pub const MAX_USER_AGENT_BYTES: usize = 256;
/// Most attachments one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;
