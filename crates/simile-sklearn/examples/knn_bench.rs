//! Speed of the exact backend: `cargo run --release -p simile-sklearn --example knn_bench`.
//!
//! Optional arguments: `N DIM QUERIES` (default 100000 512 50). Prints median query times for the
//! full size and for 20k rows, upsert / persist / open times and the peak RSS.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use simile_index::conformance::random_vectors;
use simile_index::{Embeddings, KnnQuery, Metric, SimilarityBackend};
use simile_sklearn::SklearnIndex;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{:024x}", 0x6543_0000_0000u64 + i as u64))
        .collect()
}

/// What to ask, apart from the vector.
#[derive(Clone, Copy)]
struct Shape<'a> {
    k: Option<usize>,
    reverse: bool,
    restrict: Option<&'a [String]>,
}

/// Median time of `queries` k-NN queries (stored rows and fresh vectors, alternating).
fn time_queries(
    index: &SklearnIndex,
    batch: &Embeddings,
    queries: usize,
    shape: Shape<'_>,
) -> Duration {
    let query = |vector| KnnQuery {
        vector,
        k: shape.k,
        reverse: shape.reverse,
        restrict: shape.restrict,
    };
    let dim = batch.dim();
    let fresh = random_vectors(queries, dim, 999);
    // Warm up (page in, thread start-up paths).
    index.knn(&query(batch.row(0))).unwrap();
    let times: Vec<Duration> = (0..queries)
        .map(|i| {
            let q: &[f32] = if i % 2 == 0 {
                batch.row((i * 7919) % batch.len())
            } else {
                &fresh[i * dim..(i + 1) * dim]
            };
            let q = query(q);
            let t = Instant::now();
            let hits = index.knn(&q).unwrap();
            let e = t.elapsed();
            assert!(!hits.is_empty());
            e
        })
        .collect();
    median(times)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(100_000);
    let dim = args.get(1).copied().unwrap_or(512);
    let queries = args.get(2).copied().unwrap_or(50);
    println!(
        "sklearn backend bench: {n}x{dim}, {queries} queries per measure, {} threads available",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );

    let t = Instant::now();
    let batch = Embeddings::for_samples(dim, random_vectors(n, dim, 1), ids(n)).unwrap();
    println!(
        "generate data                      {:8.1} ms",
        ms(t.elapsed())
    );

    let index = SklearnIndex::in_memory(Metric::Cosine);
    let t = Instant::now();
    index.upsert(&batch).unwrap();
    println!("upsert {n}x{dim}                {:8.1} ms", ms(t.elapsed()));

    let k10 = Shape {
        k: Some(10),
        reverse: false,
        restrict: None,
    };
    println!(
        "knn cosine k=10, {n} rows        {:8.3} ms (median)",
        ms(time_queries(&index, &batch, queries, k10))
    );
    let rev = Shape {
        reverse: true,
        ..k10
    };
    println!(
        "knn cosine k=10 reverse            {:8.3} ms",
        ms(time_queries(&index, &batch, queries, rev))
    );
    let half: Vec<String> = batch.keys().iter().step_by(2).cloned().collect();
    let view = Shape {
        restrict: Some(&half),
        ..k10
    };
    println!(
        "knn cosine k=10, view of {:6}    {:8.3} ms",
        half.len(),
        ms(time_queries(&index, &batch, queries, view))
    );
    let all = Shape { k: None, ..k10 };
    println!(
        "knn cosine k=None (rank all)       {:8.3} ms",
        ms(time_queries(&index, &batch, queries.min(9), all))
    );

    for metric in [Metric::Euclidean, Metric::DotProduct] {
        let other = SklearnIndex::in_memory(metric);
        other.upsert(&batch).unwrap();
        println!(
            "knn {metric:<10} k=10              {:8.3} ms",
            ms(time_queries(&other, &batch, queries, k10))
        );
    }

    let small_n = 20_000.min(n);
    let small_batch = batch.select_rows(&(0..small_n).collect::<Vec<_>>());
    let small = SklearnIndex::in_memory(Metric::Cosine);
    small.upsert(&small_batch).unwrap();
    println!(
        "knn cosine k=10, {small_n} rows         {:8.3} ms (median)",
        ms(time_queries(&small, &small_batch, queries, k10))
    );
    drop(small);

    let dir = std::env::temp_dir().join(format!("simile-sklearn-bench-{}", std::process::id()));
    let disk = SklearnIndex::create(&dir, Metric::Cosine).unwrap();
    disk.upsert(&batch).unwrap();
    let t = Instant::now();
    disk.persist().unwrap();
    let persist = t.elapsed();
    let size = std::fs::metadata(disk.file_path().unwrap())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "persist {n}x{dim}               {:8.1} ms ({:.1} MiB)",
        ms(persist),
        size as f64 / (1 << 20) as f64
    );
    drop(disk);
    let t = Instant::now();
    let opened = SklearnIndex::open(&dir).unwrap();
    println!("open {n}x{dim}                  {:8.1} ms", ms(t.elapsed()));
    assert_eq!(opened.size().unwrap(), n);
    opened.cleanup().unwrap();

    if let Some(rss) = peak_rss_mib() {
        println!(
            "peak RSS                           {rss:8.1} MiB (data itself: {:.1} MiB per copy)",
            (n * dim * 4) as f64 / (1 << 20) as f64
        );
    }
}
