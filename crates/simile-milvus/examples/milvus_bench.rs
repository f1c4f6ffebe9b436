//! Milvus backend benchmark against a real server.
//!
//! 1. raw SDK: `insert` of N × DIM in 1,000-row batches, one request at a time, into a collection
//!    with the backend's schema and index (the baseline);
//! 2. the backend: `upsert` of the same rows through [`SimilarityBackend::upsert`];
//! 3. query by id end to end (fetch the stored vector, then search k = 10) with Session
//!    consistency, and query by vector, after a flush: median and p95 latency.
//!
//! ```bash
//! cargo xtask milvus start --auth && export SIMILE_TEST_MILVUS_URI=... (as printed)
//! cargo run --release -p simile-milvus --example milvus_bench -- [N] [DIM]
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use simile_index::conformance::random_vectors;
use simile_index::{BackendFactory, BackendParams, Embeddings, KnnQuery};
use simile_milvus::milvus::v2::prelude::*;
use simile_milvus::{MilvusFactory, MilvusIndex};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

fn params(uri: &str, user: &Option<String>, password: &Option<String>) -> BackendParams {
    let mut p = Map::new();
    p.insert("uri".into(), Value::String(uri.into()));
    if let Some(u) = user {
        p.insert("user".into(), Value::String(u.clone()));
    }
    if let Some(pw) = password {
        p.insert("password".into(), Value::String(pw.clone()));
    }
    p.insert("metric".into(), Value::String("cosine".into()));
    p.insert("consistency_level".into(), Value::String("Session".into()));
    BackendParams {
        params: p,
        storage_dir: PathBuf::from("/nonexistent"),
        dataset_name: "bench".into(),
        brain_key: None,
        patches: false,
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dim: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(512);
    let uri = env("SIMILE_TEST_MILVUS_URI")
        .expect("set SIMILE_TEST_MILVUS_URI (cargo xtask milvus start --auth)");
    let user = env("SIMILE_TEST_MILVUS_USER");
    let password = env("SIMILE_TEST_MILVUS_PASSWORD");

    eprintln!("generating {n} x {dim} vectors");
    let keys: Vec<String> = (0..n)
        .map(|i| format!("{:024x}", 0x5eed_0000_0000u64 + i as u64))
        .collect();
    let batch = Embeddings::for_samples(dim, random_vectors(n, dim, 7), keys.clone()).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = ConnectConfig::new()
        .uri(uri.clone())
        .telemetry(TelemetryConfig::new().enabled(false));
    if let (Some(u), Some(p)) = (&user, &password) {
        cfg = cfg.username_password(u, p);
    }
    let client = rt.block_on(ClientV2::new(&cfg)).unwrap();

    // 1 and 2 twice, in both orders, each after a pause (the server indexes and compacts in the
    // background, so a measurement right after another competes with its leftovers).
    let mut raw_rates = [0.0; 2];
    let mut ups_rates = [0.0; 2];
    let mut kept = None;
    let mut overwrite_rate = 0.0;
    for round in 0..2usize {
        for step in 0..2usize {
            // Each measurement starts on a quiet server: the previous one's background index
            // build and compaction otherwise take one of the two cores.
            std::thread::sleep(Duration::from_secs(20));
            if (round + step) % 2 == 0 {
                raw_rates[round] = raw_insert(
                    &rt,
                    &client,
                    &batch,
                    &format!("bench_raw_{}_{round}", std::process::id()),
                );
                eprintln!("raw SDK insert: {:.0} vectors/s", raw_rates[round]);
                continue;
            }
            let b = MilvusFactory
                .create(&params(&uri, &user, &password))
                .unwrap();
            // Create the collection first so both measurements exclude creation.
            b.upsert(&batch.select_rows(&[0])).unwrap();
            let start = Instant::now();
            b.upsert(&batch).unwrap();
            ups_rates[round] = n as f64 / start.elapsed().as_secs_f64();
            eprintln!("backend upsert: {:.0} vectors/s", ups_rates[round]);
            assert_eq!(b.size().unwrap(), n);
            if round == 0 {
                std::thread::sleep(Duration::from_secs(20));
                // Overwrite every row of an index whose name has been handed out (as after
                // `compute_similarity` registered it): all real upserts.
                let _ = b.persisted_config();
                let start = Instant::now();
                b.upsert(&batch).unwrap();
                overwrite_rate = n as f64 / start.elapsed().as_secs_f64();
                eprintln!("backend upsert over existing rows: {overwrite_rate:.0} vectors/s");
                assert_eq!(b.size().unwrap(), n);
                b.cleanup().unwrap();
            } else {
                kept = Some(b);
            }
        }
    }
    let b = kept.unwrap();
    let raw_rate = raw_rates.iter().cloned().fold(0.0, f64::max);
    let ups_rate = ups_rates.iter().cloned().fold(0.0, f64::max);

    // 3. Queries after a flush (sealed segments get the HNSW index built in the background).
    let m = b.as_any().downcast_ref::<MilvusIndex>().unwrap();
    let start = Instant::now();
    m.flush().unwrap();
    let flush_time = start.elapsed();
    // Let the HNSW build on the sealed segments finish so queries measure the steady state.
    let start = Instant::now();
    m.wait_indexed(n, Duration::from_secs(600)).unwrap();
    let index_time = start.elapsed();
    // Let the server finish its background work on the dropped collections (compaction, GC).
    std::thread::sleep(Duration::from_secs(10));
    let mut by_id = Vec::new();
    let mut get_only = Vec::new();
    let mut by_vec = Vec::new();
    for i in 0..200usize {
        let key = &keys[(i * 7919) % n];
        let t = Instant::now();
        let v = b.get(std::slice::from_ref(key)).unwrap();
        get_only.push(t.elapsed());
        let hits = b.knn(&KnnQuery::nearest(v.row(0), 10)).unwrap();
        by_id.push(t.elapsed());
        assert_eq!(hits.len(), 10);
        let q = random_vectors(1, dim, 10_000 + i as u64);
        let t = Instant::now();
        let hits = b.knn(&KnnQuery::nearest(&q, 10)).unwrap();
        by_vec.push(t.elapsed());
        assert_eq!(hits.len(), 10);
    }
    // View restrictions: half the index (over-fetch, then filter) and a tenth (batched filters).
    let half: Vec<String> = keys.iter().step_by(2).cloned().collect();
    let tenth: Vec<String> = keys.iter().step_by(10).cloned().collect();
    let mut view_times = Vec::new();
    for view in [&half, &tenth] {
        let mut times = Vec::new();
        for i in 0..30usize {
            let q = random_vectors(1, dim, 20_000 + i as u64);
            let query = KnnQuery {
                vector: &q,
                k: Some(10),
                reverse: false,
                restrict: Some(view),
                restrict_token: None,
            };
            let t = Instant::now();
            let hits = b.knn(&query).unwrap();
            times.push(t.elapsed());
            assert_eq!(hits.len(), 10);
        }
        view_times.push(percentile(times, 0.5));
    }
    b.cleanup().unwrap();

    println!("| measurement ({n} x {dim}, Milvus at {uri}) | value |");
    println!("|---|---|");
    println!(
        "| raw SDK insert, 1,000-row batches, sequential (best of 2; runs {:.0}, {:.0}; round 1 raw first, round 2 backend first) | {raw_rate:.0} vectors/s |",
        raw_rates[0], raw_rates[1]
    );
    println!(
        "| backend `upsert` into a new index (batch_size 1000, 2 in flight; new keys go as inserts; best of 2; runs {:.0}, {:.0}) | {ups_rate:.0} vectors/s ({:.2}x raw) |",
        ups_rates[0],
        ups_rates[1],
        ups_rate / raw_rate
    );
    println!(
        "| backend `upsert` overwriting all {n} rows of a registered index (real upserts; one run) | {overwrite_rate:.0} vectors/s ({:.2}x raw) |",
        overwrite_rate / raw_rate
    );
    println!("| flush | {:.2} s |", flush_time.as_secs_f64());
    println!(
        "| HNSW build after flush (M=16, efConstruction=128) | {:.1} s |",
        index_time.as_secs_f64()
    );
    println!(
        "| query by id (get + search k=10), Session | median {:.2} ms, p95 {:.2} ms |",
        ms(percentile(by_id.clone(), 0.5)),
        ms(percentile(by_id, 0.95))
    );
    println!(
        "| of which the stored-vector fetch (get of one id), Session | median {:.2} ms |",
        ms(percentile(get_only, 0.5))
    );
    println!(
        "| query by vector (search k=10), Session | median {:.2} ms, p95 {:.2} ms |",
        ms(percentile(by_vec.clone(), 0.5)),
        ms(percentile(by_vec, 0.95))
    );
    println!(
        "| query by vector, view = 50% of the index (k=10: over-fetch, filter) | median {:.2} ms |",
        ms(view_times[0])
    );
    println!(
        "| query by vector, view = 10% of the index (k=10: over-fetch, filter) | median {:.2} ms |",
        ms(view_times[1])
    );
}

/// Inserts `batch` through the raw SDK into a new collection with the backend's schema and index,
/// 1,000 rows per request, one request at a time; returns vectors/s and drops the collection.
fn raw_insert(
    rt: &tokio::runtime::Runtime,
    client: &ClientV2,
    batch: &Embeddings,
    name: &str,
) -> f64 {
    let (n, dim) = (batch.len(), batch.dim());
    let schema = CollectionSchema::new()
        .enable_dynamic_field(false)
        .add_field(
            FieldSchema::new()
                .name("pk")
                .data_type(DataType::VarChar)
                .primary_key(true)
                .auto_id(false)
                .max_length(64000),
        )
        .add_field(
            FieldSchema::new()
                .name("vector")
                .data_type(DataType::FloatVector)
                .dimension(dim as u32),
        )
        .add_field(
            FieldSchema::new()
                .name("sample_id")
                .data_type(DataType::VarChar)
                .max_length(64000),
        );
    rt.block_on(
        client.create_collection(
            CreateCollectionRequest::builder()
                .collection_name(name)
                .schema(schema)
                .build()
                .unwrap(),
        ),
    )
    .unwrap();
    let index = IndexParam::new()
        .field_name("vector")
        .index_type(IndexType::Hnsw)
        .metric_type(MetricType::Cosine)
        .extra_params(HashMap::from([
            ("M".to_string(), "16".to_string()),
            ("efConstruction".to_string(), "128".to_string()),
        ]));
    rt.block_on(
        client.create_index(
            CreateIndexRequest::builder()
                .collection_name(name)
                .index_param(index)
                .build()
                .unwrap(),
        ),
    )
    .unwrap();
    rt.block_on(
        client.load_collection(
            LoadCollectionRequest::builder()
                .collection_name(name)
                .sync(true)
                .build()
                .unwrap(),
        ),
    )
    .unwrap();
    let keys = batch.keys();
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let req = InsertRequest::builder()
            .collection_name(name)
            .columns(vec![
                FieldData::VarChar {
                    name: "pk".into(),
                    values: chunk.iter().map(|i| keys[*i].clone()).collect(),
                },
                FieldData::FloatVector {
                    name: "vector".into(),
                    values: chunk.iter().map(|i| batch.row(*i).to_vec()).collect(),
                },
                FieldData::VarChar {
                    name: "sample_id".into(),
                    values: chunk.iter().map(|i| keys[*i].clone()).collect(),
                },
            ])
            .build()
            .unwrap();
        rt.block_on(client.insert(req)).unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    rt.block_on(
        client.drop_collection(
            DropCollectionRequest::builder()
                .collection_name(name)
                .build()
                .unwrap(),
        ),
    )
    .unwrap();
    rate
}
