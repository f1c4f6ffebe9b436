//! The horizontal pass with AVX2: two taps of a pixel per 8-lane multiply-add, (R, G, B, 0) in
//! each half. The sums are the portable pass's exactly: 32-bit integer adds in another order,
//! and no partial sum leaves the range the final one is in (Pillow's own bound).
use std::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_castsi256_si128, _mm256_extracti128_si256,
    _mm256_loadu_si256, _mm256_mullo_epi32, _mm256_setzero_si256, _mm_add_epi32, _mm_storeu_si128,
};

use super::{clip8, Taps, PRECISION_BITS};

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
/// one zero pixel (a pair may read one past the last tap, with weight 0).
#[target_feature(enable = "avx2")]
pub(super) fn filter_row(p: &PairTaps, wide: &[[i32; 4]], drow: &mut [u8]) {
    let half = 1i32 << (PRECISION_BITS - 1);
    for ((x, d), &(start, pairs)) in drow.chunks_exact_mut(3).enumerate().zip(&p.starts) {
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
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        let mut lanes = [0i32; 4];
        // SAFETY: `lanes` is 16 bytes; unaligned store.
        unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), sum) };
        d[0] = clip8(half + lanes[0]);
        d[1] = clip8(half + lanes[1]);
        d[2] = clip8(half + lanes[2]);
    }
}
