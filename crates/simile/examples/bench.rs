//! End-to-end benchmark phases, driven by `cargo xtask bench` (one process per phase, so peak
//! RSS is per phase). Prints one JSON line.
//!
//! `bench build N DIM HOME`  create a dataset of N samples and index N×DIM random vectors
//! `bench query N DIM HOME`  cold-load the index and time queries
//! `bench bandwidth 0 0 .`   the machine's read bandwidth (two threads, 1 GiB)
//! `bench disk 0 0 DIR`      durable write bandwidth in DIR (1 GiB, then fsync)
//!
//! A fifth argument `milvus` puts the index on the Milvus server of `SIMILE_TEST_MILVUS_URI`
//! (`_USER`, `_PASSWORD`) instead of the exact backend; the build phase then also flushes and
//! waits for the HNSW build (untimed), so the query phase measures the steady state.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde_json::json;
use simile::ndarray::Array2;
use simile::{
    BrainConfig, Filter, NewSample, Query, Settings, SimilarityOptions, Simile, SortOptions,
};

#[path = "common/milvus.rs"]
mod milvus;

fn open(home: &str, milvus: bool) -> Simile {
    let brain = if milvus {
        milvus::milvus_config()
    } else {
        BrainConfig::default()
    };
    Simile::builder()
        .settings(Settings::for_home(home))
        .brain_config(brain)
        .open()
        .unwrap()
}

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss_mb;

fn stats(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    let p90 = ms[(ms.len() * 9 / 10).min(ms.len() - 1)];
    (median, p90)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let phase = args[0].as_str();
    let n: usize = args[1].parse().unwrap();
    let dim: usize = args[2].parse().unwrap();
    let home = args[3].as_str();
    let milvus = args.get(4).is_some_and(|a| a == "milvus");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(51);
    match phase {
        "build" => {
            let simile = open(home, milvus);
            let t = Instant::now();
            let ds = simile.create_dataset("bench").unwrap();
            ds.add_samples(
                (0..n)
                    .map(|i| NewSample::new(format!("/data/{i}.jpg")).with_field("idx", json!(i)))
                    .collect(),
            )
            .unwrap();
            let create_s = t.elapsed().as_secs_f64();
            let emb = Array2::from_shape_fn((n, dim), |_| rng.random_range(-1.0f32..1.0));
            let t = Instant::now();
            let index = ds
                .compute_similarity(
                    SimilarityOptions::new()
                        .brain_key("sim")
                        .metric(simile::Metric::Cosine)
                        .embeddings(emb),
                )
                .unwrap();
            let compute_s = t.elapsed().as_secs_f64();
            assert_eq!(index.total_index_size().unwrap(), n);
            if milvus {
                let backend = index.backend();
                let m = backend
                    .as_any()
                    .downcast_ref::<simile::MilvusIndex>()
                    .unwrap();
                m.flush().unwrap();
                m.wait_indexed(n, std::time::Duration::from_secs(900))
                    .unwrap();
                // Let the server's background work (compaction, GC) settle before the query phase.
                std::thread::sleep(std::time::Duration::from_secs(10));
            }
            println!(
                "{}",
                json!({"create_dataset_s": create_s, "compute_s": compute_s, "peak_rss_mb": peak_rss_mb()})
            );
        }
        "query" => {
            let simile = open(home, milvus);
            let ds = simile.load_dataset("bench").unwrap();
            let t = Instant::now();
            let index = ds.load_brain_results("sim").unwrap();
            let cold_load_s = t.elapsed().as_secs_f64();
            assert_eq!(index.total_index_size().unwrap(), n);
            let ids = ds.view().ids().unwrap();
            let q: Vec<String> = (0..21)
                .map(|_| ids[rng.random_range(0..n)].clone())
                .collect();
            let sort = |query: Query| {
                let v = ds
                    .sort_by_similarity(query, SortOptions::new().k(10).brain_key("sim"))
                    .unwrap();
                let out = v.ids().unwrap();
                assert_eq!(out.len(), 10);
                out
            };
            let first = sort(Query::id(&q[0]));
            assert_eq!(first[0], q[0]);
            let mut by_id = Vec::new();
            for id in &q[1..] {
                let t = Instant::now();
                let out = sort(Query::id(id));
                by_id.push(t.elapsed().as_secs_f64() * 1e3);
                assert_eq!(&out[0], id);
            }
            let mut by_vec = Vec::new();
            for _ in 0..20 {
                let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let t = Instant::now();
                sort(Query::vector(v));
                by_vec.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let half = ds.match_field(Filter::Lt("idx".into(), (n / 2) as f64));
            let mut by_view = Vec::new();
            for id in &q[1..11] {
                let t = Instant::now();
                let v = half
                    .sort_by_similarity(Query::id(id), SortOptions::new().k(10).brain_key("sim"))
                    .unwrap();
                assert_eq!(v.ids().unwrap().len(), 10);
                by_view.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let (m, p) = stats(by_id);
            let (mv, _) = stats(by_vec);
            // The first view query reads the view's ids from SQL; the rest reuse them.
            let view_first = by_view[0];
            let (mw, _) = stats(by_view);
            println!(
                "{}",
                json!({"cold_load_s": cold_load_s, "query_id_median_ms": m, "query_id_p90_ms": p,
                       "query_vec_median_ms": mv, "query_view_median_ms": mw,
                       "query_view_first_ms": view_first, "peak_rss_mb": peak_rss_mb()})
            );
        }
        "bandwidth" => {
            // Read bandwidth: two threads summing halves of a 1 GiB array, best of 5 passes.
            let buf: Vec<u64> = (0..(1u64 << 27)).collect();
            let mut best = f64::INFINITY;
            let mut total = 0u64;
            for _ in 0..5 {
                let t = Instant::now();
                let (a, b) = buf.split_at(buf.len() / 2);
                total ^= std::thread::scope(|s| {
                    let h = s.spawn(|| a.iter().fold(0u64, |x, y| x.wrapping_add(*y)));
                    let mine = b.iter().fold(0u64, |x, y| x.wrapping_add(*y));
                    mine ^ h.join().unwrap()
                });
                best = best.min(t.elapsed().as_secs_f64());
            }
            let gb = (buf.len() * 8) as f64 / 1e9;
            println!("{}", json!({"read_gb_s": gb / best, "checksum": total}));
        }
        "disk" => {
            // Durable write bandwidth where the home lives: 1 GiB in 8 MiB direct writes (past
            // the page cache, as a streaming build writes), then fsync.
            use std::os::unix::fs::{FileExt, OpenOptionsExt};
            let path = std::path::Path::new(home).join("disk-bench.tmp");
            let mut buf = vec![0x5au8; (8 << 20) + 4096];
            let off = buf.as_ptr().align_offset(4096);
            let chunk = &mut buf[off..off + (8 << 20)];
            let direct = i32::try_from(rustix::fs::OFlags::DIRECT.bits()).unwrap();
            let t = Instant::now();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(direct)
                .open(&path)
                .unwrap();
            for i in 0..128u64 {
                f.write_all_at(chunk, i * (8 << 20)).unwrap();
            }
            f.sync_all().unwrap();
            let secs = t.elapsed().as_secs_f64();
            drop(f);
            std::fs::remove_file(&path).unwrap();
            println!(
                "{}",
                json!({"write_gb_s": (128.0 * 8.0 * 1048576.0) / 1e9 / secs})
            );
        }
        other => panic!("unknown phase {other}"),
    }
}
