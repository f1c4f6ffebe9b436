//! The int8 form of `find_duplicates`' column-subset first pass ([`crate::greedy`]): the subset
//! columns of every row as int8 codes ([`crate::int8_pairs`]), the kept rows' codes beside them.
//! A chunk of rows is tested against the kept rows and against its own earlier rows (so the
//! greedy walk inside the chunk needs no f32 product), and [`crate::nearest_kept`] tests its
//! duplicates against every row. Each thread multiplies its share of the chunk by one block of
//! right-hand rows at a time and tests the block while it is in cache.
//!
//! For rows `a`, `b`, subset `S`, rest `R`: `a·b ≤ a_S·b_S + ‖a_R‖‖b_R‖` (Cauchy–Schwarz) and
//! `a_S·b_S ≤ sa·sb·D + ‖a_S‖·‖b_S − b̃_S‖ + ‖a_S − ã_S‖·‖b̃_S‖` (the int8 bound), so a pair whose
//! upper bound fails [`Rows::cutoff`](crate::greedy::Rows::cutoff) (lowered by a margin for the
//! f32 arithmetic of the test) cannot be within the threshold. The pairs that pass are decided
//! as before, from the full f32 product and the exact distance.
use crate::int8_pairs::{dots_of, Codes};
use crate::int8_panel::Panel;

/// Rows per thread of a chunk × kept product, at least.
const MIN_ROWS: usize = 64;
/// Right-hand rows per block of a thread's products: the block (at most a chunk's share of rows ×
/// this many `i32`, 512 KiB) is tested while it is still in the core's L2 cache.
const BLOCK: usize = 512;

/// The kept rows' subset codes and the per-row terms of the test (f32, rounded up).
pub(crate) struct KeptCodes {
    codes: Codes,
    /// The same rows in panels, for the VNNI kernel (`None` without it).
    panel: Option<Panel>,
    res: Vec<f32>,
    normq: Vec<f32>,
    buf: Vec<Vec<i32>>,
}

/// `x` as an f32 at least `x`.
fn up(x: f64) -> f32 {
    (x * (1.0 + 1e-6)) as f32
}

/// What passes the test for one row of a chunk: positions among the right-hand rows, and
/// earlier rows of the chunk itself (offsets from the chunk's first row).
#[derive(Default)]
pub(crate) struct Passing {
    pub(crate) kept: Vec<u32>,
    pub(crate) inner: Vec<u32>,
}

/// The left-hand rows' keys, rest norms and cutoffs: the test is
/// `upper(i, j) − key(j) ≥ cutoff(i)`.
pub(crate) struct RowTerms {
    pub(crate) keys: Vec<f32>,
    pub(crate) rest: Vec<f32>,
    pub(crate) cut: Vec<f32>,
}

