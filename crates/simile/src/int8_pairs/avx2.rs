//! The AVX2 kernel of `int8_pairs`: `sign` + `maddubs` + `madd`, a 2 × 4 register tile.

use std::arch::x86_64::*;

use super::Side;

/// Rows of the register tile.
const R: usize = 2;
/// Columns of the register tile.
const C: usize = 4;
/// Columns per L1 block (32 rows of 512 codes: 16 KiB).
const JB: usize = 32;

#[inline]
#[target_feature(enable = "avx2")]
fn load(v: &[i8], at: usize) -> __m256i {
    assert!(at + 32 <= v.len());
    // SAFETY: `at + 32 <= v.len()`: 32 readable bytes; `loadu` needs no alignment.
    unsafe { _mm256_loadu_si256(v.as_ptr().add(at).cast::<__m256i>()) }
}

/// The lane sums of four vectors at once (pairwise adds, so short rows do not pay four
/// full reductions per tile; integer adds wrap, the totals are exact).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum4(v: [__m256i; 4]) -> [i32; 4] {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
    let mut out = [0i32; 4];
    // SAFETY: `out` is 16 writable bytes; `storeu` needs no alignment.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast::<__m128i>(), s) };
    out
}

/// The sum of the eight `i32` lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// `acc += Σ a·b` over 32 codes: `|a|` times `b` with `a`'s signs, pairs to `i16` (no
/// saturation: at most 2·127²), then to `i32`.
#[inline]
#[target_feature(enable = "avx2")]
fn step(acc: __m256i, abs_a: __m256i, a: __m256i, b: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(abs_a, _mm256_sign_epi8(b, a));
    _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// `R × C` dot products of rows `xs` with rows `ys` (all of `len` codes, a multiple of 32).
#[inline]
#[target_feature(enable = "avx2")]
fn tile(xs: [&[i8]; R], ys: [&[i8]; C], len: usize) -> [[i32; C]; R] {
    let mut acc = [[_mm256_setzero_si256(); C]; R];
    let mut at = 0;
    while at < len {
        let a = [load(xs[0], at), load(xs[1], at)];
        let abs = [_mm256_abs_epi8(a[0]), _mm256_abs_epi8(a[1])];
        for c in 0..C {
            let b = load(ys[c], at);
            for r in 0..R {
                acc[r][c] = step(acc[r][c], abs[r], a[r], b);
            }
        }
        at += 32;
    }
    let mut out = [[0; C]; R];
    for r in 0..R {
        out[r] = hsum4(acc[r]);
    }
    out
}

/// One dot product (the tiles' edges).
#[inline]
#[target_feature(enable = "avx2")]
fn single(x: &[i8], y: &[i8], len: usize) -> i32 {
    let mut acc = _mm256_setzero_si256();
    let mut at = 0;
    while at < len {
        let a = load(x, at);
        acc = step(acc, _mm256_abs_epi8(a), a, load(y, at));
        at += 32;
    }
    hsum(acc)
}

#[target_feature(enable = "avx2")]
pub(super) fn dots((ca, a): Side<'_>, (cb, b): Side<'_>, out: &mut [i32]) {
    let len = ca.stride;
    let width = b.len();
    let mut jb = b.start;
    while jb < b.end {
        let je = (jb + JB).min(b.end);
        let mut i = a.start;
        while i < a.end {
            let mut j = jb;
            if i + R <= a.end {
                let xs = [ca.row(i), ca.row(i + 1)];
                while j + C <= je {
                    let ys = [cb.row(j), cb.row(j + 1), cb.row(j + 2), cb.row(j + 3)];
                    let t = tile(xs, ys, len);
                    for (r, tr) in t.iter().enumerate() {
                        let o = (i + r - a.start) * width + (j - b.start);
                        out[o..o + C].copy_from_slice(tr);
                    }
                    j += C;
                }
            }
            for ii in i..(i + R).min(a.end) {
                let x = ca.row(ii);
                for jj in j..je {
                    out[(ii - a.start) * width + (jj - b.start)] = single(x, cb.row(jj), len);
                }
            }
            i += R;
        }
        jb = je;
    }
}
