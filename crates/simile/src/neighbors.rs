//! Exact neighbours of every row of an embeddings matrix, for duplicates, uniqueness and
//! distance plots: one blocked all-pairs pass.
//!
//! The pass multiplies blocks of rows in f32 (ndarray's GEMM, both cores) to get approximate
//! distances, keeps every pair that *could* qualify given a proven bound on the f32 error, and
//! re-scores those in f64 with [`Metric::reference_distance`] — the definition every backend
//! follows. So every reported distance is exact, no pair within the radius is missed, and the
//! answer does not depend on the SIMD path the GEMM took.
//!
//! Error bound: for a dot product of length `d` summed in f32 in any order, with or without FMA,
//! `|s - ŝ| ≤ γ_d · Σ|aᵢbᵢ| ≤ γ_d · ‖a‖‖b‖` with `γ_d = d·u / (1 - d·u)`, `u = 2⁻²⁴`. Cosine
//! rows are normalised in f32 first (a relative error of a few `u` per row), euclidean distances
//! come from `‖a‖² + ‖b‖² − 2s` with f32 squared norms; the slack below covers each.
use ndarray::{s, ArrayView2};
use simile_index::Metric;

use crate::greedy::Rows;

/// Rows per block of the all-pairs pass.
const BLOCK: usize = 512;
/// Extra approximate candidates kept per row for the k-nearest lists, re-scored exactly.
const SLACK: usize = 8;

/// A row's neighbours: `(row, exact distance)`, sorted by distance then row.
pub(crate) type Neighbors = Vec<(u32, f64)>;

/// What to collect for every row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Want {
    /// The `k` nearest other rows.
    pub k: usize,
    /// Every other row within this distance (inclusive), when set.
    pub radius: Option<f64>,
}

/// Per row: the candidate rows of the approximate pass.
#[derive(Default, Clone)]
struct Candidates {
    /// Within the radius (approximately, with slack).
    near: Vec<u32>,
    /// The best `k + SLACK` by approximate distance: (approx, row), unsorted.
    best: Vec<(f32, u32)>,
    /// The worst distance in `best` once it is full.
    worst: f32,
}

impl Candidates {
    fn offer(&mut self, d: f32, j: u32, keep: usize) {
        if keep == 0 {
            return;
        }
        if self.best.len() < keep {
            self.best.push((d, j));
            if self.best.len() == keep {
                self.worst = self.best.iter().map(|x| x.0).fold(f32::MIN, f32::max);
            }
        } else if d < self.worst {
            if let Some(pos) = self.best.iter().position(|x| x.0 == self.worst) {
                self.best[pos] = (d, j);
            }
            self.worst = self.best.iter().map(|x| x.0).fold(f32::MIN, f32::max);
        }
    }
}

/// The first rows `(i, j)` of every pair of `block`-row blocks of `0..n` with `i ≤ j` (the upper
/// triangle, diagonal included).
pub(crate) fn upper_block_pairs(n: usize, block: usize) -> Vec<(usize, usize)> {
    let blocks: Vec<usize> = (0..n).step_by(block.max(1)).collect();
    blocks
        .iter()
        .enumerate()
        .flat_map(|(a, &i)| blocks[a..].iter().map(move |&j| (i, j)))
        .collect()
}

/// Exact neighbours of every row (see the module docs). Each list is sorted by exact distance,
/// then row; a row is never its own neighbour. The `k` nearest alone (no radius) take the int8
/// first pass ([`crate::knn8`]) when the rows allow it: the same answer, faster.
pub(crate) fn all_neighbors(
    emb: ArrayView2<'_, f32>,
    metric: Metric,
    want: Want,
) -> Vec<Neighbors> {
    if want.radius.is_none() {
        if let Some(lists) = crate::knn8::k_nearest(emb, metric, want.k) {
            return lists;
        }
    }
    gemm_neighbors(emb, metric, want)
}

