//! The threshold behind `find_unique(count)` and `find_duplicates(fraction)`: the distance whose
//! greedy pass keeps `count` rows, found by bisection.
//!
//! Each probe of the bisection is a whole greedy pass. When the target keeps a sizeable share of
//! the rows, one all-pairs pass first records each row's `K` nearest *earlier* rows (by their f32
//! score, the same quantity [`Rows::cutoff`] bounds). A probe at threshold `t` then decides row
//! `i` from its list alone whenever the list's last score is below `cutoff(i, t)`: every unlisted
//! earlier row scores no higher, so none of them can be within `t`. Listed pairs are decided by
//! [`Rows::within`] (exact f64 distance near the threshold), so a probe answers exactly what
//! [`crate::greedy::keep`] answers. Rows whose list is not enough are checked against every
//! earlier kept row; if that happens too often the probe falls back to the chunked pass.
//!
//! Where the rows can be quantised the lists are built from int8 scores
//! ([`crate::int8_pairs`]: exact integer dot products, about 4× the f32 GEMM's rate here) and
//! the cutoff is lowered by each row's int8 error bound, so the same reasoning holds.
use std::thread;

use ndarray::s;

use crate::greedy::{keep, Rows};

/// Earlier neighbours recorded per row.
const K: usize = 48;
/// Rows per block of the all-pairs pass.
const ROW_BLOCK: usize = 512;
/// Columns per block of the all-pairs pass.
const COL_BLOCK: usize = 4096;

/// The threshold whose greedy pass keeps `target` rows (or the nearest count a threshold
/// gives), and that pass's keep flags: bisection between a distance below every pair and one
/// above every pair.
pub(crate) fn search_thresh(rows: &Rows<'_>, target: usize) -> (f64, Vec<bool>) {
    let n = rows.len();
    // A probe of the chunked pass costs about n × min(kept, target) dot products; the lists
    // cost one n²/2 pass. Build them when the probes would cost more.
    let lists = (n > 2 * K && target.saturating_mul(16) >= n).then(|| Lists::build(rows));
    let probe = |t: f64| match &lists {
        Some(l) => l.keep(rows, t, target),
        None => keep(rows, t, Some(target)),
    };
    let (mut lo, mut hi) = rows.distance_range();
    let mut best: Option<(usize, f64, Vec<bool>)> = None;
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        match probe(mid) {
            None => lo = mid, // kept more than target: the threshold is too small
            Some(kept) => {
                let count = kept.iter().filter(|k| **k).count();
                if count == target {
                    return (mid, kept);
                }
                if best
                    .as_ref()
                    .is_none_or(|(c, _, _)| target.abs_diff(count) < target.abs_diff(*c))
                {
                    best = Some((count, mid, kept));
                }
                hi = mid;
            }
        }
        if hi - lo <= 1e-9 * hi.abs().max(1.0) {
            break;
        }
    }
    match best {
        Some((_, t, kept)) => (t, kept),
        // Every probe kept more than the target: the largest threshold keeps the fewest.
        None => (hi, keep(rows, hi, None).unwrap_or_default()),
    }
}

/// Each row's best `K` earlier rows by score (`dot − key(j)`, larger is closer), best first.
struct Lists {
    /// `K` slots per row; `len[i]` of them are used.
    slots: Vec<Slot>,
    len: Vec<u16>,
    /// Whether the list holds every earlier row (nothing was left out).
    complete: Vec<bool>,
    /// Per row: how far below the f32 cutoff a listed score may lie for a pair that is within
    /// the threshold (0 for f32 scores; the int8 bound and roundings for int8 scores).
    margin: Vec<f32>,
    /// Int8 scores: the slots hold no f32 dot product; a probe computes it when it needs it.
    int8: bool,
}

/// One earlier row: its score (f32, or int8 in the int8 pass), index and f32 dot product
/// (f32 scores only).
#[derive(Clone, Copy)]
struct Slot {
    score: f32,
    row: u32,
    dot: f32,
}

/// A row's best `K` so far.
struct Best<'a> {
    slots: &'a mut [Slot],
    len: usize,
    /// The lowest score held once full (`-inf` before).
    floor: f32,
    seen: usize,
}

