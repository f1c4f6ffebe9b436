//! Exact brute-force k-NN over a [`Store`].
//!
//! Up to three passes (the `kernel` and `quant` modules' notes give the error bounds): an int8
//! scan (exact integer dot products of quantised rows, vectorised, split across threads) gives
//! every candidate row an approximate distance with a proven error bound; a bounded heap finds the k-th best worst case, and every row that could
//! still beat it survives. When many survive (near-duplicates), an `f32` scan of the survivors
//! narrows them the same way. The last survivors are re-scored exactly in `f64` (the same
//! formulas as [`Metric::reference_distance`]) and ordered with [`sort_neighbors`]. The result is
//! therefore exactly what the naive reference would return (ranked by the reported `f32`
//! distance, ties by key), at the speed of the int8 scan.

use std::collections::BinaryHeap;
use std::thread;

use simile_index::{sort_neighbors, Metric, Neighbor};

use crate::kernel::{self, Rows};
use crate::quant::{self, QueryCodes};
use crate::store::Store;

/// Below this many `f32` multiply-adds a query runs on the calling thread only.
const PARALLEL_MIN_WORK: usize = 1 << 20;
/// Upper bound on scan threads.
const MAX_THREADS: usize = 4;

/// How many threads to use for `work` multiply-adds.
fn threads_for(work: usize) -> usize {
    if work < PARALLEL_MIN_WORK {
        return 1;
    }
    thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
}

/// Candidate rows: the whole index, or a sorted, deduplicated subset.
enum Candidates<'a> {
    All(usize),
    Subset(&'a [u32]),
}

impl Candidates<'_> {
    fn len(&self) -> usize {
        match self {
            Candidates::All(n) => *n,
            Candidates::Subset(v) => v.len(),
        }
    }
    fn row(&self, pos: usize) -> usize {
        match self {
            Candidates::All(_) => pos,
            Candidates::Subset(v) => v[pos] as usize,
        }
    }
    /// The rows of positions `start..start + len` for the scan kernel.
    fn rows(&self, start: usize, len: usize) -> Rows<'_> {
        match self {
            Candidates::All(_) => Rows::Range(start),
            Candidates::Subset(v) => Rows::List(&v[start..start + len]),
        }
    }
}

/// `f32` with a total order, for the selection heap.
#[derive(Clone, Copy, PartialEq)]
struct Ord32(f32);
impl Eq for Ord32 {}
impl PartialOrd for Ord32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ord32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The `k` smallest finite values (unordered).
fn k_smallest(values: impl Iterator<Item = f32>, k: usize) -> Vec<f32> {
    let mut heap: BinaryHeap<Ord32> = BinaryHeap::with_capacity(k + 1);
    for v in values {
        if !v.is_finite() {
            continue;
        }
        if heap.len() < k {
            heap.push(Ord32(v));
        } else if let Some(mut top) = heap.peek_mut() {
            if v < top.0 {
                *top = Ord32(v);
            }
        }
    }
    heap.into_iter().map(|o| o.0).collect()
}

