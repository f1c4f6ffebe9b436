//! Near-duplicates at millions of rows: candidates from cells, every reported pair exact.
//!
//! An exact greedy pass compares every row with every earlier kept row: ~n²/2 products, a few
//! hours at 10⁶ × 512. Here the rows are split into about √n cells by k-means (trained on a
//! strided sample, then every row assigned to its nearest centre in one blocked GEMM pass), and
//! the exact greedy rule ([`crate::greedy`]) runs inside each cell, in walk order: a row is
//! kept unless an earlier kept row *of its cell* is within the threshold. In high dimensions a
//! row is often almost as near its second centre as its first, so a near pair can be split
//! across two cells; a repair pass then checks every kept row against the kept rows of its
//! second cell: one that is within the threshold of an earlier kept row there becomes its
//! duplicate (and the rows it had claimed are re-mapped to their nearest kept row of their cell,
//! or kept). The answer is close to the exact one but not equal (a pair split across cells
//! that are neither's first or second is missed, and cascades stop after one step). So it is
//! never silent: every reported pair carries its exact distance (no reported pair is beyond the
//! threshold), and [`Recall`] measures, on a sample of rows compared with *every* row exactly,
//! the share of their near pairs that the cells could see.
use ndarray::{s, Array2, ArrayView2, Axis};
use simile_index::Metric;

use crate::greedy::{keep, Rows};
use crate::matmul::{cores, dot_t_into};
use crate::nearest_kept::nearest_kept;

/// Training rows per cell for k-means.
const TRAIN_PER_CELL: usize = 32;
/// Lloyd iterations.
const ITERS: usize = 8;
/// Rows per block of the assignment and recall passes.
const BLOCK: usize = 4096;
/// Rows whose near pairs are counted exactly for the recall estimate.
const RECALL_ROWS: usize = 1000;

/// How much of the exact answer the cells can see, measured on a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recall {
    /// Rows compared with every row exactly.
    pub sampled_rows: usize,
    /// Pairs (sampled row, any other row) within the threshold.
    pub near_pairs: usize,
    /// Of those, the pairs the search could see: both rows in one cell, or one row's second
    /// cell is the other's cell.
    pub same_cell: usize,
}

impl Recall {
    /// `same_cell / near_pairs`; `None` when the sample had no near pair.
    pub fn ratio(&self) -> Option<f64> {
        (self.near_pairs > 0).then(|| self.same_cell as f64 / self.near_pairs as f64)
    }
}

/// The clustered greedy answer.
pub(crate) struct Clustered {
    pub(crate) kept: Vec<bool>,
    /// `(duplicate, its nearest kept row in its cell, exact distance)`.
    pub(crate) pairs: Vec<(usize, usize, f64)>,
    pub(crate) cells: usize,
    pub(crate) recall: Recall,
}

/// Cells for `n` rows: about √n.
pub(crate) fn default_cells(n: usize) -> usize {
    ((n as f64).sqrt().round() as usize).clamp(1, 4096)
}

/// The greedy rule inside cells (see the module docs).
pub(crate) fn greedy(
    emb: ArrayView2<'_, f32>,
    metric: Metric,
    thresh: f64,
    cells: usize,
) -> Clustered {
    let n = emb.nrows();
    let cells = cells.clamp(1, n.max(1));
    let centres = train(emb, metric, cells);
    let (cell, second) = assign(emb, metric, &centres);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); centres.nrows()];
    for (i, &c) in cell.iter().enumerate() {
        members[c as usize].push(i);
    }
    let mut kept = vec![true; n];
    let mut pairs = Vec::new();
    // Cells are independent: one worker per core, each multiplying on its own thread.
    let results = on_workers(&members, |rows_of| {
        if rows_of.len() < 2 {
            return (vec![true; rows_of.len()], Vec::new());
        }
        let sub = emb.select(Axis(0), rows_of);
        let rows = Rows::new(sub.view(), metric);
        let flags = keep(&rows, thresh, None).unwrap_or_else(|| vec![true; rows_of.len()]);
        let found = nearest_kept(&rows, &flags, thresh);
        (flags, found)
    });
    for (rows_of, (flags, found)) in members.iter().zip(results) {
        for (local, &k) in flags.iter().enumerate() {
            kept[rows_of[local]] = k;
        }
        pairs.extend(
            found
                .into_iter()
                .map(|(d, k, e)| (rows_of[d], rows_of[k], e)),
        );
    }
    repair(
        emb, metric, thresh, &members, &second, &mut kept, &mut pairs,
    );
    pairs.sort_by_key(|p| p.0);
    let recall = recall(emb, metric, thresh, &cell, &second);
    Clustered {
        kept,
        pairs,
        cells: centres.nrows(),
        recall,
    }
}