impl Best<'_> {
    fn offer(&mut self, slot: Slot) {
        self.seen += 1;
        if self.len < K {
            self.slots[self.len] = slot;
            self.len += 1;
            if self.len == K {
                self.floor = self.lowest();
            }
        } else if slot.score > self.floor {
            if let Some(pos) = self.slots.iter().position(|x| x.score == self.floor) {
                self.slots[pos] = slot;
            }
            self.floor = self.lowest();
        }
    }

    /// Sorts the list (highest score first, then row) and returns its length and whether it
    /// holds every row offered.
    fn finish(&mut self) -> (u16, bool) {
        self.slots[..self.len].sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        (self.len as u16, self.seen == self.len)
    }

    fn lowest(&self) -> f32 {
        self.slots
            .iter()
            .map(|x| x.score)
            .fold(f32::INFINITY, f32::min)
    }
}

impl Lists {
    /// The lists by int8 scores where the rows can be quantised ([`crate::int8_pairs`]), by
    /// f32 scores otherwise.
    fn build(rows: &Rows<'_>) -> Lists {
        match crate::int8_pairs::Codes::new(rows.rows.view(), false) {
            Some(codes) => Lists::build_int8(rows, &codes),
            None => Lists::build_f32(rows),
        }
    }

    /// Lists by int8 score `sa·sb·D − key(j)` (exact integer `D`). A probe decides a listed pair
    /// by [`Rows::within`] from its f32 dot product, computed then (most slots are never
    /// looked at). A pair within `t` has an f32 score of at least `cutoff(i, t)`, so an int8
    /// score of at least `cutoff − margin`.
    fn build_int8(rows: &Rows<'_>, codes: &crate::int8_pairs::Codes) -> Lists {
        let n = rows.len();
        let empty = Slot {
            score: f32::NEG_INFINITY,
            row: 0,
            dot: 0.0,
        };
        let mut slots = vec![empty; n * K];
        let mut len = vec![0u16; n];
        let mut complete = vec![true; n];
        let keys: Vec<f32> = (0..n).map(|j| rows.key(j)).collect();
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let (mr, mq) = (max(&codes.resid), max(&codes.normq));
        let kmax = keys.iter().fold(0f32, |m, k| m.max(k.abs()));
        let margin: Vec<f32> = (0..n)
            .map(|i| {
                let e = codes.norm[i] * mr + codes.resid[i] * mq;
                (e * (1.0 + 1e-6) + 1e-5 * (1.0 + f64::from(kmax) + mq * mq)) as f32
            })
            .collect();
        let threads = thread::available_parallelism().map_or(1, |t| t.get());
        let per = ROW_BLOCK.div_ceil(threads).max(1);
        let parts: Vec<_> = slots
            .chunks_mut(per * K)
            .zip(len.chunks_mut(per))
            .zip(complete.chunks_mut(per))
            .collect();
        let scale = &codes.scale;
        thread::scope(|scope| {
            let mut queues: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
            for (p, part) in parts.into_iter().enumerate() {
                queues[p % threads].push((p * per, part));
            }
            for queue in queues {
                let keys = &keys;
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    for (r0, ((slots, len), complete)) in queue {
                        let r1 = r0 + len.len();
                        let mut states: Vec<Best<'_>> = slots
                            .chunks_mut(K)
                            .map(|s| Best {
                                slots: s,
                                len: 0,
                                floor: f32::NEG_INFINITY,
                                seen: 0,
                            })
                            .collect();
                        let mut scores = Vec::new();
                        for c0 in (0..r1).step_by(COL_BLOCK) {
                            let c1 = (c0 + COL_BLOCK).min(r1);
                            crate::int8_pairs::dots(codes, r0..r1, c0..c1, &mut buf);
                            let width = c1 - c0;
                            for (di, best) in states.iter_mut().enumerate() {
                                let i = r0 + di;
                                let end = i.min(c1).saturating_sub(c0);
                                let si = scale[i];
                                scores.clear();
                                scores.extend(
                                    buf[di * width..di * width + end]
                                        .iter()
                                        .zip(&scale[c0..c0 + end])
                                        .map(|(d, s)| (*d as f32) * (si * s)),
                                );
                                select(best, &scores, &keys[c0..c0 + end], c0);
                            }
                        }
                        for (di, best) in states.iter_mut().enumerate() {
                            (len[di], complete[di]) = best.finish();
                        }
                    }
                });
            }
        });
        Lists {
            slots,
            len,
            complete,
            margin,
            int8: true,
        }
    }

    fn build_f32(rows: &Rows<'_>) -> Lists {
        let n = rows.len();
        let empty = Slot {
            score: f32::NEG_INFINITY,
            row: 0,
            dot: 0.0,
        };
        let mut slots = vec![empty; n * K];
        let mut len = vec![0u16; n];
        let mut complete = vec![true; n];
        let keys: Vec<f32> = (0..n).map(|j| rows.key(j)).collect();
        let threads = thread::available_parallelism().map_or(1, |t| t.get());
        for r0 in (0..n).step_by(ROW_BLOCK) {
            let r1 = (r0 + ROW_BLOCK).min(n);
            let block_slots = &mut slots[r0 * K..r1 * K];
            let mut states: Vec<Best<'_>> = block_slots
                .chunks_mut(K)
                .map(|s| Best {
                    slots: s,
                    len: 0,
                    floor: f32::NEG_INFINITY,
                    seen: 0,
                })
                .collect();
            let lhs = rows.rows.slice(s![r0..r1, ..]);
            for c0 in (0..r1).step_by(COL_BLOCK) {
                let c1 = (c0 + COL_BLOCK).min(r1);
                let dots = crate::matmul::dot_t(lhs, rows.rows.slice(s![c0..c1, ..]));
                let Some(dots) = dots.as_slice() else {
                    continue;
                };
                let width = c1 - c0;
                let per = states.len().div_ceil(threads).max(1);
                let keys = &keys[c0..c1];
                thread::scope(|scope| {
                    for (t, part) in states.chunks_mut(per).enumerate() {
                        scope.spawn(move || {
                            for (o, best) in part.iter_mut().enumerate() {
                                let di = t * per + o;
                                let i = r0 + di;
                                let end = i.min(c1).saturating_sub(c0);
                                let row = &dots[di * width..di * width + end];
                                select(best, row, &keys[..end], c0);
                            }
                        });
                    }
                });
            }
            for (di, best) in states.iter_mut().enumerate() {
                (len[r0 + di], complete[r0 + di]) = best.finish();
            }
        }
        Lists {
            slots,
            len,
            complete,
            margin: vec![0.0; n],
            int8: false,
        }
    }

    /// The greedy keep flags at `thresh`, equal to [`keep`]`(rows, thresh, Some(max_kept))`.
    fn keep(&self, rows: &Rows<'_>, thresh: f64, max_kept: usize) -> Option<Vec<bool>> {
        let n = rows.len();
        let mut kept = vec![false; n];
        let mut kept_idx: Vec<usize> = Vec::new();
        let mut fallbacks = 0usize;
        for i in 0..n {
            let list = &self.slots[i * K..i * K + usize::from(self.len[i])];
            let cut = rows.cutoff(i, thresh);
            let list_cut = cut - self.margin[i];
            let mut dup = false;
            for slot in list {
                if slot.score < list_cut {
                    break;
                }
                let j = slot.row as usize;
                if !kept[j] {
                    continue;
                }
                let dot = if self.int8 {
                    rows.rows.row(i).dot(&rows.rows.row(j))
                } else {
                    slot.dot
                };
                if rows.within(i, j, dot, thresh) {
                    dup = true;
                    break;
                }
            }
            let settled = self.complete[i] || list.last().is_none_or(|l| l.score < list_cut);
            if !dup && !settled {
                // Unlisted earlier rows may be within the threshold: check the kept ones.
                fallbacks += 1;
                if fallbacks > n / 64 + 16 {
                    return keep(rows, thresh, Some(max_kept));
                }
                dup = kept_idx.iter().any(|&j| {
                    let s = rows.rows.row(i).dot(&rows.rows.row(j));
                    s - rows.key(j) >= cut && rows.within(i, j, s, thresh)
                });
            }
            if !dup {
                kept[i] = true;
                kept_idx.push(i);
                if kept_idx.len() > max_kept {
                    return None;
                }
            }
        }
        Some(kept)
    }
}

