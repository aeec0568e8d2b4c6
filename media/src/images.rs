//! Avatars and emoticons: the bytes a client uploads, checked and turned into fresh PNGs of
//! fixed square sizes; and the generated identicon every user has from the start.
//!
//! A pure library: no I/O, no HTTP. The caller passes the whole upload (it is small: the
//! bound is checked first) and stores the [`Rendition`]s it gets back.
//!
//! # Invariants
//! - **Nothing is decoded before the checks.** [`reencode_square`] refuses, in this order:
//!   more than [`Bounds::max_bytes`] bytes ([`ImageError::TooLarge`], before even looking at
//!   them); a type not sniffed from the magic bytes ([`ImageError::UnsupportedType`]: a
//!   client's `Content-Type` is never consulted, so SVG and HTML never get through); a header
//!   whose dimensions exceed the bounds ([`ImageError::TooManyPixels`], read from the header
//!   alone, so a decompression bomb is refused without allocating its pixels). Only then are
//!   the pixels decoded, under `image::Limits` set from the same bounds as a second guard.
//! - **The output is always a freshly encoded PNG** made from the decoded pixels only: no
//!   byte, chunk or metadata (EXIF, text, ICC, comments) of the upload is carried over.
//! - **Animated GIF/WebP keep only their first frame** (static emoticons for now; keeping
//!   the animation is a later step).

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits, Rgb, RgbImage};
use sha2::{Digest, Sha256};

/// An image type recognised by its magic bytes. Nothing else is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `89 50 4E 47 0D 0A 1A 0A`.
    Png,
    /// `FF D8 FF`.
    Jpeg,
    /// `RIFF` size `WEBP`.
    Webp,
    /// `GIF87a` or `GIF89a`.
    Gif,
}

impl ImageKind {
    fn format(self) -> ImageFormat {
        match self {
            ImageKind::Png => ImageFormat::Png,
            ImageKind::Jpeg => ImageFormat::Jpeg,
            ImageKind::Webp => ImageFormat::WebP,
            ImageKind::Gif => ImageFormat::Gif,
        }
    }
}

/// The type of `bytes`, from their magic bytes only; `None` for anything else (SVG, HTML,
/// text, other image formats, too short).
pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageKind::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageKind::Gif)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(ImageKind::Webp)
    } else {
        None
    }
}

/// What an upload may be: its size in bytes and its pixel dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The most bytes an upload may have.
    pub max_bytes: usize,
    /// The widest image accepted, in pixels (from the header, before decoding).
    pub max_width: u32,
    /// The tallest image accepted, in pixels (from the header, before decoding).
    pub max_height: u32,
}

impl Bounds {
    /// Avatars: at most 2 MiB and 4096×4096 pixels (issue 14).
    pub const AVATAR: Bounds = Bounds {
        max_bytes: 2 * 1024 * 1024,
        max_width: 4096,
        max_height: 4096,
    };
    /// Emoticons: at most 256 KiB and 1024×1024 pixels (they are shown small; a larger
    /// bound would only buy decoding work).
    pub const EMOTICON: Bounds = Bounds {
        max_bytes: 256 * 1024,
        max_width: 1024,
        max_height: 1024,
    };

    /// The source of an attachment's thumbnail: at most 32 MiB and 4096×4096 pixels (a
    /// decoded 4096² image is 64 MiB of RGBA; larger photos are still stored, without a
    /// thumbnail).
    pub const THUMBNAIL_SOURCE: Bounds = Bounds {
        max_bytes: 32 * 1024 * 1024,
        max_width: 4096,
        max_height: 4096,
    };

    /// The decoder's second guard: the same dimensions, and at most 8 bytes per pixel
    /// (RGBA, 16 bits a channel) allocated.
    fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(u64::from(self.max_width) * u64::from(self.max_height) * 8);
        limits
    }
}

