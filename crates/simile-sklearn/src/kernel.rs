//! The hot loops of the exact backend: `f32` kernels that score one query against many rows, and
//! the `f64` exact distances that decide what is returned.
//!
//! # Design
//!
//! **Passes.** A search (`search.rs`) makes up to three passes over its candidates:
//! 1. `quant::scan_codes`: the quantised query against the int8 codes of the rows (a quarter of
//!    the bytes of `f32`; exact integer dot products, bounds in the `quant` module);
//! 2. [`scan`]: when many rows survive pass 1 (near-duplicates), the survivors again, against the
//!    `f32` rows;
//! 3. [`exact_distance8`] / [`exact_distance`]: the last survivors, in `f64`.
//!
//! Passes 1 and 2 only prune: a row is dropped when even its most favourable rounding error
//! cannot bring it among the best `k`. Only pass 3 produces the distances that are returned.
//!
//! **Error bounds.** Pruning rests on two bounds, which `search.rs` turns into per-row margins
//! (with extra slack):
//! - accumulation in `f32`: a computed dot product is within [`rel_error`]`(dim) · ‖a‖·‖b‖` of the
//!   exact one (a squared distance within `rel_error(dim) · ‖a − b‖²`), `rel_error(dim) = (dim +
//!   32)·ε`. A chain of `L` roundings errs by at most `γ_L ≈ L·ε/2` relative, and the longest chain
//!   is about `dim/16 + 5` in the portable kernels (16 lanes, then 4 levels of reduction) and
//!   `dim/32 + 21` in the AVX2 ones (4×8 lanes with FMA, a few 8- or 16-wide steps, 5 levels of
//!   reduction, at most 15 scalar tail steps): both well inside the bound.
//! - quantisation to int8 (pass 1): see the `quant` module.
//!
//! **Bit-identical results.** The fast kernels differ between the AVX2 and portable paths
//! (summation order, FMA), which is harmless: they only prune, with bounds that hold for both.
//! The exact pass performs, for each row, exactly the operations of
//! [`Metric::reference_distance`] in its order: `f64` conversions, sums starting from `-0.0` like
//! `Sum for f64`, a multiply then an add (never an FMA, which rounds once instead of twice), and
//! the same final step ([`finish`]). Rows are independent lanes (one, four or eight at a time,
//! in portable code or AVX2 registers) and are never summed across, so every lane rounds like the
//! scalar reference. Keys, order and distance bits are therefore the same on every CPU, thread
//! count and SIMD path (`exact_is_bit_identical_to_reference` here, and end to end
//! `portable_kernels_give_the_same_results` in `search.rs`).
//!
//! **Dispatch.** On x86-64 with AVX2 and FMA (detected at run time, see `has_avx2`), the scans,
//! the row derivation (whose bytes do not depend on the path) and the 8-row exact distance run hand-written intrinsics (the `avx2`
//! module); everywhere else, portable code written with independent accumulators so that LLVM
//! vectorises it for the baseline target.

use simile_index::Metric;

/// Number of independent `f32` accumulators in the fast kernels.
const LANES: usize = 16;

/// A relative error bound for the fast `f32` kernels (portable and AVX2) on `dim`-long vectors:
/// the computed dot product differs from the exact one by at most `rel_error(dim) · ‖a‖·‖b‖`
/// (and the squared distance by at most `rel_error(dim) · ‖a − b‖²`). Deliberately generous:
/// see the module's notes on error bounds.
pub(crate) fn rel_error(dim: usize) -> f32 {
    (dim as f32 + 32.0) * f32::EPSILON
}

#[inline(always)]
fn reduce(acc: [f32; LANES]) -> f32 {
    let mut a8 = [0f32; 8];
    for i in 0..8 {
        a8[i] = acc[i] + acc[i + 8];
    }
    let a4 = [a8[0] + a8[4], a8[1] + a8[5], a8[2] + a8[6], a8[3] + a8[7]];
    (a4[0] + a4[2]) + (a4[1] + a4[3])
}

