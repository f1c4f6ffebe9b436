//! The int8 first pass: every row is also stored as `dim` signed 8-bit codes and one `f32`
//! scale (`code_stride(dim)` bytes per row: a quarter of the `f32` row, half of bfloat16), and a
//! query is scored against the codes with exact integer dot products.
//!
//! **Codes.** A row `r` with `m = max|rᵢ|` gets the scale `s = m / 127` and the codes
//! `kᵢ = round(rᵢ / s)` in `−127..=127` (never −128). Every value then lies within
//! [`HALF_STEP`]` · s` of `s · kᵢ` (half a step plus the roundings of the division, see
//! `quantize_row`). Rows whose largest value is below [`MIN_MAX`] get a NaN scale: their scores
//! are NaN, and NaN always survives the first pass (they are scored exactly). The codes are made
//! by plain scalar code with the same operations on every CPU, so a file's codes can be checked
//! against its vectors anywhere (`format::verify`).
//!
//! **Scores.** The query is quantised the same way (`QueryCodes`), keeping the exact largest
//! deviation `δq` of its values. `D = Σ kq·kr` is an exact integer (at most `dim · 127²`), the
//! same on every SIMD path; the approximate dot product is `(sq · sr) · D`. Its error bound is
//! derived in `search.rs`: `|q·r − sq·sr·D| ≤ δr·‖q‖₁ + δq·√dim·(‖r‖ + √dim·δr)` plus the roundings
//! of the final products.
//!
//! The row quantisation ([`quantize_row`], [`scale_of`], [`HALF_STEP`]) is public so that other
//! reduced-precision passes (the facade's all-pairs searches) use the same codes and guarantee.
//!
//! **Dispatch.** AVX2 (detected at run time) multiplies 32 codes per step with
//! `maddubs`/`madd` (the query's signs moved onto the row codes, so no product saturates);
//! elsewhere, portable integer loops. Both return the same integer.

use crate::kernel::{self, Rows};

/// Bytes of the per-row scale after the codes.
const SCALE_BYTES: usize = 4;

/// Bytes per row in the codes section: the codes, then the scale (`f32`, little-endian).
pub fn code_stride(dim: usize) -> usize {
    dim + SCALE_BYTES
}

/// Rows whose largest absolute value is below this get a NaN scale (always re-scored): their
/// scale would be subnormal and lose the half-step guarantee.
pub const MIN_MAX: f32 = 1e-30;

/// `|rᵢ − s·kᵢ| ≤ HALF_STEP · s` for every value of a quantised row (half a step, plus
/// `127 · 4ε` for the roundings of the scale, its inverse and the product).
pub const HALF_STEP: f32 = 0.5001;

/// Above this dimension the int8 pass is not used (`dim · 127²` must fit an `i32`).
pub const MAX_DIM: usize = 100_000;

/// `x` rounded to the nearest integer (ties to even) for `|x| < 2²²`: the classic magic-number
/// trick, plain adds (vectorisable, never fused, the same on every CPU).
#[inline(always)]
fn round_small(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³
    (x + MAGIC) - MAGIC
}

/// The codes of `row` into `out[..dim]`, its scale after them (`out.len() == code_stride(dim)`).
#[inline(always)]
pub fn quantize_row(row: &[f32], out: &mut [u8]) {
    let (codes, tail) = out.split_at_mut(row.len());
    let m = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if m >= MIN_MAX {
        let scale = m / 127.0;
        let inv = 127.0 / m;
        for (c, v) in codes.iter_mut().zip(row) {
            *c = round_small(v * inv).clamp(-127.0, 127.0) as i8 as u8;
        }
        scale
    } else {
        codes.fill(0);
        f32::NAN
    };
    tail[..SCALE_BYTES].copy_from_slice(&scale.to_le_bytes());
}

/// The scale stored after a row's codes.
#[inline(always)]
pub fn scale_of(row: &[u8], dim: usize) -> f32 {
    f32::from_le_bytes([row[dim], row[dim + 1], row[dim + 2], row[dim + 3]])
}

/// A quantised query.
#[derive(Debug, Clone)]
pub(crate) struct QueryCodes {
    /// The codes (`i8` as bytes).
    pub(crate) codes: Vec<u8>,
    /// Their absolute values (what `maddubs` takes as its unsigned operand).
    abs: Vec<u8>,
    /// `sq`: the value of one step.
    pub(crate) scale: f32,
    /// `δq ≥ max |qᵢ − sq·kᵢ|` (measured, rounded up).
    pub(crate) dev: f32,
    /// `≥ ‖q‖₁` (rounded up).
    pub(crate) l1: f32,
}

