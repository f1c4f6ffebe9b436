//! Exact brute-force k-NN over a [`Store`].
//!
//! Up to three passes (the `kernel` module's notes give the error bounds): a bfloat16 scan
//! (vectorised, split across threads) gives every candidate row an approximate distance with a
//! proven error bound; a bounded heap finds the k-th best worst case, and every row that could
//! still beat it survives. When many survive (near-duplicates), an `f32` scan of the survivors
//! narrows them the same way. The last survivors are re-scored exactly in `f64` (the same
//! formulas as [`Metric::reference_distance`]) and ordered with [`sort_neighbors`]. The result is
//! therefore exactly what the naive reference would return (ranked by the reported `f32`
//! distance, ties by key), at the speed of the half-precision scan.

use std::collections::BinaryHeap;
use std::thread;

use simile_index::{sort_neighbors, Metric, Neighbor};

use crate::kernel::{self, Rows, Stored};
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
        metric,
        q,
        qn: kernel::norm64(q),
        sign: if reverse { -1.0 } else { 1.0 },
    };

    let mut scored = match k {
        Some(k) if k < m => {
            // Stage 1: bfloat16 scan of every candidate. Stage 2 (when stage 1 left many): `f32`
            // re-scan of the survivors. Stage 3: exact `f64` scores of the final survivors.
            let mut rows = search.prune(&cands, k, Precision::Bf16);
            if rows.len() > k && rows.len() > STAGE2_MIN {
                rows = search.prune(&Candidates::Subset(&rows), k, Precision::F32);
            }
            search.exact(&Candidates::Subset(&rows))
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
    Bf16,
    F32,
}

struct Search<'a> {
    store: &'a Store,
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

    /// Exact distances (rounded to `f32`, as reported) of every candidate, with its row; eight
    /// rows at a time, threaded for big sets.
    fn exact(&self, cands: &Candidates<'_>) -> Vec<(f32, u32)> {
        let store = self.store;
        let dim = self.dim();
        let row = |r: usize| &store.data[r * dim..(r + 1) * dim];
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
        let bound = self.bounds(precision);
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

        let mut scores = vec![0f32; m];
        let bests = par_chunks(&mut scores, threads, |start, out| {
            let rows = cands.rows(start, out.len());
            match precision {
                Precision::Bf16 => kernel::scan(Stored::Bf16(&store.lo), dim, rows, q, l2, out),
                Precision::F32 => kernel::scan(Stored::F32(&store.data), dim, rows, q, l2, out),
            }
            for (i, v) in out.iter_mut().enumerate() {
                let d = match self.metric {
                    Metric::Euclidean => v.max(0.0).sqrt(),
                    Metric::DotProduct => -*v,
                    Metric::Cosine => {
                        let rn = store.norms[cands.row(start + i)];
                        // Norms that underflowed or overflowed in f32: such rows always go to the
                        // exact stage (NaN survives every pass).
                        let inv_rn = if (NORM_FLOOR..f32::INFINITY).contains(&rn) {
                            1.0 / rn
                        } else {
                            f32::NAN
                        };
                        1.0 - *v * inv_rn
                    }
                };
                *v = sign * d;
            }
            // The k smallest worst-case scores of this part.
            k_smallest(
                out.iter()
                    .enumerate()
                    .map(|(i, &s)| s + bound.error(store.norms[cands.row(start + i)], s)),
                k,
            )
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
        let survivors: Vec<u32> = scores
            .iter()
            .enumerate()
            .filter(|(pos, &s)| {
                // Dropped only when provably worse; anything non-finite (overflow, NaN) survives.
                let provably_worse =
                    s.is_finite() && s - bound.error(store.norms[cands.row(*pos)], s) > limit;
                !provably_worse
            })
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

    /// The error bounds of one pass.
    fn bounds(&self, precision: Precision) -> Bounds {
        let rel = kernel::rel_error(self.dim());
        // Relative error of the rows as stored for this pass, and of the f32 accumulation.
        let stored = match precision {
            Precision::Bf16 => kernel::BF16_UNIT,
            Precision::F32 => 0.0,
        };
        let product = (stored + rel * (1.0 + stored)) * SAFETY;
        // The stored f32 norms are themselves within `rel` of the truth.
        let norm = rel * SAFETY;
        // Covers values lost to underflow (subnormal products and bfloat16 roundings).
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
            // |d̃ − d| ≤ ‖r̃ − r‖ ≤ stored · ‖r‖, plus the accumulation error relative to d̃.
            Metric::Euclidean => Bounds {
                constant: tiny,
                per_norm: stored * SAFETY,
                per_score: rel * SAFETY,
            },
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