/// `a · b` in `f32` with 16 accumulators.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[i] += x * y;
    }
    reduce(acc)
}

/// `‖a − b‖²` in `f32` with 16 accumulators.
#[inline(always)]
pub(crate) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        let d = x - y;
        acc[i] += d * d;
    }
    reduce(acc)
}

/// Which rows a scan visits.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rows<'a> {
    /// Rows `start..start + out.len()`.
    Range(usize),
    /// These rows, in order.
    List(&'a [u32]),
}

/// Writes `kernel(row)` (a dot product or squared distance against the query) of each visited
/// row into `out`.
///
/// For scattered rows, `prefetch` is called on the row [`PREFETCH_AHEAD`] positions ahead: the
/// hardware prefetchers do not follow such access patterns.
#[inline(always)]
pub(crate) fn scan_rows<E>(
    data: &[E],
    dim: usize,
    rows: Rows<'_>,
    out: &mut [f32],
    mut kernel: impl FnMut(&[E]) -> f32,
    prefetch: impl Fn(&[E]),
) {
    match rows {
        Rows::Range(start) => {
            let block = &data[start * dim..(start + out.len()) * dim];
            for (o, row) in out.iter_mut().zip(block.chunks_exact(dim)) {
                *o = kernel(row);
            }
        }
        Rows::List(list) => {
            for (i, (o, &r)) in out.iter_mut().zip(list).enumerate() {
                if let Some(&next) = list.get(i + PREFETCH_AHEAD) {
                    let next = next as usize;
                    if let Some(row) = data.get(next * dim..(next + 1) * dim) {
                        prefetch(row);
                    }
                }
                let r = r as usize;
                *o = kernel(&data[r * dim..(r + 1) * dim]);
            }
        }
    }
}

/// How many rows ahead scattered scans prefetch.
const PREFETCH_AHEAD: usize = 2;

/// Tests can force the portable kernels (results must not change: exactness never depends on
/// the kernel).
#[cfg(test)]
pub(crate) static FORCE_PORTABLE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Whether the AVX2+FMA kernels can run here.
#[inline]
pub(crate) fn has_avx2() -> bool {
    #[cfg(test)]
    if FORCE_PORTABLE.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Raw kernel values of `q` against the visited `f32` rows of `data`: dot products, or squared
/// Euclidean distances when `l2`. `out.len()` rows are visited. AVX2+FMA where the CPU has it,
/// the portable loops otherwise.
pub(crate) fn scan(data: &[f32], dim: usize, rows: Rows<'_>, q: &[f32], l2: bool, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { avx2::scan(data, dim, rows, q, l2, out) };
        return;
    }
    scan_portable(data, dim, rows, q, l2, out);
}

fn scan_portable(data: &[f32], dim: usize, rows: Rows<'_>, q: &[f32], l2: bool, out: &mut [f32]) {
    if l2 {
        scan_rows(data, dim, rows, out, |r| l2sq(q, r), |_| ());
    } else {
        scan_rows(data, dim, rows, out, |r| dot(q, r), |_| ());
    }
}

