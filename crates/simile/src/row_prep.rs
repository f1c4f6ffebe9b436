//! The rows [`crate::greedy::Rows`] multiplies, prepared on every core: the (unit, for cosine)
//! f32 copy, each row's squared norm and norm, and the column-subset first pass's rows ([`Sub`]).
//! Every row's numbers come from that row alone, in a fixed order, so they do not depend on how
//! the rows are split over threads; the column energies are summed in fixed blocks of rows.
use std::ops::Range;

use ndarray::{Array2, ArrayView1, ArrayView2};

/// Below this many dimensions the first pass on a column subset does not pay.
const SUB_MIN_DIM: usize = 64;
/// Rows per block of the column energies (blocks summed in order, whatever the threads).
const ENERGY_BLOCK: usize = 1024;
/// Rows per thread, at least.
const MIN_ROWS: usize = 1024;

/// The cheap first pass: a subset `S` of the columns (those with the most energy) and, per row,
/// the norm of the other columns. By Cauchy–Schwarz `a·b ≤ a_S·b_S + ‖a_R‖‖b_R‖`, so a pair whose
/// upper bound fails [`Rows::cutoff`](crate::greedy::Rows::cutoff) cannot be within the
/// threshold, whatever its other columns.
pub(crate) struct Sub {
    /// `n × m`: the subset's columns of the (normalised) rows.
    pub(crate) rows: Array2<f32>,
    /// `‖row_R‖`, rounded up.
    pub(crate) rest: Vec<f32>,
    /// The subset's int8 codes, when every row quantises: the first pass then multiplies codes
    /// ([`crate::sub_int8`]).
    pub(crate) codes: Option<crate::int8_pairs::Codes>,
}

