//! Every row's `k` nearest other rows with an int8 first pass ([`crate::int8_pairs`]): the
//! search behind `compute_uniqueness` (k = 3) and the nearest-distance histogram (k = 1).
//!
//! Each pair's integer dot product and certified bound give an interval `[lo, hi]` that holds
//! the pair's distance (in a monotone key: `1 − cos`, `−dot`, or the squared euclidean distance,
//! with slack for the f32 normalisation of cosine rows and the f64 rounding of the reference
//! distance). Per row, `τ` is the `k`-th smallest `hi` seen; a row is a candidate while its `lo`
//! is at most `τ`. At the end every row whose exact distance is at most the `k`-th exact one is
//! a candidate (its `lo` ≤ its distance ≤ the `k`-th distance ≤ `τ`), so scoring the candidates
//! with [`Metric::reference_distance`] and sorting by (distance, row) gives exactly the brute
//! force answer, ties included. Most pairs are rejected 16 at a time in f32 with a per-row
//! margin that covers the largest bound of the row.
use ndarray::ArrayView2;
use simile_index::Metric;

use crate::int8_pairs::{dots, Codes};
use crate::neighbors::Neighbors;

/// Rows per block of the all-pairs pass.
const BLOCK: usize = 512;
/// Candidates per row before the list is pruned to those still within `τ`.
const CAP: usize = 16;
/// Pairs tested at once by the f32 test before any is looked at singly.
const CHUNK: usize = 16;

/// `x` as an f32 no larger than `x` (a relative step well above f32 rounding).
fn down(x: f64) -> f32 {
    (x - x.abs() * 1e-6 - 1e-30) as f32
}

/// A row's state in the pass: the `k` smallest upper bounds, the candidates.
#[derive(Default, Clone)]
struct Best {
    /// Ascending, at most `k`.
    hi: Vec<f64>,
    /// `(lo, row)` with `lo ≤ τ` when offered (`lo` rounded down to f32).
    cands: Vec<(f32, u32)>,
    cap: usize,
}

impl Best {
    fn tau(&self, k: usize) -> f64 {
        if self.hi.len() < k {
            f64::INFINITY
        } else {
            self.hi[k - 1]
        }
    }

    fn offer(&mut self, lo: f64, hi: f64, j: u32, k: usize) {
        let tau = self.tau(k);
        if lo > tau {
            return;
        }
        if hi < tau {
            let at = self.hi.partition_point(|x| *x <= hi);
            self.hi.insert(at, hi);
            self.hi.truncate(k);
        }
        self.cands.push((down(lo), j));
        if self.cands.len() > self.cap.max(CAP) {
            let tau = self.tau(k);
            self.cands.retain(|c| f64::from(c.0) <= tau);
            self.cap = 2 * self.cands.len();
        }
    }
}

/// Per-row terms of the key `α_i + α_j − β·dot` and of the bounds.
struct Prep {
    codes: Codes,
    alpha: Vec<f64>,
    beta: f64,
    /// Per row: the largest bound of a pair with this row as row / as column (× β, + slack),
    /// for the f32 test.
    margin_row: Vec<f64>,
    margin_col: Vec<f64>,
}

impl Prep {
    fn new(emb: ArrayView2<'_, f32>, metric: Metric) -> Option<Prep> {
        let codes = Codes::new(emb, metric == Metric::Cosine)?;
        let (alpha, beta): (Vec<f64>, f64) = match metric {
            Metric::Cosine => (vec![0.5; codes.len()], 1.0),
            Metric::DotProduct => (vec![0.0; codes.len()], 1.0),
            Metric::Euclidean => (codes.norm.iter().map(|x| x * x).collect(), 2.0),
        };
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let (mn, mr, mq) = (max(&codes.norm), max(&codes.resid), max(&codes.normq));
        let amax = max(&alpha);
        // The f32 test's own rounding: a few ulps of its largest terms.
        let test = 1e-5 * (1.0 + amax + beta * mq * mq);
        let margin_row = (0..codes.len())
            .map(|i| {
                beta * (codes.norm[i] * mr + codes.resid[i] * mq)
                    + slack(mn, codes.norm[i], amax, amax)
                    + test
            })
            .collect();
        let margin_col = (0..codes.len())
            .map(|j| {
                beta * (mn * codes.resid[j] + mr * codes.normq[j])
                    + slack(mn, codes.norm[j], amax, amax)
                    + test
            })
            .collect();
        Some(Prep {
            codes,
            alpha,
            beta,
            margin_row,
            margin_col,
        })
    }

