//! `A · Bᵀ` for row-major f32 matrices on every core: the `gemm` crate's kernels (AVX-512 or
//! AVX2/FMA, chosen at run time), rows of `A` split over threads. Every kernel sums in f32; the
//! callers' error bounds hold for any summation order, so answers do not depend on the path.
use ndarray::{Array2, ArrayView2};

/// `a · bᵀ` (`a`: m × k, `b`: n × k) → m × n, on every core.
pub(crate) fn dot_t(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    dot_t_on(a, b, cores())
}

/// `a · bᵀ` on at most `threads` threads (1: on the caller's thread).
pub(crate) fn dot_t_on(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    threads: usize,
) -> Array2<f32> {
    let (m, n) = (a.nrows(), b.nrows());
    let mut out = Vec::new();
    dot_t_into(a, b, threads, &mut out);
    Array2::from_shape_vec((m, n), out).unwrap_or_else(|_| Array2::zeros((m, n)))
}

/// `a · bᵀ` into `out` (row-major m × n), reusing its allocation: callers that multiply block
/// after block keep one buffer instead of faulting in fresh pages for every block.
pub(crate) fn dot_t_into(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    threads: usize,
    out: &mut Vec<f32>,
) {
    let (m, k) = a.dim();
    let n = b.nrows();
    assert_eq!(b.ncols(), k, "inner dimensions agree");
    out.clear();
    out.resize(m * n, 0.0);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let a = a.as_standard_layout();
    let b = b.as_standard_layout();
    let (Some(a), Some(b)) = (a.as_slice(), b.as_slice()) else {
        // as_standard_layout always yields a contiguous array.
        for (o, v) in out.iter_mut().zip(a.dot(&b.t()).iter()) {
            *o = *v;
        }
        return;
    };
    let threads = threads.min(m.div_ceil(64)).max(1);
    let rows = m.div_ceil(threads);
    std::thread::scope(|s| {
        for (t, chunk) in out.chunks_mut(rows * n).enumerate() {
            let r0 = t * rows;
            let mr = chunk.len() / n;
            let lhs = &a[r0 * k..(r0 + mr) * k];
            s.spawn(move || {
                // SAFETY: `chunk` is mr × n (row stride n, column stride 1), `lhs` is mr × k
                // (row stride k), `b` is n × k read as the k × n matrix Bᵀ (element (kk, j) at
                // j·k + kk: column stride k, row stride 1); all three slices cover exactly those
                // extents and `chunk` is not aliased. With read_dst = false the destination is
                // only written.
                unsafe {
                    gemm::gemm(
                        mr,
                        n,
                        k,
                        chunk.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        lhs.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        k as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            });
        }
    });
}

thread_local! {
    /// Threads a product may use from this thread (`None`: every core).
    static THREADS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The threads a product started on this thread may use: every core, unless the caller is
/// itself one of several workers ([`single_threaded`]).
pub(crate) fn cores() -> usize {
    THREADS
        .with(|t| t.get())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |t| t.get()))
}

/// Runs `f` with every product on this thread kept to this thread (for workers that already
/// split the work across the cores).
pub(crate) fn single_threaded<T>(f: impl FnOnce() -> T) -> T {
    let before = THREADS.with(|t| t.replace(Some(1)));
    let out = f();
    THREADS.with(|t| t.set(before));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ndarray() {
        let a = Array2::from_shape_fn((300, 37), |(i, j)| ((i * 7 + j * 3) % 17) as f32 - 8.0);
        let b = Array2::from_shape_fn((129, 37), |(i, j)| ((i * 5 + j) % 11) as f32 - 5.0);
        assert_eq!(dot_t(a.view(), b.view()), a.dot(&b.t()));
        // Non-contiguous inputs (a column slice) too.
        let bs = b.slice(ndarray::s![.., 1..30]);
        let as_ = a.slice(ndarray::s![.., 1..30]);
        assert_eq!(dot_t(as_, bs), as_.dot(&bs.t()));
    }
}
