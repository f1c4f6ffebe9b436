//! How many columns `find_duplicates`' first pass keeps ([`crate::row_prep::Sub`]), chosen for
//! the threshold on a sample of pairs.
//!
//! The pass bounds `a·b ≤ a_S·b_S + ‖a_R‖‖b_R‖` on the `m` columns `S` with the most energy: a
//! narrower subset costs fewer products per pair but lets more pairs through to the f32 check
//! (each ~100 times a pair's share of the pass), and past [`MAX_PASS`] the pass is given up. On
//! 128 rows × 2048 rows spread over the data, the bound (without its int8 terms) is computed for
//! each width that is a multiple of 32 up to half the columns, and the width with the lowest
//! estimated cost is kept. Only the speed depends on the choice: every pair that passes is
//! decided exactly, so the answer is the same at every width.
use ndarray::{s, Array2};

use crate::greedy::Rows;

/// Rows of the sample's two sides.
const SIDE_A: usize = 128;
const SIDE_B: usize = 2048;
/// Widths are multiples of this (the int8 codes' padding).
const STEP: usize = 32;
/// A width that lets more than this share of the sampled pairs through is not used.
const MAX_PASS: f64 = 0.005;
/// Estimated cost of a pair, in units of one int8 product per column: the f32 check of a pair
/// that passes, and the test of its bound.
const CHECK: f64 = 5000.0;
const TEST: f64 = 30.0;

/// The subset width for passes at `thresh`; `order` is the columns by energy, largest first.
/// A quarter of the columns (the default) when the sample is too small or no width pays.
pub(crate) fn choose(rows: &Rows<'_>, order: &[usize], thresh: f64) -> usize {
    let (n, dim) = rows.rows.dim();
    let quarter = crate::row_prep::quarter(dim);
    let top = (dim / 2) / STEP * STEP;
    if n < 2 * SIDE_A || top < 2 * STEP {
        return quarter;
    }
    let nb = SIDE_B.min(n);
    let a_idx: Vec<usize> = (0..SIDE_A).map(|k| k * n / SIDE_A).collect();
    let b_idx: Vec<usize> = (0..nb)
        .map(|k| (k * n / nb + n / (2 * nb)).min(n - 1))
        .collect();
    let gather = |idx: &[usize]| {
        Array2::from_shape_fn((idx.len(), top), |(r, c)| rows.rows[[idx[r], order[c]]])
    };
    let (a, b) = (gather(&a_idx), gather(&b_idx));
    // Per sampled row: ‖row‖² less the subset's share, width by width.
    let total = |i: usize| f64::from(rows.sq[i]).max(0.0);
    let mut rest_a: Vec<f64> = a_idx.iter().map(|&i| total(i)).collect();
    let mut rest_b: Vec<f64> = b_idx.iter().map(|&j| total(j)).collect();
    let cut: Vec<f64> = a_idx
        .iter()
        .map(|&i| f64::from(rows.cutoff(i, thresh)))
        .collect();
    let key: Vec<f64> = b_idx.iter().map(|&j| f64::from(rows.key(j))).collect();
    let mut dots = vec![0f32; SIDE_A * nb];
    let mut best: Option<(f64, usize)> = None;
    for w in (STEP..=top).step_by(STEP) {
        let (sa, sb) = (a.slice(s![.., w - STEP..w]), b.slice(s![.., w - STEP..w]));
        let slab = crate::matmul::dot_t(sa, sb);
        for (d, p) in dots.iter_mut().zip(slab.iter()) {
            *d += p;
        }
        for (r, row) in sa.rows().into_iter().enumerate() {
            rest_a[r] -= row.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>();
        }
        for (r, row) in sb.rows().into_iter().enumerate() {
            rest_b[r] -= row.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>();
        }
        if w < 2 * STEP {
            continue;
        }
        let rb: Vec<f64> = rest_b.iter().map(|x| x.max(0.0).sqrt()).collect();
        let (mut pass, mut pairs) = (0u64, 0u64);
        for (r, drow) in dots.chunks_exact(nb).enumerate() {
            let ra = rest_a[r].max(0.0).sqrt();
            for (c, &d) in drow.iter().enumerate() {
                let upper = f64::from(d) + ra * rb[c] - key[c];
                pass += u64::from(upper >= cut[r] && a_idx[r] != b_idx[c]);
            }
            pairs += nb as u64 - b_idx.iter().filter(|&&j| j == a_idx[r]).count() as u64;
        }
        let share = pass as f64 / pairs.max(1) as f64;
        if share > MAX_PASS {
            continue;
        }
        let cost = w as f64 + TEST + CHECK * share;
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, w));
        }
    }
    let m = best.map_or(quarter, |(_, w)| w);
    tracing::debug!(width = m, dim, thresh, "first-pass column subset");
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::greedy::keep;
    use crate::nearest_kept::nearest_kept;
    use rand::{Rng, SeedableRng};
    use simile_index::Metric;

    #[test]
    fn the_width_follows_the_threshold_and_changes_no_answer() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let (n, d) = (3000, 256);
        let mut emb = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
        for i in (0..n).step_by(50) {
            let src = emb.row((i * 7 + 3) % n).to_owned();
            for (x, s) in emb.row_mut(i).iter_mut().zip(src.iter()) {
                *x = s + 0.01 * rng.random_range(-1.0f32..1.0);
            }
        }
        let mut plain = Rows::new(emb.view(), Metric::Cosine);
        plain.sub = None;
        let mut widths = Vec::new();
        for t in [0.05, 0.1, 0.2, 0.3] {
            let rows = Rows::new_for(emb.view(), Metric::Cosine, Some(t));
            let m = rows.sub.as_ref().map_or(0, |s| s.rows.ncols());
            assert!(
                m % STEP == 0 && (2 * STEP..=d / 2).contains(&m),
                "t={t}: width {m}"
            );
            widths.push(m);
            let got = keep(&rows, t, None);
            assert_eq!(got, keep(&plain, t, None), "t={t}");
            let flags = got.unwrap_or_default();
            assert!(flags.iter().any(|k| !k), "t={t}: some duplicates");
            assert_eq!(
                nearest_kept(&rows, &flags, t),
                nearest_kept(&plain, &flags, t),
                "t={t}"
            );
        }
        assert!(widths.windows(2).all(|w| w[0] <= w[1]), "{widths:?}");
        assert!(widths[0] < widths[3], "{widths:?}");
    }
}
