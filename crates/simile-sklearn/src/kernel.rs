//! The hot loops: `f32` dot products / squared distances of one query against many rows, and the
//! `f64` exact distances that decide the final order.
//!
//! The `f32` kernels keep 16 independent accumulators so LLVM vectorises them; on x86-64 the same
//! code is additionally compiled with AVX2+FMA enabled and picked at run time.

use simile_index::Metric;

/// Number of independent `f32` accumulators in the fast kernels.
const LANES: usize = 16;

/// A relative error bound for the fast `f32` kernels on `dim`-long vectors: the computed dot
/// product differs from the exact one by at most `rel_error(dim) · ‖a‖·‖b‖` (and the squared
/// distance by at most `rel_error(dim) · ‖a − b‖²`). Deliberately generous (about twice the
/// textbook `γ_n` bound for the 16-lane summation order).
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

/// Writes the raw kernel value (dot product, or squared distance when `l2`) of `q` against each
/// visited row into `out`.
#[inline(always)]
fn scan_body(data: &[f32], dim: usize, rows: Rows<'_>, q: &[f32], l2: bool, out: &mut [f32]) {
    match rows {
        Rows::Range(start) => {
            let block = &data[start * dim..(start + out.len()) * dim];
            for (o, row) in out.iter_mut().zip(block.chunks_exact(dim)) {
                *o = if l2 { l2sq(q, row) } else { dot(q, row) };
            }
        }
        Rows::List(list) => {
            for (o, &r) in out.iter_mut().zip(list) {
                let r = r as usize;
                let row = &data[r * dim..(r + 1) * dim];
                *o = if l2 { l2sq(q, row) } else { dot(q, row) };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scan_avx2(data: &[f32], dim: usize, rows: Rows<'_>, q: &[f32], l2: bool, out: &mut [f32]) {
    scan_body(data, dim, rows, q, l2, out);
}

fn scan_portable(data: &[f32], dim: usize, rows: Rows<'_>, q: &[f32], l2: bool, out: &mut [f32]) {
    scan_body(data, dim, rows, q, l2, out);
}

/// Raw kernel values of `q` against the visited rows of the row-major `data` (`dim` wide): dot
/// products, or squared Euclidean distances when `l2`. `out.len()` rows are visited.
pub(crate) fn scan(data: &[f32], dim: usize, rows: Rows<'_>, q: &[f32], l2: bool, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { scan_avx2(data, dim, rows, q, l2, out) };
            return;
        }
    }
    scan_portable(data, dim, rows, q, l2, out);
}

/// `‖a‖₂` computed exactly like [`Metric::reference_distance`] does (sequential `f64` sum), so
/// cosine distances match the reference bit for bit.
pub(crate) fn norm64(a: &[f32]) -> f64 {
    a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

/// [`norm64`] of every `dim`-wide row of `data`, four rows at a time (four independent `f64`
/// chains in the very same per-row order, so the bits are identical, just faster).
pub(crate) fn norms64(data: &[f32], dim: usize, out: &mut Vec<f64>) {
    if dim == 0 {
        return;
    }
    let mut quads = data.chunks_exact(4 * dim);
    for quad in &mut quads {
        let (r0, rest) = quad.split_at(dim);
        let (r1, rest) = rest.split_at(dim);
        let (r2, r3) = rest.split_at(dim);
        // `Sum for f64` starts from -0.0; do the same.
        let mut s = [-0.0f64; 4];
        for j in 0..dim {
            s[0] += f64::from(r0[j]) * f64::from(r0[j]);
            s[1] += f64::from(r1[j]) * f64::from(r1[j]);
            s[2] += f64::from(r2[j]) * f64::from(r2[j]);
            s[3] += f64::from(r3[j]) * f64::from(r3[j]);
        }
        out.extend(s.iter().map(|v| v.sqrt()));
    }
    for row in quads.remainder().chunks_exact(dim) {
        out.push(norm64(row));
    }
}

/// The exact distance of `q` to `row`, bit-identical to [`Metric::reference_distance`]`(q, row)`
/// given `qn = norm64(q)` and `rn = norm64(row)`.
#[inline]
pub(crate) fn exact_distance(metric: Metric, q: &[f32], qn: f64, row: &[f32], rn: f64) -> f64 {
    match metric {
        Metric::DotProduct => -dot64(q, row),
        Metric::Euclidean => q
            .iter()
            .zip(row)
            .map(|(x, y)| {
                let d = f64::from(*x) - f64::from(*y);
                d * d
            })
            .sum::<f64>()
            .sqrt(),
        Metric::Cosine => {
            if qn == 0.0 || rn == 0.0 {
                1.0
            } else {
                (1.0 - dot64(q, row) / (qn * rn)).clamp(0.0, 2.0)
            }
        }
    }
}

#[inline]
fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vecs(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn fast_kernels_within_bound() {
        for dim in [1usize, 3, 15, 16, 17, 100, 512, 777] {
            let a = vecs(dim, 1 + dim as u64);
            let b = vecs(dim, 99 + dim as u64);
            let exact_dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let exact_l2: f64 = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
            let bound = f64::from(rel_error(dim)) * norm64(&a) * norm64(&b);
            assert!((f64::from(dot(&a, &b)) - exact_dot).abs() <= bound, "dot dim {dim}");
            assert!((f64::from(l2sq(&a, &b)) - exact_l2).abs() <= f64::from(rel_error(dim)) * exact_l2);
            let mut out = [0f32; 2];
            let mut data = a.clone();
            data.extend_from_slice(&b);
            scan(&data, dim, Rows::Range(0), &b, false, &mut out);
            assert_eq!(out[1], dot(&b, &b));
            scan(&data, dim, Rows::List(&[1, 0]), &a, true, &mut out);
            assert_eq!(out, [l2sq(&a, &b), 0.0]);
        }
    }

    #[test]
    fn exact_is_bit_identical_to_reference() {
        let dim = 37;
        let mut data = vecs(dim * 9, 5);
        // A zero row and a row of negative zeros.
        data[..dim].fill(0.0);
        data[dim..2 * dim].fill(-0.0);
        let mut norms = Vec::new();
        norms64(&data, dim, &mut norms);
        assert_eq!(norms.len(), 9);
        let mut q = vecs(dim, 11);
        for round in 0..2 {
            if round == 1 {
                q.fill(-0.0);
            }
            let qn = norm64(&q);
            for (i, row) in data.chunks_exact(dim).enumerate() {
                assert_eq!(norms[i].to_bits(), norm64(row).to_bits());
                for m in Metric::ALL {
                    let want = m.reference_distance(&q, row);
                    let got = exact_distance(m, &q, qn, row, norms[i]);
                    assert_eq!(got.to_bits(), want.to_bits(), "{m} row {i}");
                }
            }
        }
    }
}