/// Runs `f(start, out_chunk)` over `out` split into `threads` contiguous parts, in parallel.
fn par_chunks<T: Send, R: Send>(
    out: &mut [T],
    threads: usize,
    f: impl Fn(usize, &mut [T]) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 || out.len() < 2 {
        return vec![f(0, out)];
    }
    let chunk = out.len().div_ceil(threads);
    thread::scope(|s| {
        let f = &f;
        let mut parts = out.chunks_mut(chunk).enumerate();
        // The first part runs on the calling thread.
        let first = parts.next();
        let handles: Vec<_> = parts
            .map(|(i, part)| s.spawn(move || f(i * chunk, part)))
            .collect();
        let mut results = Vec::with_capacity(threads);
        if let Some((_, part)) = first {
            results.push(f(0, part));
        }
        for h in handles {
            match h.join() {
                Ok(r) => results.push(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

/// The rows of the keys that are in the index, sorted, without repeats.
pub(crate) fn resolve(store: &Store, keys: &[String]) -> Vec<u32> {
    let mut rows: Vec<u32> = keys
        .iter()
        .filter_map(|k| store.ids.row(k).map(|r| r as u32))
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// The k-NN of `q` (already validated: finite, `store.dim` long), among the `restrict` rows
/// (from [`resolve`]) or the whole index.
pub(crate) fn knn(
    store: &Store,
    metric: Metric,
    q: &[f32],
    k: Option<usize>,
    reverse: bool,
    restrict: Option<&[u32]>,
) -> Vec<Neighbor> {
    let dim = store.dim.unwrap_or(q.len());
    if k == Some(0) || store.ids.is_empty() || dim == 0 {
        return Vec::new();
    }
    let cands = match restrict {
        None => Candidates::All(store.len()),
        Some(rows) => Candidates::Subset(rows),
    };
    let m = cands.len();
    if m == 0 {
        return Vec::new();
    }
    let search = Search {
        store,
        data: &store.data,
        norms: &store.norms,
        metric,
        q,
        qn: kernel::norm64(q),
        sign: if reverse { -1.0 } else { 1.0 },
    };

    let mut scored = match k {
        Some(k) if k < m => {
            // Stage 1: int8 scan of every candidate. Stage 2 (when stage 1 left many): `f32`
            // re-scan of the survivors. Stage 3: exact `f64` scores of the final survivors.
            let first = if dim <= quant::MAX_DIM {
                Precision::Int8
            } else {
                Precision::F32
            };
            let rows = search.prune(&cands, k, first);
            match gather(store, &rows) {
                // Passes 2 and 3 on a compact copy of the survivors (local rows 0..).
                Some((data, norms)) => {
                    let local = Search {
                        data: &data,
                        norms: &norms,
                        ..search
                    };
                    let mut scored = local.narrow(&Candidates::All(rows.len()), k);
                    for s in &mut scored {
                        s.1 = rows[s.1 as usize];
                    }
                    scored
                }
                None => search.narrow(&Candidates::Subset(&rows), k),
            }
        }
        _ => search.exact(&cands),
    };
    // Order by the reported (f32) distance, ties by key: `sort_neighbors`' order, on compact
    // (distance, row) pairs so ranking a whole view moves no strings.
    scored.sort_unstable_by(|a, b| {
        let o = a.0.total_cmp(&b.0);
        let o = if reverse { o.reverse() } else { o };
        o.then_with(|| store.ids.key(a.1 as usize).cmp(store.ids.key(b.1 as usize)))
    });
    if let Some(k) = k {
        scored.truncate(k);
    }
    let build = |part: &[(f32, u32)]| -> Vec<Neighbor> {
        part.iter()
            .map(|&(distance, r)| Neighbor {
                key: store.ids.key(r as usize).to_string(),
                sample_id: store.ids.sample_id(r as usize).to_string(),
                distance,
            })
            .collect()
    };
    // Ranking a whole big view clones many ids: do it on two threads.
    let mut hits = if scored.len() >= PARALLEL_BUILD_MIN && threads_for(usize::MAX) > 1 {
        let (a, b) = scored.split_at(scored.len() / 2);
        let (mut first, second) = thread::scope(|s| {
            let second = s.spawn(|| build(b));
            (build(a), second.join())
        });
        match second {
            Ok(second) => first.extend(second),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        first
    } else {
        build(&scored)
    };
    // Already in this order (keys are unique); the contract's own sort confirms it in O(n).
    sort_neighbors(&mut hits, reverse);
    hits
}

/// Survivors of pass 1 up to which [`gather`] copies their rows out of the file.
const GATHER_MAX: usize = 4096;

/// The `f32` rows (and norms) of `rows` (sorted store rows), read with `pread` from the index
/// file when the store's vectors are mapped from one and there are at most [`GATHER_MAX`] of
/// them; `None` otherwise (or on a read error: the map serves them then).
///
/// Why: on recent kernels a fault in a file mapping maps the whole large folio of page cache
/// around it into the process (measured here on Linux 6.18: ~1.7 MB per row touched in a freshly
/// written 2.6 GB index), so ~200 scattered rows per query through the map left most of the
/// file in the querying process's resident set after a few queries. Reading them instead keeps
/// it at what pass 1 scans (the int8 codes).
pub(crate) fn gather(store: &Store, rows: &[u32]) -> Option<(Vec<f32>, Vec<f32>)> {
    if rows.len() > GATHER_MAX {
        return None;
    }
    let file = store.file.as_ref()?;
    let base = store.data.mapped_offset()?;
    let dim = store.dim?;
    let mut data = vec![0f32; rows.len() * dim];
    let mut bytes = vec![0u8; dim * 4];
    // Rows not in the page cache (a file just built past it, or bigger than memory) are asked
    // for all at once, so the disk serves them in parallel rather than one wait per row.
    #[cfg(target_os = "linux")]
    if rows.len() > 1 {
        let len = std::num::NonZeroU64::new(dim as u64 * 4);
        for &r in rows {
            let at = base as u64 + u64::from(r) * (dim as u64) * 4;
            let _ = rustix::fs::fadvise(&**file, at, len, rustix::fs::Advice::WillNeed);
        }
    }
    for (out, &r) in data.chunks_exact_mut(dim).zip(rows) {
        let at = base as u64 + u64::from(r) * (dim as u64) * 4;
        crate::format::read_at(file, at, &mut bytes).ok()?;
        for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    let norms = rows.iter().map(|&r| store.norms[r as usize]).collect();
    Some((data, norms))
}

/// Results above which neighbours are built on two threads.
const PARALLEL_BUILD_MIN: usize = 1 << 14;

/// Survivors of stage 1 above which stage 2 re-scans them in `f32` before the exact stage.
const STAGE2_MIN: usize = 64;

/// Below this, an `f32` norm may have lost precision to underflow (its square is subnormal).
const NORM_FLOOR: f32 = 1e-18;

/// Extra relative slack on every error bound.
const SAFETY: f32 = 1.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Int8,
    F32,
}

#[derive(Clone, Copy)]
struct Search<'a> {
    store: &'a Store,
    /// The `f32` rows and norms that passes 2 and 3 read (candidates index them): the store's,
    /// or a compact copy of a few rows (`gather`).
    data: &'a [f32],
    norms: &'a [f32],
    metric: Metric,
    q: &'a [f32],
    qn: f64,
    /// 1 for nearest first, −1 for farthest first: selection always keeps the k smallest
    /// `sign · distance`.
    sign: f32,
}

impl Search<'_> {
    fn dim(&self) -> usize {
        self.q.len()
    }

    /// Passes 2 and 3 on the survivors of pass 1: an `f32` re-scan when many survived, then
    /// the exact scores.
    fn narrow(&self, cands: &Candidates<'_>, k: usize) -> Vec<(f32, u32)> {
        if cands.len() > k && cands.len() > STAGE2_MIN {
            let rows = self.prune(cands, k, Precision::F32);
            return self.exact(&Candidates::Subset(&rows));
        }
        self.exact(cands)
    }

    /// Exact distances (rounded to `f32`, as reported) of every candidate, with its row; eight
    /// rows at a time, threaded for big sets.
    fn exact(&self, cands: &Candidates<'_>) -> Vec<(f32, u32)> {
        let dim = self.dim();
        let data = self.data;
        let row = |r: usize| &data[r * dim..(r + 1) * dim];
        let mut dists = vec![(0f32, 0u32); cands.len()];
        let threads = threads_for(cands.len().saturating_mul(dim) * 4);
        par_chunks(&mut dists, threads, |start, out| {
            let mut octs = out.chunks_exact_mut(8);
            let mut pos = start;
            for oct in &mut octs {
                let r: [usize; 8] = std::array::from_fn(|i| cands.row(pos + i));
                let d = kernel::exact_distance8(self.metric, self.q, self.qn, r.map(row));
                for i in 0..8 {
                    oct[i] = (d[i] as f32, r[i] as u32);
                }
                pos += 8;
            }
            for d in octs.into_remainder() {
                let r = cands.row(pos);
                *d = (
                    kernel::exact_distance(self.metric, self.q, self.qn, row(r)) as f32,
                    r as u32,
                );
                pos += 1;
            }
        });
        dists
    }

    /// One approximate pass: scores every candidate at `precision`, with a proven error bound per
    /// row, and returns the rows that may still be among the best `k` (`k < cands.len()`).
    ///
    /// A row is dropped only when its best possible score is worse than the k-th best worst
    /// possible score (plus a slack that covers rounding the exact distances to `f32`), so no row
    /// of the exact answer, ties included, is ever dropped.
    fn prune(&self, cands: &Candidates<'_>, k: usize, precision: Precision) -> Vec<u32> {
        let store = self.store;
        let dim = self.dim();
        let m = cands.len();
        let l2 = self.metric == Metric::Euclidean;
        let threads = threads_for(m.saturating_mul(dim));
        let bound = self.f32_bounds();
        // Cosine scans the unit query (scale-free, so no f32 overflow or subnormal scaling from
        // the query's magnitude); the other metrics scan the query as given.
        let unit: Vec<f32>;
        let q: &[f32] = if self.metric == Metric::Cosine && self.qn > 0.0 && self.qn.is_finite() {
            unit = self
                .q
                .iter()
                .map(|x| (f64::from(*x) / self.qn) as f32)
                .collect();
            &unit
        } else {
            self.q
        };
        let sign = self.sign;
        let codes = (precision == Precision::Int8).then(|| QueryCodes::new(q));
        let int8 = codes
            .as_ref()
            .map(|c| Int8Bound::new(self.metric, c, q, dim));

        // Each part scores its candidates and keeps, per row, the best case (score − error) in
        // `lows`; it returns its k smallest worst cases (score + error).
        let mut lows = vec![0f32; m];
        let bests = par_chunks(&mut lows, threads, |start, out| {
            let rows = cands.rows(start, out.len());
            let norm = |i: usize| self.norms[cands.row(start + i)];
            let mut worst = Vec::with_capacity(out.len());
            match (&codes, &int8) {
                (Some(codes), Some(b)) => {
                    let mut scales = vec![0f32; out.len()];
                    quant::scan_codes(&store.lo, dim, rows, codes, out, &mut scales);
                    for (i, (v, sr)) in out.iter_mut().zip(&scales).enumerate() {
                        let (score, err) = b.score(norm(i), *sr, *v);
                        let s = sign * score;
                        worst.push(s + err);
                        *v = s - err;
                    }
                }
                _ => {
                    kernel::scan(self.data, dim, rows, q, l2, out);
                    for (i, v) in out.iter_mut().enumerate() {
                        let rn = norm(i);
                        let d = match self.metric {
                            Metric::Euclidean => v.max(0.0).sqrt(),
                            Metric::DotProduct => -*v,
                            Metric::Cosine => 1.0 - *v * inv_norm(rn),
                        };
                        let s = sign * d;
                        let err = bound.error(rn, s);
                        worst.push(s + err);
                        *v = s - err;
                    }
                }
            }
            // The k smallest worst-case scores of this part.
            k_smallest(worst.into_iter(), k)
        });
        let mut best: Vec<f32> = bests.into_iter().flatten().collect();
        // The k-th best worst case; with fewer than k finite scores everything survives.
        let threshold = if best.len() >= k {
            best.select_nth_unstable_by(k - 1, f32::total_cmp);
            best[k - 1]
        } else {
            f32::INFINITY
        };
        let limit = threshold + 1e-6 * threshold.abs() + 1e-30;
        let survivors: Vec<u32> = lows
            .iter()
            .enumerate()
            // Dropped only when provably worse; anything non-finite (overflow, NaN) survives.
            .filter(|(_, &low)| !(low.is_finite() && low > limit))
            .map(|(pos, _)| cands.row(pos) as u32)
            .collect();
        tracing::trace!(
            ?precision,
            candidates = m,
            survivors = survivors.len(),
            "pruned"
        );
        survivors
    }

    /// The error bounds of the `f32` pass.
    fn f32_bounds(&self) -> Bounds {
        let rel = kernel::rel_error(self.dim());
        // The f32 accumulation, and the stored f32 norms (themselves within `rel` of the truth).
        let product = rel * SAFETY;
        let norm = rel * SAFETY;
        // Covers values lost to underflow (subnormal products).
        let tiny = 1e-30 * (1.0 + self.qn as f32);
        match self.metric {
            // |cos̃ − cos| ≤ product, plus a few roundings of the scaling around 1.
            Metric::Cosine => Bounds {
                constant: product + norm + 8.0 * f32::EPSILON,
                per_norm: 0.0,
                per_score: 0.0,
            },
            // |dot̃ − dot| ≤ product · ‖q‖ · ‖r‖ (with ‖r‖ itself known to within `norm`).
            Metric::DotProduct => Bounds {
                constant: tiny,
                per_norm: (product + norm) * self.qn as f32,
                per_score: 0.0,
            },
            // The accumulation error relative to d̃.
            Metric::Euclidean => Bounds {
                constant: tiny,
                per_norm: 0.0,
                per_score: rel * SAFETY,
            },
        }
    }
}

/// `1 / rn`, or NaN for a norm that underflowed or overflowed in `f32` (such rows always go to
/// the exact stage: NaN survives every pass).
#[inline(always)]
fn inv_norm(rn: f32) -> f32 {
    if (NORM_FLOOR..f32::INFINITY).contains(&rn) {
        1.0 / rn
    } else {
        f32::NAN
    }
}

/// The int8 pass's scores and error bounds (the `quant` module's notes): per row, from its
/// stored norm `rn`, its scale `sr` and the integer dot product `D` of the codes.
///
/// `|q·r − sq·sr·D| ≤ E = δr·‖q‖₁ + δq·√dim·‖r̃‖₂ + 8ε·‖q̃‖₂·‖r̃‖₂`, with `δr = HALF_STEP·sr`,
/// `‖r̃‖₂ ≤ ‖r‖₂ + √dim·δr` and `‖q̃‖₂ ≤ ‖q‖₂ + √dim·δq` (the last term covers rounding the
/// products `sq·sr·D` and, past 2²⁴, `D` itself). Then per metric: dot product `E`; cosine (unit
/// query) `E/‖r‖` plus the norm's and the unit query's roundings; Euclidean from
/// `d̃² = ‖q‖² + ‖r‖² − 2·dot̃`: with `E₂ ≥ |d̃² − d²|`, `|d̃ − d| ≤ min(√E₂, E₂/d̃)`.
struct Int8Bound {
    metric: Metric,
    /// `sq`, `δq`, `‖q‖₁`, `‖q‖₂` (rounded up), `‖q‖₂²`, `√dim` (rounded up), `rel_error(dim)`.
    sq: f32,
    dq: f32,
    l1: f32,
    qn: f32,
    qn2: f32,
    sd: f32,
    rel: f32,
}

impl Int8Bound {
    fn new(metric: Metric, c: &QueryCodes, q: &[f32], dim: usize) -> Self {
        let qn = kernel::norm64(q);
        Int8Bound {
            metric,
            sq: c.scale,
            dq: c.dev,
            l1: c.l1,
            qn: (qn * (1.0 + 1e-6)) as f32,
            qn2: (qn * qn) as f32,
            sd: ((dim as f64).sqrt() * (1.0 + 1e-6)) as f32,
            rel: kernel::rel_error(dim),
        }
    }

    /// `(distance, error bound)` of a row.
    #[inline(always)]
    fn score(&self, rn: f32, sr: f32, d: f32) -> (f32, f32) {
        const EPS: f32 = f32::EPSILON;
        let dot = (self.sq * sr) * d;
        let dr = quant::HALF_STEP * sr;
        let rn_up = rn * (1.0 + 2.0 * self.rel);
        let rt = rn_up + self.sd * dr;
        let qt = self.qn + self.sd * self.dq;
        let e_dot = dr * self.l1 + self.dq * self.sd * rt + 8.0 * EPS * qt * rt + 1e-30;
        match self.metric {
            Metric::DotProduct => (-dot, e_dot * SAFETY),
            Metric::Cosine => {
                let inv = inv_norm(rn);
                let err = e_dot * inv * (1.0 + 2.0 * self.rel) + 2.0 * self.rel + 8.0 * EPS;
                (1.0 - dot * inv, err * SAFETY)
            }
            Metric::Euclidean => {
                let rn2 = rn_up * rn_up;
                let d2 = self.qn2 + rn * rn - 2.0 * dot;
                let e2 = 2.0 * e_dot
                    + EPS * self.qn2
                    + 3.0 * self.rel * rn2
                    + 4.0 * EPS * (self.qn2 + rn2 + 2.0 * dot.abs())
                    + 1e-30;
                let dist = d2.max(0.0).sqrt();
                let err = if dist > 0.0 {
                    e2.sqrt().min(e2 / dist)
                } else {
                    e2.sqrt()
                };
                (dist, (err + 2.0 * EPS * dist) * SAFETY)
            }
        }
    }
}

/// A per-row error bound: `constant + per_norm · ‖row‖ + per_score · |score|`.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    constant: f32,
    per_norm: f32,
    per_score: f32,
}

impl Bounds {
    #[inline(always)]
    fn error(&self, norm: f32, score: f32) -> f32 {
        // Clamped so an overflowed norm gives an infinite bound, never 0 · ∞ = NaN.
        self.constant
            + self.per_norm * norm.clamp(NORM_FLOOR, f32::MAX)
            + self.per_score * score.abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_smallest_skips_non_finite() {
        let mut v = k_smallest([3.0, f32::NAN, 1.0, 2.0, f32::INFINITY, 0.5].into_iter(), 2);
        v.sort_by(f32::total_cmp);
        assert_eq!(v, vec![0.5, 1.0]);
        assert_eq!(k_smallest([f32::NAN].into_iter(), 3), Vec::<f32>::new());
    }

    /// The int8 pass's error bounds hold on every metric, for rows with outliers, tiny and huge
    /// norms, near-copies of the query and the query itself.
    #[test]
    fn int8_bounds_hold() {
        let dim = 96;
        let vals = |seed: u64| kernel::test_values(dim, seed);
        let q = vals(1);
        let mut rows: Vec<Vec<f32>> = (2..300).map(vals).collect();
        rows[0] = q.clone();
        rows[1] = q.iter().map(|v| v + 1e-4).collect();
        rows[2][3] = 50.0;
        rows[3].iter_mut().for_each(|v| *v *= 1e-12);
        rows[4].iter_mut().for_each(|v| *v *= 1e12);
        rows[5] = q.iter().map(|v| -v).collect();
        for metric in Metric::ALL {
            let qn = kernel::norm64(&q);
            let scan: Vec<f32> = if metric == Metric::Cosine {
                q.iter().map(|x| (f64::from(*x) / qn) as f32).collect()
            } else {
                q.clone()
            };
            let codes = QueryCodes::new(&scan);
            let b = Int8Bound::new(metric, &codes, &scan, dim);
            for (i, row) in rows.iter().enumerate() {
                let mut rc = vec![0u8; quant::code_stride(dim)];
                quant::quantize_row(row, &mut rc);
                let d: i32 = codes.codes[..dim]
                    .iter()
                    .zip(&rc[..dim])
                    .map(|(a, c)| i32::from(*a as i8) * i32::from(*c as i8))
                    .sum();
                let rn = kernel::row_norm(row);
                let (score, err) = b.score(rn, quant::scale_of(&rc, dim), d as f32);
                let exact = metric.reference_distance(&q, row);
                assert!(
                    (f64::from(score) - exact).abs() <= f64::from(err),
                    "{metric} row {i}: {score} vs {exact} (bound {err})"
                );
                // Not vacuous: the bound is tight enough to prune.
                if i > 5 && metric == Metric::Cosine {
                    assert!(err < 0.05, "{metric} row {i}: bound {err}");
                }
            }
        }
    }

    /// The portable kernels (used where AVX2 is missing) give exactly the same answers.
    #[test]
    fn portable_kernels_give_the_same_results() {
        use simile_index::Embeddings;
        use std::sync::atomic::Ordering;
        let (n, dim) = (3000, 70);
        let mut s = 7u64;
        let data: Vec<f32> = (0..n * dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        let keys: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
        let batch = Embeddings::for_samples(dim, data, keys).unwrap();
        let mut store = Store::default();
        store.upsert(&batch).unwrap();
        let view: Vec<u32> = (0..n as u32).step_by(3).collect();
        for metric in Metric::ALL {
            for (qi, k, reverse, restricted) in [
                (5, Some(10), false, false),
                (17, Some(40), true, true),
                (99, None, false, true),
            ] {
                let q = batch.row(qi);
                let restrict = restricted.then_some(view.as_slice());
                let fast = knn(&store, metric, q, k, reverse, restrict);
                FORCE_PORTABLE_LOCK.with(|| {
                    kernel::FORCE_PORTABLE.store(true, Ordering::Relaxed);
                    let slow = knn(&store, metric, q, k, reverse, restrict);
                    kernel::FORCE_PORTABLE.store(false, Ordering::Relaxed);
                    assert_eq!(fast, slow, "{metric} k={k:?}");
                });
                assert_eq!(
                    fast.len(),
                    k.unwrap_or(if restricted { view.len() } else { n })
                );
            }
        }
    }

    /// Survivors read from the file (`gather`) give the same answers as through the map.
    #[test]
    fn gathered_rows_give_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (n, dim) = (2000, 40);
        let data: Vec<f32> = (0..n * dim)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / (1 << 24) as f32 - 0.5)
            .collect();
        let keys: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
        let batch = simile_index::Embeddings::for_samples(dim, data, keys).unwrap();
        let mut owned = Store::default();
        owned.upsert(&batch).unwrap();
        for metric in Metric::ALL {
            crate::storage::write(dir.path(), metric, &owned).unwrap();
            let (_, mapped) = crate::storage::read(dir.path()).unwrap();
            let rows: Vec<u32> = vec![3, 70, 1999];
            let (g, norms) = gather(&mapped, &rows).expect("a mapped store gathers");
            assert_eq!(&g[dim..2 * dim], owned.row(70));
            assert_eq!(norms[2].to_bits(), owned.norms[1999].to_bits());
            let unmapped = Store {
                file: None,
                ..crate::storage::read(dir.path()).unwrap().1
            };
            assert!(gather(&unmapped, &rows).is_none());
            // `select` reads a few rows of a mapped file the same way.
            for few in [vec![1999, 3], (0..100).collect::<Vec<_>>()] {
                let want = owned.select(&few).unwrap();
                for store in [&mapped, &unmapped] {
                    let got = store.select(&few).unwrap();
                    assert_eq!(got.data(), want.data());
                    assert_eq!(got.keys(), want.keys());
                }
            }
            for qi in [0, 17, 1234] {
                let q = batch.row(qi);
                for (k, restrict) in [(10, None), (300, Some(&rows[..]))] {
                    let want = knn(&owned, metric, q, Some(k), false, restrict);
                    assert_eq!(knn(&mapped, metric, q, Some(k), false, restrict), want);
                    assert_eq!(knn(&unmapped, metric, q, Some(k), false, restrict), want);
                }
            }
        }
    }

    /// Serialises the tests that flip [`kernel::FORCE_PORTABLE`].
    struct ForceLock(std::sync::Mutex<()>);
    impl ForceLock {
        fn with(&self, f: impl FnOnce()) {
            let _guard = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f();
        }
    }
    static FORCE_PORTABLE_LOCK: ForceLock = ForceLock(std::sync::Mutex::new(()));

    #[test]
    fn par_chunks_covers_everything_once() {
        let mut v = vec![0usize; 1001];
        let parts = par_chunks(&mut v, 3, |start, out| {
            for (i, x) in out.iter_mut().enumerate() {
                *x = start + i;
            }
            out.len()
        });
        assert_eq!(parts.iter().sum::<usize>(), 1001);
        assert!(v.iter().enumerate().all(|(i, x)| i == *x));
    }
}