impl QueryCodes {
    /// Quantises `q` (finite values).
    pub(crate) fn new(q: &[f32]) -> Self {
        let m = q.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (scale, inv) = if m >= MIN_MAX {
            (m / 127.0, 127.0 / m)
        } else {
            (0.0, 0.0)
        };
        let codes: Vec<u8> = q
            .iter()
            .map(|v| round_small(v * inv).clamp(-127.0, 127.0) as i8 as u8)
            .collect();
        let mut dev = 0f64;
        let mut l1 = 0f64;
        for (v, c) in q.iter().zip(&codes) {
            let v = f64::from(*v);
            dev = dev.max((v - f64::from(scale) * f64::from(*c as i8)).abs());
            l1 += v.abs();
        }
        let up = |x: f64| (x * (1.0 + 1e-6)) as f32;
        QueryCodes {
            abs: codes.iter().map(|c| (*c as i8).unsigned_abs()).collect(),
            codes,
            scale,
            dev: up(dev),
            l1: up(l1),
        }
    }
}

/// For each visited row: `out[i] = D` (the integer dot product of the codes, as `f32`) and
/// `scales[i]` = the row's scale. `codes` holds rows of [`code_stride`]`(dim)` bytes.
pub(crate) fn scan_codes(
    codes: &[u8],
    dim: usize,
    rows: Rows<'_>,
    q: &QueryCodes,
    out: &mut [f32],
    scales: &mut [f32],
) {
    let stride = code_stride(dim);
    let mut i = 0;
    let mut record = |row: &[u8], d: i32| {
        scales[i] = scale_of(row, dim);
        i += 1;
        d as f32
    };
    #[cfg(target_arch = "x86_64")]
    if kernel::has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe {
            avx2::scan(codes, stride, rows, q, out, |row, d| record(row, d));
        }
        return;
    }
    kernel::scan_rows(
        codes,
        stride,
        rows,
        out,
        |row| record(row, dot_portable(&q.codes, &row[..dim])),
        |_| (),
    );
}

