//! The load run, measured (`cargo xtask bench --only load`): 8 reader threads × 1,000 queries
//! on one index while a writer thread adds and removes rows; prints one JSON line.
//!
//! `load N DIM THREADS QUERIES HOME [milvus]`. Milvus comes from `SIMILE_TEST_MILVUS_URI`
//! (`_USER`, `_PASSWORD`), as in the tests.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use serde_json::json;
use simile_e2e::load::{run, LoadConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize { args[i].parse().unwrap() };
    let milvus = args.get(5).is_some_and(|a| a == "milvus");
    let home = std::path::PathBuf::from(&args[4]);
    let _ = std::fs::remove_dir_all(&home);
    let simile = if milvus {
        let mut config = simile::BrainConfig::default();
        config
            .similarity_backends
            .insert("milvus".into(), simile_e2e::milvus_params());
        simile::Simile::builder()
            .settings(simile::Settings::for_home(&home))
            .brain_config(config)
            .open()
            .unwrap()
    } else {
        simile_e2e::open(&home)
    };
    let cfg = LoadConfig {
        n: num(0),
        dim: num(1),
        threads: num(2),
        queries_per_thread: num(3),
        k: 10,
        writer_rows: 16,
        window: 6,
        probe_every: 10,
        backend: Some(if milvus { "milvus" } else { "sklearn" }.into()),
        exact: !milvus,
    };
    let r = run(&simile, &cfg);
    if milvus {
        let ds = simile.load_dataset("load").unwrap();
        ds.load_brain_results("load").unwrap().cleanup().unwrap();
    }
    let _ = std::fs::remove_dir_all(&home);
    println!(
        "{}",
        json!({
            "n": cfg.n, "dim": cfg.dim, "threads": cfg.threads, "queries_per_thread": cfg.queries_per_thread,
            "backend": cfg.backend, "queries": r.queries, "probes": r.probes,
            "errors": r.errors.len(), "inconsistent": r.inconsistent.len(),
            "first_problems": r.errors.iter().chain(&r.inconsistent).take(3).collect::<Vec<_>>(),
            "writer_ops": r.writer_ops, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
            "qps": r.queries as f64 / r.wall_s, "wall_s": r.wall_s, "build_s": r.build_s,
            "recall": r.recall, "probe_counts_seen": r.probe_counts_seen,
        })
    );
}
