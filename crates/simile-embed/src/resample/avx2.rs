//! The horizontal pass with AVX2: two taps of a pixel per 8-lane multiply-add, (R, G, B, 0) in
//! each half, and the source row widened to those lanes with a byte shuffle. The sums are the
//! portable pass's exactly (32-bit integer adds in another order, wrapping, of a total within
//! `i32`: Pillow's own bound), and so is the clip.
use std::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_castsi256_si128, _mm256_cvtepu8_epi32,
    _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_mullo_epi32, _mm256_setzero_si256,
    _mm256_storeu_si256, _mm_add_epi32, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_packs_epi32,
    _mm_packus_epi16, _mm_set1_epi32, _mm_setr_epi8, _mm_shuffle_epi8, _mm_srai_epi32,
    _mm_srli_si128,
};

use super::{Taps, PRECISION_BITS};

/// The taps of each output pixel, in pairs: `[w0; 4] ++ [w1; 4]`, `[w2; 4] ++ [w3; 4]`, ... (an odd
/// count ends with a zero weight).
#[derive(Debug)]
pub(super) struct PairTaps {
    /// Per output pixel: first widened pixel read (from `col_lo`), number of pairs.
    starts: Vec<(usize, usize)>,
    /// `stride` pairs per output pixel.
    weights: Vec<[i32; 8]>,
    stride: usize,
}

impl PairTaps {
    pub(super) fn new(h: &Taps, col_lo: usize) -> PairTaps {
        let stride = h.ksize.div_ceil(2);
        let mut starts = Vec::with_capacity(h.bounds.len());
        let mut weights = vec![[0i32; 8]; stride * h.bounds.len()];
        for (x, row) in weights.chunks_exact_mut(stride).enumerate() {
            let (start, k) = h.of(x);
            for (j, &w) in k.iter().enumerate() {
                let lanes = &mut row[j / 2][(j % 2) * 4..(j % 2) * 4 + 4];
                lanes.fill(w);
            }
            starts.push((start - col_lo, k.len().div_ceil(2)));
        }
        PairTaps {
            starts,
            weights,
            stride,
        }
    }
}

/// One row: `wide` holds the source pixels from `col_lo` widened to (R, G, B, 0), then at least
/// one zero pixel (a pair may read one past the last tap, with weight 0); `planes` the window's
/// columns of R, G, B.
#[target_feature(enable = "avx2")]
pub(super) fn filter_row(p: &PairTaps, wide: &[[i32; 4]], planes: [&mut [u8]; 3]) {
    let half = _mm_set1_epi32(1i32 << (PRECISION_BITS - 1));
    let [r, g, b] = planes;
    let outs = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
    for ((x, ((r, g), b)), &(start, pairs)) in outs.enumerate().zip(&p.starts) {
        let w = &p.weights[x * p.stride..x * p.stride + pairs];
        let px = &wide[start..start + 2 * pairs];
        let mut acc = _mm256_setzero_si256();
        for (wp, two) in w.iter().zip(px.chunks_exact(2)) {
            // SAFETY: `two` is 2 × 4 contiguous i32 and `wp` 8 i32: 32 bytes each, in bounds
            // (slices); unaligned loads.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_si256(two.as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(wp.as_ptr().cast::<__m256i>()),
                )
            };
            acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(a, b));
        }
        let sum = _mm_add_epi32(
            _mm_add_epi32(
                _mm256_castsi256_si128(acc),
                _mm256_extracti128_si256::<1>(acc),
            ),
            half,
        );
        // Pillow's clip8: `>> PRECISION_BITS`, then saturated to 0..=255 (through i16).
        let shifted = _mm_srai_epi32::<{ PRECISION_BITS as i32 }>(sum);
        let bytes = _mm_packus_epi16(_mm_packs_epi32(shifted, shifted), shifted);
        let [vr, vg, vb, _] = _mm_cvtsi128_si32(bytes).to_le_bytes();
        (*r, *g, *b) = (vr, vg, vb);
    }
}

/// Source pixels (RGB bytes) to (R, G, B, 0) lanes, four at a time.
#[target_feature(enable = "avx2")]
pub(super) fn widen(src: &[u8], wide: &mut [[i32; 4]]) {
    let n = (src.len() / 3).min(wide.len());
    // Bytes of pixels 0..4 of 16 loaded, a zero (index with the top bit set) after each.
    let spread = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    let mut i = 0;
    while i + 4 <= n && i * 3 + 16 <= src.len() {
        let block = &src[i * 3..i * 3 + 16];
        let dst = &mut wide[i..i + 4];
        // SAFETY: `block` is 16 bytes and `dst` 4 × 16 bytes (slices, in bounds); unaligned.
        unsafe {
            let v = _mm_shuffle_epi8(_mm_loadu_si128(block.as_ptr().cast()), spread);
            let lo = _mm256_cvtepu8_epi32(v);
            let hi = _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(v));
            _mm256_storeu_si256(dst.as_mut_ptr().cast(), lo);
            _mm256_storeu_si256(dst.as_mut_ptr().add(2).cast(), hi);
        }
        i += 4;
    }
    for (w, p) in wide[i..n].iter_mut().zip(src[i * 3..].chunks_exact(3)) {
        *w = [i32::from(p[0]), i32::from(p[1]), i32::from(p[2]), 0];
    }
}