/// `Σ qᵢ·rᵢ` over `i8` codes (stored as bytes), exactly, in 16 integer lanes.
#[inline(always)]
fn dot_portable(q: &[u8], r: &[u8]) -> i32 {
    let n = q.len().min(r.len());
    let (q, r) = (&q[..n], &r[..n]);
    let mut acc = [0i32; 16];
    let cq = q.chunks_exact(16);
    let cr = r.chunks_exact(16);
    let (tq, tr) = (cq.remainder(), cr.remainder());
    for (x, y) in cq.zip(cr) {
        for j in 0..16 {
            acc[j] += i32::from(x[j] as i8) * i32::from(y[j] as i8);
        }
    }
    for (j, (x, y)) in tq.iter().zip(tr).enumerate() {
        acc[j] += i32::from(*x as i8) * i32::from(*y as i8);
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::QueryCodes;
    use crate::kernel::{scan_rows, Rows};

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load(v: &[u8], at: usize) -> __m256i {
        assert!(at + 32 <= v.len());
        // SAFETY: `at + 32 <= v.len()`: 32 readable bytes; `loadu` needs no alignment.
        unsafe { _mm256_loadu_si256(v.as_ptr().add(at).cast::<__m256i>()) }
    }

    /// `Σ qᵢ·rᵢ` exactly: `|q|` (unsigned) times `r` with `q`'s signs (signed), pairs summed to
    /// `i16` by `maddubs` (at most 2·127·127, no saturation), then to `i32` by `madd`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn dot(q: &QueryCodes, r: &[u8]) -> i32 {
        let n = r.len().min(q.codes.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); 2];
        let mut i = 0;
        let step = |acc: &mut __m256i, at: usize| {
            let signed = _mm256_sign_epi8(load(r, at), load(&q.codes, at));
            let pairs = _mm256_maddubs_epi16(load(&q.abs, at), signed);
            *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(pairs, ones));
        };
        while i + 64 <= n {
            step(&mut acc[0], i);
            step(&mut acc[1], i + 32);
            i += 64;
        }
        if i + 32 <= n {
            step(&mut acc[0], i);
            i += 32;
        }
        let v = _mm256_add_epi32(acc[0], acc[1]);
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        let mut total = _mm_cvtsi128_si32(s);
        for (x, y) in q.codes[i..n].iter().zip(&r[i..n]) {
            total += i32::from(*x as i8) * i32::from(*y as i8);
        }
        total
    }

    /// Asks for every cache line of `row`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn prefetch(row: &[u8]) {
        for off in (0..row.len()).step_by(64) {
            // SAFETY: `off < row.len()`: the address lies inside `row`; a prefetch never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().add(off).cast::<i8>()) };
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn scan(
        codes: &[u8],
        stride: usize,
        rows: Rows<'_>,
        q: &QueryCodes,
        out: &mut [f32],
        mut record: impl FnMut(&[u8], i32) -> f32,
    ) {
        let dim = q.codes.len();
        scan_rows(
            codes,
            stride,
            rows,
            out,
            |row| record(row, dot(q, &row[..dim])),
            |row| prefetch(row),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernel::test_values as vals;

    fn codes_of(row: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; code_stride(row.len())];
        quantize_row(row, &mut out);
        out
    }

    #[test]
    fn every_value_is_within_half_a_step() {
        let dim = 67;
        let mut rows: Vec<Vec<f32>> = (0..40).map(|i| vals(dim, i)).collect();
        // An outlier, huge and tiny magnitudes, exact ties, signed zeros.
        rows[0][5] = 40.0;
        rows[1].iter_mut().for_each(|v| *v *= 3e37);
        rows[2].iter_mut().for_each(|v| *v *= 1e-25);
        rows[3] = (0..dim).map(|i| i as f32 - 33.5).collect();
        rows[4].fill(-0.0);
        rows[5].iter_mut().for_each(|v| *v *= 1e-31);
        for (i, row) in rows.iter().enumerate() {
            let c = codes_of(row);
            let s = scale_of(&c, dim);
            if i == 4 || i == 5 {
                assert!(s.is_nan(), "row {i}: below MIN_MAX");
                assert!(c[..dim].iter().all(|&b| b == 0));
                continue;
            }
            for (v, &k) in row.iter().zip(&c[..dim]) {
                let k = k as i8;
                assert!(k != -128);
                let dev = (f64::from(*v) - f64::from(s) * f64::from(k)).abs();
                assert!(dev <= f64::from(HALF_STEP * s), "row {i}: {v} vs {k}·{s}");
            }
            let q = QueryCodes::new(row);
            assert!(f64::from(q.dev) <= f64::from(HALF_STEP * q.scale));
            assert!(f64::from(q.l1) >= row.iter().map(|v| f64::from(v.abs())).sum::<f64>());
        }
    }

    #[test]
    fn integer_scores_are_the_same_on_every_path() {
        for dim in [1usize, 31, 32, 33, 64, 100, 512] {
            let n = 9;
            let mut data = vals(n * dim, dim as u64);
            data[..dim].fill(1.0); // all codes 127: the largest products
            let mut codes = vec![0u8; n * code_stride(dim)];
            for (row, out) in data
                .chunks_exact(dim)
                .zip(codes.chunks_exact_mut(code_stride(dim)))
            {
                quantize_row(row, out);
            }
            let mut qv = vals(dim, 99);
            qv[0] = -1.0;
            for q in [QueryCodes::new(&qv), QueryCodes::new(&vec![-1.0; dim])] {
                let mut out = vec![0f32; n];
                let mut scales = vec![0f32; n];
                scan_codes(&codes, dim, Rows::Range(0), &q, &mut out, &mut scales);
                let list: Vec<u32> = (0..n as u32).rev().collect();
                let mut out2 = vec![0f32; n];
                scan_codes(&codes, dim, Rows::List(&list), &q, &mut out2, &mut scales);
                for (r, row) in codes.chunks_exact(code_stride(dim)).enumerate() {
                    let want: i64 = q.codes[..dim]
                        .iter()
                        .zip(&row[..dim])
                        .map(|(a, b)| i64::from(*a as i8) * i64::from(*b as i8))
                        .sum();
                    assert_eq!(out[r], want as f32, "dim {dim} row {r}");
                    assert_eq!(dot_portable(&q.codes, &row[..dim]), want as i32);
                    assert_eq!(out2[n - 1 - r], out[r]);
                    assert_eq!(scales[n - 1 - r].to_bits(), scale_of(row, dim).to_bits());
                }
            }
        }
    }
}
