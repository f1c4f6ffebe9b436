//! The AVX-512 VNNI kernel of `int8_pairs`: EVEX `vpdpbusd` (inline asm), a 3 × 4 register tile.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::Side;

/// Rows of the register tile.
const R: usize = 3;
/// Columns of the register tile (3 × 4 accumulators + 3 rows + 1 column: 16 registers).
const C: usize = 4;
/// Bytes of right-hand rows per block (in L2; 32 to 1024 rows): short rows take wide blocks, so
/// each output row is written in long runs.
const JB_BYTES: usize = 65536;

/// AVX-512 VNNI with AVX-512VL (EVEX `vpdpbusd` on 256-bit registers) and an OS that saves
/// the AVX-512 state (which `avx512f` detection checks).
pub(super) fn detected() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        use std::arch::is_x86_feature_detected as has;
        // CPUID leaf 7, ECX bit 11: AVX512_VNNI.
        #[allow(unused_unsafe)]
        // SAFETY: CPUID leaf 7 exists on every CPU with AVX-512 (checked first).
        let vnni = || unsafe { __cpuid_count(7, 0) }.ecx & (1 << 11) != 0;
        has!("avx2") && has!("avx512f") && has!("avx512vl") && vnni()
    })
}

#[inline]
#[target_feature(enable = "avx2")]
fn load<T>(v: &[T], at: usize) -> __m256i {
    assert!(size_of::<T>() == 1 && at + 32 <= v.len());
    // SAFETY: 32 readable bytes at `at` (bytes, checked above); `loadu` needs no alignment.
    unsafe { _mm256_loadu_si256(v.as_ptr().add(at).cast::<__m256i>()) }
}

/// `acc += Σ u·s` in groups of four (`u` unsigned bytes, `s` signed), wrapping.
/// `acc += Σ u·s` in groups of four (`u` unsigned bytes, `s` signed), wrapping: EVEX
/// `vpdpbusd` on ymm registers (callers check VNNI + VL first).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn dpbusd(mut acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    // SAFETY: callers run only where `detected()` holds: the CPU executes EVEX vpdpbusd on
    // ymm registers. The instruction reads and writes registers only.
    unsafe {
        asm!(
            "{{evex}} vpdpbusd {acc}, {u}, {s}",
            acc = inout(ymm_reg) acc,
            u = in(ymm_reg) u,
            s = in(ymm_reg) s,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

use super::avx2::{hsum, hsum4};

/// `R × C` sums `Σ (a+128)·b` (wrapping) of unsigned rows `xs` with signed rows `ys`.
#[inline]
#[target_feature(enable = "avx2")]
fn tile(xs: [&[u8]; R], ys: [&[i8]; C], len: usize) -> [[i32; C]; R] {
    let mut acc = [[_mm256_setzero_si256(); C]; R];
    let mut at = 0;
    while at < len {
        let a = [load(xs[0], at), load(xs[1], at), load(xs[2], at)];
        for c in 0..C {
            let b = load(ys[c], at);
            for r in 0..R {
                acc[r][c] = dpbusd(acc[r][c], a[r], b);
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

#[inline]
#[target_feature(enable = "avx2")]
fn single(x: &[u8], y: &[i8], len: usize) -> i32 {
    let mut acc = _mm256_setzero_si256();
    let mut at = 0;
    while at < len {
        acc = dpbusd(acc, load(x, at), load(y, at));
        at += 32;
    }
    hsum(acc)
}

/// Safety: only where [`detected`] holds, with `ca.ucodes` and `cb.sums` filled.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dots((ca, a): Side<'_>, (cb, b): Side<'_>, out: &mut [i32]) {
    let len = ca.stride;
    let urow = |i: usize| &ca.ucodes[i * len..(i + 1) * len];
    let width = b.len();
    let mut jb = b.start;
    while jb < b.end {
        let je = (jb + (JB_BYTES / len).clamp(32, 1024)).min(b.end);
        let mut i = a.start;
        while i < a.end {
            let mut j = jb;
            if i + R <= a.end {
                let xs = [urow(i), urow(i + 1), urow(i + 2)];
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
                for jj in j..je {
                    out[(ii - a.start) * width + (jj - b.start)] =
                        single(urow(ii), cb.row(jj), len);
                }
            }
            i += R;
        }
        jb = je;
    }
    // `Σ (a+128)·b − 128·Σb = a·b`; the true result fits an `i32`, so wrapping is exact.
    for row in out.chunks_exact_mut(width) {
        for (o, j) in row.iter_mut().zip(b.clone()) {
            *o = o.wrapping_sub(cb.sums[j].wrapping_mul(128));
        }
    }
}
