//! The kept rows of `find_duplicates`' first pass ([`crate::sub_int8`]) as panels of 16 rows for
//! the AVX-512 VNNI kernel: in a panel, each group of 4 code columns holds the 16 rows' 4 codes
//! side by side (64 bytes), so one `vpdpbusd` of a broadcast group of a left-hand row with half
//! a panel group adds 8 rows' dot products in 8 lanes at once — no horizontal sums, which cost
//! as much as the products themselves on rows of 96 or 128 codes ([`crate::int8_pairs`]'s
//! row-by-row tile).
//!
//! The sums are the same exact integers as every other path (`Σ (a+128)·b − 128·Σb`, wrapping,
//! and the true value fits an `i32`): `the_panel_kernel_gives_the_same_integers`.
use std::ops::Range;

use crate::int8_pairs::Codes;

/// Rows per panel.
const ROWS: usize = 16;
/// Left-hand rows per register tile (4 × 2 accumulators + 2 panel halves + 1 broadcast).
const TILE: usize = 4;

/// Rows' codes in panels (the last one padded with zero rows), with each row's code sum.
pub(crate) struct Panel {
    stride: usize,
    data: Vec<i8>,
    sums: Vec<i32>,
    len: usize,
}

impl Panel {
    /// No rows, for codes of `stride` bytes (a multiple of 32).
    pub(crate) fn new(stride: usize) -> Panel {
        Panel {
            stride,
            data: Vec::new(),
            sums: Vec::new(),
            len: 0,
        }
    }

    /// Appends a row (`stride` codes).
    pub(crate) fn push(&mut self, codes: &[i8]) {
        let (blk, r) = (self.len / ROWS, self.len % ROWS);
        if r == 0 {
            self.data.resize(self.data.len() + ROWS * self.stride, 0);
            self.sums.resize(self.sums.len() + ROWS, 0);
        }
        let base = blk * ROWS * self.stride;
        for (g, four) in codes.chunks_exact(4).enumerate() {
            let at = base + g * 4 * ROWS + r * 4;
            self.data[at..at + 4].copy_from_slice(four);
        }
        self.sums[self.len] = codes.iter().map(|k| i32::from(*k)).sum();
        self.len += 1;
    }

    /// `out[r·b.len() + c] = D(a.start + r, b.start + c)` for rows `a` of `lhs` and rows `b` of
    /// the panel (`b.start` a multiple of 16), on the VNNI kernel; `false` (and `out` untouched)
    /// where it does not run: another CPU, codes of another width, an unaligned `b`.
    pub(crate) fn dots(
        &self,
        lhs: &Codes,
        a: Range<usize>,
        b: Range<usize>,
        out: &mut Vec<i32>,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let ok = crate::int8_pairs::vnni_on()
                && b.start % ROWS == 0
                && b.end <= self.len
                && a.end <= lhs.len()
                && lhs.len() > 0
                && lhs.row(0).len() == self.stride
                && lhs.urow(0).is_some();
            if ok {
                out.resize(a.len() * b.len(), 0);
                // SAFETY: VNNI runs here (`vnni_on`), the left-hand rows have unsigned codes and
                // both sides are `stride` bytes a row (checked just above).
                unsafe { kernel(lhs, a, self, b, out) };
                return true;
            }
        }
        let _ = (lhs, a, b, out);
        false
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use crate::int8_pairs::dpbusd;

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn load<T>(v: &[T], at: usize) -> __m256i {
    assert!(size_of::<T>() * (at + 32 / size_of::<T>()) <= size_of_val(v));
    // SAFETY: 32 readable bytes at element `at` (checked above); `loadu` needs no alignment.
    unsafe { _mm256_loadu_si256(v.as_ptr().add(at).cast::<__m256i>()) }
}

/// `R` left-hand rows (unsigned codes) times one panel: per row, the 16 sums `Σ (a+128)·b`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn tile<const R: usize>(rows: [&[u8]; R], panel: &[i8], stride: usize) -> [[__m256i; 2]; R] {
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    for g in 0..stride / 4 {
        let (b0, b1) = (load(panel, g * 64), load(panel, g * 64 + 32));
        for r in 0..R {
            let q = &rows[r][g * 4..g * 4 + 4];
            let a = _mm256_set1_epi32(i32::from_le_bytes([q[0], q[1], q[2], q[3]]));
            acc[r][0] = dpbusd(acc[r][0], a, b0);
            acc[r][1] = dpbusd(acc[r][1], a, b1);
        }
    }
    acc
}