/// Offers `dots[c] − keys[c]` (row `c0 + c`) to `best`, skipping blocks of 64 on one
/// vectorised maximum once the list is full.
fn select(best: &mut Best<'_>, dots: &[f32], keys: &[f32], c0: usize) {
    for (b, (s, k)) in dots.chunks(64).zip(keys.chunks(64)).enumerate() {
        if best.len == K {
            let m = s
                .iter()
                .zip(k)
                .map(|(s, k)| s - k)
                .fold(f32::NEG_INFINITY, f32::max);
            if m <= best.floor {
                best.seen += s.len();
                continue;
            }
        }
        for (o, (&sv, &kv)) in s.iter().zip(k).enumerate() {
            best.offer(Slot {
                score: sv - kv,
                row: (c0 + b * 64 + o) as u32,
                dot: sv,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use simile_index::Metric;

    fn data(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut emb = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
        // Planted near-duplicates and a tight cluster, so lists overflow and fall back.
        for i in (0..n).step_by(7) {
            let src = emb.row((i * 31 + 3) % n).to_owned();
            for (x, s) in emb.row_mut(i).iter_mut().zip(src.iter()) {
                *x = s + rng.random_range(-0.05f32..0.05);
            }
        }
        let centre = emb.row(1).to_owned();
        for i in (n / 2..n).step_by(3) {
            for (x, c) in emb.row_mut(i).iter_mut().zip(centre.iter()) {
                *x = c + rng.random_range(-0.01f32..0.01);
            }
        }
        emb
    }

    #[test]
    fn list_probes_equal_the_chunked_pass_on_every_metric() {
        let emb = data(1500, 24, 5);
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
            let rows = Rows::new(emb.view(), metric);
            let lists = Lists::build(&rows);
            let (lo, hi) = rows.distance_range();
            for step in 0..=40 {
                let t = lo + (hi - lo) * f64::from(step) / 40.0;
                for max_kept in [10, 700, 1500] {
                    assert_eq!(
                        lists.keep(&rows, t, max_kept),
                        keep(&rows, t, Some(max_kept)),
                        "{metric:?} t={t} max_kept={max_kept}"
                    );
                }
            }
        }
    }

    #[test]
    fn int8_and_f32_lists_probe_the_same_on_every_metric() {
        let emb = data(1300, 40, 11);
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
            let rows = Rows::new(emb.view(), metric);
            let codes = crate::int8_pairs::Codes::new(rows.rows.view(), false).expect("codes");
            let int8 = Lists::build_int8(&rows, &codes);
            let f32_lists = Lists::build_f32(&rows);
            let (lo, hi) = rows.distance_range();
            for step in 0..=30 {
                let t = lo + (hi - lo) * f64::from(step) / 30.0;
                let want = keep(&rows, t, Some(1300));
                assert_eq!(int8.keep(&rows, t, 1300), want, "{metric:?} t={t} int8");
                assert_eq!(f32_lists.keep(&rows, t, 1300), want, "{metric:?} t={t} f32");
            }
            let (t, _) = search_thresh(&rows, 650);
            assert!(int8.keep(&rows, t, 1300).is_some(), "{metric:?}");
        }
    }

    #[test]
    fn the_threshold_found_keeps_the_target() {
        let emb = data(1200, 16, 8);
        let rows = Rows::new(emb.view(), Metric::Cosine);
        for target in [1, 100, 600, 1100] {
            let (t, found) = search_thresh(&rows, target);
            let kept = keep(&rows, t, None).expect("no limit");
            assert_eq!(
                found, kept,
                "target {target}: the flags are the pass at {t}"
            );
            let count = kept.iter().filter(|k| **k).count();
            assert!(
                count.abs_diff(target) <= 2,
                "target {target}: kept {count} at {t}"
            );
        }
    }
}
