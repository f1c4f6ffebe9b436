//! Manual check that a Milvus restart in the middle of a session is survived: creates a small
//! index, then calls `size()` and `knn()` once a second for 90 s, printing results and errors.
//!
//! ```bash
//! cargo xtask milvus start --auth            # export the SIMILE_TEST_MILVUS_* it prints
//! cargo run -p simile-milvus --example restart_probe &
//! # after ~20 s, in another shell (same data dir, so the collection survives):
//! cargo xtask milvus stop && cargo xtask milvus start --auth --data-dir target/milvus-runs/run-...
//! ```
//! Seen here: calls during the outage fail (Unavailable / "not ready"), the first call after the
//! restart waits while the server reloads the collection, later calls answer normally.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use simile_index::{BackendFactory, BackendParams, Embeddings, KnnQuery};

fn main() {
    let mut p = Map::new();
    for (env, key) in [
        ("SIMILE_TEST_MILVUS_URI", "uri"),
        ("SIMILE_TEST_MILVUS_USER", "user"),
        ("SIMILE_TEST_MILVUS_PASSWORD", "password"),
    ] {
        if let Ok(v) = std::env::var(env) {
            p.insert(key.into(), Value::String(v));
        }
    }
    let params = BackendParams {
        params: p,
        storage_dir: "/nonexistent".into(),
        dataset_name: "restart probe".into(),
        brain_key: None,
        patches: false,
    };
    let b = simile_milvus::MilvusFactory.create(&params).unwrap();
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let data: Vec<f32> = (0..400).map(|i| (i as f32 * 0.37).sin()).collect();
    b.upsert(&Embeddings::for_samples(4, data.clone(), keys).unwrap())
        .unwrap();
    let t0 = Instant::now();
    for _ in 0..90 {
        let t = Instant::now();
        let size = b.size().map_err(|e| e.to_string());
        let knn = b
            .knn(&KnnQuery::nearest(&data[..4], 3))
            .map(|h| h.len())
            .map_err(|e| e.to_string());
        println!(
            "{:6.1}s size {size:?} knn {knn:?} (call took {:.1}s)",
            t0.elapsed().as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    b.cleanup().unwrap();
}