    /// `(lo, hi)` of the key of rows `i`, `j` with integer dot product `d`.
    fn interval(&self, i: usize, j: usize, d: i32) -> (f64, f64) {
        let c = &self.codes;
        let p = c.approx(i, j, d);
        let e =
            self.beta * c.bound(i, j) + slack(c.norm[i], c.norm[j], self.alpha[i], self.alpha[j]);
        let base = self.alpha[i] + self.alpha[j] - self.beta * p;
        (base - e, base + e)
    }
}

/// Slack beyond the int8 bound: the f32 normalisation of cosine rows (≤ 2⁻²³ relative per
/// value), the rounding of the key and of the reference distance.
fn slack(ni: f64, nj: f64, ai: f64, aj: f64) -> f64 {
    1e-6 * ni * nj + 1e-9 * (ai + aj) + 1e-12
}

/// Exact `k` nearest other rows of every row (each list sorted by distance, then row), or
/// `None` when the int8 pass cannot be used (see [`Codes::new`]).
pub(crate) fn k_nearest(
    emb: ArrayView2<'_, f32>,
    metric: Metric,
    k: usize,
) -> Option<Vec<Neighbors>> {
    let n = emb.nrows();
    if k == 0 || n < 2 {
        return None;
    }
    let prep = Prep::new(emb, metric)?;
    let pairs = crate::neighbors::upper_block_pairs(n, BLOCK);
    let threads = crate::matmul::cores().min(pairs.len()).max(1);
    let partials: Vec<Vec<Best>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (prep, pairs) = (&prep, &pairs);
                scope.spawn(move || {
                    let mut best = vec![Best::default(); n];
                    let mut buf = Vec::new();
                    for &(i, j) in pairs.iter().skip(t).step_by(threads) {
                        block_pass(prep, k, (i, j), &mut best, &mut buf);
                    }
                    best
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    if partials.len() != threads {
        return None;
    }
    // Merge: τ from the union of the upper bounds, then the candidates within it.
    let mut merged: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut taus = vec![f64::INFINITY; n];
    for (i, tau) in taus.iter_mut().enumerate() {
        let mut hi: Vec<f64> = partials
            .iter()
            .flat_map(|p| p[i].hi.iter().copied())
            .collect();
        hi.sort_by(f64::total_cmp);
        if hi.len() >= k {
            *tau = hi[k - 1];
        }
    }
    for part in partials {
        for ((m, b), tau) in merged.iter_mut().zip(part).zip(&taus) {
            m.extend(
                b.cands
                    .into_iter()
                    .filter(|c| f64::from(c.0) <= *tau)
                    .map(|c| c.1),
            );
        }
    }
    Some(rescore(emb, metric, k, merged))
}

/// `Σ x²` in f64, as `reference_distance` sums it.
fn sq_sum(a: &[f32]) -> f64 {
    a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>()
}

/// The candidates scored exactly, on every core.
fn rescore(
    emb: ArrayView2<'_, f32>,
    metric: Metric,
    k: usize,
    cands: Vec<Vec<u32>>,
) -> Vec<Neighbors> {
    let n = cands.len();
    let threads = crate::matmul::cores().max(1);
    let chunk = n.div_ceil(threads).max(1);
    let row = |r: usize| -> std::borrow::Cow<'_, [f32]> {
        let v = emb.row(r);
        match v.to_slice() {
            Some(s) => s.into(),
            None => v.to_vec().into(),
        }
    };
    // Cosine: the norms once per row, the rest of `reference_distance`'s cosine term by term
    // (the same operations in the same order, so the same f64; checked by the tests' brute force).
    let norms: Vec<f64> = if metric == Metric::Cosine {
        (0..n).map(|r| sq_sum(&row(r)).sqrt()).collect()
    } else {
        Vec::new()
    };
    let distance = |i: usize, a: &[f32], j: usize| -> f64 {
        if metric != Metric::Cosine {
            return metric.reference_distance(a, &row(j));
        }
        let (na, nb) = (norms[i], norms[j]);
        if na == 0.0 || nb == 0.0 {
            1.0
        } else {
            let dot: f64 = a
                .iter()
                .zip(row(j).iter())
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            (1.0 - dot / (na * nb)).clamp(0.0, 2.0)
        }
    };
    let one = |i: usize, c: &[u32]| -> Neighbors {
        let a = row(i);
        let mut js: Vec<u32> = c.to_vec();
        js.sort_unstable();
        js.dedup();
        let mut scored: Neighbors = js
            .into_iter()
            .map(|j| (j, distance(i, &a, j as usize)))
            .collect();
        scored.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
        scored.truncate(k);
        scored
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = cands
            .chunks(chunk)
            .enumerate()
            .map(|(t, part)| {
                let one = &one;
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(o, c)| one(t * chunk + o, c))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// One block pair `(i0.., j0..)` (i0 ≤ j0): integer dot products, then the pairs that can
/// matter to either row offered to both.
fn block_pass(
    prep: &Prep,
    k: usize,
    (i0, j0): (usize, usize),
    best: &mut [Best],
    buf: &mut Vec<i32>,
) {
    let c = &prep.codes;
    let n = c.len();
    let (i1, j1) = ((i0 + BLOCK).min(n), (j0 + BLOCK).min(n));
    dots(c, i0..i1, j0..j1, buf);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { scan_avx2(prep, k, (i0, j0), best, buf) };
        return;
    }
    scan(prep, k, (i0, j0), best, buf);
}

/// [`scan`] compiled for AVX2 (its f32 test runs 8 lanes at a time).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_avx2(prep: &Prep, k: usize, at: (usize, usize), best: &mut [Best], buf: &[i32]) {
    scan(prep, k, at, best, buf);
}

/// Offers every pair of the block that can matter to either row (see the module docs).
#[inline(always)]
fn scan(prep: &Prep, k: usize, (i0, j0): (usize, usize), best: &mut [Best], buf: &[i32]) {
    let c = &prep.codes;
    let n = c.len();
    let j1 = (j0 + BLOCK).min(n);
    let width = j1 - j0;
    let beta = prep.beta as f32;
    let sc: Vec<f32> = c.scale[j0..j1].iter().map(|s| beta * s).collect();
    let aj: Vec<f32> = prep.alpha[j0..j1].iter().map(|a| *a as f32).collect();
    // Column test: `w + ct_j ≥ α_i` with `ct_j = τ_j + margin_j`.
    let col_cut = |j: usize, best: &[Best]| (best[j].tau(k) + prep.margin_col[j]) as f32;
    let mut ct: Vec<f32> = (j0..j1).map(|j| col_cut(j, best)).collect();
    let mut w = vec![0f32; width];
    for (di, drow) in buf.chunks_exact(width).enumerate() {
        let i = i0 + di;
        let si = c.scale[i];
        let ai = prep.alpha[i] as f32;
        // Row test: `w ≥ α_i − τ_i − margin_i` (−∞ while the row has fewer than k bounds).
        let row_cut = |best: &[Best]| (prep.alpha[i] - best[i].tau(k) - prep.margin_row[i]) as f32;
        let mut rcut = row_cut(best);
        for ((wv, &d), (&s, &a)) in w.iter_mut().zip(drow).zip(sc.iter().zip(&aj)) {
            *wv = (d as f32) * (si * s) - a;
        }
        let start = if i0 == j0 { di + 1 } else { 0 };
        let mut c0 = start;
        while c0 < width {
            let c1 = (c0 + CHUNK).min(width);
            let mut hit = false;
            for (wv, cc) in w[c0..c1].iter().zip(&ct[c0..c1]) {
                hit |= (*wv >= rcut) | (wv + cc >= ai);
            }
            if hit {
                for dj in c0..c1 {
                    if !(w[dj] >= rcut || w[dj] + ct[dj] >= ai) {
                        continue;
                    }
                    let j = j0 + dj;
                    let (lo, hi) = prep.interval(i, j, drow[dj]);
                    best[i].offer(lo, hi, j as u32, k);
                    best[j].offer(lo, hi, i as u32, k);
                    rcut = row_cut(best);
                    ct[dj] = col_cut(j, best);
                }
            }
            c0 = c1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neighbors::{gemm_neighbors, Want};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    fn brute(emb: &Array2<f32>, metric: Metric, k: usize) -> Vec<Neighbors> {
        let n = emb.nrows();
        let rows: Vec<Vec<f32>> = emb.rows().into_iter().map(|r| r.to_vec()).collect();
        (0..n)
            .map(|i| {
                let mut all: Neighbors = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (j as u32, metric.reference_distance(&rows[i], &rows[j])))
                    .collect();
                all.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
                all.truncate(k);
                all
            })
            .collect()
    }

    /// Random rows with planted near-duplicates (copy + 0.01·noise), exact copies, and rows on
    /// a small integer grid (many equal distances: ties).
    fn data(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut m = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
        for i in (0..n).step_by(9) {
            let src = m.row(rng.random_range(0..n)).to_owned();
            for (x, s) in m.row_mut(i).iter_mut().zip(src.iter()) {
                *x = s + 0.01 * rng.random_range(-1.0f32..1.0);
            }
        }
        for i in (3..n).step_by(50) {
            let src = m.row(i - 3).to_owned();
            m.row_mut(i).assign(&src);
        }
        for i in (5..n).step_by(13) {
            for x in m.row_mut(i).iter_mut() {
                *x = rng.random_range(-2i32..=2) as f32;
            }
        }
        m
    }

    #[test]
    fn the_int8_pass_agrees_with_the_f32_pass_and_brute_force() {
        // More rows than a block: cross-block pairs and both threads.
        let emb = data(1100, 40, 7);
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
            for k in [1, 3, 12] {
                let got = k_nearest(emb.view(), metric, k).expect("quantisable rows");
                let f32_pass = gemm_neighbors(emb.view(), metric, Want { k, radius: None });
                assert_eq!(got, brute(&emb, metric, k), "{metric:?} k={k}");
                assert_eq!(got, f32_pass, "{metric:?} k={k}");
            }
        }
        // Ties did occur: some row has two neighbours at the same distance.
        let lists = k_nearest(emb.view(), Metric::Euclidean, 3).expect("quantisable rows");
        assert!(lists.iter().any(|l| l[0].1 == l[1].1), "ties in the data");
    }

    #[test]
    fn small_and_degenerate_inputs() {
        let emb = data(5, 3, 1);
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
            // k beyond the other rows: every other row, sorted.
            let got = k_nearest(emb.view(), metric, 10).expect("quantisable rows");
            assert_eq!(got, brute(&emb, metric, 10), "{metric:?}");
            assert!(got.iter().all(|l| l.len() == 4));
        }
        let mut zero = emb.clone();
        zero.row_mut(2).fill(0.0);
        assert!(
            k_nearest(zero.view(), Metric::Cosine, 3).is_none(),
            "falls back"
        );
        assert!(k_nearest(emb.view(), Metric::Cosine, 0).is_none());
    }
}