impl KeptCodes {
    pub(crate) fn new(sub: &Codes) -> KeptCodes {
        let vnni = crate::int8_pairs::vnni_on() && sub.len() > 0 && sub.urow(0).is_some();
        KeptCodes {
            codes: sub.empty_like(),
            panel: vnni.then(|| Panel::new(sub.row(0).len())),
            res: Vec::new(),
            normq: Vec::new(),
            buf: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, sub: &Codes, i: usize) {
        self.codes.push_row(sub, i);
        if let Some(p) = &mut self.panel {
            p.push(sub.row(i));
        }
        self.res.push(up(sub.resid[i]));
        self.normq.push(up(sub.normq[i]));
    }

    /// For each row `c0 + di` of the chunk (`rows` its terms), the kept rows (`keys`, `rest`:
    /// theirs) and the earlier rows of the chunk whose upper bound passes the test (see the
    /// module docs), found on every core.
    pub(crate) fn candidates(
        &mut self,
        sub: &Codes,
        (c0, c1): (usize, usize),
        rows: &RowTerms,
        keys: &[f32],
        rest: &[f32],
    ) -> Vec<Passing> {
        let kept = Terms {
            scale: &self.codes.scale,
            res: &self.res,
            normq: &self.normq,
            rest,
            keys,
        };
        scan(
            sub,
            (c0, c1),
            rows,
            (&self.codes, self.panel.as_ref(), &kept),
            true,
            &mut self.buf,
        )
    }
}

/// For each row of `lhs` (`rows` its terms), the rows of `all` (`keys`, `rest`: theirs) whose
/// upper bound passes the test, found on every core.
pub(crate) fn against(
    lhs: &Codes,
    rows: &RowTerms,
    all: &Codes,
    keys: &[f32],
    rest: &[f32],
) -> Vec<Vec<u32>> {
    let (res, normq): (Vec<f32>, Vec<f32>) = (0..all.len())
        .map(|j| (up(all.resid[j]), up(all.normq[j])))
        .unzip();
    let terms = Terms {
        scale: &all.scale,
        res: &res,
        normq: &normq,
        rest,
        keys,
    };
    let mut buf = Vec::new();
    scan(
        lhs,
        (0, lhs.len()),
        rows,
        (all, None, &terms),
        false,
        &mut buf,
    )
    .into_iter()
    .map(|p| p.kept)
    .collect()
}

/// The scan behind [`KeptCodes::candidates`] and [`against`]: rows `c0..c1` of `sub` against
/// every right-hand row and, with `inner`, against their chunk's earlier rows; `bufs` holds one
/// product block per thread.
fn scan(
    sub: &Codes,
    (c0, c1): (usize, usize),
    rows: &RowTerms,
    (rc, panel, right): (&Codes, Option<&Panel>, &Terms<'_>),
    inner: bool,
    bufs: &mut Vec<Vec<i32>>,
) -> Vec<Passing> {
    let threads = crate::matmul::cores()
        .min((c1 - c0).div_ceil(MIN_ROWS))
        .max(1);
    let per = (c1 - c0).div_ceil(threads);
    bufs.resize_with(threads, Vec::new);
    let nr = rc.len();
    // The chunk's rows as right-hand side.
    let (res, normq): (Vec<f32>, Vec<f32>) = (c0..c1)
        .filter(|_| inner)
        .map(|j| (up(sub.resid[j]), up(sub.normq[j])))
        .unzip();
    let own = Terms {
        scale: &sub.scale[c0..c1],
        res: &res,
        normq: &normq,
        rest: &rows.rest,
        keys: &rows.keys,
    };
    let own = &own;
    std::thread::scope(|scope| {
        let handles: Vec<_> = bufs
            .iter_mut()
            .enumerate()
            .map(|(th, buf)| {
                let (r0, r1) = ((c0 + th * per).min(c1), (c0 + (th + 1) * per).min(c1));
                scope.spawn(move || {
                    let row_terms: Vec<[f32; 5]> = (r0..r1)
                        .map(|i| {
                            let (ni, ri) = (up(sub.norm[i]), up(sub.resid[i]));
                            [sub.scale[i], ni, ri, rows.rest[i - c0], rows.cut[i - c0]]
                        })
                        .collect();
                    let mut out: Vec<Passing> = (r0..r1).map(|_| Passing::default()).collect();
                    for b0 in (0..nr).step_by(BLOCK) {
                        let b1 = (b0 + BLOCK).min(nr);
                        if !panel.is_some_and(|p| p.dots(sub, r0..r1, b0..b1, buf)) {
                            dots_of(sub, r0..r1, rc, b0..b1, buf);
                        }
                        let terms = right.slice(b0..b1);
                        let w = b1 - b0;
                        for (k, o) in out.iter_mut().enumerate() {
                            let row = &buf[k * w..(k + 1) * w];
                            pass_row(&terms, row, row_terms[k], b0, &mut o.kept);
                        }
                    }
                    if inner && r0 < r1 {
                        // The chunk's earlier rows (the lower triangle).
                        dots_of(sub, r0..r1, sub, c0..r1, buf);
                        let w = r1 - c0;
                        for (k, o) in out.iter_mut().enumerate() {
                            let before = r0 + k - c0;
                            let row = &buf[k * w..k * w + before];
                            pass_row(&own.slice(0..before), row, row_terms[k], 0, &mut o.inner);
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The right-hand rows' terms of the test, for one block.
struct Terms<'a> {
    scale: &'a [f32],
    res: &'a [f32],
    normq: &'a [f32],
    rest: &'a [f32],
    keys: &'a [f32],
}

impl Terms<'_> {
    fn slice(&self, r: std::ops::Range<usize>) -> Terms<'_> {
        Terms {
            scale: &self.scale[r.clone()],
            res: &self.res[r.clone()],
            normq: &self.normq[r.clone()],
            rest: &self.rest[r.clone()],
            keys: &self.keys[r],
        }
    }
}

/// Pushes the positions (plus `off`) whose upper bound reaches the cutoff; `row_terms` is the
/// chunk row's `[scale, ‖a_S‖, ‖a_S − ã_S‖, ‖a_R‖, cutoff]`. Compiled for AVX2 where present.
fn pass_row(t: &Terms<'_>, row: &[i32], row_terms: [f32; 5], off: usize, out: &mut Vec<u32>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { pass_row_avx2(t, row, row_terms, off, out) };
    }
    pass_row_body(t, row, row_terms, off, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pass_row_avx2(t: &Terms<'_>, row: &[i32], row_terms: [f32; 5], off: usize, out: &mut Vec<u32>) {
    pass_row_body(t, row, row_terms, off, out);
}

#[inline(always)]
fn pass_row_body(
    t: &Terms<'_>,
    row: &[i32],
    [si, ni, ri, rest_i, c]: [f32; 5],
    off: usize,
    out: &mut Vec<u32>,
) {
    let n = row.len();
    let (scale, res, normq, rest, keys) = (
        &t.scale[..n],
        &t.res[..n],
        &t.normq[..n],
        &t.rest[..n],
        &t.keys[..n],
    );
    let upper = |j: usize| {
        (row[j] as f32) * (si * scale[j]) + ni * res[j] + ri * normq[j] + rest_i * rest[j] - keys[j]
    };
    let mut at = 0;
    while at < n {
        let end = (at + 64).min(n);
        let mut hit = false;
        for j in at..end {
            hit |= upper(j) >= c;
        }
        if hit {
            out.extend(
                (at..end)
                    .filter(|&j| upper(j) >= c)
                    .map(|j| (j + off) as u32),
            );
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use simile_index::Metric;

    use crate::greedy::{keep, Rows};
    use crate::nearest_kept::nearest_kept;

    #[test]
    fn the_int8_first_pass_keeps_what_the_f32_one_and_no_first_pass_keep() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let (n, d) = (2600, 96);
        let mut emb = Array2::from_shape_fn((n, d), |(_, c)| {
            rng.random_range(-1.0f32..1.0) * (1.0 + (c % 5) as f32)
        });
        // Planted near-duplicates and exact copies (ties at distance 0).
        for i in (0..n).step_by(11) {
            let src = emb.row((i * 13 + 7) % n).to_owned();
            for (x, s) in emb.row_mut(i).iter_mut().zip(src.iter()) {
                *x = s + rng.random_range(-0.03f32..0.03);
            }
        }
        for i in (40..n).step_by(97) {
            let src = emb.row(i - 40).to_owned();
            emb.row_mut(i).assign(&src);
        }
        for (metric, ts) in [
            (Metric::Cosine, [0.0, 0.001, 0.01]),
            (Metric::Euclidean, [0.0, 0.3, 1.0]),
            (Metric::DotProduct, [-340.0, -250.0, -150.0]),
        ] {
            let rows = Rows::new(emb.view(), metric);
            assert!(
                rows.sub.as_ref().is_some_and(|s| s.codes.is_some()),
                "{metric:?}: the int8 first pass applies"
            );
            let mut f32_sub = Rows::new(emb.view(), metric);
            if let Some(s) = f32_sub.sub.as_mut() {
                s.codes = None;
            }
            let mut plain = Rows::new(emb.view(), metric);
            plain.sub = None;
            for t in ts {
                let got = keep(&rows, t, None);
                assert_eq!(
                    got,
                    keep(&f32_sub, t, None),
                    "{metric:?} t={t}: f32 first pass"
                );
                assert_eq!(
                    got,
                    keep(&plain, t, None),
                    "{metric:?} t={t}: no first pass"
                );
                let dups = got.iter().flatten().filter(|k| !**k).count();
                assert!(dups > 0 && dups < n, "{metric:?} t={t}: {dups} duplicates");
                // Each duplicate's nearest kept row: the int8 scan, the f32 one, none.
                let flags = got.unwrap_or_default();
                let nearest = nearest_kept(&rows, &flags, t);
                assert_eq!(nearest.len(), dups, "{metric:?} t={t}: one per duplicate");
                assert_eq!(
                    nearest,
                    nearest_kept(&f32_sub, &flags, t),
                    "{metric:?} t={t}"
                );
                assert_eq!(nearest, nearest_kept(&plain, &flags, t), "{metric:?} t={t}");
            }
        }
    }
}