/// One square re-encoding of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// Its width and height, in pixels.
    pub size: u32,
    /// A PNG, freshly encoded from the pixels.
    pub png: Vec<u8>,
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// More bytes than the bound (HTTP 413); nothing was looked at.
    #[error("the image is larger than {limit} bytes")]
    TooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// Not PNG, JPEG, WebP or GIF by its magic bytes (HTTP 415).
    #[error("not a PNG, JPEG, WebP or GIF image")]
    UnsupportedType,
    /// The header's dimensions are over the bound (HTTP 400): refused without decoding.
    #[error("the image is {width}x{height} pixels, over the bound")]
    TooManyPixels {
        /// The width the header claims.
        width: u32,
        /// The height the header claims.
        height: u32,
    },
    /// Truncated or corrupt (HTTP 400).
    #[error("the image is corrupt: {0}")]
    Corrupt(String),
}

impl ImageError {
    /// The HTTP status the HTTP layer answers with: 413, 415, 400, 400.
    pub fn status(&self) -> u16 {
        match self {
            ImageError::TooLarge { .. } => 413,
            ImageError::UnsupportedType => 415,
            ImageError::TooManyPixels { .. } | ImageError::Corrupt(_) => 400,
        }
    }
}

/// Checks an upload, decodes it, crops its centre to a square and re-encodes that as one PNG
/// per entry of `sizes` (in that order).
///
/// The checks come before any decoding (see the module's invariants). A size smaller than
/// the source is a downscale (Lanczos3); a larger one is an upscale: a tiny source still
/// gives every asked size, so callers always get the sizes they serve. A size of 0 is made 1.
/// Animated GIF/WebP: the first frame only.
///
/// # Errors
/// [`ImageError::TooLarge`], [`ImageError::UnsupportedType`], [`ImageError::TooManyPixels`],
/// [`ImageError::Corrupt`].
pub fn reencode_square(
    bytes: &[u8],
    bounds: &Bounds,
    sizes: &[u32],
) -> Result<Vec<Rendition>, ImageError> {
    let decoded = checked_decode(bytes, bounds)?;
    let (width, height) = (decoded.width(), decoded.height());
    let side = width.min(height);
    let square = decoded.crop_imm((width - side) / 2, (height - side) / 2, side, side);
    sizes
        .iter()
        .map(|&size| {
            let size = size.max(1);
            let resized = square.resize_exact(size, size, FilterType::Lanczos3);
            let rgba = DynamicImage::ImageRgba8(resized.to_rgba8());
            Ok(Rendition {
                size,
                png: encode_png(&rgba),
            })
        })
        .collect()
}

/// Checks an image like [`reencode_square`] (size, sniffed type, header dimensions, all before
/// decoding), decodes it and returns a PNG that fits within `max_side`×`max_side`, keeping
/// the aspect ratio (never upscaled: a small image keeps its size). Animated GIF/WebP: the
/// first frame. What an attachment's thumbnail is made with.
///
/// # Errors
/// [`ImageError::TooLarge`], [`ImageError::UnsupportedType`], [`ImageError::TooManyPixels`],
/// [`ImageError::Corrupt`].
pub fn thumbnail(bytes: &[u8], bounds: &Bounds, max_side: u32) -> Result<Vec<u8>, ImageError> {
    let decoded = checked_decode(bytes, bounds)?;
    let max_side = max_side.max(1);
    let fitted = if decoded.width() <= max_side && decoded.height() <= max_side {
        decoded
    } else {
        // Fits within the box, keeping the ratio.
        decoded.resize(max_side, max_side, FilterType::Triangle)
    };
    Ok(encode_png(&DynamicImage::ImageRgba8(fitted.to_rgba8())))
}