/// Hand-written AVX2+FMA kernels. The `f32` and bfloat16 scans keep four 8-lane accumulators (32
/// values per step, with FMA); the exact distance runs eight rows in `f64` lanes, without FMA.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use simile_index::Metric;

    use super::{scan_rows, Rows};

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load(v: &[f32], at: usize) -> __m256 {
        assert!(at + 8 <= v.len());
        // SAFETY: `at + 8 <= v.len()` (asserted; the optimiser hoists or drops the check).
        unsafe { _mm256_loadu_ps(v.as_ptr().add(at)) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn step<const L2: bool>(acc: __m256, x: __m256, y: __m256) -> __m256 {
        if L2 {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        } else {
            _mm256_fmadd_ps(x, y, acc)
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn kernel_f32<const L2: bool>(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = step::<L2>(*acc, load(a, i + 8 * j), load(b, i + 8 * j));
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = step::<L2>(acc[0], load(a, i), load(b, i));
            i += 8;
        }
        let mut s = hsum(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        for (x, y) in a[i..].iter().zip(&b[i..]) {
            s += if L2 { (x - y) * (x - y) } else { x * y };
        }
        s
    }

    /// Asks for every cache line of `row`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn prefetch<E>(row: &[E]) {
        let bytes = std::mem::size_of_val(row);
        let base = row.as_ptr().cast::<i8>();
        for off in (0..bytes).step_by(64) {
            // SAFETY: `off < bytes`, so the address lies inside `row`; a prefetch never faults
            // and has no architectural effect anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(off)) };
        }
    }

    /// `f64` accumulation of eight rows, one lane per row, with separate multiply and add
    /// (no FMA) so every lane rounds exactly like the scalar reference.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn exact8(metric: Metric, q: &[f32], qn: f64, rows: [&[f32]; 8]) -> [f64; 8] {
        let n = q.len();
        let rows = rows.map(|r| &r[..n]);
        let neg0 = _mm256_set1_pd(-0.0);
        let mut acc = [neg0; 2];
        let mut nrm = [neg0; 2];
        let l2 = metric == Metric::Euclidean;
        let cos = metric == Metric::Cosine;
        let mut step = |x: f64, col: [__m256d; 2]| {
            let x = _mm256_set1_pd(x);
            for g in 0..2 {
                let y = col[g];
                if l2 {
                    let d = _mm256_sub_pd(x, y);
                    acc[g] = _mm256_add_pd(acc[g], _mm256_mul_pd(d, d));
                } else {
                    acc[g] = _mm256_add_pd(acc[g], _mm256_mul_pd(x, y));
                    if cos {
                        nrm[g] = _mm256_add_pd(nrm[g], _mm256_mul_pd(y, y));
                    }
                }
            }
        };
        let mut j = 0;
        while j + 4 <= n {
            // Four values of each row, transposed so that column e holds element j + e of
            // rows 0..4 (and 4..8).
            let mut cols = [[_mm_setzero_ps(); 4]; 2];
            for (g, cols) in cols.iter_mut().enumerate() {
                let r: [__m128; 4] = std::array::from_fn(|i| {
                    let row = &rows[4 * g + i][j..j + 4];
                    // SAFETY: `row` has exactly 4 readable `f32`s.
                    unsafe { _mm_loadu_ps(row.as_ptr()) }
                });
                let t0 = _mm_unpacklo_ps(r[0], r[1]);
                let t1 = _mm_unpacklo_ps(r[2], r[3]);
                let t2 = _mm_unpackhi_ps(r[0], r[1]);
                let t3 = _mm_unpackhi_ps(r[2], r[3]);
                *cols = [
                    _mm_movelh_ps(t0, t1),
                    _mm_movehl_ps(t1, t0),
                    _mm_movelh_ps(t2, t3),
                    _mm_movehl_ps(t3, t2),
                ];
            }
            for e in 0..4 {
                step(
                    f64::from(q[j + e]),
                    [_mm256_cvtps_pd(cols[0][e]), _mm256_cvtps_pd(cols[1][e])],
                );
            }
            j += 4;
        }
        while j < n {
            let v = |i: usize| f64::from(rows[i][j]);
            step(
                f64::from(q[j]),
                [
                    _mm256_setr_pd(v(0), v(1), v(2), v(3)),
                    _mm256_setr_pd(v(4), v(5), v(6), v(7)),
                ],
            );
            j += 1;
        }
        let lanes = |v: [__m256d; 2]| {
            let mut out = [0f64; 8];
            let (lo, hi) = out.split_at_mut(4);
            // SAFETY: each half has exactly 4 writable `f64`s.
            unsafe {
                _mm256_storeu_pd(lo.as_mut_ptr(), v[0]);
                _mm256_storeu_pd(hi.as_mut_ptr(), v[1]);
            }
            out
        };
        super::finish(metric, qn, lanes(acc), lanes(nrm))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn derive_rows(data: &[f32], dim: usize, codes: &mut [u8], norms: &mut [f32]) {
        super::derive_body(data, dim, codes, norms);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn scan(
        data: &[f32],
        dim: usize,
        rows: Rows<'_>,
        q: &[f32],
        l2: bool,
        out: &mut [f32],
    ) {
        if l2 {
            scan_rows(
                data,
                dim,
                rows,
                out,
                |r| kernel_f32::<true>(q, r),
                |r| prefetch(r),
            );
        } else {
            scan_rows(
                data,
                dim,
                rows,
                out,
                |r| kernel_f32::<false>(q, r),
                |r| prefetch(r),
            );
        }
    }
}

/// `‖a‖₂` computed exactly like [`Metric::reference_distance`] does (sequential `f64` sum), so
/// cosine distances match the reference bit for bit.
pub(crate) fn norm64(a: &[f32]) -> f64 {
    a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

/// For every `dim`-wide row of `data`: its int8 codes and scale into `codes` (rows of
/// `quant::code_stride(dim)` bytes) and its `f32` norm into `norms` (used for scaling and error
/// bounds only; exact results use [`norm64`]). The same bytes on every CPU and path.
pub(crate) fn derive_rows(data: &[f32], dim: usize, codes: &mut [u8], norms: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { avx2::derive_rows(data, dim, codes, norms) };
        return;
    }
    derive_rows_portable(data, dim, codes, norms);
}

#[inline(always)]
fn derive_body(data: &[f32], dim: usize, codes: &mut [u8], norms: &mut [f32]) {
    if dim == 0 {
        return;
    }
    for ((row, codes), norm) in data
        .chunks_exact(dim)
        .zip(codes.chunks_exact_mut(crate::quant::code_stride(dim)))
        .zip(norms.iter_mut())
    {
        crate::quant::quantize_row(row, codes);
        *norm = row_norm(row);
    }
}

/// `‖row‖₂` rounded to `f32`, the same bits on every CPU and every kernel path (the norms are
/// persisted and re-derived by `verify`, maybe on another machine): eight `f64` lanes of exact
/// squares (an `f32` squared is exact in `f64`), summed in one fixed order with separate
/// multiplies and adds (Rust never fuses them on its own), so vectorising cannot change a bit.
#[inline(always)]
pub(crate) fn row_norm(row: &[f32]) -> f32 {
    let mut acc = [0f64; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            let x = f64::from(*x);
            *a += x * x;
        }
    }
    for (a, x) in acc.iter_mut().zip(chunks.remainder()) {
        let x = f64::from(*x);
        *a += x * x;
    }
    let s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    s.sqrt() as f32
}

fn derive_rows_portable(data: &[f32], dim: usize, codes: &mut [u8], norms: &mut [f32]) {
    derive_body(data, dim, codes, norms);
}

/// The exact distance of `q` to `row`, bit-identical to [`Metric::reference_distance`]`(q, row)`
/// given `qn = norm64(q)`.
#[inline]
pub(crate) fn exact_distance(metric: Metric, q: &[f32], qn: f64, row: &[f32]) -> f64 {
    let [d] = exact_lanes(metric, q, qn, [row]);
    d
}

/// [`exact_distance`] of `q` to eight rows at once (the same bits): the one dispatch between
/// the AVX2 kernel and the portable one.
#[inline]
pub(crate) fn exact_distance8(metric: Metric, q: &[f32], qn: f64, rows: [&[f32]; 8]) -> [f64; 8] {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::exact8(metric, q, qn, rows) };
    }
    exact8_portable(metric, q, qn, rows)
}

