//! Image preprocessing identical to open_clip's eval transform (torchvision on PIL images):
//! RGB, shortest side to 224 with PIL's antialiased bicubic filter, center crop 224 (Python
//! rounding), `/255`, CLIP mean/std, NCHW `f32`.
//!
//! The resampler (`resample.rs`) is a port of Pillow's `ImagingResample` 8-bit path
//! (fixed-point coefficients, horizontal pass then vertical pass, each clipped to `u8`), so the
//! pixels equal PIL's exactly; the `image` crate's filters differ by a few grey levels at edges.
//! Decoding ([`DecodeScratch`]) reuses its buffers from file to file.
use std::path::Path;

use image::RgbImage;

pub use crate::decode::DecodeScratch;
use crate::error::ItemError;
use crate::resample::{norm_table, resize_crop_normalise, CropPlan};
pub use crate::resample::{resize_bicubic, RgbView};

/// CLIP's per-channel mean (OpenAI).
#[allow(clippy::excessive_precision)] // written as in open_clip's constants
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel standard deviation (OpenAI).
#[allow(clippy::excessive_precision)] // written as in open_clip's constants
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Preprocessing parameters of a model (from its manifest).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PreprocessConfig {
    /// Output side (224 for CLIP ViT-B/32).
    pub image_size: u32,
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel std.
    pub std: [f32; 3],
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            image_size: 224,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }
}

/// Decodes an image file into RGB (alpha dropped, grey expanded, like PIL's `convert("RGB")`).
/// EXIF orientation is ignored, as PIL and open_clip do. A JPEG that ends before its end-of-image
/// marker is [`ItemError::Truncated`]. To decode many files, reuse a [`DecodeScratch`].
pub fn load_rgb(path: &Path) -> Result<RgbImage, ItemError> {
    let mut scratch = DecodeScratch::default();
    scratch.load_rgb(path)?;
    Ok(scratch.into_image())
}

/// Whether a JPEG's segments and scans run up to an end-of-image marker. A truncated file does
/// not get there, and the JPEG decoder pads what is missing rather than failing (PIL refuses it:
/// "image file is truncated"). Bytes after the marker are allowed.
pub fn jpeg_is_complete(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    loop {
        // A marker: one or more 0xFF, then its code.
        if b.get(i) != Some(&0xFF) {
            return false;
        }
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&code) = b.get(i) else {
            return false;
        };
        i += 1;
        match code {
            0xD9 => return true,
            // Markers without a length.
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(len) = b.get(i..i + 2) else {
            return false;
        };
        i += usize::from(u16::from_be_bytes([len[0], len[1]]));
        if code == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a
            // restart marker.
            loop {
                let Some(ff) = b.get(i..).and_then(find_ff) else {
                    return false;
                };
                i += ff;
                match b.get(i + 1) {
                    None => return false,
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(_) => break,
                }
            }
        }
    }
}

/// Index of the first 0xFF byte: 64-byte blocks through the slice `contains` search (word at a
/// time), the scan runs over the whole entropy-coded data of every JPEG.
fn find_ff(b: &[u8]) -> Option<usize> {
    let mut base = 0;
    for block in b.chunks(64) {
        if block.contains(&0xFF) {
            return block.iter().position(|x| *x == 0xFF).map(|p| base + p);
        }
        base += block.len();
    }
    None
}

/// Pixel box `[x1, y1, x2, y2)` of a relative `[x, y, w, h]` crop, with FiftyOne's patch semantics
/// (`alpha` expands/contracts the box by `100*alpha %` and clamps it to the image; `force_square`
/// minimally grows the short side, shrinking the long side only if the image is too small;
/// coordinates are truncated like `int(w * x)`).
pub fn patch_box(
    width: u32,
    height: u32,
    crop: [f32; 4],
    force_square: bool,
    alpha: Option<f32>,
) -> Result<[u32; 4], ItemError> {
    let bad = |reason| ItemError::InvalidCrop {
        crop,
        width,
        height,
        reason,
    };
    if crop.iter().any(|v| !v.is_finite()) || alpha.is_some_and(|a| !a.is_finite()) {
        return Err(bad("non-finite value"));
    }
    let [x, y, w, h] = crop.map(widen);
    let (mut tlx, mut tly, mut brx, mut bry) = (x, y, x + w, y + h);
    if let Some(a) = alpha {
        let a = widen(a).max(-1.0);
        let wpad = 0.5 * a * (brx - tlx);
        let hpad = 0.5 * a * (bry - tly);
        let c = |v: f64| v.clamp(0.0, 1.0);
        (tlx, tly, brx, bry) = (c(tlx - wpad), c(tly - hpad), c(brx + wpad), c(bry + hpad));
    }
    let (wi, hi) = (i64::from(width), i64::from(height));
    // Python's int() truncates toward zero.
    let px = |v: f64, n: i64| (n as f64 * v).trunc() as i64;
    let (mut xs, mut ys) = ((px(tlx, wi), px(brx, wi)), (px(tly, hi), px(bry, hi)));
    if force_square {
        (xs, ys) = make_square(xs, ys, wi, hi);
    }
    // numpy slicing clamps to the array.
    let clampi = |v: i64, n: i64| v.clamp(0, n);
    let (x1, x2) = (clampi(xs.0, wi), clampi(xs.1, wi));
    let (y1, y2) = (clampi(ys.0, hi), clampi(ys.1, hi));
    if x2 <= x1 || y2 <= y1 {
        return Err(bad("the box is empty in pixels"));
    }
    // All four values are within [0, width|height], so they fit in u32.
    Ok([x1 as u32, y1 as u32, x2 as u32, y2 as u32])
}

