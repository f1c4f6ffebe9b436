//! Near-duplicate benchmarks (`cargo xtask bench` runs each phase in its own process, so peak
//! RSS is per phase). Data: N random 512-d vectors in [-1, 1) with 1 % planted near-duplicates
//! (a copy of another row + 0.01 · uniform noise), cosine, on the exact backend.
//!
//! `dup_bench dups N THRESH [exact|clustered [CELLS]|auto]` · `dup_bench unique N COUNT` · `dup_bench uniqueness N` ·
//! `dup_bench gemm`: prints one JSON line. A last argument `milvus` puts the index on the Milvus
//! server of `SIMILE_TEST_MILVUS_URI` (`_USER`, `_PASSWORD`).
//!
//! As a user meets it: `dup_bench build N HOME` persists the dataset `d` and its index `emb` in
//! the simile home HOME; `dup_bench open-dups HOME THRESH` is then a fresh process that opens
//! them and calls `find_duplicates(THRESH)` (its peak RSS is the whole process's: run it under
//! GNU `time`).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use rand::{Rng, SeedableRng};
use simile::ndarray::Array2;
use simile::{
    DuplicatesBy, DuplicatesMethod, DuplicatesSearch, NewSample, SimilarityOptions,
    UniquenessSource,
};

const DIM: usize = 512;

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss_mb;

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5), so a phase's peak excludes the
/// set-up before it; returns the RSS at that point in MB.
fn reset_peak_rss() -> f64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    peak_rss_mb()
}

fn planted(n: usize) -> (Array2<f32>, usize) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut m = Array2::from_shape_fn((n, DIM), |_| rng.random_range(-1.0f32..1.0));
    let planted = n / 100;
    for k in 0..planted {
        let dst = n - 1 - k;
        let src = rng.random_range(0..n - planted);
        let row = m.row(src).to_owned();
        for (x, s) in m.row_mut(dst).iter_mut().zip(row.iter()) {
            *x = s + 0.01 * rng.random_range(-1.0f32..1.0);
        }
    }
    (m, planted)
}

#[path = "common/milvus.rs"]
mod milvus;
use milvus::milvus_config;

fn index(
    n: usize,
    milvus: bool,
) -> (
    tempfile::TempDir,
    simile::Dataset,
    simile::SimilarityIndex,
    usize,
) {
    let home = tempfile::tempdir().unwrap();
    let (ds, index, planted) = index_in(home.path(), n, milvus);
    (home, ds, index, planted)
}

/// The dataset `d` of `n` samples and its index `emb` (brain key) in the simile home `home`.
fn index_in(
    home: &std::path::Path,
    n: usize,
    milvus: bool,
) -> (simile::Dataset, simile::SimilarityIndex, usize) {
    let simile = simile::Simile::builder()
        .settings(simile::Settings::for_home(home))
        .brain_config(if milvus {
            milvus_config()
        } else {
            simile::BrainConfig::default()
        })
        .open()
        .unwrap();
    let ds = simile.create_dataset("d").unwrap();
    ds.add_samples((0..n).map(|i| NewSample::new(format!("{i}.jpg"))).collect())
        .unwrap();
    let (emb, planted) = planted(n);
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("emb")
                .metric(simile::Metric::Cosine)
                .embeddings(emb),
        )
        .unwrap();
    if milvus {
        settle();
    }
    (ds, index, planted)
}

/// Busy fraction of the machine's CPUs over `window` (from `/proc/stat`), or `None` off Linux.
fn busy_over(window: std::time::Duration) -> Option<f64> {
    let read = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let idle = cpu.get(3)? + cpu.get(4).copied().unwrap_or(0);
        Some((cpu.iter().sum(), idle))
    };
    let (t0, i0) = read()?;
    std::thread::sleep(window);
    let (t1, i1) = read()?;
    let total = t1.saturating_sub(t0).max(1) as f64;
    Some(1.0 - i1.saturating_sub(i0) as f64 / total)
}

/// Waits (at most 5 minutes) until the machine is idle for 3 s in a row: a Milvus server keeps
/// building its index and sealing segments in the background after an insert, on the same 2
/// cores the call under test needs. Users deduplicate existing collections, so the row measures
/// the settled server; the wait is reported in the JSON (`milvus_settle_s`).
fn settle() {
    let t = Instant::now();
    let mut quiet = 0;
    while quiet < 3 && t.elapsed().as_secs() < 300 {
        match busy_over(std::time::Duration::from_secs(1)) {
            Some(b) if b < 0.15 => quiet += 1,
            Some(_) => quiet = 0,
            None => return,
        }
    }
    let _ = SETTLED.set(t.elapsed().as_secs_f64());
}

