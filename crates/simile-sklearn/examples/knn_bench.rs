//! Speed of the exact backend: `cargo run --release -p simile-sklearn --example knn_bench`.
//!
//! Optional arguments: `N DIM QUERIES` (default 100000 512 50). Prints, for the cosine metric and
//! k = 10 unless stated otherwise, the median (and the minimum) query time on N rows and on 20k
//! rows, then upsert / persist / open times (median and minimum of 3) and the peak RSS. Data is
//! uniform random in [-1, 1); queries alternate between stored rows and fresh vectors.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use simile_index::conformance::random_vectors;
use simile_index::{Embeddings, KnnQuery, Metric, SimilarityBackend};
use simile_sklearn::SklearnIndex;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `median ms (min ms)`.
fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    format!("{:9.3} ms  (min {:.3})", ms(v[v.len() / 2]), ms(v[0]))
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

const K10: Shape<'static> = Shape {
    k: Some(10),
    reverse: false,
    restrict: None,
};

/// Times `queries` k-NN queries (stored rows and fresh vectors, alternating).
fn time_queries(
    index: &SklearnIndex,
    batch: &Embeddings,
    queries: usize,
    shape: Shape<'_>,
) -> String {
    let query = |vector| KnnQuery {
        vector,
        k: shape.k,
        reverse: shape.reverse,
        restrict: shape.restrict,
        restrict_token: None,
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
    stats(times)
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
        "sklearn backend bench: {n}x{dim}, {queries} queries per line, {} threads available",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );

    let batch = Embeddings::for_samples(dim, random_vectors(n, dim, 1), ids(n)).unwrap();
    let dir = std::env::temp_dir().join(format!("simile-sklearn-bench-{}", std::process::id()));

    // Upsert into a fresh index, 3 times; the last index is kept (stored in `dir`).
    let mut upserts = Vec::new();
    let mut index = None;
    for _ in 0..3 {
        drop(index.take());
        let fresh = SklearnIndex::create(&dir, Metric::Cosine).unwrap();
        let t = Instant::now();
        fresh.upsert(&batch).unwrap();
        upserts.push(t.elapsed());
        index = Some(fresh);
    }
    let index = index.unwrap();
    println!("upsert {n}x{dim} into an empty index  {}", stats(upserts));

    println!(
        "knn cosine k=10                   {}",
        time_queries(&index, &batch, queries, K10)
    );
    let rev = Shape {
        reverse: true,
        ..K10
    };
    println!(
        "knn cosine k=10 reverse           {}",
        time_queries(&index, &batch, queries, rev)
    );
    let k100 = Shape {
        k: Some(100),
        ..K10
    };
    println!(
        "knn cosine k=100                  {}",
        time_queries(&index, &batch, queries, k100)
    );
    let half: Vec<String> = batch.keys().iter().step_by(2).cloned().collect();
    let view = Shape {
        restrict: Some(&half),
        ..K10
    };
    println!(
        "knn cosine k=10, view of n/2      {}",
        time_queries(&index, &batch, queries, view)
    );
    let all = Shape { k: None, ..K10 };
    println!(
        "knn cosine k=None (rank all n)    {}",
        time_queries(&index, &batch, queries.min(9), all)
    );

    for metric in [Metric::Euclidean, Metric::DotProduct] {
        let other = SklearnIndex::in_memory(metric);
        other.upsert(&batch).unwrap();
        println!(
            "knn {metric:<10} k=10            {}",
            time_queries(&other, &batch, queries, K10)
        );
    }

    let small_n = 20_000.min(n);
    let small_batch = batch.select_rows(&(0..small_n).collect::<Vec<_>>());
    let small = SklearnIndex::in_memory(Metric::Cosine);
    small.upsert(&small_batch).unwrap();
    println!(
        "knn cosine k=10 on {small_n} rows      {}",
        time_queries(&small, &small_batch, queries, K10)
    );
    drop((small, small_batch));

    // Persist 3 times (one changed row in between, so there is something to write).
    let mut persists = Vec::new();
    for i in 0..3 {
        let one = Embeddings::for_samples(
            dim,
            random_vectors(1, dim, 5 + i),
            vec![batch.keys()[0].clone()],
        )
        .unwrap();
        index.upsert(&one).unwrap();
        let t = Instant::now();
        index.persist().unwrap();
        persists.push(t.elapsed());
    }
    let size = std::fs::metadata(index.file_path().unwrap())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "persist {n}x{dim} ({:.1} MiB)     {}",
        size as f64 / (1 << 20) as f64,
        stats(persists)
    );
    drop(index);
    drop(batch);

    let mut opens = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let opened = SklearnIndex::open(&dir).unwrap();
        opens.push(t.elapsed());
        assert_eq!(opened.size().unwrap(), n);
    }
    println!("open {n}x{dim} (warm page cache)  {}", stats(opens));
    SklearnIndex::open(&dir).unwrap().cleanup().unwrap();

    if let Some(rss) = peak_rss_mib() {
        println!(
            "peak RSS {rss:.1} MiB (one index holds about {:.1} MiB: f32 rows + int8 codes; \
             the bench also holds the input batch)",
            (n * dim * 5 + n * 8) as f64 / (1 << 20) as f64
        );
    }
}