/// `f` on every item, items dealt to one worker per core (each keeping its products on its own
/// thread); results in item order.
fn on_workers<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let workers = cores().min(items.len()).max(1);
    if workers == 1 {
        return items.iter().map(&f).collect();
    }
    let f = &f;
    let mut parts: Vec<Vec<(usize, T)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    crate::matmul::single_threaded(|| {
                        (w..items.len())
                            .step_by(workers)
                            .map(|i| (i, f(&items[i])))
                            .collect::<Vec<_>>()
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out: Vec<Option<T>> = (0..items.len()).map(|_| None).collect();
    for part in parts.drain(..) {
        for (i, t) in part {
            out[i] = Some(t);
        }
    }
    out.into_iter().flatten().collect()
}

/// Rows in the form they are clustered in: unit rows for cosine, as they are otherwise.
fn form(emb: ArrayView2<'_, f32>, metric: Metric) -> Array2<f32> {
    form_owned(emb.to_owned(), metric)
}

/// [`form`] in place.
fn form_owned(mut m: Array2<f32>, metric: Metric) -> Array2<f32> {
    if metric == Metric::Cosine {
        for mut r in m.rows_mut() {
            let norm = r.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            if norm > 0.0 {
                r.mapv_inplace(|x| (f64::from(x) / norm) as f32);
            }
        }
    }
    m
}

/// k-means centres from a strided sample (deterministic).
fn train(emb: ArrayView2<'_, f32>, metric: Metric, cells: usize) -> Array2<f32> {
    let n = emb.nrows();
    let take = (cells * TRAIN_PER_CELL).min(n);
    let idx: Vec<usize> = (0..take).map(|k| k * n / take.max(1)).collect();
    let sample = form_owned(emb.select(Axis(0), &idx), metric);
    // Initial centres: spread over the sample.
    let init: Vec<usize> = (0..cells).map(|k| k * take / cells).collect();
    let mut centres = sample.select(Axis(0), &init);
    let dim = emb.ncols();
    for _ in 0..ITERS {
        // By blocks: the products of the whole sample (32 rows per cell × cells) would hold
        // 128 MB at 1M rows.
        let assigned: Vec<(u32, u32)> = (0..take)
            .step_by(BLOCK)
            .flat_map(|b0| {
                let block = sample.slice(s![b0..(b0 + BLOCK).min(take), ..]);
                assign_formed(block, metric, &centres)
            })
            .collect();
        let mut sums = vec![0f64; cells * dim];
        let mut counts = vec![0usize; cells];
        for (r, &c) in sample.rows().into_iter().zip(&assigned) {
            let c = c.0 as usize;
            counts[c] += 1;
            for (s, x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(r.iter()) {
                *s += f64::from(*x);
            }
        }
        for (c, mut centre) in centres.rows_mut().into_iter().enumerate() {
            if counts[c] == 0 {
                continue; // an empty cell keeps its centre
            }
            let mean = &sums[c * dim..(c + 1) * dim];
            for (x, s) in centre.iter_mut().zip(mean) {
                *x = (s / counts[c] as f64) as f32;
            }
        }
        if metric == Metric::Cosine {
            centres = form(centres.view(), metric);
        }
    }
    centres
}

/// Each row's nearest and second-nearest centre (the same when there is one cell).
fn assign(emb: ArrayView2<'_, f32>, metric: Metric, centres: &Array2<f32>) -> (Vec<u32>, Vec<u32>) {
    let (mut first, mut second) = (
        Vec::with_capacity(emb.nrows()),
        Vec::with_capacity(emb.nrows()),
    );
    for b0 in (0..emb.nrows()).step_by(BLOCK) {
        let b1 = (b0 + BLOCK).min(emb.nrows());
        let block = form(emb.slice(s![b0..b1, ..]), metric);
        for (a, b) in assign_formed(block.view(), metric, centres) {
            first.push(a);
            second.push(b);
        }
    }
    (first, second)
}

/// Nearest two centres of rows already in clustering form: the largest `x·c − ‖c‖²/2` (for
/// unit rows and centres, the largest `x·c`); ties to the lower cell.
fn assign_formed(
    rows: ArrayView2<'_, f32>,
    metric: Metric,
    centres: &Array2<f32>,
) -> Vec<(u32, u32)> {
    let half: Vec<f32> = match metric {
        Metric::Cosine => vec![0.0; centres.nrows()],
        _ => centres
            .rows()
            .into_iter()
            .map(|c| c.dot(&c) / 2.0)
            .collect(),
    };
    let mut dots = Vec::new();
    dot_t_into(rows, centres.view(), cores(), &mut dots);
    let width = centres.nrows().max(1);
    dots.chunks_exact(width)
        .map(|d| {
            let mut best = (0u32, f32::NEG_INFINITY);
            let mut next = (0u32, f32::NEG_INFINITY);
            for (c, (s, h)) in d.iter().zip(&half).enumerate() {
                let v = s - h;
                if v > best.1 {
                    next = best;
                    best = (c as u32, v);
                } else if v > next.1 {
                    next = (c as u32, v);
                }
            }
            if next.1 == f32::NEG_INFINITY {
                next = best;
            }
            (best.0, next.0)
        })
        .collect()
}

/// The repair pass (see the module docs).
fn repair(
    emb: ArrayView2<'_, f32>,
    metric: Metric,
    thresh: f64,
    members: &[Vec<usize>],
    second: &[u32],
    kept: &mut [bool],
    pairs: &mut Vec<(usize, usize, f64)>,
) {
    let cells = members.len();
    // Kept rows by their second cell, and each cell's kept rows (before the repair).
    let mut guests: Vec<Vec<usize>> = vec![Vec::new(); cells];
    let mut hosts: Vec<Vec<usize>> = vec![Vec::new(); cells];
    for (c, m) in members.iter().enumerate() {
        for &i in m.iter().filter(|&&i| kept[i]) {
            hosts[c].push(i);
            if second[i] as usize != c {
                guests[second[i] as usize].push(i);
            }
        }
    }
    // Demoted row → (its nearest kept row there, exact distance); cells on every core.
    let all: Vec<usize> = (0..cells).collect();
    let demoted: Vec<(usize, usize, f64)> = on_workers(&all, |&c| {
        let (g, h) = (&guests[c], &hosts[c]);
        let mut out = Vec::new();
        if g.is_empty() || h.is_empty() {
            return out;
        }
        let both: Vec<usize> = g.iter().chain(h).copied().collect();
        let sub = emb.select(Axis(0), &both);
        let rows = Rows::new(sub.view(), metric);
        let dots = crate::matmul::dot_t(
            rows.rows.slice(s![..g.len(), ..]),
            rows.rows.slice(s![g.len().., ..]),
        );
        let keys: Vec<f32> = (0..h.len()).map(|hj| rows.key(g.len() + hj)).collect();
        for (gi, srow) in dots.rows().into_iter().enumerate() {
            let (i, cut) = (g[gi], rows.cutoff(gi, thresh));
            let mut earlier = false;
            let mut best: Option<(usize, f64)> = None;
            for (hj, (&s, &k)) in srow.iter().zip(&keys).enumerate() {
                let local = g.len() + hj;
                if s - k < cut || !rows.within(gi, local, s, thresh) {
                    continue;
                }
                let j = h[hj];
                earlier |= j < i;
                let e = rows.exact(gi, local);
                if best.is_none_or(|(bj, be)| e < be || (e == be && j < bj)) {
                    best = Some((j, e));
                }
            }
            if let (true, Some((j, e))) = (earlier, best) {
                out.push((i, j, e));
            }
        }
        out
    })
    .into_iter()
    .flatten()
    .collect();
    if demoted.is_empty() {
        return;
    }
    let mut cell_of = vec![0usize; kept.len()];
    for (c, m) in members.iter().enumerate() {
        for &i in m {
            cell_of[i] = c;
        }
    }
    for &(i, _, _) in &demoted {
        kept[i] = false;
    }
    // Rows that had been mapped to a demoted row: their nearest kept row of their cell within
    // the threshold, else they are kept.
    let is_demoted: std::collections::HashSet<usize> = demoted.iter().map(|d| d.0).collect();
    let mut orphans: Vec<usize> = Vec::new();
    pairs.retain(|&(d, k, _)| {
        let lost = is_demoted.contains(&k);
        if lost {
            orphans.push(d);
        }
        !lost
    });
    for d in orphans {
        let candidates: Vec<usize> = members[cell_of[d]]
            .iter()
            .copied()
            .filter(|&j| kept[j])
            .collect();
        let mut best: Option<(usize, f64)> = None;
        for j in candidates {
            let e = exact(emb, metric, d, j);
            if e <= thresh && best.is_none_or(|(bj, be)| e < be || (e == be && j < bj)) {
                best = Some((j, e));
            }
        }
        match best {
            Some((j, e)) => pairs.push((d, j, e)),
            None => kept[d] = true,
        }
    }
    pairs.extend(demoted);
}

/// The exact distance of rows `i` and `j`.
fn exact(emb: ArrayView2<'_, f32>, metric: Metric, i: usize, j: usize) -> f64 {
    let (a, b) = (emb.row(i), emb.row(j));
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) => metric.reference_distance(a, b),
        _ => metric.reference_distance(&a.to_vec(), &b.to_vec()),
    }
}