/// `Σ x²` in f64: eight interleaved partial sums (vectorised; the serial sum is one long chain
/// of dependent adds), added in a fixed order — the same value on every CPU.
pub(crate) fn sum_sq(xs: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += f64::from(*x) * f64::from(*x);
        }
    }
    for (a, x) in acc.iter_mut().zip(tail) {
        *a += f64::from(*x) * f64::from(*x);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// [`sum_sq`] of the values whose flag in `flags` is not `skipped`.
fn sum_sq_where(xs: &[f32], flags: &[bool], skipped: bool) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = xs.chunks_exact(8).zip(flags.chunks_exact(8));
    let tail = xs.len() - xs.len() % 8;
    for (c, f) in chunks {
        for ((a, x), f) in acc.iter_mut().zip(c).zip(f) {
            let x = f64::from(*x);
            *a += if *f == skipped { 0.0 } else { x * x };
        }
    }
    for ((a, x), f) in acc.iter_mut().zip(&xs[tail..]).zip(&flags[tail..]) {
        let x = f64::from(*x);
        *a += if *f == skipped { 0.0 } else { x * x };
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Scales `row` to unit length (in f64, rounded to f32); a zero row stays zero.
pub(crate) fn unit_row(row: &mut [f32]) {
    let n = sum_sq(row).sqrt();
    if n > 0.0 {
        row.iter_mut().for_each(|x| *x = (f64::from(*x) / n) as f32);
    }
}

/// The prepared rows.
pub(crate) struct Prepared {
    pub(crate) rows: Array2<f32>,
    /// `row · row` in f32 (ndarray's dot).
    pub(crate) sq: Vec<f32>,
    /// `‖row‖` in f64.
    pub(crate) norm: Vec<f64>,
    /// `Σ x²` of each column over the rows (summed in fixed blocks of rows).
    pub(crate) energy: Vec<f64>,
}

/// Whether the first pass on a column subset applies to `n` rows of `dim` columns.
pub(crate) fn sub_applies(n: usize, dim: usize, min_rows: usize) -> bool {
    dim >= SUB_MIN_DIM && n >= min_rows
}

/// The columns by `energy`, largest first (ties: the lower column).
pub(crate) fn energy_order(energy: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..energy.len()).collect();
    order.sort_by(|&a, &b| energy[b].total_cmp(&energy[a]).then(a.cmp(&b)));
    order
}

/// The default subset width: a quarter of the columns (a multiple of 16).
pub(crate) fn quarter(dim: usize) -> usize {
    (dim / 4).next_multiple_of(16).min(dim)
}

/// Contiguous row ranges of `n` rows, one per thread, each (but the last) a multiple of
/// `multiple` rows and at least `MIN_ROWS`.
fn parts(n: usize, multiple: usize) -> Vec<Range<usize>> {
    let threads = crate::matmul::cores().min(n.div_ceil(MIN_ROWS)).max(1);
    let per = n.div_ceil(threads).next_multiple_of(multiple).max(1);
    (0..n.div_ceil(per))
        .map(|t| t * per..((t + 1) * per).min(n))
        .collect()
}

/// Runs `f(range, rows_out, extra_out)` on every part, `rows_out` being the part's rows of `data`
/// (`width` values a row) and `extra_out` its entries of `extra`; returns the parts' results in
/// order.
fn on_parts<T: Send, E: Send>(
    parts: &[Range<usize>],
    data: &mut [f32],
    width: usize,
    extra: &mut [E],
    f: impl Fn(Range<usize>, &mut [f32], &mut [E]) -> T + Sync,
) -> Vec<T> {
    let f = &f;
    std::thread::scope(|scope| {
        let mut data = data;
        let mut extra = extra;
        let mut handles = Vec::with_capacity(parts.len());
        for r in parts {
            let (d, rest_d) = std::mem::take(&mut data).split_at_mut(r.len() * width);
            let (e, rest_e) = std::mem::take(&mut extra).split_at_mut(r.len());
            data = rest_d;
            extra = rest_e;
            let r = r.clone();
            handles.push(scope.spawn(move || f(r, d, e)));
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The rows of `raw` (scaled to unit length when `unit`, in f64 and rounded to f32), their
/// squared norms and norms, and the first pass's subset when it applies (`min_rows` rows at
/// least, [`SUB_MIN_DIM`] columns at least).
pub(crate) fn prepare(raw: ArrayView2<'_, f32>, unit: bool) -> Prepared {
    let (n, dim) = raw.dim();
    let mut data = vec![0f32; n * dim];
    // Per row: (sq, norm).
    let mut per_row = vec![(0f32, 0f64); n];
    let parts = parts(n, ENERGY_BLOCK);
    let energies = on_parts(&parts, &mut data, dim, &mut per_row, |r, out, stats| {
        let mut energy: Vec<Vec<f64>> = Vec::new();
        for (k, st) in stats.iter_mut().enumerate() {
            let i = r.start + k;
            let row = &mut out[k * dim..(k + 1) * dim];
            let src = raw.row(i);
            match src.as_slice() {
                Some(src) => row.copy_from_slice(src),
                None => row.iter_mut().zip(src.iter()).for_each(|(o, x)| *o = *x),
            }
            if unit {
                unit_row(row);
            }
            let v = ArrayView1::from(&*row);
            let norm = sum_sq(row).sqrt();
            *st = (v.dot(&v), norm);
            if k % ENERGY_BLOCK == 0 {
                energy.push(vec![0f64; dim]);
            }
            if let Some(e) = energy.last_mut() {
                for (e, x) in e.iter_mut().zip(row.iter()) {
                    *e += f64::from(*x).powi(2);
                }
            }
        }
        energy
    });
    let mut energy = vec![0f64; dim];
    for block in energies.iter().flatten() {
        for (e, b) in energy.iter_mut().zip(block) {
            *e += b;
        }
    }
    let rows = Array2::from_shape_vec((n, dim), data).unwrap_or_else(|_| Array2::zeros((n, dim)));
    let (sq, norm) = per_row.into_iter().unzip();
    Prepared {
        rows,
        sq,
        norm,
        energy,
    }
}

/// The first pass's rows: the first `m` columns of `order` (see [`energy_order`]).
pub(crate) fn sub(rows: &Array2<f32>, order: &[usize], m: usize) -> Sub {
    let (n, dim) = rows.dim();
    let m = m.min(dim);
    let parts = parts(n, 1);
    let rows = rows.as_standard_layout();
    // A standard-layout array is one slice.
    let rows = rows.as_slice().unwrap_or(&[]);
    let mut cols = order[..m].to_vec();
    cols.sort_unstable();
    let mut in_sub = vec![false; dim];
    for &c in &cols {
        in_sub[c] = true;
    }
    let mut data = vec![0f32; n * m];
    let mut rest = vec![0f32; n];
    on_parts(&parts, &mut data, m, &mut rest, |r, out, rest| {
        for (k, rest) in rest.iter_mut().enumerate() {
            let i = r.start + k;
            let row = &rows[i * dim..(i + 1) * dim];
            for (o, &c) in out[k * m..(k + 1) * m].iter_mut().zip(&cols) {
                *o = row[c];
            }
            let sq = sum_sq_where(row, &in_sub, true);
            // Rounded up: the bound must never be below the true product.
            *rest = (sq.sqrt() * (1.0 + 1e-6)) as f32;
        }
    });
    let sub = Array2::from_shape_vec((n, m), data).unwrap_or_else(|_| Array2::zeros((n, m)));
    let codes = crate::int8_pairs::Codes::new(sub.view(), false);
    Sub {
        rows: sub,
        rest,
        codes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_same_numbers_on_one_thread_and_on_several() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let emb = Array2::from_shape_fn((5000, 80), |(_, c)| {
            rng.random_range(-1.0f32..1.0) * (1.0 + (c % 3) as f32)
        });
        let many = prepare(emb.view(), true);
        let one = crate::matmul::single_threaded(|| prepare(emb.view(), true));
        assert!(parts(5000, ENERGY_BLOCK).len() <= crate::matmul::cores());
        assert_eq!(many.rows, one.rows);
        assert_eq!(many.sq, one.sq);
        assert_eq!(many.norm, one.norm);
        assert_eq!(many.energy, one.energy);
        let order = energy_order(&many.energy);
        assert!(order
            .windows(2)
            .all(|w| many.energy[w[0]] >= many.energy[w[1]]));
        let a = sub(&many.rows, &order, quarter(80));
        let b = crate::matmul::single_threaded(|| sub(&many.rows, &order, quarter(80)));
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.rest, b.rest);
        assert_eq!(a.rows.ncols(), 32);
        assert!(sub_applies(5000, 80, 1024) && !sub_applies(5000, 80, 5001));
        // Unit rows: each norm is 1 up to rounding.
        assert!(many.norm.iter().all(|x| (x - 1.0).abs() < 1e-6));
        // The row-by-row definitions.
        let r = many.rows.row(4321);
        assert_eq!(many.sq[4321], r.dot(&r));
        let serial = |xs: &[f32]| xs.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>();
        let x = emb.row(17).to_vec();
        assert!((sum_sq(&x) - serial(&x)).abs() <= 1e-12 * serial(&x));
        assert!((sum_sq(&x[..13]) - serial(&x[..13])).abs() <= 1e-12 * serial(&x[..13]));
        let flags: Vec<bool> = (0..80).map(|c| c % 3 == 0).collect();
        let kept: Vec<f32> = x
            .iter()
            .zip(&flags)
            .filter(|(_, f)| !**f)
            .map(|(v, _)| *v)
            .collect();
        assert!((sum_sq_where(&x, &flags, true) - serial(&kept)).abs() <= 1e-12 * serial(&kept));
    }
}
