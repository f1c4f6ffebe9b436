//! Image files to RGB8 pixels in buffers a decoding thread reuses from image to image.
//!
//! Colour and grey baseline/progressive JPEGs go straight to `zune-jpeg` (the decoder the `image`
//! crate wraps) with the options the `image` crate gives it, so the pixels are the same, without
//! the `image` crate's copy of the file, its second header parse and a fresh output buffer per
//! image, and reading from [`SliceReader`] rather than `ZCursor` (~10 % less CPU). Every other file (PNG, WebP, ..., CMYK or alpha JPEGs, anything the direct path
//! refuses, images over the `image` crate's 512 MiB default allocation limit) goes through
//! `image::load_from_memory`, which also makes the error reported for an undecodable file.
use std::io::Read;
use std::path::Path;

use zune_core::bytestream::{ZByteIoError, ZByteReaderTrait, ZSeekFrom};
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::ItemError;
use crate::preprocess::jpeg_is_complete;
use crate::resample::RgbView;

/// The file's bytes as zune-jpeg's input: what `ZCursor` gives through zune-core's `std` reader
/// (same bytes, same positions, a failed exact read leaves the position where it was), with
/// fixed-size reads that compile to plain loads rather than a `memcpy` call per bit-buffer
/// refill.
struct SliceReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl SliceReader<'_> {
    /// The bytes from the position on (none when it is past the end).
    #[inline(always)]
    fn rest(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }
}

impl ZByteReaderTrait for SliceReader<'_> {
    #[inline(always)]
    fn read_byte_no_error(&mut self) -> u8 {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    #[inline(always)]
    fn read_exact_bytes(&mut self, buf: &mut [u8]) -> Result<(), ZByteIoError> {
        self.peek_exact_bytes(buf)?;
        self.pos += buf.len();
        Ok(())
    }

    #[inline(always)]
    fn read_bytes(&mut self, buf: &mut [u8]) -> Result<usize, ZByteIoError> {
        let n = self.peek_bytes(buf)?;
        self.pos += n;
        Ok(n)
    }

    #[inline(always)]
    fn peek_bytes(&mut self, buf: &mut [u8]) -> Result<usize, ZByteIoError> {
        let rest = self.rest();
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    #[inline(always)]
    fn peek_exact_bytes(&mut self, buf: &mut [u8]) -> Result<(), ZByteIoError> {
        let rest = self.rest();
        match rest.get(..buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => {
                buf[..rest.len()].copy_from_slice(rest);
                Err(ZByteIoError::NotEnoughBytes(rest.len(), buf.len()))
            }
        }
    }

    fn z_seek(&mut self, from: ZSeekFrom) -> Result<u64, ZByteIoError> {
        let (base, offset) = match from {
            ZSeekFrom::Start(n) => {
                self.pos = usize::try_from(n)?;
                return Ok(n);
            }
            ZSeekFrom::End(n) => (self.data.len(), n),
            ZSeekFrom::Current(n) => (self.pos, n),
        };
        let offset = isize::try_from(offset)?;
        match base.checked_add_signed(offset) {
            Some(p) => {
                self.pos = p;
                Ok(p as u64)
            }
            None => Err(ZByteIoError::SeekError("Negative seek")),
        }
    }

    fn is_eof(&mut self) -> Result<bool, ZByteIoError> {
        Ok(self.pos >= self.data.len())
    }

    fn z_position(&mut self) -> Result<u64, ZByteIoError> {
        Ok(self.pos as u64)
    }

    fn read_remaining(&mut self, sink: &mut Vec<u8>) -> Result<usize, ZByteIoError> {
        let rest = self.rest();
        sink.extend_from_slice(rest);
        let n = rest.len();
        self.pos += n;
        Ok(n)
    }
}

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
        let reader = |data| SliceReader { data, pos: 0 };
        let mut dec = JpegDecoder::new_with_options(reader(&self.file), options(ColorSpace::RGB));
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
                let mut grey =
                    JpegDecoder::new_with_options(reader(&self.file), options(ColorSpace::Luma));
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

    fn decode_asset(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/assets/decode")
            .join(name)
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
            // Made with Pillow from photo.jpg at 67x45: progressive, and baseline with restart
            // markers every 4 MCUs.
            decode_asset("progressive.jpg"),
            decode_asset("restart.jpg"),
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

    /// Every operation zune-jpeg can ask of its reader gives what `ZCursor` gives (through
    /// zune-core's `std` reader): bytes, counts, success or failure, and the position after.
    #[test]
    fn the_slice_reader_reads_like_zcursor() {
        use zune_core::bytestream::ZCursor;
        let data: Vec<u8> = (0..10u8).collect();
        let mut a = SliceReader {
            data: &data,
            pos: 0,
        };
        let mut b = ZCursor::new(data.as_slice());
        fn step<R: ZByteReaderTrait>(r: &mut R, op: usize) -> (String, u64) {
            let mut four = [0xAAu8; 4];
            let mut many = [0xAAu8; 20];
            let got = match op {
                0 => format!("{}", r.read_byte_no_error()),
                1 => format!("{:?} {four:?}", r.read_exact_bytes(&mut four).is_ok()),
                2 => format!("{:?} {many:?}", r.read_exact_bytes(&mut many).is_ok()),
                3 => format!("{:?} {many:?}", r.read_bytes(&mut many).ok()),
                4 => format!("{:?} {four:?}", r.peek_bytes(&mut four).ok()),
                5 => format!("{:?} {four:?}", r.peek_exact_bytes(&mut four).is_ok()),
                6 => format!("{:?}", r.z_seek(ZSeekFrom::End(-3)).ok()),
                7 => format!("{:?}", r.z_seek(ZSeekFrom::Current(-20)).ok()),
                8 => format!("{:?}", r.z_seek(ZSeekFrom::Start(50)).ok()),
                9 => format!("{:?}", r.z_seek(ZSeekFrom::Start(2)).ok()),
                10 => format!("{:?}", r.is_eof().ok()),
                11 => {
                    let mut sink = vec![9];
                    format!("{:?} {sink:?}", r.read_remaining(&mut sink).ok())
                }
                _ => format!("{:?}", r.z_seek(ZSeekFrom::Current(1)).ok()),
            };
            (got, r.z_position().unwrap_or(u64::MAX))
        }
        // Sequences through the middle, the end and past the end of the data.
        let ops = [
            0, 1, 5, 4, 1, 2, 3, 0, 10, 6, 2, 1, 4, 0, 0, 0, 0, 10, 7, 9, 11, 8, 0, 1, 4, 3, 10,
            11, 12, 9, 5, 12, 12, 3,
        ];
        for (i, &op) in ops.iter().enumerate() {
            assert_eq!(step(&mut a, op), step(&mut b, op), "step {i} (op {op})");
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
