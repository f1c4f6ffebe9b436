//! The int8 form of `find_duplicates`' column-subset first pass ([`crate::greedy`]): the subset
//! columns of every row as int8 codes ([`crate::int8_pairs`]), the kept rows' codes beside them.
//!
//! For rows `a`, `b`, subset `S`, rest `R`: `a·b ≤ a_S·b_S + ‖a_R‖‖b_R‖` (Cauchy–Schwarz) and
//! `a_S·b_S ≤ sa·sb·D + ‖a_S‖·‖b_S − b̃_S‖ + ‖a_S − ã_S‖·‖b̃_S‖` (the int8 bound), so a pair whose
//! upper bound fails [`Rows::cutoff`](crate::greedy::Rows::cutoff) (lowered by a margin for the
//! f32 arithmetic of the test) cannot be within the threshold. The pairs that pass are decided
//! as before, from the full f32 product and the exact distance.
use crate::int8_pairs::{dots_of, Codes};

/// Rows per thread of a chunk × kept product, at least.
const MIN_ROWS: usize = 64;

/// The kept rows' subset codes and the per-row terms of the test (f32, rounded up).
pub(crate) struct KeptCodes {
    codes: Codes,
    res: Vec<f32>,
    normq: Vec<f32>,
    buf: Vec<Vec<i32>>,
}

/// `x` as an f32 at least `x`.
fn up(x: f64) -> f32 {
    (x * (1.0 + 1e-6)) as f32
}

impl KeptCodes {
    pub(crate) fn new(sub: &Codes) -> KeptCodes {
        KeptCodes {
            codes: sub.empty_like(),
            res: Vec::new(),
            normq: Vec::new(),
            buf: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, sub: &Codes, i: usize) {
        self.codes.push_row(sub, i);
        self.res.push(up(sub.resid[i]));
        self.normq.push(up(sub.normq[i]));
    }

    /// For each row `c0 + di` of the chunk: whether `check(di, pos)` holds for some kept row
    /// `s0 + pos` (of `s0..s1`) that passes the test, `keys`/`rest` being the kept rows' keys
    /// and rest norms for `s0..s1`. `cut(i)` is the row's cutoff, `rest_i` its rest norm.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn any_within(
        &mut self,
        sub: &Codes,
        (c0, c1): (usize, usize),
        (s0, s1): (usize, usize),
        keys: &[f32],
        rest: &[f32],
        rest_i: impl Fn(usize) -> f32 + Sync,
        cut: impl Fn(usize) -> f32 + Sync,
        dup: &mut [bool],
        mut check: impl FnMut(usize, usize) -> bool,
    ) {
        let threads = crate::matmul::cores()
            .min((c1 - c0).div_ceil(MIN_ROWS))
            .max(1);
        let per = (c1 - c0).div_ceil(threads);
        self.buf.resize_with(threads, Vec::new);
        let width = s1 - s0;
        let kc = &self.codes;
        let (res, normq) = (&self.res[s0..s1], &self.normq[s0..s1]);
        let scale = &kc.scale[s0..s1];
        // Which pairs pass, per chunk row (positions in s0..s1), found on every core.
        let passing: Vec<Vec<Vec<u32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .buf
                .iter_mut()
                .enumerate()
                .map(|(t, buf)| {
                    let (r0, r1) = ((c0 + t * per).min(c1), (c0 + (t + 1) * per).min(c1));
                    let (rest_i, cut, dup) = (&rest_i, &cut, &*dup);
                    scope.spawn(move || {
                        dots_of(sub, r0..r1, kc, s0..s1, buf);
                        (r0..r1)
                            .map(|i| {
                                if dup[i - c0] || width == 0 {
                                    return Vec::new();
                                }
                                let row = &buf[(i - r0) * width..(i - r0 + 1) * width];
                                let (si, ni, ri) =
                                    (sub.scale[i], up(sub.norm[i]), up(sub.resid[i]));
                                let (rest_i, c) = (rest_i(i), cut(i));
                                let mut out = Vec::new();
                                let terms = Terms {
                                    scale,
                                    res,
                                    normq,
                                    rest,
                                    keys,
                                };
                                pass_row(&terms, row, [si, ni, ri, rest_i, c], &mut out);
                                out
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for (di, pos) in passing.into_iter().flatten().enumerate() {
            if dup[di] {
                continue;
            }
            dup[di] = pos.into_iter().any(|p| check(di, p as usize));
        }
    }
}

/// The kept rows' terms of the test, for one slab.
struct Terms<'a> {
    scale: &'a [f32],
    res: &'a [f32],
    normq: &'a [f32],
    rest: &'a [f32],
    keys: &'a [f32],
}

/// Pushes the positions whose upper bound reaches the cutoff; `row_terms` is the chunk row's
/// `[scale, ‖a_S‖, ‖a_S − ã_S‖, ‖a_R‖, cutoff]`. Compiled for AVX2 where present.
fn pass_row(t: &Terms<'_>, row: &[i32], row_terms: [f32; 5], out: &mut Vec<u32>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { pass_row_avx2(t, row, row_terms, out) };
    }
    pass_row_body(t, row, row_terms, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pass_row_avx2(t: &Terms<'_>, row: &[i32], row_terms: [f32; 5], out: &mut Vec<u32>) {
    pass_row_body(t, row, row_terms, out);
}

#[inline(always)]
fn pass_row_body(
    t: &Terms<'_>,
    row: &[i32],
    [si, ni, ri, rest_i, c]: [f32; 5],
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
            out.extend((at..end).filter(|&j| upper(j) >= c).map(|j| j as u32));
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
            }
        }
    }
}