/// For a strided sample of rows, every other row within `thresh` (exact distance), and how many
/// of those pairs share a cell.
fn recall(
    emb: ArrayView2<'_, f32>,
    metric: Metric,
    thresh: f64,
    cell: &[u32],
    second: &[u32],
) -> Recall {
    let n = emb.nrows();
    let take = RECALL_ROWS.min(n);
    let idx: Vec<usize> = (0..take)
        .map(|k| k * n / take.max(1) + (n / take.max(1)) / 2)
        .collect();
    let idx: Vec<usize> = idx.into_iter().filter(|&i| i < n).collect();
    let sample = form_owned(emb.select(Axis(0), &idx), metric);
    let sq_s: Vec<f32> = sample.rows().into_iter().map(|r| r.dot(&r)).collect();
    let mut out = Recall {
        sampled_rows: idx.len(),
        near_pairs: 0,
        same_cell: 0,
    };
    // A generous screen, far above the f32 error (rows and their squared norms are bounded by
    // the largest), then the exact distance: `s − sq_b/2 ≥ cut_r` (euclidean) or `s ≥ cut_r`.
    let max_sq = (0..n)
        .step_by(1)
        .map(|i| {
            emb.row(i)
                .iter()
                .map(|x| f64::from(*x).powi(2))
                .sum::<f64>()
        })
        .fold(0.0, f64::max);
    let max_sq = if metric == Metric::Cosine {
        1.0
    } else {
        max_sq
    };
    let screen = 1e-3 * (2.0 * max_sq + 1.0);
    let cuts: Vec<f32> = sq_s
        .iter()
        .map(|&sq| match metric {
            Metric::Cosine => (1.0 - thresh - screen) as f32,
            Metric::DotProduct => (-thresh - screen) as f32,
            Metric::Euclidean => {
                let t = thresh.max(0.0) + screen.sqrt();
                ((f64::from(sq) - t * t) / 2.0 - screen) as f32
            }
        })
        .collect();
    let mut dots = Vec::new();
    for b0 in (0..n).step_by(BLOCK) {
        let b1 = (b0 + BLOCK).min(n);
        let block = form(emb.slice(s![b0..b1, ..]), metric);
        let half: Vec<f32> = match metric {
            Metric::Euclidean => block.rows().into_iter().map(|r| r.dot(&r) / 2.0).collect(),
            _ => vec![0.0; b1 - b0],
        };
        dot_t_into(sample.view(), block.view(), cores(), &mut dots);
        for (r, srow) in dots.chunks_exact(b1 - b0).enumerate() {
            let (i, cut) = (idx[r], cuts[r]);
            for (c0, (sb, hb)) in srow.chunks(64).zip(half.chunks(64)).enumerate() {
                let mut hit = false;
                for (s, h) in sb.iter().zip(hb) {
                    hit |= s - h >= cut;
                }
                if !hit {
                    continue;
                }
                for (o, (s, h)) in sb.iter().zip(hb).enumerate() {
                    let j = b0 + c0 * 64 + o;
                    if j == i || s - h < cut || exact(emb, metric, i, j) > thresh {
                        continue;
                    }
                    out.near_pairs += 1;
                    let seen = cell[i] == cell[j] || second[i] == cell[j] || second[j] == cell[i];
                    out.same_cell += usize::from(seen);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Clustered data with planted near-duplicates: (rows, planted (dup, original) pairs).
    fn data(n: usize, d: usize, noise: f32) -> (Array2<f32>, Vec<(usize, usize)>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut emb = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
        let mut planted = Vec::new();
        for dst in (n / 2..n).step_by(10) {
            let src = rng.random_range(0..n / 2);
            let row = emb.row(src).to_owned();
            for (x, s) in emb.row_mut(dst).iter_mut().zip(row.iter()) {
                *x = s + noise * rng.random_range(-1.0f32..1.0);
            }
            planted.push((dst, src));
        }
        (emb, planted)
    }

    #[test]
    fn every_reported_pair_is_exact_and_within_the_threshold() {
        let (emb, planted) = data(3000, 64, 0.01);
        for metric in [Metric::Cosine, Metric::Euclidean] {
            let t = match metric {
                Metric::Cosine => 0.05,
                _ => 1.0,
            };
            let got = greedy(emb.view(), metric, t, 16);
            assert_eq!(got.cells, 16);
            for &(d, k, e) in &got.pairs {
                assert!(!got.kept[d] && got.kept[k], "{metric:?}: duplicate → kept");
                let want = metric.reference_distance(&emb.row(d).to_vec(), &emb.row(k).to_vec());
                assert_eq!(e, want, "{metric:?}: exact distance");
                assert!(e <= t, "{metric:?}: within the threshold");
            }
            let dups = got.kept.iter().filter(|k| !**k).count();
            assert_eq!(dups, got.pairs.len(), "{metric:?}: one pair per duplicate");
            let found = planted.iter().filter(|(d, _)| !got.kept[*d]).count();
            assert!(
                found * 100 >= planted.len() * 95,
                "{metric:?}: {found} of {}",
                planted.len()
            );
            // The near pairs here are the planted ones: the cells see most, and the sample says so.
            let r = got.recall;
            assert_eq!(r.sampled_rows, 1000);
            assert!(
                r.near_pairs > 0 && r.same_cell <= r.near_pairs,
                "{metric:?}: {r:?}"
            );
            assert!(r.ratio().is_some_and(|x| x >= 0.9), "{metric:?}: {r:?}");
        }
    }

    #[test]
    fn the_repair_finds_pairs_split_across_cells() {
        let (emb, planted) = data(4000, 256, 0.2);
        let metric = Metric::Cosine;
        let got = greedy(emb.view(), metric, 0.05, 64);
        let centres = train(emb.view(), metric, 64);
        let (cell, second) = assign(emb.view(), metric, &centres);
        let split: Vec<_> = planted
            .iter()
            .filter(|(d, s)| cell[*d] != cell[*s])
            .collect();
        assert!(
            !split.is_empty(),
            "random rows: some planted pairs are split"
        );
        let repaired = split
            .iter()
            .filter(|(d, s)| second[*d] == cell[*s] && !got.kept[*d])
            .count();
        assert!(repaired > 0, "split pairs found through the second cell");
        let found = planted.iter().filter(|(d, _)| !got.kept[*d]).count();
        assert!(
            found * 100 >= planted.len() * 97,
            "{found} of {}",
            planted.len()
        );
        // Every duplicate maps to a kept row, within the threshold, at its exact distance.
        assert_eq!(got.pairs.len(), got.kept.iter().filter(|k| !**k).count());
        for &(d, k, e) in &got.pairs {
            assert!(!got.kept[d] && got.kept[k] && e <= 0.05);
            assert_eq!(e, exact(emb.view(), metric, d, k));
        }
    }

    #[test]
    fn one_cell_is_the_exact_answer() {
        let (emb, _) = data(1500, 32, 0.01);
        let got = greedy(emb.view(), Metric::Cosine, 0.05, 1);
        let rows = Rows::new(emb.view(), Metric::Cosine);
        let exact = keep(&rows, 0.05, None).expect("no limit");
        assert_eq!(got.kept, exact);
        assert_eq!(got.pairs, nearest_kept(&rows, &exact, 0.05));
        assert_eq!(got.recall.same_cell, got.recall.near_pairs);
        assert_eq!(got.recall.ratio(), Some(1.0));
    }
}
