//! Each duplicate's nearest kept row, for [`crate::greedy`]'s answer.
use ndarray::{s, Array2};

use crate::greedy::{Rows, CHUNK, SLAB};
use crate::sub_int8::against;

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
    let mut out = Vec::with_capacity(dups.len());
    let int8 = rows
        .sub
        .as_ref()
        .and_then(|s| s.codes.as_ref().map(|c| (s, c)));
    let f32_pass = match int8 {
        Some(_) => None,
        None => Some(F32Pass::new(rows, &kept_idx)),
    };
    let keys: Vec<f32> = (0..kept.len()).map(|j| rows.key(j)).collect();
    // Duplicates are not contiguous: gather them in chunks.
    for chunk in dups.chunks(CHUNK) {
        // Per duplicate: the kept rows that may be within `thresh`, with their full f32 dot.
        let cands: Vec<Vec<(usize, f32)>> = match (int8, &f32_pass) {
            (Some((sub, codes)), _) => {
                let terms = rows.int8_terms(chunk.iter().copied(), thresh);
                let found = against(&codes.gather(chunk), &terms, codes, &keys, &sub.rest);
                chunk
                    .iter()
                    .zip(found)
                    .map(|(&i, js)| {
                        let full = rows.rows.row(i);
                        js.into_iter()
                            .map(|j| j as usize)
                            .filter(|&j| kept[j])
                            .map(|j| (j, full.dot(&rows.rows.row(j))))
                            .collect()
                    })
                    .collect()
            }
            (None, Some(p)) => p.candidates(rows, chunk, thresh),
            (None, None) => Vec::new(),
        };
        for (r, cand) in cands.iter().enumerate() {
            let i = chunk[r];
            let mut best = f64::INFINITY;
            let mut best_bound = 0.0;
            for &(j, s) in cand {
                let (d, b) = rows.approx(i, j, s);
                if d < best {
                    best = d;
                    best_bound = b;
                }
            }
            let mut pick: Option<(usize, f64)> = None;
            for &(j, s) in cand {
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

/// The f32 form of the search (no int8 codes): the kept rows' subset columns (or full rows) and
/// terms, multiplied by each chunk of duplicates.
struct F32Pass<'k> {
    kept_idx: &'k [usize],
    kmat: Array2<f32>,
    keys: Vec<f32>,
    rest: Vec<f32>,
}

impl<'k> F32Pass<'k> {
    fn new(rows: &Rows<'_>, kept_idx: &'k [usize]) -> F32Pass<'k> {
        let sub = rows.sub.as_ref();
        F32Pass {
            kept_idx,
            kmat: gather(rows, kept_idx),
            keys: kept_idx.iter().map(|&j| rows.key(j)).collect(),
            rest: match sub {
                Some(s) => kept_idx.iter().map(|&j| s.rest[j]).collect(),
                None => vec![0.0; kept_idx.len()],
            },
        }
    }

    /// Per duplicate of `chunk`: the kept rows (indexes) that pass the cutoff, with their full
    /// f32 dot.
    fn candidates(&self, rows: &Rows<'_>, chunk: &[usize], thresh: f64) -> Vec<Vec<(usize, f32)>> {
        let sub = rows.sub.as_ref();
        let dmat = gather(rows, chunk);
        let mut cands: Vec<Vec<(usize, f32)>> = vec![Vec::new(); chunk.len()];
        let mut dots = Vec::new();
        let (kept_idx, keys, rest) = (self.kept_idx, &self.keys, &self.rest);
        for s0 in (0..kept_idx.len()).step_by(SLAB) {
            let s1 = (s0 + SLAB).min(kept_idx.len());
            let kview = self.kmat.slice(s![s0..s1, ..]);
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
                        let j = kept_idx[s0 + o];
                        let s = match sub {
                            Some(_) => full.dot(&rows.rows.row(j)),
                            None => d,
                        };
                        cands[r].push((j, s));
                    }
                }
            }
        }
        cands
    }
}

/// Rows `idx` in the form the f32 search multiplies: subset columns, or full rows without one.
fn gather(rows: &Rows<'_>, idx: &[usize]) -> Array2<f32> {
    let form = |i: usize| match rows.sub.as_ref() {
        Some(s) => s.rows.row(i),
        None => rows.rows.row(i),
    };
    let width = rows
        .sub
        .as_ref()
        .map_or(rows.rows.ncols(), |s| s.rows.ncols());
    let mut m = Array2::zeros((idx.len(), width));
    for (r, &i) in idx.iter().enumerate() {
        m.row_mut(r).assign(&form(i));
    }
    m
}