/// `f32` to the `f64` with the same shortest decimal form (`0.3f32` -> `0.3f64`, not
/// `0.30000001192...`): boxes usually come from `f64` values with short decimals (JSON, FiftyOne),
/// and pixel boundaries computed in `f64` then match Python's exactly.
fn widen(v: f32) -> f64 {
    v.to_string().parse::<f64>().unwrap_or(f64::from(v))
}

/// ETA's `_make_square` on `(start, stop)` slices.
fn make_square(x: (i64, i64), y: (i64, i64), w: i64, h: i64) -> ((i64, i64), (i64, i64)) {
    let ws = x.1 - x.0;
    let hs = y.1 - y.0;
    let dx = hs - ws;
    if dx < 0 {
        let (b, a) = make_square(y, x, h, w);
        return (a, b);
    }
    let pad = |z: (i64, i64), dz: i64, zmax: i64| {
        // int(0.5 * dz) truncates toward zero
        let dz1 = (0.5 * dz as f64).trunc() as i64;
        let dz2 = dz - dz1;
        let ddz = 0.max(dz1 - z.0) - 0.max(z.1 + dz2 - zmax);
        (z.0 - dz1 + ddz, z.1 + dz2 + ddz)
    };
    let dy = 0.min(w - dx - ws);
    (pad(x, dx + dy, w), pad(y, dy, h))
}

/// Crops `[x1, y1, x2, y2)` out of an RGB image.
pub fn crop_rgb(img: &RgbImage, b: [u32; 4]) -> RgbImage {
    image::imageops::crop_imm(img, b[0], b[1], b[2] - b[0], b[3] - b[1]).to_image()
}

/// Size after torchvision's `Resize(size)` (shortest side to `size`, long side `int(size*long/short)`).
pub fn resized_size(width: u32, height: u32, size: u32) -> (u32, u32) {
    if width <= height {
        let long = (f64::from(size) * f64::from(height) / f64::from(width)).trunc() as u32;
        (size, long.max(1))
    } else {
        let long = (f64::from(size) * f64::from(width) / f64::from(height)).trunc() as u32;
        (long.max(1), size)
    }
}

/// Resize + center crop + normalise into `out` (`3*size*size`, CHW).
pub fn preprocess_into(img: &RgbImage, cfg: &PreprocessConfig, out: &mut [f32]) {
    let view = RgbView {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.as_raw(),
    };
    preprocess_region_into(view, [0, 0, img.width(), img.height()], cfg, out);
}

/// [`preprocess_into`] on the region `[x1, y1, x2, y2)` of `img` (a [`patch_box`]), without
/// copying it out first. The region must be non-empty and inside the image.
pub fn preprocess_region_into(
    img: RgbView<'_>,
    region: [u32; 4],
    cfg: &PreprocessConfig,
    out: &mut [f32],
) {
    let size = cfg.image_size;
    let [x1, y1, x2, y2] = region;
    let (nw, nh) = resized_size(x2 - x1, y2 - y1, size);
    // torchvision CenterCrop: int(round((h - size) / 2.0)) with round-half-to-even.
    let top = round_half_even(f64::from(nh.saturating_sub(size)) / 2.0);
    let left = round_half_even(f64::from(nw.saturating_sub(size)) / 2.0);
    let plan = CropPlan {
        region: region.map(|v| v as usize),
        resized: (nw as usize, nh as usize),
        left: left as usize,
        top: top as usize,
        size: size as usize,
    };
    resize_crop_normalise(img, &plan, &norm_table(cfg.mean, cfg.std), out);
}

