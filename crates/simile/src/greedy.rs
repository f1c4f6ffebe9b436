//! The peer's greedy duplicate rule, exact and in bounded memory: walk the rows in order and
//! keep a row unless an earlier *kept* row lies within `thresh` (inclusive); then map every
//! duplicate to its nearest kept row.
//!
//! Rows are processed in chunks: one GEMM gives a chunk's approximate distances to every row
//! kept so far, another the distances inside the chunk. A pair whose approximate distance is
//! within the f32 error bound of `thresh` (see [`crate::neighbors`]) is decided by its exact
//! f64 distance, so the answer is the exact greedy answer. Memory is the kept rows plus one
//! chunk × kept block.
use ndarray::{s, Array2, ArrayView2, Axis};
use simile_index::Metric;

/// Rows per chunk.
const CHUNK: usize = 512;

/// Rows prepared for GEMM: unit rows for cosine, squared norms, bound per unit of ‖a‖‖b‖.
pub(crate) struct Rows<'a> {
    raw: ArrayView2<'a, f32>,
    pub(crate) rows: Array2<f32>,
    pub(crate) sq: Vec<f32>,
    pub(crate) norm: Vec<f64>,
    pub(crate) gamma: f64,
    pub(crate) max_norm: f64,
    metric: Metric,
}