/// [`all_neighbors`] by the f32 GEMM pass alone.
pub(crate) fn gemm_neighbors(
    emb: ArrayView2<'_, f32>,
    metric: Metric,
    want: Want,
) -> Vec<Neighbors> {
    let n = emb.nrows();
    if n == 0 {
        return Vec::new();
    }
    let p = Rows::new(emb, metric);
    let keep = if want.k == 0 { 0 } else { want.k + SLACK };
    // Upper-triangle block pairs, dealt to the threads.
    let pairs = upper_block_pairs(n, BLOCK);
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(pairs.len());
    let partials: Vec<Vec<Candidates>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let p = &p;
                let pairs = &pairs;
                scope.spawn(move || {
                    let mut cands = vec![Candidates::default(); n];
                    let mut buf = Vec::new();
                    for &(i, j) in pairs.iter().skip(t).step_by(threads) {
                        block_pass(p, metric, want.radius, keep, (i, j), &mut cands, &mut buf);
                    }
                    cands
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    // Merge the threads' candidates, then re-score exactly.
    let mut merged = vec![Candidates::default(); n];
    for part in partials {
        for (m, c) in merged.iter_mut().zip(part) {
            m.near.extend(c.near);
            for (d, j) in c.best {
                m.offer(d, j, keep);
            }
        }
    }
    merged
        .into_iter()
        .enumerate()
        .map(|(i, c)| rescore(emb, metric, want, i, c))
        .collect()
}

fn rescore(
    emb: ArrayView2<'_, f32>,
    metric: Metric,
    want: Want,
    i: usize,
    c: Candidates,
) -> Neighbors {
    let row = |r: usize| emb.row(r).to_vec();
    let a = row(i);
    let mut rows: Vec<u32> = c.near;
    rows.extend(c.best.iter().map(|x| x.1));
    rows.sort_unstable();
    rows.dedup();
    let mut scored: Vec<(u32, f64)> = rows
        .into_iter()
        .map(|j| (j, metric.reference_distance(&a, &row(j as usize))))
        .collect();
    scored.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
    let mut out: Neighbors = Vec::new();
    for (rank, (j, d)) in scored.into_iter().enumerate() {
        let in_radius = want.radius.is_some_and(|r| d <= r);
        if rank < want.k || in_radius {
            out.push((j, d));
        }
    }
    out
}

/// The per-row term `h` of the fast test: a pair's approximate distance falls as
/// `w = dot − h_j` rises past a cutoff that depends on the row (see [`block_pass`]).
fn h(p: &Rows<'_>, metric: Metric, r: usize) -> f32 {
    match metric {
        Metric::Euclidean => p.sq[r] / 2.0,
        _ => 0.0,
    }
}

/// The approximate distance (squared for euclidean: only its order matters here) of a pair.
fn approx_of(p: &Rows<'_>, metric: Metric, i: usize, j: usize, s: f32) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - s,
        Metric::DotProduct => -s,
        Metric::Euclidean => (p.sq[i] + p.sq[j] - 2.0 * s).max(0.0),
    }
}

/// The `w` a pair must exceed for row `r`'s best list to take it (`-inf` until the list is full).
fn offer_cut(c: &Candidates, keep: usize, metric: Metric, h_r: f32) -> f32 {
    if keep == 0 {
        return f32::INFINITY;
    }
    if c.best.len() < keep {
        return f32::NEG_INFINITY;
    }
    match metric {
        Metric::Cosine => 1.0 - c.worst,
        Metric::DotProduct => -c.worst,
        Metric::Euclidean => h_r - c.worst / 2.0,
    }
}

/// The `w` a pair must reach to possibly lie within `radius` of row `i` (the error bound at its
/// largest, less a margin for the f32 arithmetic of the test).
fn radius_cut(p: &Rows<'_>, metric: Metric, radius: Option<f64>, i: usize, h_i: f32) -> f32 {
    let Some(r) = radius else {
        return f32::INFINITY;
    };
    let maxn = p.max_norm;
    let bound = p.gamma * p.norm[i] * maxn + 1e-12;
    let c = match metric {
        Metric::Cosine => 1.0 - r - bound,
        Metric::DotProduct => -r - bound,
        Metric::Euclidean => {
            let slack =
                2.0 * bound + 4.0 * f64::from(f32::EPSILON) * (f64::from(p.sq[i]) + maxn * maxn);
            f64::from(h_i) - (r.max(0.0).powi(2) + slack) / 2.0
        }
    };
    let margin = 4.0 * f64::from(f32::EPSILON) * (1.0 + c.abs() + maxn * maxn);
    (c - margin) as f32
}

/// One block pair `(i.., j..)` (i ≤ j): approximate distances by GEMM, candidates by bound.
/// Most pairs are rejected 64 at a time: with `w_j = dot − h_j`, a pair matters to row `i` only
/// if `w_j` passes the row's cutoff (its best list or the radius), and to column `j` only if
/// `w_j − cut_j > h_i`; one vectorised maximum per 64 pairs checks both.
fn block_pass(
    p: &Rows<'_>,
    metric: Metric,
    radius: Option<f64>,
    keep: usize,
    (i0, j0): (usize, usize),
    cands: &mut [Candidates],
    buf: &mut Vec<f32>,
) {
    let n = p.rows.nrows();
    let (i1, j1) = ((i0 + BLOCK).min(n), (j0 + BLOCK).min(n));
    let a = p.rows.slice(s![i0..i1, ..]);
    let b = p.rows.slice(s![j0..j1, ..]);
    // One buffer per thread: a fresh block each time would fault in new pages every pass.
    crate::matmul::dot_t_into(a, b, 1, buf);
    let width = j1 - j0;
    let hj: Vec<f32> = (j0..j1).map(|j| h(p, metric, j)).collect();
    let mut colcut: Vec<f32> = (j0..j1)
        .map(|j| offer_cut(&cands[j], keep, metric, 0.0))
        .collect();
    let mut w = vec![0f32; j1 - j0];
    for (di, srow) in buf.chunks_exact(width).enumerate() {
        let i = i0 + di;
        let h_i = h(p, metric, i);
        let rcut = radius_cut(p, metric, radius, i, h_i);
        let mut row_cut = offer_cut(&cands[i], keep, metric, h_i).min(rcut);
        for ((wv, &sv), &hv) in w.iter_mut().zip(srow.iter()).zip(&hj) {
            *wv = sv - hv;
        }
        let start = if i0 == j0 { di + 1 } else { 0 };
        let mut c0 = start;
        while c0 < w.len() {
            let c1 = (c0 + 64).min(w.len());
            // `|=` over the block vectorises (a maximum with NaN rules does not).
            let mut hit = false;
            for (wv, cc) in w[c0..c1].iter().zip(&colcut[c0..c1]) {
                hit |= (*wv >= row_cut) | (wv - cc > h_i);
            }
            if hit {
                for dj in c0..c1 {
                    if !(w[dj] >= row_cut || w[dj] - colcut[dj] > h_i) {
                        continue;
                    }
                    let j = j0 + dj;
                    let s = srow[dj];
                    let approx = approx_of(p, metric, i, j, s);
                    if radius.is_some() && w[dj] >= rcut && qualifies(p, metric, radius, i, j, s) {
                        cands[i].near.push(j as u32);
                        cands[j].near.push(i as u32);
                    }
                    cands[i].offer(approx, j as u32, keep);
                    cands[j].offer(approx, i as u32, keep);
                    row_cut = offer_cut(&cands[i], keep, metric, h_i).min(rcut);
                    colcut[dj] = offer_cut(&cands[j], keep, metric, 0.0);
                }
            }
            c0 = c1;
        }
    }
}

/// Whether a pair can lie within `radius` given its own error bound.
fn qualifies(
    p: &Rows<'_>,
    metric: Metric,
    radius: Option<f64>,
    i: usize,
    j: usize,
    s: f32,
) -> bool {
    let Some(r) = radius else { return false };
    let bound = p.gamma * p.norm[i] * p.norm[j];
    match metric {
        Metric::Cosine => f64::from(1.0 - s) <= r + bound + 1e-12,
        Metric::DotProduct => f64::from(-s) <= r + bound + 1e-12,
        Metric::Euclidean => {
            let d2 = (p.sq[i] + p.sq[j] - 2.0 * s).max(0.0);
            let slack = 2.0 * bound + 4.0 * f64::from(f32::EPSILON) * f64::from(p.sq[i] + p.sq[j]);
            f64::from(d2) <= r.max(0.0).powi(2) + slack
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn brute(emb: &Array2<f32>, metric: Metric, want: Want) -> Vec<Neighbors> {
        let n = emb.nrows();
        (0..n)
            .map(|i| {
                let a = emb.row(i).to_vec();
                let mut all: Neighbors = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| {
                        (
                            j as u32,
                            metric.reference_distance(&a, &emb.row(j).to_vec()),
                        )
                    })
                    .collect();
                all.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
                all.into_iter()
                    .enumerate()
                    .filter(|(rank, (_, d))| *rank < want.k || want.radius.is_some_and(|r| *d <= r))
                    .map(|(_, x)| x)
                    .collect()
            })
            .collect()
    }

    fn data(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut m = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
        // Planted near-duplicates and an exact copy, so radius lists are not empty.
        for i in (0..n).step_by(7) {
            let src = m.row(1 + i % 5).to_owned();
            let noise: Vec<f32> = (0..d).map(|_| rng.random_range(-0.01f32..0.01)).collect();
            for (x, (s, e)) in m.row_mut(i).iter_mut().zip(src.iter().zip(noise)) {
                *x = s + e;
            }
        }
        let first = m.row(0).to_owned();
        m.row_mut(n - 1).assign(&first);
        m
    }

    use ndarray::Array2;

    #[test]
    fn agrees_with_brute_force_on_every_metric() {
        // More rows than a block, so cross-block pairs and both threads are exercised.
        let emb = data(1100, 24, 3);
        for (metric, radius) in [
            (Metric::Cosine, 0.05),
            (Metric::Euclidean, 0.6),
            (Metric::DotProduct, -7.0),
        ] {
            let want = Want {
                k: 3,
                radius: Some(radius),
            };
            let got = all_neighbors(emb.view(), metric, want);
            let exp = brute(&emb, metric, want);
            assert_eq!(got, exp, "{metric:?}");
            assert!(
                got.iter().any(|l| l.len() > 3),
                "{metric:?}: some radius lists are longer than k"
            );
        }
    }

    #[test]
    fn a_pair_exactly_at_the_radius_is_inside() {
        let emb =
            Array2::from_shape_vec((3, 2), vec![0.0, 0.0, 3.0, 4.0, 10.0, 10.0]).expect("shape");
        let got = all_neighbors(
            emb.view(),
            Metric::Euclidean,
            Want {
                k: 0,
                radius: Some(5.0),
            },
        );
        assert_eq!(got[0], vec![(1, 5.0)]);
        assert_eq!(got[1][0], (0, 5.0));
    }
}
