//! JSON bodies of the custom emoticons (`/v1/emoticons*`).

use serde::{Deserialize, Serialize};

/// One custom emoticon: `:shortcode:` in a message body renders as the image at `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Emoticon {
    /// `[a-z0-9_]{2,32}`, unique on the hub.
    pub shortcode: String,
    /// The image: `/v1/media/{hash}`, a PNG at a content-addressed URL (cached forever).
    pub url: String,
}

/// `GET /v1/emoticons` answer: every emoticon, sorted by shortcode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmoticonList {
    pub emoticons: Vec<Emoticon>,
}