impl<'a> Rows<'a> {
    pub(crate) fn new(raw: ArrayView2<'a, f32>, metric: Metric) -> Self {
        let d = raw.ncols().max(1) as f64;
        let u = f64::from(f32::EPSILON) / 2.0;
        let gamma = (d * u / (1.0 - d * u)).max(0.0) * 1.01 + 8.0 * u;
        let mut rows = raw.to_owned();
        if metric == Metric::Cosine {
            for mut r in rows.rows_mut() {
                let n = r.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                if n > 0.0 {
                    r.mapv_inplace(|x| (f64::from(x) / n) as f32);
                }
            }
        }
        let sq = rows.rows().into_iter().map(|r| r.dot(&r)).collect();
        let norm: Vec<f64> = rows
            .rows()
            .into_iter()
            .map(|r| r.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt())
            .collect();
        let max_norm = norm.iter().copied().fold(0.0, f64::max);
        Rows {
            raw,
            rows,
            sq,
            norm,
            gamma,
            max_norm,
            metric,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.raw.nrows()
    }

    /// A distance below every pair's and one at least every pair's.
    pub(crate) fn distance_range(&self) -> (f64, f64) {
        let max = self.norm.iter().copied().fold(0.0, f64::max);
        match self.metric {
            Metric::Cosine => (-1e-9, 2.0 + 1e-9),
            Metric::Euclidean => (-1e-9, 2.0 * max * (1.0 + 1e-6) + 1e-9),
            Metric::DotProduct => (
                -max * max * (1.0 + 1e-6) - 1e-9,
                max * max * (1.0 + 1e-6) + 1e-9,
            ),
        }
    }

    /// The exact distance of two rows.
    pub(crate) fn exact(&self, i: usize, j: usize) -> f64 {
        let a = self.raw.row(i);
        let b = self.raw.row(j);
        match (a.as_slice(), b.as_slice()) {
            (Some(a), Some(b)) => self.metric.reference_distance(a, b),
            _ => self.metric.reference_distance(&a.to_vec(), &b.to_vec()),
        }
    }

    /// Approximate distance from a dot product, and its error bound (in the same units; for
    /// euclidean both are on squared distances).
    fn approx(&self, i: usize, j: usize, s: f32) -> (f64, f64) {
        let bound = self.gamma * self.norm[i] * self.norm[j];
        match self.metric {
            Metric::Cosine => (1.0 - f64::from(s), bound + 1e-12),
            Metric::DotProduct => (-f64::from(s), bound + 1e-12),
            Metric::Euclidean => (
                f64::from((self.sq[i] + self.sq[j] - 2.0 * s).max(0.0)),
                2.0 * bound + 4.0 * f64::from(f32::EPSILON) * f64::from(self.sq[i] + self.sq[j]),
            ),
        }
    }

    /// `thresh` in the units of [`Rows::approx`].
    fn unit(&self, thresh: f64) -> f64 {
        match self.metric {
            Metric::Euclidean => thresh.max(0.0).powi(2),
            _ => thresh,
        }
    }

    /// The column term of row `j` in the fast test `dot - key(j) >= cutoff(i)`.
    fn key(&self, j: usize) -> f32 {
        match self.metric {
            Metric::Euclidean => self.sq[j] / 2.0,
            _ => 0.0,
        }
    }

    /// The most permissive cutoff for row `i`: a pair can be within `thresh` only if
    /// `dot - key(j) >= cutoff(i)` (the error bound at its largest, plus the f32 rounding of the
    /// test itself).
    fn cutoff(&self, i: usize, thresh: f64) -> f32 {
        let maxn = self.max_norm;
        let bound = self.gamma * self.norm[i] * maxn;
        let c = match self.metric {
            Metric::Cosine => 1.0 - thresh - bound - 1e-12,
            Metric::DotProduct => -thresh - bound - 1e-12,
            Metric::Euclidean => {
                let t2 = thresh.max(0.0).powi(2);
                let slack = 2.0 * bound
                    + 4.0 * f64::from(f32::EPSILON) * (f64::from(self.sq[i]) + maxn * maxn);
                (f64::from(self.sq[i]) - t2 - slack) / 2.0
            }
        };
        let margin = 4.0 * f64::from(f32::EPSILON) * (1.0 + c.abs() + maxn * maxn);
        (c - margin) as f32
    }

    /// Whether rows `i` and `j` are within `thresh` given their dot product `s`: decided by the
    /// approximation when it is clear of the bound, by the exact distance otherwise.
    fn within(&self, i: usize, j: usize, s: f32, thresh: f64) -> bool {
        let (d, bound) = self.approx(i, j, s);
        let t = self.unit(thresh);
        if d + bound < t {
            true
        } else if d - bound > t {
            false
        } else {
            self.exact(i, j) <= thresh
        }
    }
}

/// Whether any of `dots` (a row's dot products with kept rows, minus their `keys`) reaches the
/// cutoff `c` and passes `check` (the precise test). Blocks of 64 are skipped on one
/// vectorised maximum, so most pairs cost one subtraction and one comparison.
fn any_within(
    dots: &[f32],
    keys: &[f32],
    c: f32,
    mut check: impl FnMut(usize, f32) -> bool,
) -> bool {
    for (blk, (s, k)) in dots.chunks(64).zip(keys.chunks(64)).enumerate() {
        let m = s
            .iter()
            .zip(k)
            .map(|(s, k)| s - k)
            .fold(f32::NEG_INFINITY, f32::max);
        if m >= c {
            for (o, (&sv, &kv)) in s.iter().zip(k).enumerate() {
                if sv - kv >= c && check(blk * 64 + o, sv) {
                    return true;
                }
            }
        }
    }
    false
}

/// The greedy keep flags for `thresh` (rows in order); `None` as soon as more than `max_kept`
/// rows are kept (when given).
pub(crate) fn keep(rows: &Rows<'_>, thresh: f64, max_kept: Option<usize>) -> Option<Vec<bool>> {
    let n = rows.len();
    let dim = rows.rows.ncols();
    let mut kept = vec![false; n];
    let mut kept_idx: Vec<usize> = Vec::new();
    let mut kept_rows: Vec<f32> = Vec::new();
    let mut kept_keys: Vec<f32> = Vec::new();
    for c0 in (0..n).step_by(CHUNK) {
        let c1 = (c0 + CHUNK).min(n);
        // Against rows kept before the chunk.
        let mut dup = vec![false; c1 - c0];
        if !kept_idx.is_empty() {
            let kview = ArrayView2::from_shape((kept_idx.len(), dim), &kept_rows[..]).ok()?;
            let dots = crate::matmul::dot_t(rows.rows.slice(s![c0..c1, ..]), kview);
            for (di, srow) in dots.axis_iter(Axis(0)).enumerate() {
                let i = c0 + di;
                let srow = srow.as_slice()?;
                dup[di] = any_within(srow, &kept_keys, rows.cutoff(i, thresh), |pos, s| {
                    rows.within(i, kept_idx[pos], s, thresh)
                });
            }
        }
        // Inside the chunk, in order.
        let own = rows.rows.slice(s![c0..c1, ..]);
        let inner = crate::matmul::dot_t(own, own);
        let mut chunk_kept: Vec<usize> = Vec::new();
        for di in 0..(c1 - c0) {
            let i = c0 + di;
            let is_dup = dup[di]
                || chunk_kept
                    .iter()
                    .any(|&dj| rows.within(i, c0 + dj, inner[[di, dj]], thresh));
            if !is_dup {
                chunk_kept.push(di);
                kept[i] = true;
                kept_idx.push(i);
                kept_rows.extend(rows.rows.row(i).iter());
                kept_keys.push(rows.key(i));
                if max_kept.is_some_and(|m| kept_idx.len() > m) {
                    return None;
                }
            }
        }
    }
    Some(kept)
}

/// For every duplicate (not kept), its nearest kept row and the exact distance (ties: the
/// earlier row). Returns `(dup, kept, distance)` in row order.
pub(crate) fn nearest_kept(rows: &Rows<'_>, kept: &[bool]) -> Vec<(usize, usize, f64)> {
    let dim = rows.rows.ncols();
    let kept_idx: Vec<usize> = (0..kept.len()).filter(|&i| kept[i]).collect();
    let dups: Vec<usize> = (0..kept.len()).filter(|&i| !kept[i]).collect();
    if kept_idx.is_empty() || dups.is_empty() {
        return Vec::new();
    }
    let mut kmat = Array2::zeros((kept_idx.len(), dim));
    for (r, &i) in kept_idx.iter().enumerate() {
        kmat.row_mut(r).assign(&rows.rows.row(i));
    }
    let mut out = Vec::with_capacity(dups.len());
    // Duplicates are not contiguous: gather them in chunks.
    for chunk in dups.chunks(CHUNK) {
        let mut dmat = Array2::zeros((chunk.len(), dim));
        for (r, &i) in chunk.iter().enumerate() {
            dmat.row_mut(r).assign(&rows.rows.row(i));
        }
        let dots = crate::matmul::dot_t(dmat.view(), kmat.view());
        for (r, srow) in dots.axis_iter(Axis(0)).enumerate() {
            let i = chunk[r];
            // The best approximate distance, then every kept row within twice the bound of it,
            // re-scored exactly.
            let mut best = f64::INFINITY;
            let mut best_bound = 0.0;
            for (&s, &j) in srow.iter().zip(&kept_idx) {
                let (d, b) = rows.approx(i, j, s);
                if d < best {
                    best = d;
                    best_bound = b;
                }
            }
            let mut pick: Option<(usize, f64)> = None;
            for (&s, &j) in srow.iter().zip(&kept_idx) {
                let (d, b) = rows.approx(i, j, s);
                if d - b <= best + best_bound {
                    let e = rows.exact(i, j);
                    if pick.is_none_or(|(_, pe)| e < pe) {
                        pick = Some((j, e));
                    }
                }
            }
            if let Some((j, e)) = pick {
                out.push((i, j, e));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The rule, written the slow obvious way.
    fn reference(
        emb: &Array2<f32>,
        metric: Metric,
        t: f64,
    ) -> (Vec<bool>, Vec<(usize, usize, f64)>) {
        let n = emb.nrows();
        let d = |i: usize, j: usize| {
            metric.reference_distance(&emb.row(i).to_vec(), &emb.row(j).to_vec())
        };
        let mut kept = vec![false; n];
        for i in 0..n {
            kept[i] = !(0..i).any(|j| kept[j] && d(i, j) <= t);
        }
        let mut map = Vec::new();
        for i in (0..n).filter(|&i| !kept[i]) {
            let mut best: Option<(usize, f64)> = None;
            for j in (0..n).filter(|&j| kept[j]) {
                let e = d(i, j);
                if best.is_none_or(|(_, b)| e < b) {
                    best = Some((j, e));
                }
            }
            if let Some((j, e)) = best {
                map.push((i, j, e));
            }
        }
        (kept, map)
    }

    #[test]
    fn greedy_matches_the_obvious_rule_on_every_metric() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let n = 1300;
        let mut emb = Array2::from_shape_fn((n, 16), |_| rng.random_range(-1.0f32..1.0));
        for i in (0..n).step_by(5) {
            let src = emb.row((i * 13 + 7) % n).to_owned();
            for (x, s) in emb.row_mut(i).iter_mut().zip(src.iter()) {
                *x = s + rng.random_range(-0.02f32..0.02);
            }
        }
        for (metric, t) in [
            (Metric::Cosine, 0.01),
            (Metric::Euclidean, 0.1),
            (Metric::DotProduct, -4.0),
        ] {
            let rows = Rows::new(emb.view(), metric);
            let kept = keep(&rows, t, None).expect("no limit");
            let (want_kept, want_map) = reference(&emb, metric, t);
            assert_eq!(kept, want_kept, "{metric:?}");
            assert!(
                kept.iter().filter(|k| !**k).count() > 10,
                "{metric:?}: some duplicates"
            );
            assert_eq!(nearest_kept(&rows, &kept), want_map, "{metric:?}");
        }
    }

    #[test]
    fn a_pair_exactly_at_thresh_is_a_duplicate() {
        let emb =
            Array2::from_shape_vec((3, 2), vec![0.0, 0.0, 3.0, 4.0, 3.0, 4.5]).expect("shape");
        let rows = Rows::new(emb.view(), Metric::Euclidean);
        assert_eq!(keep(&rows, 5.0, None), Some(vec![true, false, true]));
        assert_eq!(keep(&rows, 5.0, Some(1)), None);
        assert_eq!(nearest_kept(&rows, &[true, false, true]), vec![(1, 2, 0.5)]);
    }
}
