//! Pillow's resampler (libImaging/Resample.c), bicubic, 8 bits per channel, bit-exact: fixed-point
//! coefficients, horizontal pass then vertical pass, each clipped to `u8`.
//!
//! [`resize_bicubic`] is the whole-image resize (the reference). [`resize_crop_normalise`] gives
//! the same pixels for a center crop of the resized image and writes them normalised (CHW `f32`)
//! without materialising the resized image: it filters only the columns and rows the crop keeps,
//! widens each source row once so the taps of a pixel are 4-lane integer multiply-adds, and
//! normalises through a per-channel table built with the same `f32` expression as before.
use image::RgbImage;

#[cfg(target_arch = "x86_64")]
mod avx2;

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: first input index, count, and `ksize` fixed-point weights.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn precompute_coeffs(in_size: usize, out_size: usize) -> Coeffs {
    const SUPPORT: f64 = 2.0;
    let (in0, in1) = (0.0f64, in_size as f64);
    let scale = (in1 - in0) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = in0 + (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = bicubic((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut weights[xx * ksize..(xx + 1) * ksize];
        for (x, slot) in row.iter_mut().enumerate().take(n) {
            let v = if ww != 0.0 { k[x] / ww } else { k[x] };
            let f = v * f64::from(1u32 << PRECISION_BITS);
            *slot = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs {
        ksize,
        bounds,
        weights,
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// PIL `Image.resize((w, h), Image.BICUBIC)` for RGB images, bit-exact.
pub fn resize_bicubic(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    if (in_w, in_h) == (ow, oh) {
        return img.clone();
    }
    let src = img.as_raw();
    let need_h = ow != in_w;
    let need_v = oh != in_h;
    let ch = precompute_coeffs(in_w, ow);
    let cv = precompute_coeffs(in_h, oh);
    let half = 1i32 << (PRECISION_BITS - 1);

    // Horizontal pass over the rows the vertical pass needs.
    let (tmp, tmp_w, row_first, tmp_h);
    let first = cv.bounds.first().map_or(0, |b| b.0);
    let last = cv.bounds.last().map_or(in_h, |b| b.0 + b.1);
    if need_h {
        row_first = first;
        tmp_h = last - first;
        tmp_w = ow;
        let mut t = vec![0u8; tmp_w * tmp_h * 3];
        for (ty, y) in (first..last).enumerate() {
            let srow = &src[y * in_w * 3..(y + 1) * in_w * 3];
            let drow = &mut t[ty * tmp_w * 3..(ty + 1) * tmp_w * 3];
            for xx in 0..ow {
                let (xmin, n) = ch.bounds[xx];
                let k = &ch.weights[xx * ch.ksize..xx * ch.ksize + n];
                let (mut s0, mut s1, mut s2) = (half, half, half);
                let px = &srow[xmin * 3..(xmin + n) * 3];
                for (w, p) in k.iter().zip(px.chunks_exact(3)) {
                    s0 += i32::from(p[0]) * w;
                    s1 += i32::from(p[1]) * w;
                    s2 += i32::from(p[2]) * w;
                }
                drow[xx * 3] = clip8(s0);
                drow[xx * 3 + 1] = clip8(s1);
                drow[xx * 3 + 2] = clip8(s2);
            }
        }
        tmp = t;
    } else {
        row_first = 0;
        tmp_h = in_h;
        tmp_w = in_w;
        tmp = src.to_vec();
    }
    if !need_v {
        return RgbImage::from_raw(tmp_w as u32, tmp_h as u32, tmp)
            .unwrap_or_else(|| RgbImage::new(out_w, out_h));
    }
    // Vertical pass.
    let mut out = vec![0u8; ow * oh * 3];
    let stride = tmp_w * 3;
    let mut acc = vec![0i32; stride];
    for yy in 0..oh {
        let (ymin, n) = cv.bounds[yy];
        let ymin = ymin - row_first;
        let k = &cv.weights[yy * cv.ksize..yy * cv.ksize + n];
        acc.fill(half);
        for (j, &w) in k.iter().enumerate() {
            let row = &tmp[(ymin + j) * stride..(ymin + j + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * w;
            }
        }
        let drow = &mut out[yy * stride..(yy + 1) * stride];
        for (d, &a) in drow.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    RgbImage::from_raw(out_w, out_h, out).unwrap_or_else(|| RgbImage::new(out_w, out_h))
}

/// A packed RGB8 image, borrowed: `data.len() >= width * height * 3`, rows `width * 3` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixels, row after row, 3 bytes each.
    pub data: &'a [u8],
}

/// Where a resize + center crop lands: the region `[x1, y1, x2, y2)` of the source is resized
/// to `resized` (width, height) and the `size`×`size` window at (`left`, `top`) of that is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropPlan {
    /// Source region `[x1, y1, x2, y2)`.
    pub region: [usize; 4],
    /// Size of the resized region (width, height).
    pub resized: (usize, usize),
    /// First column of the crop in the resized image.
    pub left: usize,
    /// First row of the crop in the resized image.
    pub top: usize,
    /// Output side.
    pub size: usize,
}

/// Per channel, the normalised value of each byte: `(v / 255 - mean) / std` in `f32`.
pub type NormTable = [[f32; 256]; 3];

/// The table for `mean` / `std`, with exactly the arithmetic of the per-pixel formula.
pub fn norm_table(mean: [f32; 3], std: [f32; 3]) -> NormTable {
    let mut t = [[0f32; 256]; 3];
    for (c, row) in t.iter_mut().enumerate() {
        for (v, slot) in row.iter_mut().enumerate() {
            let x = f32::from(v as u8) / 255.0;
            *slot = (x - mean[c]) / std[c];
        }
    }
    t
}

/// The output columns (or rows) `first..first + count` of a resize `in_size -> out_size`: per
/// output, the first input index, the tap count and the weights (`ksize` apart). `None` when
/// the sizes are equal (Pillow skips that pass: the pixels are copied).
struct Taps {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn taps(in_size: usize, out_size: usize, first: usize, count: usize) -> Option<Taps> {
    if in_size == out_size {
        return None;
    }
    let c = precompute_coeffs(in_size, out_size);
    let range = first..first + count;
    Some(Taps {
        ksize: c.ksize,
        bounds: c.bounds[range.clone()].to_vec(),
        weights: c.weights[range.start * c.ksize..range.end * c.ksize].to_vec(),
    })
}

impl Taps {
    /// Input indices `[lo, hi)` the outputs read.
    fn span(&self) -> (usize, usize) {
        let lo = self.bounds.iter().map(|b| b.0).min().unwrap_or(0);
        let hi = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(lo);
        (lo, hi)
    }

    fn of(&self, i: usize) -> (usize, &[i32]) {
        let (start, n) = self.bounds[i];
        (start, &self.weights[i * self.ksize..i * self.ksize + n])
    }
}

/// Pillow's bicubic resize of `plan.region` of `src` to `plan.resized`, center-cropped to
/// `plan.size`² and normalised through `norm` into `out` (`3 * size²`, CHW). Pixels of the window
/// outside the resized image (only when it is smaller than the crop) get the value of 0, as
/// torchvision's zero padding. Equal, value for value, to [`resize_bicubic`] then crop then the
/// per-pixel formula.
pub fn resize_crop_normalise(src: RgbView<'_>, plan: &CropPlan, norm: &NormTable, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { resize_crop_normalise_avx2(src, plan, norm, out) };
        return;
    }
    resize_crop_normalise_with(src, plan, norm, out, false);
}

/// The same code compiled for AVX2, with the AVX2 horizontal kernel (integer arithmetic, so the
/// results are the portable build's exactly).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn resize_crop_normalise_avx2(
    src: RgbView<'_>,
    plan: &CropPlan,
    norm: &NormTable,
    out: &mut [f32],
) {
    resize_crop_normalise_with(src, plan, norm, out, true);
}

/// Horizontal pass of one row on the portable path: `wide` holds the source pixels from the
/// first one the taps read, widened to (R, G, B, 0); `planes` the window's columns of R, G, B.
#[inline(always)]
fn filter_row(h: &Taps, col_lo: usize, wide: &[[i32; 4]], planes: [&mut [u8]; 3]) {
    let half = 1i32 << (PRECISION_BITS - 1);
    let [r, g, b] = planes;
    for (x, ((r, g), b)) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()).enumerate() {
        let (start, k) = h.of(x);
        let px = &wide[start - col_lo..start - col_lo + k.len()];
        let mut acc = [half; 3];
        for (&w, p) in k.iter().zip(px) {
            for c in 0..3 {
                acc[c] += p[c] * w;
            }
        }
        (*r, *g, *b) = (clip8(acc[0]), clip8(acc[1]), clip8(acc[2]));
    }
}

/// Source pixels (RGB bytes) to (R, G, B, 0) lanes.
#[inline(always)]
fn widen(src: &[u8], wide: &mut [[i32; 4]]) {
    for (w, p) in wide.iter_mut().zip(src.chunks_exact(3)) {
        *w = [i32::from(p[0]), i32::from(p[1]), i32::from(p[2]), 0];
    }
}

/// `avx2`: the caller has checked that the CPU supports AVX2.
#[inline(always)]
fn resize_crop_normalise_with(
    src: RgbView<'_>,
    plan: &CropPlan,
    norm: &NormTable,
    out: &mut [f32],
    avx2: bool,
) {
    let [x1, y1, x2, y2] = plan.region;
    let (in_w, in_h) = (x2 - x1, y2 - y1);
    let (nw, nh) = plan.resized;
    let s = plan.size;
    let plane = s * s;
    if in_w == 0 || in_h == 0 {
        // Nothing to resize (callers pass non-empty regions): all padding.
        for (c, table) in norm.iter().enumerate() {
            out[c * plane..(c + 1) * plane].fill(table[0]);
        }
        return;
    }
    // The part of the window inside the resized image.
    let cw = s.min(nw.saturating_sub(plan.left));
    let chh = s.min(nh.saturating_sub(plan.top));
    let half = 1i32 << (PRECISION_BITS - 1);
    let hor = taps(in_w, nw, plan.left, cw);
    let ver = taps(in_h, nh, plan.top, chh);
    // Source rows the vertical pass reads (or the window's rows when there is none).
    let (row_lo, row_hi) = ver.as_ref().map_or((plan.top, plan.top + chh), Taps::span);
    let stride = src.width * 3;
    let src_row = |y: usize| &src.data[(y1 + y) * stride + x1 * 3..(y1 + y) * stride + x2 * 3];

    // Horizontal pass into `tmp`: per channel a plane of rows row_lo..row_hi by the window's
    // columns, clipped to u8.
    let rows = row_hi - row_lo;
    let mut tmp = vec![0u8; 3 * rows * cw];
    {
        let (tr, rest) = tmp.split_at_mut(rows * cw);
        let (tg, tb) = rest.split_at_mut(rows * cw);
        let lines = tr
            .chunks_exact_mut(cw.max(1))
            .zip(tg.chunks_exact_mut(cw.max(1)))
            .zip(tb.chunks_exact_mut(cw.max(1)));
        match &hor {
            Some(h) => {
                let (col_lo, col_hi) = h.span();
                // Zero pixels after the last one read: the AVX2 kernel reads taps in pairs.
                let mut wide = vec![[0i32; 4]; col_hi - col_lo + 2];
                #[cfg(target_arch = "x86_64")]
                let pairs = avx2.then(|| avx2::PairTaps::new(h, col_lo));
                #[cfg(not(target_arch = "x86_64"))]
                let _ = avx2;
                for (y, ((r, g), b)) in (row_lo..row_hi).zip(lines) {
                    let srow = &src_row(y)[col_lo * 3..col_hi * 3];
                    #[cfg(target_arch = "x86_64")]
                    if let Some(p) = &pairs {
                        // SAFETY: `pairs` is made only when the caller checked for AVX2.
                        unsafe {
                            avx2::widen(srow, &mut wide);
                            avx2::filter_row(p, &wide, [r, g, b]);
                        }
                        continue;
                    }
                    widen(srow, &mut wide);
                    filter_row(h, col_lo, &wide, [r, g, b]);
                }
            }
            None => {
                for (y, ((r, g), b)) in (row_lo..row_hi).zip(lines) {
                    let srow = &src_row(y)[plan.left * 3..(plan.left + cw) * 3];
                    for (((r, g), b), p) in r
                        .iter_mut()
                        .zip(g.iter_mut())
                        .zip(b.iter_mut())
                        .zip(srow.chunks_exact(3))
                    {
                        (*r, *g, *b) = (p[0], p[1], p[2]);
                    }
                }
            }
        }
    }

    // Vertical pass, normalised into the output planes.
    let mut acc = vec![0i32; cw];
    for (c, table) in norm.iter().enumerate() {
        let tplane = &tmp[c * rows * cw..(c + 1) * rows * cw];
        for y in 0..s {
            let dst = &mut out[c * plane + y * s..c * plane + (y + 1) * s];
            if y >= chh {
                dst.fill(table[0]);
                continue;
            }
            let (inside, pad) = dst.split_at_mut(cw);
            pad.fill(table[0]);
            match &ver {
                Some(v) => {
                    let (start, k) = v.of(y);
                    acc.fill(half);
                    for (j, &w) in k.iter().enumerate() {
                        let r = start + j - row_lo;
                        for (a, &p) in acc.iter_mut().zip(&tplane[r * cw..(r + 1) * cw]) {
                            *a += i32::from(p) * w;
                        }
                    }
                    for (d, &a) in inside.iter_mut().zip(&acc) {
                        *d = table[usize::from(clip8(a))];
                    }
                }
                None => {
                    let r = plan.top + y - row_lo;
                    for (d, &p) in inside.iter_mut().zip(&tplane[r * cw..(r + 1) * cw]) {
                        *d = table[usize::from(p)];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{
        crop_rgb, preprocess_reference, preprocess_region_into, PreprocessConfig,
    };

    /// `v / 2` rounded half to even, as torchvision's `int(round(v / 2.0))`.
    fn half_even(v: u32) -> u32 {
        if v % 2 == 1 && (v / 2) % 2 == 0 {
            v / 2
        } else {
            v.div_ceil(2)
        }
    }

    /// Noise plus edges: every tap and every clip to 0 / 255 gets exercised.
    fn test_image(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        RgbImage::from_fn(w, h, |x, y| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 24) as u8;
            let edge = if (x / 7 + y / 5) % 2 == 0 { 255 } else { 0 };
            image::Rgb([noise, edge, ((x * 3 + y * 5) % 256) as u8])
        })
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn fused_path_equals_resize_then_crop_then_normalise() {
        let cfg = PreprocessConfig::default();
        let sizes = [
            (640, 480),
            (480, 640),
            (224, 224),
            (224, 300),
            (300, 224),
            (225, 224),
            (100, 61),
            (61, 100),
            (1, 1),
            (3, 500),
            (1000, 872),
        ];
        for (k, &(w, h)) in sizes.iter().enumerate() {
            let img = test_image(w, h, k as u32);
            let want = preprocess_reference(&img, &cfg);
            let mut got = vec![f32::NAN; want.len()];
            crate::preprocess::preprocess_into(&img, &cfg, &mut got);
            let d = max_abs_diff(&got, &want);
            assert!(d == 0.0, "{w}x{h}: max |diff| {d}");
            // The portable kernel too (the call above takes the AVX2 one where the CPU has it).
            let (nw, nh) = crate::preprocess::resized_size(w, h, 224);
            let plan = CropPlan {
                region: [0, 0, w as usize, h as usize],
                resized: (nw as usize, nh as usize),
                left: half_even(nw - 224) as usize,
                top: half_even(nh - 224) as usize,
                size: 224,
            };
            let view = RgbView {
                width: w as usize,
                height: h as usize,
                data: img.as_raw(),
            };
            got.fill(f32::NAN);
            resize_crop_normalise_with(
                view,
                &plan,
                &norm_table(cfg.mean, cfg.std),
                &mut got,
                false,
            );
            let d = max_abs_diff(&got, &want);
            assert!(d == 0.0, "{w}x{h}, portable kernel: max |diff| {d}");
        }
    }

    #[test]
    fn fused_path_on_a_region_equals_the_cropped_copy() {
        let cfg = PreprocessConfig {
            image_size: 32,
            ..PreprocessConfig::default()
        };
        let img = test_image(97, 61, 7);
        let view = RgbView {
            width: 97,
            height: 61,
            data: img.as_raw(),
        };
        for region in [
            [0, 0, 97, 61],
            [10, 5, 60, 50],
            [96, 60, 97, 61],
            [3, 0, 35, 61],
        ] {
            let want = preprocess_reference(&crop_rgb(&img, region), &cfg);
            let mut got = vec![f32::NAN; want.len()];
            preprocess_region_into(view, region, &cfg, &mut got);
            let d = max_abs_diff(&got, &want);
            assert!(d == 0.0, "{region:?}: max |diff| {d}");
        }
    }

    #[test]
    fn the_table_is_the_formula() {
        use crate::preprocess::{CLIP_MEAN, CLIP_STD};
        let t = norm_table(CLIP_MEAN, CLIP_STD);
        for ((row, mean), std) in t.iter().zip(CLIP_MEAN).zip(CLIP_STD) {
            for v in [0u8, 1, 127, 128, 254, 255] {
                let want = (f32::from(v) / 255.0 - mean) / std;
                assert_eq!(row[usize::from(v)].to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn an_empty_region_is_padding_not_a_panic() {
        let cfg = PreprocessConfig {
            image_size: 8,
            ..PreprocessConfig::default()
        };
        let data = [0u8; 0];
        let plan = CropPlan {
            region: [0, 0, 0, 0],
            resized: (8, 8),
            left: 0,
            top: 0,
            size: 8,
        };
        let mut out = vec![f32::NAN; 3 * 64];
        let view = RgbView {
            width: 0,
            height: 0,
            data: &data,
        };
        resize_crop_normalise(view, &plan, &norm_table(cfg.mean, cfg.std), &mut out);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
