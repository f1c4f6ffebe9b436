//! A short correctness version of the load run (`simile_e2e::load`; the measured one is
//! `cargo xtask bench --only load`): 8 reader threads query one index while a writer adds and
//! removes rows; 0 errors and every answer consistent with a committed state, on the exact
//! backend and on Milvus.
use simile_e2e::load::{run, LoadConfig, LoadReport};

fn config(backend: &str, exact: bool) -> LoadConfig {
    LoadConfig {
        n: 2_000,
        dim: 32,
        threads: 8,
        queries_per_thread: 40,
        k: 10,
        writer_rows: 12,
        window: 5,
        probe_every: 4,
        backend: Some(backend.into()),
        exact,
    }
}

fn assert_consistent(r: &LoadReport, cfg: &LoadConfig) {
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert!(
        r.inconsistent.is_empty(),
        "inconsistent answers: {:?}",
        &r.inconsistent[..r.inconsistent.len().min(5)]
    );
    assert_eq!(r.queries, cfg.threads * cfg.queries_per_thread);
    assert!(
        r.writer_ops >= 2,
        "the writer committed {} changes during the run",
        r.writer_ops
    );
    assert!(!r.probe_counts_seen.is_empty());
}

#[test]
fn readers_see_only_committed_states_on_the_exact_backend() {
    let (_home, simile) = simile_e2e::session();
    let cfg = config("sklearn", true);
    let r = run(&simile, &cfg);
    assert_consistent(&r, &cfg);
    assert!(
        (r.recall - 1.0).abs() < 1e-12,
        "exact backend recall {}",
        r.recall
    );
}

#[test]
fn readers_see_only_committed_states_on_milvus() {
    let (_home, simile) = simile_e2e::milvus_session(false);
    let cfg = LoadConfig {
        n: 1_000,
        queries_per_thread: 20,
        ..config("milvus", false)
    };
    let r = run(&simile, &cfg);
    assert_consistent(&r, &cfg);
    // Approximate (HNSW): the answer need not be the exact top-k, only true distances of base rows.
    assert!(r.recall > 0.5, "recall@10 {}", r.recall);
    let ds = simile.load_dataset("load").unwrap();
    ds.load_brain_results("load").unwrap().cleanup().unwrap();
}
