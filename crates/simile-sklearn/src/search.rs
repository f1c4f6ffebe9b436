//! Exact brute-force k-NN over a [`Store`].
//!
//! Two passes: a fast `f32` scan (vectorised, split across threads) gives an approximate distance
//! for every candidate row; a bounded heap finds the k-th best of those; every row within a proven
//! error margin of it is then re-scored exactly in `f64` (the same formulas as
//! [`Metric::reference_distance`]) and the survivors are ordered with [`sort_neighbors`]. The
//! result is therefore exactly what the naive reference would return (ranked by the reported
//! `f32` distance, ties by key), at the speed of the `f32` scan.

use std::collections::BinaryHeap;
use std::thread;

use simile_index::{sort_neighbors, Metric, Neighbor};

use crate::kernel::{self, Rows};
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
    thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_THREADS)
}

/// Candidate rows: the whole index, or a sorted, deduplicated subset.
enum Candidates {
    All(usize),
    Subset(Vec<u32>),
}

impl Candidates {
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

/// The `k` smallest finite values of `keys` (unordered).
fn k_smallest(keys: &[f32], k: usize) -> Vec<f32> {
    let mut heap: BinaryHeap<Ord32> = BinaryHeap::with_capacity(k + 1);
    for &v in keys {
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
fn par_chunks<T: Send, R: Send>(out: &mut [T], threads: usize, f: impl Fn(usize, &mut [T]) -> R + Sync) -> Vec<R> {
    if threads <= 1 || out.len() < 2 {
        return vec![f(0, out)];
    }
    let chunk = out.len().div_ceil(threads);
    thread::scope(|s| {
        let f = &f;
        let mut parts = out.chunks_mut(chunk).enumerate();
        // The first part runs on the calling thread.
        let first = parts.next();
        let handles: Vec<_> = parts.map(|(i, part)| s.spawn(move || f(i * chunk, part))).collect();
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

/// The k-NN of `q` (already validated: finite, `store.dim` long). `restrict` keys absent from the
/// index are ignored.
pub(crate) fn knn(
    store: &Store,
    metric: Metric,
    q: &[f32],
    k: Option<usize>,
    reverse: bool,
    restrict: Option<&[String]>,
) -> Vec<Neighbor> {
    let dim = store.dim.unwrap_or(q.len());
    if k == Some(0) || store.keys.is_empty() || dim == 0 {
        return Vec::new();
    }
    let cands = match restrict {
        None => Candidates::All(store.keys.len()),
        Some(keys) => {
            let mut rows: Vec<u32> = keys.iter().filter_map(|k| store.rows.get(k).map(|&r| r as u32)).collect();
            rows.sort_unstable();
            rows.dedup();
            Candidates::Subset(rows)
        }
    };
    let m = cands.len();
    if m == 0 {
        return Vec::new();
    }
    let qn = kernel::norm64(q);
    let threads = threads_for(m.saturating_mul(dim));

    let mut hits = match k {
        Some(k) if k < m => top_k(store, metric, q, qn, &cands, k, reverse, threads),
        _ => exact_all(store, metric, q, qn, &cands, threads),
    };
    sort_neighbors(&mut hits, reverse);
    if let Some(k) = k {
        hits.truncate(k);
    }
    hits
}

fn neighbor(store: &Store, row: usize, distance: f64) -> Neighbor {
    Neighbor {
        key: store.keys[row].clone(),
        sample_id: store.sample_ids[row].clone(),
        distance: distance as f32,
    }
}

/// Every candidate, scored exactly.
fn exact_all(store: &Store, metric: Metric, q: &[f32], qn: f64, cands: &Candidates, threads: usize) -> Vec<Neighbor> {
    let dim = q.len();
    let mut dists = vec![0f64; cands.len()];
    par_chunks(&mut dists, threads, |start, out| {
        for (i, d) in out.iter_mut().enumerate() {
            let r = cands.row(start + i);
            *d = kernel::exact_distance(metric, q, qn, &store.data[r * dim..(r + 1) * dim], store.norms[r]);
        }
    });
    dists
        .iter()
        .enumerate()
        .map(|(pos, &d)| neighbor(store, cands.row(pos), d))
        .collect()
}

/// The best `k < m` candidates: fast scan, threshold, exact re-scoring of the margin.
#[allow(clippy::too_many_arguments)]
fn top_k(
    store: &Store,
    metric: Metric,
    q: &[f32],
    qn: f64,
    cands: &Candidates,
    k: usize,
    reverse: bool,
    threads: usize,
) -> Vec<Neighbor> {
    let dim = q.len();
    let m = cands.len();
    let rel = kernel::rel_error(dim);
    let l2 = metric == Metric::Euclidean;
    let inv_qn = if qn > 0.0 { (1.0 / qn) as f32 } else { 0.0 };
    let sign = if reverse { -1.0f32 } else { 1.0 };

    // Pass 1: selection keys (approximate distance, negated when reverse), and each part's k best.
    let mut keys = vec![0f32; m];
    let bests = par_chunks(&mut keys, threads, |start, out| {
        kernel::scan(&store.data, dim, cands.rows(start, out.len()), q, l2, out);
        for (i, v) in out.iter_mut().enumerate() {
            let d = match metric {
                Metric::Euclidean => *v,
                Metric::DotProduct => -*v,
                Metric::Cosine => {
                    let rn = store.norms[cands.row(start + i)];
                    let inv_rn = if rn > 0.0 { (1.0 / rn) as f32 } else { 0.0 };
                    1.0 - *v * inv_qn * inv_rn
                }
            };
            *v = sign * d;
        }
        k_smallest(out, k)
    });
    let mut best: Vec<f32> = bests.into_iter().flatten().collect();
    // The k-th best key; with fewer than k finite keys every row stays a candidate.
    let threshold = if best.len() >= k {
        best.select_nth_unstable_by(k - 1, f32::total_cmp);
        best[k - 1]
    } else {
        f32::INFINITY
    };

    // The error margin: a row whose key exceeds threshold + margin is provably worse than k rows,
    // even after rounding the exact distances to f32.
    let margin = match metric {
        Metric::Cosine => 4.0 * rel + 1e-6,
        Metric::DotProduct => (4.0 * f64::from(rel) * qn * store.max_norm) as f32 + 1e-30,
        Metric::Euclidean => 4.0 * rel * threshold.abs() + 1e-30,
    };
    let limit = threshold + margin;

    // Pass 2: exact re-scoring of the survivors (non-finite keys always survive).
    let mut hits = Vec::with_capacity(k + 16);
    for (pos, &v) in keys.iter().enumerate() {
        if v <= limit || !v.is_finite() {
            let r = cands.row(pos);
            let d = kernel::exact_distance(metric, q, qn, &store.data[r * dim..(r + 1) * dim], store.norms[r]);
            hits.push(neighbor(store, r, d));
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_smallest_skips_non_finite() {
        let mut v = k_smallest(&[3.0, f32::NAN, 1.0, 2.0, f32::INFINITY, 0.5], 2);
        v.sort_by(f32::total_cmp);
        assert_eq!(v, vec![0.5, 1.0]);
        assert_eq!(k_smallest(&[f32::NAN], 3), Vec::<f32>::new());
    }

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
