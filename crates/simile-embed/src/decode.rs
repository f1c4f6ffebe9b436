//! Image files to RGB8 pixels in buffers a decoding thread reuses from image to image.
//!
//! Colour and grey baseline/progressive JPEGs go straight to `zune-jpeg` (the decoder the `image`
//! crate wraps) with the options the `image` crate gives it, so the pixels are the same, without
//! the `image` crate's copy of the file, its second header parse and a fresh output buffer per
//! image. Every other file (PNG, WebP, ..., CMYK or alpha JPEGs, anything the direct path
//! refuses, images over the `image` crate's 512 MiB default allocation limit) goes through
//! `image::load_from_memory`, which also makes the error reported for an undecodable file.
use std::io::Read;
use std::path::Path;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::ItemError;
use crate::preprocess::jpeg_is_complete;
use crate::resample::RgbView;

/// The `image` crate's default `Limits::max_alloc` for a decoded image.
const MAX_DECODED_BYTES: usize = 512 * 1024 * 1024;

/// Buffers one decoding thread reuses: the file's bytes and the decoded pixels.
#[derive(Debug, Default)]
pub struct DecodeScratch {
    file: Vec<u8>,
    pixels: Vec<u8>,
    width: usize,
    height: usize,
}

impl DecodeScratch {
    /// Decodes the image file at `path` into RGB (alpha dropped, grey expanded, like PIL's
    /// `convert("RGB")`; EXIF orientation ignored, as PIL and open_clip do). A JPEG that ends
    /// before its end-of-image marker is [`ItemError::Truncated`]. The view borrows `self`.
    pub fn load_rgb(&mut self, path: &Path) -> Result<RgbView<'_>, ItemError> {
        let read_err = |source: std::io::Error| ItemError::Read {
            path: path.to_path_buf(),
            source: source.into(),
        };
        self.file.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut self.file))
            .map_err(read_err)?;
        if !self.decode_jpeg_direct() {
            let img = image::load_from_memory(&self.file).map_err(|source| ItemError::Decode {
                path: path.to_path_buf(),
                source: source.into(),
            })?;
            let rgb = img.into_rgb8();
            (self.width, self.height) = (rgb.width() as usize, rgb.height() as usize);
            self.pixels = rgb.into_raw();
        }
        // Decoded, but possibly padded: a JPEG must reach its end.
        if self.file.starts_with(&[0xFF, 0xD8]) && !jpeg_is_complete(&self.file) {
            return Err(ItemError::Truncated {
                path: path.to_path_buf(),
                reason: "the JPEG data ends before its end-of-image marker",
            });
        }
        Ok(self.view())
    }

    /// The last image decoded.
    pub fn view(&self) -> RgbView<'_> {
        RgbView {
            width: self.width,
            height: self.height,
            data: &self.pixels,
        }
    }

    /// The last image decoded, as an owned image (the pixel buffer moves out).
    pub fn into_image(self) -> image::RgbImage {
        let (w, h) = (self.width as u32, self.height as u32);
        image::RgbImage::from_raw(w, h, self.pixels).unwrap_or_else(|| image::RgbImage::new(w, h))
    }

    /// Decodes `self.file` with zune-jpeg into `self.pixels` if it is a JPEG this path takes;
    /// `false` leaves the file to the `image` crate.
    fn decode_jpeg_direct(&mut self) -> bool {
        // The `image` crate's signature of a JPEG.
        if !self.file.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return false;
        }
        // As `image::codecs::jpeg::JpegDecoder` sets them.
        let options = |out: ColorSpace| {
            DecoderOptions::default()
                .set_strict_mode(false)
                .set_max_width(usize::MAX)
                .set_max_height(usize::MAX)
                .jpeg_set_out_colorspace(out)
        };
        let mut dec = JpegDecoder::new_with_options(
            ZCursor::new(self.file.as_slice()),
            options(ColorSpace::RGB),
        );
        if dec.decode_headers().is_err() {
            return false;
        }
        let (Some((w, h)), Some(space)) = (dec.dimensions(), dec.input_colorspace()) else {
            return false;
        };
        let Some(n) = w.checked_mul(h).and_then(|p| p.checked_mul(3)) else {
            return false;
        };
        if n > MAX_DECODED_BYTES {
            return false;
        }
        self.pixels.resize(n, 0);
        let ok = match space {
            // The `image` crate asks for RGB out of these.
            ColorSpace::YCbCr | ColorSpace::RGB => dec.decode_into(&mut self.pixels).is_ok(),
            // It asks for grey, then `into_rgb8` repeats it in the three channels.
            ColorSpace::Luma => {
                let mut grey = JpegDecoder::new_with_options(
                    ZCursor::new(self.file.as_slice()),
                    options(ColorSpace::Luma),
                );
                let ok = grey.decode_into(&mut self.pixels[..w * h]).is_ok();
                // Back to front, so no grey value is overwritten before it is read.
                for i in (0..w * h).rev() {
                    let v = self.pixels[i];
                    self.pixels[i * 3..i * 3 + 3].fill(v);
                }
                ok
            }
            _ => false,
        };
        (self.width, self.height) = (w, h);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden_image(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/assets/golden/images")
            .join(name)
    }

    /// What the `image` crate alone gives for the file.
    fn via_image_crate(path: &Path) -> image::RgbImage {
        image::load_from_memory(&std::fs::read(path).unwrap())
            .unwrap()
            .into_rgb8()
    }

    fn encoded(img: &image::DynamicImage, dir: &Path, name: &str) -> std::path::PathBuf {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
            .encode_image(img)
            .unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn same_pixels_as_the_image_crate() {
        let dir = tempfile::tempdir().unwrap();
        let colour = image::RgbImage::from_fn(67, 45, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x * y) % 256) as u8])
        });
        let grey = image::GrayImage::from_fn(45, 67, |x, y| image::Luma([(x * 3 + y) as u8]));
        let files = [
            // 4:2:0 photos (libjpeg), a 4:4:4 and a grey JPEG (the `image` crate's encoder),
            // and PNGs (the fallback path).
            golden_image("photo.jpg"),
            golden_image("wide.jpg"),
            encoded(&colour.into(), dir.path(), "rgb444.jpg"),
            encoded(&grey.into(), dir.path(), "grey.jpg"),
            golden_image("rgba.png"),
            golden_image("small_gray.png"),
        ];
        let mut scratch = DecodeScratch::default();
        // One scratch for all: a smaller image after a larger one must not keep stale pixels.
        for path in files.iter().chain(files.iter().rev()) {
            let want = via_image_crate(path);
            let got = scratch.load_rgb(path).unwrap();
            assert_eq!(
                (got.width, got.height),
                (want.width() as usize, want.height() as usize),
                "{}",
                path.display()
            );
            assert!(got.data == want.as_raw().as_slice(), "{}", path.display());
        }
    }

    #[test]
    fn bad_and_truncated_files_fail_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut scratch = DecodeScratch::default();
        let junk = dir.path().join("junk.jpg");
        // A JPEG signature, then garbage: the direct path gives up, the `image` crate reports it.
        std::fs::write(&junk, b"\xFF\xD8\xFF\xE0 not really a jpeg").unwrap();
        assert!(matches!(
            scratch.load_rgb(&junk),
            Err(ItemError::Decode { .. })
        ));
        let full = std::fs::read(golden_image("photo.jpg")).unwrap();
        let half = dir.path().join("half.jpg");
        std::fs::write(&half, &full[..full.len() / 2]).unwrap();
        assert!(matches!(
            scratch.load_rgb(&half),
            Err(ItemError::Truncated { .. })
        ));
        assert!(matches!(
            scratch.load_rgb(&dir.path().join("missing.jpg")),
            Err(ItemError::Read { .. })
        ));
        // The scratch still works afterwards.
        assert!(scratch.load_rgb(&golden_image("wide.jpg")).is_ok());
    }
}