/// Safety: only where VNNI runs, with `lhs`'s unsigned codes filled and both sides of the same
/// stride, `b.start` a multiple of 16 and `out` of `a.len() × b.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn kernel(lhs: &Codes, a: Range<usize>, p: &Panel, b: Range<usize>, out: &mut [i32]) {
    let (stride, w) = (p.stride, b.len());
    let urow = |i: usize| lhs.urow(i).unwrap_or(&[]);
    let mut col = 0;
    while col < w {
        let blk = (b.start + col) / ROWS;
        let panel = &p.data[blk * ROWS * stride..(blk + 1) * ROWS * stride];
        let sums = &p.sums[blk * ROWS..(blk + 1) * ROWS];
        let corr = [
            _mm256_slli_epi32::<7>(load(sums, 0)),
            _mm256_slli_epi32::<7>(load(sums, 8)),
        ];
        let valid = (w - col).min(ROWS);
        let mut put = |i: usize, acc: [__m256i; 2]| {
            let o = (i - a.start) * w + col;
            let x = [
                _mm256_sub_epi32(acc[0], corr[0]),
                _mm256_sub_epi32(acc[1], corr[1]),
            ];
            if valid == ROWS {
                let dst = &mut out[o..o + ROWS];
                for (h, x) in x.into_iter().enumerate() {
                    // SAFETY: `dst[8h..8h+8]` is 32 writable bytes (`dst` is 16 `i32`);
                    // `storeu` needs no alignment.
                    unsafe {
                        _mm256_storeu_si256(dst.as_mut_ptr().add(8 * h).cast::<__m256i>(), x)
                    };
                }
            } else {
                let mut v = [0i32; ROWS];
                for (h, x) in x.into_iter().enumerate() {
                    // SAFETY: `v[8h..8h+8]` is 32 writable bytes; `storeu` needs no alignment.
                    unsafe { _mm256_storeu_si256(v.as_mut_ptr().add(8 * h).cast::<__m256i>(), x) };
                }
                out[o..o + valid].copy_from_slice(&v[..valid]);
            }
        };
        let mut i = a.start;
        while i + TILE <= a.end {
            let t = tile::<TILE>(
                [urow(i), urow(i + 1), urow(i + 2), urow(i + 3)],
                panel,
                stride,
            );
            for (r, acc) in t.into_iter().enumerate() {
                put(i + r, acc);
            }
            i += TILE;
        }
        while i < a.end {
            let [acc] = tile::<1>([urow(i)], panel, stride);
            put(i, acc);
            i += 1;
        }
        col += ROWS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_panel_kernel_gives_the_same_integers() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
        for dim in [32usize, 96, 128, 200] {
            let n = 75;
            let mut emb = Array2::from_shape_fn((n, dim), |_| rng.random_range(-1.0f32..1.0));
            emb.row_mut(0).fill(1.0);
            emb.row_mut(1).fill(-2.0);
            let codes = Codes::new(emb.view(), false).expect("finite rows");
            let mut panel = Panel::new(codes.row(0).len());
            for j in 0..n {
                panel.push(codes.row(j));
            }
            for (a, b) in [
                (0..n, 0..n),
                (3..40, 16..75),
                (5..6, 32..33),
                (70..75, 48..64),
            ] {
                let mut got = Vec::new();
                if !panel.dots(&codes, a.clone(), b.clone(), &mut got) {
                    assert!(!crate::int8_pairs::vnni_on(), "declined only without VNNI");
                    continue;
                }
                let mut want = Vec::new();
                crate::int8_pairs::dots(&codes, a.clone(), b.clone(), &mut want);
                assert_eq!(got, want, "dim {dim}, {a:?} × {b:?}");
            }
            let mut out = Vec::new();
            assert!(!panel.dots(&codes, 0..4, 3..9, &mut out), "unaligned");
            assert!(out.is_empty());
        }
    }
}
