//! Avatars: the answer of `PUT /v1/auth/me/avatar`.

use serde::{Deserialize, Serialize};

/// `PUT /v1/auth/me/avatar` answer: the content-addressed URLs of the uploaded avatar,
/// re-encoded as PNG at 64 and 256 pixels (both under `/v1/media/{hash}`, cacheable forever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AvatarUrls {
    /// The 64×64 PNG, e.g. `/v1/media/3f5a…` (a path on the hub).
    pub small_url: String,
    /// The 256×256 PNG.
    pub large_url: String,
}
