//! Streaming build and cold start of a file-backed exact index at scale:
//! `cargo run --release -p simile-sklearn --example cold_load -- DIR [N DIM]` (default 1000000 512).
//!
//! Three phases, each in a fresh process (this binary re-runs itself): `build` creates a cosine
//! index in `DIR` through `reserve(N)`, 16384-row `upsert`s of uniform random vectors and
//! `persist`, reporting the time spent in those calls and the peak RSS (`VmHWM`); `query` opens it,
//! runs one query (k = 10) and then a second one, reporting open, first-query and warm-query
//! times and the RSS; `bandwidth` measures memory bandwidth with a `memcpy` loop, so each figure
//! can be set beside its physical limit (bytes touched ÷ bandwidth). `DIR` is deleted at the end.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use simile_index::{Embeddings, KnnQuery, Metric, SimilarityBackend};
use simile_sklearn::SklearnIndex;

const BATCH: usize = 16384;

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Uniform values in [-1, 1) from a xorshift stream.
fn fill(out: &mut [f32], seed: &mut u64) {
    for v in out {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *v = (*seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    }
}

fn build(dir: &str, n: usize, dim: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let mut spent = Duration::ZERO;
    let started = Instant::now();
    let index = SklearnIndex::create(dir, Metric::Cosine).unwrap();
    index.reserve(n).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut start = 0;
    while start < n {
        let rows = BATCH.min(n - start);
        let mut data = vec![0f32; rows * dim];
        fill(&mut data, &mut seed);
        let keys = (start..start + rows)
            .map(|i| format!("{:024x}", 0x6543_0000_0000u64 + i as u64))
            .collect();
        let batch = Embeddings::for_samples(dim, data, keys).unwrap();
        let t = Instant::now();
        index.upsert(&batch).unwrap();
        spent += t.elapsed();
        start += rows;
    }
    let t = Instant::now();
    index.persist().unwrap();
    let persist = t.elapsed();
    spent += persist;
    let bytes = std::fs::metadata(index.file_path().unwrap()).unwrap().len();
    println!(
        "build: {n} x {dim}: reserve+upsert+persist {:.0} ms (persist {:.0} ms; wall with data generation {:.0} ms), file {:.0} MiB, peak RSS {:.0} MiB",
        ms(spent),
        ms(persist),
        ms(started.elapsed()),
        bytes as f64 / (1 << 20) as f64,
        status_mib("VmHWM:")
    );
}

fn query(dir: &str) {
    let started = Instant::now();
    let index = SklearnIndex::open(dir).unwrap();
    let open = started.elapsed();
    let dim = index.dim().unwrap().unwrap();
    let mut q = vec![0f32; dim];
    fill(&mut q, &mut 12345);
    let t = Instant::now();
    let hits = index.knn(&KnnQuery::nearest(&q, 10)).unwrap();
    let first = t.elapsed();
    let t = Instant::now();
    let again = index.knn(&KnnQuery::nearest(&q, 10)).unwrap();
    let warm = t.elapsed();
    assert_eq!(hits, again);
    println!(
        "query: {} rows: open {:.2} ms, first query {:.1} ms, warm query {:.1} ms, process start to here {:.0} ms; RSS {:.0} MiB, peak {:.0} MiB",
        index.size().unwrap(),
        ms(open),
        ms(first),
        ms(warm),
        ms(started.elapsed()),
        status_mib("VmRSS:"),
        status_mib("VmHWM:")
    );
}

/// Copy bandwidth in GB/s (bytes read + written per second), best of a few rounds.
fn bandwidth() {
    let len = 256 << 20;
    let src = vec![1u8; len];
    let mut dst = vec![0u8; len];
    let mut best = f64::INFINITY;
    for _ in 0..6 {
        let t = Instant::now();
        dst.copy_from_slice(&src);
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(&mut dst);
    }
    println!(
        "bandwidth: memcpy of {} MiB: {:.1} GB/s read+write ({:.1} GB/s copied)",
        len >> 20,
        2.0 * len as f64 / best / 1e9,
        len as f64 / best / 1e9
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--build") => build(&args[2], args[3].parse().unwrap(), args[4].parse().unwrap()),
        Some("--query") => query(&args[2]),
        Some("--bandwidth") => bandwidth(),
        Some(dir) => {
            let n = args.get(2).map_or("1000000", String::as_str);
            let dim = args.get(3).map_or("512", String::as_str);
            let me = std::env::current_exe().unwrap();
            let run = |a: &[&str]| {
                let ok = Command::new(&me).args(a).status().unwrap().success();
                assert!(ok, "{a:?} failed");
            };
            run(&["--bandwidth"]);
            run(&["--build", dir, n, dim]);
            run(&["--query", dir]);
            run(&["--query", dir]);
            std::fs::remove_dir_all(dir).unwrap();
        }
        None => println!("usage: cold_load DIR [N DIM]"),
    }
}