/// The straightforward preprocessing, kept as the reference the fast path is tested against
/// (and timed against by `clip_bench --decode-only`): the whole image resized with
/// [`resize_bicubic`], then cropped, then normalised pixel by pixel.
pub fn preprocess_reference(img: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let size = cfg.image_size;
    let (nw, nh) = resized_size(img.width(), img.height(), size);
    let resized = resize_bicubic(img, nw, nh);
    // torchvision CenterCrop: int(round((h - size) / 2.0)) with round-half-to-even.
    let top = round_half_even(f64::from(nh.saturating_sub(size)) / 2.0) as usize;
    let left = round_half_even(f64::from(nw.saturating_sub(size)) / 2.0) as usize;
    let s = size as usize;
    let plane = s * s;
    let (rw, rh) = (resized.width() as usize, resized.height() as usize);
    let raw = resized.as_raw();
    let mut out = vec![0f32; 3 * plane];
    for y in 0..s {
        for x in 0..s {
            let (sy, sx) = (y + top, x + left);
            for c in 0..3 {
                // torchvision pads with zeros when the image is smaller than the crop.
                let v = if sy >= rh || sx >= rw {
                    0.0
                } else {
                    f32::from(raw[(sy * rw + sx) * 3 + c]) / 255.0
                };
                out[c * plane + y * s + x] = (v - cfg.mean[c]) / cfg.std[c];
            }
        }
    }
    out
}

/// Convenience: the preprocessed `[3, size, size]` tensor as a vector.
pub fn preprocess(img: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let s = cfg.image_size as usize;
    let mut out = vec![0.0; 3 * s * s];
    preprocess_into(img, cfg, &mut out);
    out
}

fn round_half_even(v: f64) -> u32 {
    let r = v.round();
    let r = if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - v.signum()
    } else {
        r
    };
    r.max(0.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(progressive_like: bool) -> Vec<u8> {
        let img = RgbImage::from_fn(48, 40, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 6) as u8, ((x * y) % 256) as u8])
        });
        let mut out = Vec::new();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        enc.encode_image(&img).unwrap();
        if progressive_like {
            // Trailing bytes after the end-of-image marker are fine.
            out.extend_from_slice(b"trailer \xFF\xDA");
        }
        out
    }

    #[test]
    fn truncated_jpegs_are_detected() {
        for trailer in [false, true] {
            let full = jpeg(trailer);
            assert!(jpeg_is_complete(&full));
            assert!(image::load_from_memory(&full).is_ok());
            let end = full.windows(2).rposition(|w| w == [0xFF, 0xD9]).unwrap();
            for cut in [end, end - 1, full.len() / 2, 200, 3] {
                assert!(
                    !jpeg_is_complete(&full[..cut]),
                    "cut at {cut} of {}",
                    full.len()
                );
            }
        }
        let dir = std::env::temp_dir().join(format!("simile-trunc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("half.jpg");
        let full = jpeg(false);
        std::fs::write(&path, &full[..full.len() / 2]).unwrap();
        // The decoder alone would accept it.
        assert!(image::load_from_memory(&full[..full.len() / 2]).is_ok());
        assert!(matches!(load_rgb(&path), Err(ItemError::Truncated { .. })));
        std::fs::write(&path, &full).unwrap();
        assert!(load_rgb(&path).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn first_ff_is_found_across_blocks() {
        for len in [0usize, 1, 63, 64, 65, 200] {
            let zeros = vec![0u8; len];
            assert_eq!(find_ff(&zeros), None);
            for at in [0, 1, 62, 63, 64, 65, 127, 128, 199] {
                if at < len {
                    let mut b = zeros.clone();
                    b[at] = 0xFF;
                    b[len - 1] = 0xFF;
                    assert_eq!(find_ff(&b), Some(at), "len {len}, at {at}");
                }
            }
        }
    }

    #[test]
    fn resized_sizes_like_torchvision() {
        assert_eq!(resized_size(320, 200, 224), (358, 224));
        assert_eq!(resized_size(180, 300, 224), (224, 373));
        assert_eq!(resized_size(224, 224, 224), (224, 224));
        assert_eq!(resized_size(100, 61, 224), (367, 224));
    }

    #[test]
    fn python_rounding() {
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(67.0), 67);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(50, 30, image::Rgb([10, 128, 250]));
        let r = resize_bicubic(&img, 373, 224);
        assert!(r.pixels().all(|p| p.0 == [10, 128, 250]));
        let t = preprocess(&img, &PreprocessConfig::default());
        let expect = (128.0f32 / 255.0 - CLIP_MEAN[1]) / CLIP_STD[1];
        assert!((t[224 * 224 + 5] - expect).abs() < 1e-6);
    }

    #[test]
    fn patch_boxes_like_eta() {
        // plain box: int() truncation
        assert_eq!(
            patch_box(640, 427, [0.1, 0.2, 0.3, 0.5], false, None).unwrap(),
            [64, 85, 256, 298]
        );
        // skinny box grown to a square
        let b = patch_box(640, 427, [0.1, 0.2, 0.3, 0.5], true, None).unwrap();
        assert_eq!(b[2] - b[0], b[3] - b[1]);
        // zero-area box is an error
        assert!(patch_box(100, 100, [0.5, 0.5, 0.0, 0.2], false, None).is_err());
        assert!(patch_box(100, 100, [f32::NAN, 0.5, 0.1, 0.2], false, None).is_err());
    }
}
