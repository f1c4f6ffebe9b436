//! Each duplicate's nearest kept row, for [`crate::greedy`]'s answer.
use ndarray::{s, Array2};

use crate::greedy::{Rows, CHUNK, SLAB};

/// For every duplicate (not kept), its nearest kept row and the exact distance (ties: the
/// earlier row). Returns `(dup, kept, distance)` in row order.
///
/// A duplicate has a kept row within `thresh` (that is why it is one), so only kept rows that
/// pass [`Rows::cutoff`] at `thresh` — on the first pass's upper bound where there is one — can
/// be its nearest; among those, the best approximate distance and every row within twice the
/// error bound of it are re-scored exactly.
pub(crate) fn nearest_kept(
    rows: &Rows<'_>,
    kept: &[bool],
    thresh: f64,
) -> Vec<(usize, usize, f64)> {
    let kept_idx: Vec<usize> = (0..kept.len()).filter(|&i| kept[i]).collect();
    let dups: Vec<usize> = (0..kept.len()).filter(|&i| !kept[i]).collect();
    if kept_idx.is_empty() || dups.is_empty() {
        return Vec::new();
    }
    let sub = rows.sub.as_ref();
    let form = |i: usize| match sub {
        Some(s) => s.rows.row(i),
        None => rows.rows.row(i),
    };
    let width = form(0).len();
    let gather = |idx: &[usize]| {
        let mut m = Array2::zeros((idx.len(), width));
        for (r, &i) in idx.iter().enumerate() {
            m.row_mut(r).assign(&form(i));
        }
        m
    };
    let kmat = gather(&kept_idx);
    let keys: Vec<f32> = kept_idx.iter().map(|&j| rows.key(j)).collect();
    let rest: Vec<f32> = match sub {
        Some(s) => kept_idx.iter().map(|&j| s.rest[j]).collect(),
        None => vec![0.0; kept_idx.len()],
    };
    let mut out = Vec::with_capacity(dups.len());
    let mut dots = Vec::new();
    // Duplicates are not contiguous: gather them in chunks.
    for chunk in dups.chunks(CHUNK) {
        let dmat = gather(chunk);
        // Per duplicate: the kept rows that may be within `thresh`, with their full f32 dot.
        let mut cands: Vec<Vec<(usize, f32)>> = vec![Vec::new(); chunk.len()];
        for s0 in (0..kept_idx.len()).step_by(SLAB) {
            let s1 = (s0 + SLAB).min(kept_idx.len());
            let kview = kmat.slice(s![s0..s1, ..]);
            crate::matmul::dot_t_into(dmat.view(), kview, crate::matmul::cores(), &mut dots);
            for (r, srow) in dots.chunks_exact(s1 - s0).enumerate() {
                let i = chunk[r];
                let cut = rows.cutoff(i, thresh);
                let ri = sub.map_or(0.0, |s| s.rest[i]);
                let full = rows.rows.row(i);
                for (o, ((&d, &rj), &k)) in srow
                    .iter()
                    .zip(&rest[s0..s1])
                    .zip(&keys[s0..s1])
                    .enumerate()
                {
                    if d + ri * rj - k >= cut {
                        let pos = s0 + o;
                        let s = match sub {
                            Some(_) => full.dot(&rows.rows.row(kept_idx[pos])),
                            None => d,
                        };
                        cands[r].push((pos, s));
                    }
                }
            }
        }
        for (r, cand) in cands.iter().enumerate() {
            let i = chunk[r];
            let mut best = f64::INFINITY;
            let mut best_bound = 0.0;
            for &(pos, s) in cand {
                let (d, b) = rows.approx(i, kept_idx[pos], s);
                if d < best {
                    best = d;
                    best_bound = b;
                }
            }
            let mut pick: Option<(usize, f64)> = None;
            for &(pos, s) in cand {
                let j = kept_idx[pos];
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