/// The checks of the module's invariants, then the decoding under limits.
fn checked_decode(bytes: &[u8], bounds: &Bounds) -> Result<DynamicImage, ImageError> {
    if bytes.len() > bounds.max_bytes {
        return Err(ImageError::TooLarge {
            limit: bounds.max_bytes,
        });
    }
    let kind = sniff(bytes).ok_or(ImageError::UnsupportedType)?;

    // The header only: the decoders read the dimensions without allocating the pixels. No
    // limits here, so that an over-bound header is reported with its dimensions.
    let mut header = ImageReader::with_format(Cursor::new(bytes), kind.format());
    header.limits(Limits::no_limits());
    let (width, height) = header.into_dimensions().map_err(corrupt)?;
    if width > bounds.max_width || height > bounds.max_height || width == 0 || height == 0 {
        return Err(ImageError::TooManyPixels { width, height });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.format());
    reader.limits(bounds.limits());
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooManyPixels { width, height },
        other => corrupt(other),
    })
}

fn corrupt(e: image::ImageError) -> ImageError {
    ImageError::Corrupt(e.to_string())
}

fn encode_png(image: &DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .expect("encoding 8-bit pixels as PNG into memory cannot fail");
    out.into_inner()
}

/// A deterministic identicon: a `size`×`size` PNG of a 5×5 grid, mirrored left to right,
/// whose cells and foreground colour come from SHA-256 of `seed`, on a light background.
///
/// The same seed and size always give the same bytes (the user id is the seed, so every
/// user has an avatar from the start and it never changes). A size of 0 is made 1.
pub fn identicon(seed: &str, size: u32) -> Vec<u8> {
    let hash = Sha256::digest(seed.as_bytes());
    // A darker colour (each channel 32..=159) on a near-white background, for contrast.
    let fg = Rgb([32 + hash[0] % 128, 32 + hash[1] % 128, 32 + hash[2] % 128]);
    let bg = Rgb([240, 240, 240]);
    // 15 cells decide the grid: 5 rows of the 3 left columns (the middle one included).
    let on = |row: u32, col: u32| {
        let col = col.min(2);
        let bit = (row * 3 + col) as usize;
        hash[3 + bit / 8] >> (bit % 8) & 1 == 1
    };
    let size = size.max(1);
    let margin = size / 10;
    let inner = (size - 2 * margin).max(1);
    let image = RgbImage::from_fn(size, size, |x, y| {
        if x < margin || y < margin || x >= margin + inner || y >= margin + inner {
            return bg;
        }
        // The column from the nearer edge, so the mirror is exact whatever the size.
        let col = (x.min(size - 1 - x) - margin) * 5 / inner;
        let row = (y - margin) * 5 / inner;
        if on(row, col) {
            fg
        } else {
            bg
        }
    });
    encode_png(&DynamicImage::ImageRgb8(image))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use image::{Rgba, RgbaImage};

    use super::*;

    /// A 40×30 gradient, so that a crop and a resize have something to show.
    fn picture() -> DynamicImage {
        DynamicImage::ImageRgba8(RgbaImage::from_fn(40, 30, |x, y| {
            Rgba([(x * 6) as u8, (y * 8) as u8, 128, 255])
        }))
    }

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn fixture(kind: ImageKind) -> Vec<u8> {
        match kind {
            // The JPEG encoder takes no alpha.
            ImageKind::Jpeg => encode(
                &DynamicImage::ImageRgb8(picture().to_rgb8()),
                ImageFormat::Jpeg,
            ),
            other => encode(&picture(), other.format()),
        }
    }

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
        out
    }

    fn decode_png(bytes: &[u8]) -> DynamicImage {
        assert_eq!(sniff(bytes), Some(ImageKind::Png));
        ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png)
            .decode()
            .unwrap()
    }

    #[test]
    fn sniffs_magic_bytes_only() {
        for kind in [
            ImageKind::Png,
            ImageKind::Jpeg,
            ImageKind::Webp,
            ImageKind::Gif,
        ] {
            assert_eq!(sniff(&fixture(kind)), Some(kind));
        }
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), None);
    }

    #[test]
    fn each_kind_round_trips_to_pngs_of_the_asked_sizes() {
        for kind in [
            ImageKind::Png,
            ImageKind::Jpeg,
            ImageKind::Webp,
            ImageKind::Gif,
        ] {
            let out = reencode_square(&fixture(kind), &Bounds::AVATAR, &[64, 16]).unwrap();
            assert_eq!(out.len(), 2, "{kind:?}");
            for (rendition, size) in out.iter().zip([64, 16]) {
                assert_eq!(rendition.size, size);
                let png = decode_png(&rendition.png);
                assert_eq!((png.width(), png.height()), (size, size), "{kind:?}");
            }
        }
    }

    #[test]
    fn the_centre_is_cropped_to_a_square_and_tiny_sources_are_upscaled() {
        // 30x10: red sides, a green 10x10 centre. The square is the centre only.
        let wide = DynamicImage::ImageRgba8(RgbaImage::from_fn(30, 10, |x, _| {
            if (10..20).contains(&x) {
                Rgba([0, 255, 0, 255])
            } else {
                Rgba([255, 0, 0, 255])
            }
        }));
        let out =
            reencode_square(&encode(&wide, ImageFormat::Png), &Bounds::AVATAR, &[64]).unwrap();
        let png = decode_png(&out[0].png).to_rgba8();
        assert_eq!(png.dimensions(), (64, 64), "upscaled from 10x10");
        for (x, y) in [(0, 0), (63, 0), (32, 32), (0, 63), (63, 63)] {
            let [r, g, _, _] = png.get_pixel(x, y).0;
            assert!(g > 200 && r < 50, "({x},{y}): {r},{g}");
        }
    }

    #[test]
    fn an_animated_gif_keeps_its_first_frame() {
        use image::codecs::gif::{GifEncoder, Repeat};
        use image::Frame;
        let mut bytes = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut bytes);
            encoder.set_repeat(Repeat::Infinite).unwrap();
            let red = RgbaImage::from_pixel(8, 8, Rgba([255, 0, 0, 255]));
            let blue = RgbaImage::from_pixel(8, 8, Rgba([0, 0, 255, 255]));
            encoder
                .encode_frames([Frame::new(red), Frame::new(blue)])
                .unwrap();
        }
        let out = reencode_square(&bytes, &Bounds::EMOTICON, &[8]).unwrap();
        let pixel = decode_png(&out[0].png).to_rgba8().get_pixel(4, 4).0;
        assert!(pixel[0] > 200 && pixel[2] < 50, "{pixel:?}");
    }

    #[test]
    fn metadata_is_not_carried() {
        let png = fixture(ImageKind::Png);
        // After the signature (8) and IHDR (4 + 4 + 13 + 4).
        let mut tagged = png[..33].to_vec();
        tagged.extend(chunk(b"tEXt", b"Comment\0gps 48.85,2.35"));
        tagged.extend_from_slice(&png[33..]);
        assert!(decode_png(&tagged).width() == 40, "the fixture is valid");

        let out = reencode_square(&tagged, &Bounds::AVATAR, &[64]).unwrap();
        let find = |needle: &[u8]| out[0].png.windows(needle.len()).any(|w| w == needle);
        assert!(!find(b"tEXt"));
        assert!(!find(b"gps 48.85"));
    }

    #[test]
    fn a_decompression_bomb_header_is_refused_without_decoding() {
        let mut ihdr = 100_000u32.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA: 40 GB of pixels.
        let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
        bomb.extend(chunk(b"IHDR", &ihdr));
        bomb.extend(chunk(b"IDAT", &[0x78, 0x9c]));
        bomb.extend(chunk(b"IEND", b""));

        let started = Instant::now();
        let err = reencode_square(&bomb, &Bounds::AVATAR, &[64]).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooManyPixels {
                    width: 100_000,
                    height: 100_000
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.status(), 400);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn over_the_emoticon_bound_is_too_many_pixels() {
        let big = DynamicImage::ImageRgba8(RgbaImage::new(1025, 4));
        let err =
            reencode_square(&encode(&big, ImageFormat::Png), &Bounds::EMOTICON, &[32]).unwrap_err();
        assert!(matches!(
            err,
            ImageError::TooManyPixels {
                width: 1025,
                height: 4
            }
        ));
    }

    #[test]
    fn over_size_bytes_are_refused_before_decoding() {
        // Not even an image: the size is checked before anything is looked at.
        let bytes = vec![0u8; Bounds::EMOTICON.max_bytes + 1];
        let err = reencode_square(&bytes, &Bounds::EMOTICON, &[32]).unwrap_err();
        assert!(matches!(err, ImageError::TooLarge { limit } if limit == 256 * 1024));
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn svg_and_html_are_unsupported() {
        for text in [
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"></svg>"[..],
            b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        ] {
            let err = reencode_square(text, &Bounds::AVATAR, &[64]).unwrap_err();
            assert!(matches!(err, ImageError::UnsupportedType), "{err:?}");
            assert_eq!(err.status(), 415);
        }
    }

    #[test]
    fn a_truncated_image_is_corrupt() {
        for kind in [ImageKind::Png, ImageKind::Jpeg, ImageKind::Gif] {
            let bytes = fixture(kind);
            for cut in [20, bytes.len() / 2] {
                let err = reencode_square(&bytes[..cut], &Bounds::AVATAR, &[64]).unwrap_err();
                assert!(
                    matches!(err, ImageError::Corrupt(_)),
                    "{kind:?} {cut}: {err:?}"
                );
                assert_eq!(err.status(), 400);
            }
        }
    }

    #[test]
    fn thumbnails_fit_the_box_and_keep_the_ratio() {
        let wide = DynamicImage::ImageRgba8(RgbaImage::new(1000, 500));
        let png = thumbnail(
            &encode(&wide, ImageFormat::Png),
            &Bounds::THUMBNAIL_SOURCE,
            256,
        )
        .unwrap();
        let out = decode_png(&png);
        assert_eq!((out.width(), out.height()), (256, 128));
        // A small image is not upscaled; every kind is read.
        for kind in [
            ImageKind::Png,
            ImageKind::Jpeg,
            ImageKind::Webp,
            ImageKind::Gif,
        ] {
            let png = thumbnail(&fixture(kind), &Bounds::THUMBNAIL_SOURCE, 256).unwrap();
            let out = decode_png(&png);
            assert_eq!((out.width(), out.height()), (40, 30), "{kind:?}");
        }
    }

    #[test]
    fn a_thumbnail_of_a_bomb_or_a_corrupt_image_is_refused() {
        let mut ihdr = 100_000u32.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
        bomb.extend(chunk(b"IHDR", &ihdr));
        bomb.extend(chunk(b"IDAT", &[0x78, 0x9c]));
        bomb.extend(chunk(b"IEND", b""));
        let err = thumbnail(&bomb, &Bounds::THUMBNAIL_SOURCE, 256).unwrap_err();
        assert!(matches!(err, ImageError::TooManyPixels { .. }), "{err:?}");
        let png = fixture(ImageKind::Png);
        let err = thumbnail(&png[..png.len() / 2], &Bounds::THUMBNAIL_SOURCE, 256).unwrap_err();
        assert!(matches!(err, ImageError::Corrupt(_)), "{err:?}");
        let err = thumbnail(b"%PDF-1.7", &Bounds::THUMBNAIL_SOURCE, 256).unwrap_err();
        assert!(matches!(err, ImageError::UnsupportedType), "{err:?}");
    }

    #[test]
    fn identicons_are_deterministic_pngs_of_the_asked_size() {
        let a = identicon("user-1", 64);
        assert_eq!(a, identicon("user-1", 64));
        assert_ne!(a, identicon("user-2", 64));
        let png = decode_png(&a);
        assert_eq!((png.width(), png.height()), (64, 64));
        let big = decode_png(&identicon("user-1", 256));
        assert_eq!((big.width(), big.height()), (256, 256));
        // Mirrored left to right.
        let rgb = png.to_rgb8();
        for y in 0..64 {
            for x in 0..64 {
                assert_eq!(rgb.get_pixel(x, y), rgb.get_pixel(63 - x, y), "({x},{y})");
            }
        }
    }
}
