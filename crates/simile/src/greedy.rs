//! The peer's greedy duplicate rule, exact and in bounded memory: walk the rows in order and
//! keep a row unless an earlier *kept* row lies within `thresh` (inclusive); then map every
//! duplicate to its nearest kept row.
//!
//! Rows are processed in chunks. With the int8 first pass ([`crate::sub_int8`], the usual case
//! from 1024 rows and 64 dimensions) one scan on every core bounds each chunk row's products
//! with every row kept so far and with the chunk's earlier rows, and only the pairs that pass
//! are multiplied in f32. Otherwise one GEMM gives a chunk's approximate distances to every row
//! kept so far, another the distances inside the chunk. A pair whose approximate distance is
//! within the f32 error bound of `thresh` (see [`crate::neighbors`]) is decided by its exact
//! f64 distance, so the answer is the exact greedy answer. Memory is the kept rows plus one
//! chunk × kept block (f32) or one 512-column block per thread (int8).
use ndarray::{s, Array2, ArrayView2};
use simile_index::Metric;

pub(crate) use crate::row_prep::Sub;

/// Rows per chunk.
pub(crate) const CHUNK: usize = 512;
/// Kept rows per block of the chunk × kept product (bounds its memory: 512 × 16384 × 4 B).
pub(crate) const SLAB: usize = 16384;
/// The first pass is given up when more than this share of the pairs it tests pass it.
const SUB_MAX_PASS: f64 = 0.02;

/// Rows prepared for GEMM: unit rows for cosine, squared norms, bound per unit of ‖a‖‖b‖.
pub(crate) struct Rows<'a> {
    raw: ArrayView2<'a, f32>,
    pub(crate) rows: Array2<f32>,
    pub(crate) sq: Vec<f32>,
    pub(crate) norm: Vec<f64>,
    pub(crate) gamma: f64,
    pub(crate) max_norm: f64,
    metric: Metric,
    pub(crate) sub: Option<Sub>,
}

impl<'a> Rows<'a> {
    pub(crate) fn new(raw: ArrayView2<'a, f32>, metric: Metric) -> Self {
        Self::new_for(raw, metric, None)
    }