/// Seconds `settle` waited for the Milvus server.
static SETTLED: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// The JSON of a `dups` result: planted copies found (the last rows) and how it searched.
fn dups_json(ids: &[String], planted: usize, d: &simile::Duplicates) -> serde_json::Value {
    let dups: std::collections::HashSet<&String> = d.duplicate_ids.iter().collect();
    let found = ids[ids.len() - planted..]
        .iter()
        .filter(|id| dups.contains(id))
        .count();
    let method = match d.method {
        DuplicatesMethod::Exact => serde_json::json!("exact"),
        DuplicatesMethod::Clustered { cells, recall } => serde_json::json!({
            "cells": cells, "sampled_rows": recall.sampled_rows,
            "near_pairs": recall.near_pairs, "same_cell": recall.same_cell,
            "recall": recall.ratio(),
        }),
    };
    serde_json::json!({"n": ids.len(), "thresh": d.thresh, "duplicates": d.duplicate_ids.len(), "unique": d.unique_ids.len(), "planted": planted, "planted_found": found, "method": method})
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // A last argument `milvus` puts the index on the Milvus server of SIMILE_TEST_MILVUS_URI.
    let milvus = args.last().is_some_and(|a| a == "milvus");
    if milvus {
        args.pop();
    }
    let index = |n: usize| index(n, milvus);
    let what = args.first().map_or("gemm", String::as_str);
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let out = match what {
        "dups" => {
            let thresh: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0.1);
            let search = match args.get(3).map(String::as_str) {
                Some("exact") => DuplicatesSearch::Exact,
                Some("clustered") => DuplicatesSearch::Clustered {
                    cells: args.get(4).and_then(|s| s.parse().ok()),
                },
                _ => DuplicatesSearch::Auto,
            };
            let (_h, ds, index, planted) = index(n);
            let ids = ds.view().ids().unwrap();
            let base = reset_peak_rss();
            let t = Instant::now();
            let d = index
                .find_duplicates_with(Some(DuplicatesBy::Thresh(thresh)), search)
                .unwrap();
            let secs = t.elapsed().as_secs_f64();
            // The planted copies are the last rows; each should be found as a duplicate.
            let mut v = dups_json(&ids, planted, &d);
            v["seconds"] = secs.into();
            v["peak_rss_mb"] = peak_rss_mb().into();
            v["rss_before_mb"] = base.into();
            if let Some(w) = SETTLED.get() {
                v["milvus_settle_s"] = (*w).into();
            }
            v
        }
        "build" => {
            let home = std::path::PathBuf::from(args.get(2).expect("build N HOME"));
            let t = Instant::now();
            let (_ds, index, planted) = index_in(&home, n, milvus);
            serde_json::json!({"n": n, "planted": planted, "size": index.total_index_size().unwrap(), "seconds": t.elapsed().as_secs_f64()})
        }
        "open-dups" => {
            // A fresh process, as `simile similarity duplicates` runs: open, load, call.
            let home = std::path::PathBuf::from(args.get(1).expect("open-dups HOME THRESH"));
            let thresh: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0.1);
            let t = Instant::now();
            let simile = simile::Simile::builder()
                .settings(simile::Settings::for_home(&home))
                .open()
                .unwrap();
            let ds = simile.load_dataset("d").unwrap();
            let index = ds.load_brain_results("emb").unwrap();
            let open_secs = t.elapsed().as_secs_f64();
            let rss_open = peak_rss_mb();
            let t = Instant::now();
            let d = index
                .find_duplicates(Some(DuplicatesBy::Thresh(thresh)))
                .unwrap();
            let secs = t.elapsed().as_secs_f64();
            let ids = ds.view().ids().unwrap();
            let mut v = dups_json(&ids, ids.len() / 100, &d);
            v["seconds"] = secs.into();
            v["open_seconds"] = open_secs.into();
            v["peak_rss_mb"] = peak_rss_mb().into();
            v["peak_rss_after_open_mb"] = rss_open.into();
            v
        }
        "unique" => {
            let count: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(n / 2);
            let (_h, _ds, index, _) = index(n);
            let base = reset_peak_rss();
            let t = Instant::now();
            let d = index.find_unique(count).unwrap();
            let secs = t.elapsed().as_secs_f64();
            serde_json::json!({"n": n, "count": count, "got": d.unique_ids.len(), "seconds": secs, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base})
        }
        "uniqueness" => {
            let (_h, ds, _index, _) = index(n);
            let base = reset_peak_rss();
            let t = Instant::now();
            ds.view()
                .compute_uniqueness("uniqueness", UniquenessSource::BrainKey("emb".into()))
                .unwrap();
            let secs = t.elapsed().as_secs_f64();
            serde_json::json!({"n": n, "seconds": secs, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base})
        }
        _ => {
            // The GEMM rate this build reaches on two threads (the all-pairs floor).
            let m = 4096;
            let a = Array2::from_shape_fn((m, DIM), |(i, j)| ((i * 7 + j) % 13) as f32 * 0.1);
            let b = Array2::from_shape_fn((m, DIM), |(i, j)| ((i * 3 + j) % 11) as f32 * 0.1);
            let _ = a.slice(simile::ndarray::s![..256, ..]).dot(&b.t());
            let t = Instant::now();
            let half = m / 2;
            std::thread::scope(|s| {
                let h = s.spawn(|| a.slice(simile::ndarray::s![..half, ..]).dot(&b.t()));
                let _ = a.slice(simile::ndarray::s![half.., ..]).dot(&b.t());
                let _ = h.join();
            });
            let secs = t.elapsed().as_secs_f64();
            let gflops = 2.0 * (m * m * DIM) as f64 / secs / 1e9;
            serde_json::json!({"gflops": gflops})
        }
    };
    println!("{out}");
}
