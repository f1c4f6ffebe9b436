//! The dataset store at scale: adding N samples, `head`, pages at any offset, counts, and the
//! materialisation of similarity-sort results, each timed in one fresh process. Prints one JSON
//! line.
//!
//! `cargo run --release -p simile --example store_bench -- N HOME`
//!
//! The index is built from N × 16 random vectors in memory (its build is not what is measured;
//! `sort_ms` is the whole sort, `*_materialise_ms` only turning its result into samples).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde_json::json;
use simile::ndarray::Array2;
use simile::{NewSample, Query, Settings, SimilarityOptions, Simile, SortOptions};

fn ms<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64() * 1e3)
}

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss_mb;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args[0].parse().unwrap();
    let home = args[1].as_str();
    let _ = std::fs::remove_dir_all(home);
    let simile = Simile::builder()
        .settings(Settings::for_home(home))
        .open()
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);

    let ds = simile.create_dataset("store").unwrap();
    let (ids, add_ms) = ms(|| {
        ds.add_samples(
            (0..n)
                .map(|i| NewSample::new(format!("/data/{i}.jpg")))
                .collect(),
        )
        .unwrap()
    });

    let (count, count_ms) = ms(|| ds.view().count().unwrap());
    assert_eq!(count, n);
    let (head, head_ms) = ms(|| ds.view().head(10).unwrap());
    assert_eq!(head[0].id(), ids[0]);
    let far = n.saturating_sub(1000);
    let (page, page_far_ms) = ms(|| ds.view().page(far, 50).unwrap());
    assert_eq!(page.samples[0].id(), ids[far]);
    let (page, page_mid_ms) = ms(|| ds.view().skip(n / 2).head(50).unwrap());
    assert_eq!(page[0].id(), ids[n / 2]);

    let emb = Array2::from_shape_fn((n, 16), |_| rng.random_range(-1.0f32..1.0));
    ds.compute_similarity(
        SimilarityOptions::new()
            .brain_key("sim")
            .metric(simile::Metric::Cosine)
            .embeddings(emb),
    )
    .unwrap();
    let q = ids[rng.random_range(0..n)].clone();
    let (top, sort_ms) = ms(|| {
        ds.sort_by_similarity(Query::id(&q), SortOptions::new().k(10).brain_key("sim"))
            .unwrap()
    });
    let (samples, sort_materialise_ms) = ms(|| top.samples().unwrap());
    assert_eq!(samples.len(), 10);
    assert_eq!(samples[0].id(), q);
    // Every sample ranked (no k), then pages of it.
    let all = ds
        .sort_by_similarity(Query::id(&q), SortOptions::new().brain_key("sim"))
        .unwrap();
    let (first, all_first_page_ms) = ms(|| all.head(50).unwrap());
    assert_eq!(first[0].id(), q);
    let (p, all_far_page_cold_ms) = ms(|| all.page(far, 50).unwrap());
    assert_eq!(p.total, n);
    let (_, all_far_page_ms) = ms(|| all.page(far + 50, 50).unwrap());

    // A hole in the middle: the whole dataset pages through its page index.
    ds.delete_samples(&ids[n / 2..n / 2 + 1]).unwrap();
    let (p, holed_far_cold_ms) = ms(|| ds.view().page(far, 50).unwrap());
    assert_eq!(p.samples[0].id(), ids[far + 1]);
    let (_, holed_far_ms) = ms(|| ds.view().page(far - 50, 50).unwrap());
    let (h, holed_head_ms) = ms(|| ds.view().head(10).unwrap());
    assert_eq!(h.len(), 10);

    println!(
        "{}",
        json!({
            "n": n, "add_samples_ms": add_ms, "count_ms": count_ms, "head_ms": head_ms,
            "page_far_ms": page_far_ms, "skip_mid_head_ms": page_mid_ms,
            "sort_k10_ms": sort_ms, "sort_k10_materialise_ms": sort_materialise_ms,
            "sort_all_head_ms": all_first_page_ms, "sort_all_far_page_cold_ms": all_far_page_cold_ms,
            "sort_all_far_page_ms": all_far_page_ms,
            "holed_far_page_cold_ms": holed_far_cold_ms, "holed_far_page_ms": holed_far_ms,
            "holed_head_ms": holed_head_ms, "peak_rss_mb": peak_rss_mb(),
        })
    );
}