/// [`exact_distance8`] without AVX2: two groups of four lanes (measured faster than one of
/// eight for dot products and euclidean distances).
fn exact8_portable(metric: Metric, q: &[f32], qn: f64, rows: [&[f32]; 8]) -> [f64; 8] {
    let [a, b, c, d, e, f, g, h] = rows;
    let lo = exact_lanes(metric, q, qn, [a, b, c, d]);
    let hi = exact_lanes(metric, q, qn, [e, f, g, h]);
    [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
}

/// The exact distances of `q` to `N` rows, each computed with the operations of
/// [`Metric::reference_distance`] in its order (sums from `-0.0`, separate multiply and add),
/// one independent lane per row so the compiler can keep the lanes in vector registers.
#[inline(always)]
fn exact_lanes<const N: usize>(metric: Metric, q: &[f32], qn: f64, rows: [&[f32]; N]) -> [f64; N] {
    let n = q.len();
    let rows = rows.map(|r| &r[..n]);
    // `Sum for f64` starts from -0.0; do the same.
    let mut s = [-0.0f64; N];
    let mut nn = [-0.0f64; N];
    match metric {
        Metric::Euclidean => {
            for (j, x) in q.iter().enumerate() {
                let x = f64::from(*x);
                for i in 0..N {
                    let d = x - f64::from(rows[i][j]);
                    s[i] += d * d;
                }
            }
        }
        Metric::DotProduct => {
            for (j, x) in q.iter().enumerate() {
                let x = f64::from(*x);
                for i in 0..N {
                    s[i] += x * f64::from(rows[i][j]);
                }
            }
        }
        Metric::Cosine => {
            for (j, x) in q.iter().enumerate() {
                let x = f64::from(*x);
                for i in 0..N {
                    let y = f64::from(rows[i][j]);
                    s[i] += x * y;
                    nn[i] += y * y;
                }
            }
        }
    }
    finish(metric, qn, s, nn)
}

/// The last step of the exact distances, as [`Metric::reference_distance`] does it, from the
/// per-row sums: `s` (squared differences under euclidean, dot products otherwise) and, for
/// cosine, `nn` (squared row norms).
#[inline(always)]
fn finish<const N: usize>(metric: Metric, qn: f64, s: [f64; N], nn: [f64; N]) -> [f64; N] {
    match metric {
        Metric::Euclidean => s.map(f64::sqrt),
        Metric::DotProduct => s.map(|d| -d),
        Metric::Cosine => std::array::from_fn(|i| {
            let rn = nn[i].sqrt();
            if qn == 0.0 || rn == 0.0 {
                1.0
            } else {
                (1.0 - s[i] / (qn * rn)).clamp(0.0, 2.0)
            }
        }),
    }
}

/// `n` values in [−1, 1) from a xorshift stream seeded by `seed` (the unit tests' data: the
/// conformance suite's generator).
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u64) -> Vec<f32> {
    simile_index::conformance::random_vectors(n, 1, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vecs(n: usize, seed: u64) -> Vec<f32> {
        test_values(n, seed)
    }

    #[test]
    fn fast_kernels_within_bound() {
        for dim in [1usize, 3, 15, 16, 17, 100, 512, 777] {
            let a = vecs(dim, 1 + dim as u64);
            let b = vecs(dim, 99 + dim as u64);
            let exact_dot: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let exact_l2: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum();
            let bound = f64::from(rel_error(dim)) * norm64(&a) * norm64(&b);
            assert!(
                (f64::from(dot(&a, &b)) - exact_dot).abs() <= bound,
                "dot dim {dim}"
            );
            assert!(
                (f64::from(l2sq(&a, &b)) - exact_l2).abs() <= f64::from(rel_error(dim)) * exact_l2
            );
            // The dispatched (SIMD) scans obey the same bounds, and agree with the portable ones.
            let mut data = a.clone();
            data.extend_from_slice(&b);
            for l2 in [false, true] {
                let mut fast = [0f32; 2];
                let mut slow = [0f32; 2];
                scan(&data, dim, Rows::List(&[1, 0]), &a, l2, &mut fast);
                scan_portable(&data, dim, Rows::List(&[1, 0]), &a, l2, &mut slow);
                let want = if l2 { exact_l2 } else { exact_dot };
                let tol = if l2 {
                    f64::from(rel_error(dim)) * exact_l2
                } else {
                    bound
                };
                assert!(
                    (f64::from(fast[0]) - want).abs() <= tol,
                    "scan dim {dim} l2 {l2}"
                );
                assert!(
                    (f64::from(fast[1]) - f64::from(slow[1])).abs()
                        <= 1e-4 * f64::from(slow[1].abs().max(1.0))
                );
            }
        }
    }

    #[test]
    fn derived_rows_are_the_same_bits_on_every_path() {
        for dim in [1usize, 7, 8, 37, 512] {
            let n = 6;
            let mut data = vecs(dim * n, 40 + dim as u64);
            data[..dim].fill(0.0);
            let stride = crate::quant::code_stride(dim);
            let mut lo = vec![0u8; stride * n];
            let mut norms = vec![0f32; n];
            derive_rows_portable(&data, dim, &mut lo, &mut norms);
            for (row, norm) in data.chunks_exact(dim).zip(&norms) {
                let truth = norm64(row);
                assert!((f64::from(*norm) - truth).abs() <= f64::from(f32::EPSILON) * truth);
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                let mut lo2 = vec![0u8; stride * n];
                let mut norms2 = vec![0f32; n];
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                unsafe { avx2::derive_rows(&data, dim, &mut lo2, &mut norms2) };
                assert_eq!(lo, lo2);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&norms), bits(&norms2), "dim {dim}");
            }
        }
    }

    #[test]
    fn exact_is_bit_identical_to_reference() {
        for dim in [3usize, 8, 37] {
            let n = 9;
            let mut data = vecs(dim * n, 5 + dim as u64);
            // A zero row and a row of negative zeros.
            data[..dim].fill(0.0);
            data[dim..2 * dim].fill(-0.0);
            let stride = crate::quant::code_stride(dim);
            let mut lo = vec![0u8; stride * n];
            let mut norms = vec![0f32; n];
            derive_rows(&data, dim, &mut lo, &mut norms);
            let mut q = vecs(dim, 11);
            for round in 0..2 {
                if round == 1 {
                    q.fill(-0.0);
                }
                let qn = norm64(&q);
                for (i, row) in data.chunks_exact(dim).enumerate() {
                    assert!((f64::from(norms[i]) - norm64(row)).abs() <= 1e-6 * norm64(row));
                    let mut want = vec![0u8; stride];
                    crate::quant::quantize_row(row, &mut want);
                    assert_eq!(lo[i * stride..(i + 1) * stride], want[..]);
                    for m in Metric::ALL {
                        let want = m.reference_distance(&q, row);
                        let got = exact_distance(m, &q, qn, row);
                        assert_eq!(got.to_bits(), want.to_bits(), "{m} row {i}");
                        if i + 4 <= n {
                            let rows: [&[f32]; 4] =
                                std::array::from_fn(|j| &data[(i + j) * dim..(i + j + 1) * dim]);
                            let got4 = exact_lanes(m, &q, qn, rows);
                            assert_eq!(got4[0].to_bits(), want.to_bits(), "{m} row {i} (x4)");
                        }
                        // Eight rows starting anywhere (wrapping), so every row takes every lane.
                        let rows: [&[f32]; 8] = std::array::from_fn(|j| {
                            let r = (i + j) % n;
                            &data[r * dim..(r + 1) * dim]
                        });
                        let got8 = exact_distance8(m, &q, qn, rows);
                        let portable8 = exact8_portable(m, &q, qn, rows);
                        for (j, (got, portable)) in got8.iter().zip(portable8).enumerate() {
                            let r = (i + j) % n;
                            let want = m.reference_distance(&q, &data[r * dim..(r + 1) * dim]);
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{m} dim {dim} row {r} (x8 lane {j})"
                            );
                            assert_eq!(
                                portable.to_bits(),
                                want.to_bits(),
                                "{m} dim {dim} row {r} (portable x8 lane {j})"
                            );
                        }
                    }
                }
            }
        }
    }
}
