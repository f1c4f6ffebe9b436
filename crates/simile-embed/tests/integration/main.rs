//! simile-embed integration tests. Tests that run a model need ONNX Runtime: set
//! `SIMILE_ORT_DYLIB_PATH` (in a checkout: `cargo xtask models fetch-ort` prints the path;
//! `cargo xtask ci` sets it).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
mod download;
mod engine;
mod golden;
mod int8;

use std::path::PathBuf;

pub fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/assets")
}

/// The ONNX Runtime library for tests; panics with instructions when it is not configured.
pub fn ort_path() -> PathBuf {
    match std::env::var_os("SIMILE_ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "SIMILE_ORT_DYLIB_PATH is not set. Run `cargo xtask models fetch-ort` and export the \
             path it prints (or run the suite through `cargo xtask ci`)."
        ),
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