    /// [`Rows::new`] for passes at one threshold: the first pass's column subset is then as
    /// narrow as a sample of pairs says pays at `thresh` ([`crate::sub_width`]); a quarter of
    /// the columns without one.
    pub(crate) fn new_for(raw: ArrayView2<'a, f32>, metric: Metric, thresh: Option<f64>) -> Self {
        let d = raw.ncols().max(1) as f64;
        let u = f64::from(f32::EPSILON) / 2.0;
        let gamma = (d * u / (1.0 - d * u)).max(0.0) * 1.01 + 8.0 * u;
        let p = crate::row_prep::prepare(raw, metric == Metric::Cosine);
        let max_norm = p.norm.iter().copied().fold(0.0, f64::max);
        let mut rows = Rows {
            raw,
            rows: p.rows,
            sq: p.sq,
            norm: p.norm,
            gamma,
            max_norm,
            metric,
            sub: None,
        };
        let (n, dim) = rows.rows.dim();
        if crate::row_prep::sub_applies(n, dim, 2 * CHUNK) {
            let order = crate::row_prep::energy_order(&p.energy);
            let m = match thresh {
                Some(t) => crate::sub_width::choose(&rows, &order, t),
                None => crate::row_prep::quarter(dim),
            };
            rows.sub = Some(crate::row_prep::sub(&rows.rows, &order, m));
        }
        rows
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
    pub(crate) fn approx(&self, i: usize, j: usize, s: f32) -> (f64, f64) {
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
    pub(crate) fn key(&self, j: usize) -> f32 {
        match self.metric {
            Metric::Euclidean => self.sq[j] / 2.0,
            _ => 0.0,
        }
    }

    /// The most permissive cutoff for row `i`: a pair can be within `thresh` only if
    /// `dot - key(j) >= cutoff(i)` (the error bound at its largest, plus the f32 rounding of the
    /// test itself).
    pub(crate) fn cutoff(&self, i: usize, thresh: f64) -> f32 {
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

    /// The int8 first pass's terms of rows `r` ([`crate::sub_int8`]): their keys, rest norms
    /// and cutoffs, lowered by a margin for the f32 arithmetic of the test (a few ulps of its
    /// largest terms). Needs the column subset.
    pub(crate) fn int8_terms(
        &self,
        r: impl Iterator<Item = usize> + Clone,
        thresh: f64,
    ) -> crate::sub_int8::RowTerms {
        let slack = (1e-5 * (1.0 + 2.0 * self.max_norm * self.max_norm)) as f32;
        let rest = self.sub.as_ref().map_or(&[][..], |s| &s.rest[..]);
        crate::sub_int8::RowTerms {
            keys: r.clone().map(|j| self.key(j)).collect(),
            rest: r
                .clone()
                .map(|j| rest.get(j).copied().unwrap_or(0.0))
                .collect(),
            cut: r.map(|i| self.cutoff(i, thresh) - slack).collect(),
        }
    }

    /// Whether rows `i` and `j` are within `thresh` given their dot product `s`: decided by the
    /// approximation when it is clear of the bound, by the exact distance otherwise.
    pub(crate) fn within(&self, i: usize, j: usize, s: f32, thresh: f64) -> bool {
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
        // `|=` over the block vectorises; a short-circuiting `any` would not.
        let mut hit = false;
        for (s, k) in s.iter().zip(k) {
            hit |= s - k >= c;
        }
        if hit {
            for (o, (&sv, &kv)) in s.iter().zip(k).enumerate() {
                if sv - kv >= c && check(blk * 64 + o, sv) {
                    return true;
                }
            }
        }
    }
    false
}

/// [`any_within`] on the first pass's upper bounds `dots + ri · rest` (computed in place, the
/// same expression in both loops), `check` given the position only.
fn any_within_upper(
    dots: &[f32],
    rest: &[f32],
    keys: &[f32],
    ri: f32,
    c: f32,
    mut check: impl FnMut(usize) -> bool,
) -> bool {
    let blocks = dots.chunks(64).zip(rest.chunks(64)).zip(keys.chunks(64));
    for (blk, ((s, r), k)) in blocks.enumerate() {
        let mut hit = false;
        for ((s, r), k) in s.iter().zip(r).zip(k) {
            hit |= s + ri * r - k >= c;
        }
        if hit {
            for (o, ((s, r), k)) in s.iter().zip(r).zip(k).enumerate() {
                if s + ri * r - k >= c && check(blk * 64 + o) {
                    return true;
                }
            }
        }
    }
    false
}

/// Per chunk row: whether a kept row is within the threshold and, from the int8 first pass, the
/// earlier chunk rows (offsets) that may be.
type ChunkTest = (Vec<bool>, Option<Vec<Vec<u32>>>);

/// The rows kept so far, in the form the first pass multiplies.
struct Kept {
    idx: Vec<usize>,
    /// Their subset columns (first pass on) or full rows (off), row-major.
    data: Vec<f32>,
    keys: Vec<f32>,
    rest: Vec<f32>,
    /// Whether the first pass is on.
    sub: bool,
    /// Pairs the first pass tested and let through, to give it up when it does not prune.
    tested: u64,
    passed: u64,
    /// The chunk × kept block, reused.
    dots: Vec<f32>,
    /// The kept rows' subset codes (first pass on, int8): then `data` is not used.
    codes: Option<crate::sub_int8::KeptCodes>,
}

impl Kept {
    /// [`Kept::any_within`] with the first pass on int8 codes ([`crate::sub_int8`]), which also
    /// gives, per chunk row, the earlier rows of the chunk that may be within `thresh`.
    fn any_within_int8(
        &mut self,
        rows: &Rows<'_>,
        codes: &crate::int8_pairs::Codes,
        mut kc: crate::sub_int8::KeptCodes,
        (c0, c1): (usize, usize),
        thresh: f64,
    ) -> Option<ChunkTest> {
        let terms = rows.int8_terms(c0..c1, thresh);
        let passing = kc.candidates(codes, (c0, c1), &terms, &self.keys, &self.rest);
        let mut passed = 0u64;
        let mut dup = vec![false; c1 - c0];
        let mut inner = Vec::with_capacity(c1 - c0);
        for (di, p) in passing.into_iter().enumerate() {
            let i = c0 + di;
            passed += (p.kept.len() + p.inner.len()) as u64;
            let full = rows.rows.row(i);
            dup[di] = p.kept.iter().any(|&pos| {
                let j = self.idx[pos as usize];
                rows.within(i, j, full.dot(&rows.rows.row(j)), thresh)
            });
            inner.push(p.inner);
        }
        let n = (c1 - c0) as u64;
        self.tested += n * self.idx.len() as u64 + n * n.saturating_sub(1) / 2;
        self.passed += passed;
        if self.tested > 1 << 16 && self.passed as f64 > SUB_MAX_PASS * self.tested as f64 {
            self.full(rows);
        } else {
            self.codes = Some(kc);
        }
        Some((dup, Some(inner)))
    }

    fn push(&mut self, rows: &Rows<'_>, i: usize) {
        self.idx.push(i);
        self.keys.push(rows.key(i));
        match (&rows.sub, self.sub) {
            (Some(sub), true) => {
                match (&mut self.codes, &sub.codes) {
                    (Some(kc), Some(codes)) => kc.push(codes, i),
                    _ => self.data.extend(sub.rows.row(i).iter()),
                }
                self.rest.push(sub.rest[i]);
            }
            _ => self.data.extend(rows.rows.row(i).iter()),
        }
    }

    /// Gives up the first pass: the kept rows in full from now on.
    fn full(&mut self, rows: &Rows<'_>) {
        self.sub = false;
        self.codes = None;
        self.data.clear();
        self.rest.clear();
        for &i in &self.idx {
            self.data.extend(rows.rows.row(i).iter());
        }
    }

    /// Whether row `i` (in the chunk starting at `c0`) has a kept row within `thresh`, for
    /// every row of the chunk; with the int8 first pass, also the chunk's candidate pairs (per
    /// row, the earlier chunk rows that may be within `thresh`).
    fn any_within(
        &mut self,
        rows: &Rows<'_>,
        c0: usize,
        c1: usize,
        thresh: f64,
    ) -> Option<ChunkTest> {
        let sub = rows.sub.as_ref().filter(|_| self.sub);
        if let (Some(codes), Some(kc)) = (sub.and_then(|s| s.codes.as_ref()), self.codes.take()) {
            return self.any_within_int8(rows, codes, kc, (c0, c1), thresh);
        }
        let mut dup = vec![false; c1 - c0];
        if self.idx.is_empty() {
            return Some((dup, None));
        }
        let width = sub.map_or(rows.rows.ncols(), |s| s.rows.ncols());
        let lhs = match sub {
            Some(s) => s.rows.slice(s![c0..c1, ..]),
            None => rows.rows.slice(s![c0..c1, ..]),
        };
        let mut dots = std::mem::take(&mut self.dots);
        let mut passed = 0u64;
        for s0 in (0..self.idx.len()).step_by(SLAB) {
            let s1 = (s0 + SLAB).min(self.idx.len());
            let kview =
                ArrayView2::from_shape((s1 - s0, width), &self.data[s0 * width..s1 * width])
                    .ok()?;
            crate::matmul::dot_t_into(lhs, kview, crate::matmul::cores(), &mut dots);
            let (idx, keys) = (&self.idx[s0..s1], &self.keys[s0..s1]);
            for (di, srow) in dots.chunks_exact(s1 - s0).enumerate() {
                if dup[di] {
                    continue;
                }
                let i = c0 + di;
                let cut = rows.cutoff(i, thresh);
                dup[di] = match sub {
                    Some(s) => {
                        let full = rows.rows.row(i);
                        let rest = &self.rest[s0..s1];
                        any_within_upper(srow, rest, keys, s.rest[i], cut, |pos| {
                            passed += 1;
                            let j = idx[pos];
                            rows.within(i, j, full.dot(&rows.rows.row(j)), thresh)
                        })
                    }
                    None => any_within(srow, keys, cut, |pos, s| {
                        rows.within(i, idx[pos], s, thresh)
                    }),
                };
            }
        }
        if sub.is_some() {
            self.tested += ((c1 - c0) * self.idx.len()) as u64;
            self.passed += passed;
            if self.tested > 1 << 16 && self.passed as f64 > SUB_MAX_PASS * self.tested as f64 {
                self.full(rows);
            }
        }
        self.dots = dots;
        Some((dup, None))
    }
}

/// The greedy keep flags for `thresh` (rows in order); `None` as soon as more than `max_kept`
/// rows are kept (when given).
pub(crate) fn keep(rows: &Rows<'_>, thresh: f64, max_kept: Option<usize>) -> Option<Vec<bool>> {
    keep_and_pass(rows, thresh, max_kept).0
}

/// [`keep`], and whether the first pass was still on at the end.
fn keep_and_pass(
    rows: &Rows<'_>,
    thresh: f64,
    max_kept: Option<usize>,
) -> (Option<Vec<bool>>, bool) {
    let n = rows.len();
    let mut kept = vec![false; n];
    let mut state = Kept {
        idx: Vec::new(),
        data: Vec::new(),
        keys: Vec::new(),
        rest: Vec::new(),
        sub: rows.sub.is_some(),
        tested: 0,
        passed: 0,
        dots: Vec::new(),
        codes: rows
            .sub
            .as_ref()
            .and_then(|s| s.codes.as_ref())
            .map(crate::sub_int8::KeptCodes::new),
    };
    for c0 in (0..n).step_by(CHUNK) {
        let c1 = (c0 + CHUNK).min(n);
        // Against rows kept before the chunk.
        let Some((dup, inner)) = state.any_within(rows, c0, c1, thresh) else {
            return (None, state.sub);
        };
        // Inside the chunk, in order: on the first pass's candidates, else on one product.
        let product = match inner {
            Some(_) => None,
            None => {
                let own = rows.rows.slice(s![c0..c1, ..]);
                Some(crate::matmul::dot_t(own, own))
            }
        };
        let mut in_chunk = vec![false; c1 - c0];
        let mut chunk_kept: Vec<usize> = Vec::new();
        for di in 0..(c1 - c0) {
            let i = c0 + di;
            let is_dup = dup[di]
                || match (&inner, &product) {
                    (Some(cands), _) => cands[di].iter().any(|&dj| {
                        let j = c0 + dj as usize;
                        in_chunk[dj as usize]
                            && rows.within(i, j, rows.rows.row(i).dot(&rows.rows.row(j)), thresh)
                    }),
                    (None, Some(p)) => chunk_kept
                        .iter()
                        .any(|&dj| rows.within(i, c0 + dj, p[[di, dj]], thresh)),
                    (None, None) => false,
                };
            if !is_dup {
                chunk_kept.push(di);
                in_chunk[di] = true;
                kept[i] = true;
                state.push(rows, i);
                if max_kept.is_some_and(|m| state.idx.len() > m) {
                    return (None, state.sub);
                }
            }
        }
    }
    (Some(kept), state.sub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nearest_kept::nearest_kept;
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
            assert_eq!(nearest_kept(&rows, &kept, t), want_map, "{metric:?}");
        }
    }

    #[test]
    fn the_column_subset_pass_changes_nothing() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (n, d) = (2600, 96);
        // Uneven column energy, as in real embeddings, and planted near-duplicates.
        let mut emb = Array2::from_shape_fn((n, d), |(_, c)| {
            rng.random_range(-1.0f32..1.0) * (1.0 + (c % 7) as f32)
        });
        for i in (0..n).step_by(9) {
            let src = emb.row((i * 17 + 5) % n).to_owned();
            for (x, s) in emb.row_mut(i).iter_mut().zip(src.iter()) {
                *x = s + rng.random_range(-0.05f32..0.05);
            }
        }
        for (metric, small, large) in [
            (Metric::Cosine, 0.002, 0.6),
            (Metric::Euclidean, 0.5, 25.0),
            (Metric::DotProduct, -400.0, -150.0),
        ] {
            let rows = Rows::new(emb.view(), metric);
            assert!(rows.sub.is_some(), "{metric:?}: the first pass applies");
            let mut plain = Rows::new(emb.view(), metric);
            plain.sub = None;
            for (t, pass_stays_on) in [(small, true), (large, false)] {
                let (got, on) = keep_and_pass(&rows, t, None);
                let want = keep(&plain, t, None);
                assert_eq!(got, want, "{metric:?} t={t}");
                assert_eq!(on, pass_stays_on, "{metric:?} t={t}: first pass kept on");
                let dups = got.iter().flatten().filter(|k| !**k).count();
                assert!(dups > 0 && dups < n, "{metric:?} t={t}: {dups} duplicates");
                let flags = got.unwrap_or_default();
                assert_eq!(
                    nearest_kept(&rows, &flags, t),
                    nearest_kept(&plain, &flags, t),
                    "{metric:?} t={t}: nearest kept"
                );
            }
        }
    }

    #[test]
    fn a_pair_exactly_at_thresh_is_a_duplicate() {
        let emb =
            Array2::from_shape_vec((3, 2), vec![0.0, 0.0, 3.0, 4.0, 3.0, 4.5]).expect("shape");
        let rows = Rows::new(emb.view(), Metric::Euclidean);
        assert_eq!(keep(&rows, 5.0, None), Some(vec![true, false, true]));
        assert_eq!(keep(&rows, 5.0, Some(1)), None);
        assert_eq!(
            nearest_kept(&rows, &[true, false, true], 5.0),
            vec![(1, 2, 0.5)]
        );
    }
}
