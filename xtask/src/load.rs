//! `cargo xtask bench --only load`: the load run (`tests/examples/load.rs` over
//! `simile_e2e::load`): 8 reader threads × 1,000 queries on one 100k × 512 index while a writer
//! thread adds and removes rows, on the exact backend and on Milvus; p50/p99 latency, errors
//! and inconsistent answers, for docs/benchmarks.md.
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, root, run};

/// One run of the example; its JSON line.
fn run_load(n: usize, dim: usize, queries: usize, milvus: bool) -> Result<serde_json::Value> {
    let home = root().join("target").join("bench-home-load");
    let mut cmd = Command::new(root().join("target/release/examples/load"));
    cmd.args([
        n.to_string(),
        dim.to_string(),
        "8".into(),
        queries.to_string(),
        home.display().to_string(),
    ]);
    if milvus {
        cmd.arg("milvus");
    }
    let out = cmd.output().context("running the load example")?;
    if !out.status.success() {
        bail!(
            "load example failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("load output is not JSON: {line}"))
}

/// The "Load" section of docs/benchmarks.md.
pub fn section(quick: bool) -> String {
    let (n, dim, queries) = if quick {
        (10_000, 128, 100)
    } else {
        (100_000, 512, 1_000)
    };
    let mut out = format!(
        "## Load: 8 threads × {queries} queries while a writer adds and removes rows ({n} × {dim}, cosine, k=10)\n\n"
    );
    if let Err(e) = run(cargo().args([
        "build",
        "--release",
        "-p",
        "simile-e2e",
        "--example",
        "load",
    ])) {
        return out + &format!("Load bench not built: {e:#}\n");
    }
    out.push_str(
        "| backend | queries | errors | inconsistent | writer commits during the run | p50 (ms) | p99 (ms) | queries/s | recall@10 | index build (s) |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let milvus_set = std::env::var_os("SIMILE_TEST_MILVUS_URI").is_some();
    for milvus in [false, true] {
        let name = if milvus { "milvus" } else { "sklearn (exact)" };
        if milvus && !milvus_set {
            out.push_str(
                "| milvus | not run: SIMILE_TEST_MILVUS_URI is not set | | | | | | | | |\n",
            );
            continue;
        }
        match run_load(n, dim, queries, milvus) {
            Ok(v) => out.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.3} | {:.1} |\n",
                v["queries"],
                v["errors"],
                v["inconsistent"],
                v["writer_ops"],
                v["p50_ms"].as_f64().unwrap_or(f64::NAN),
                v["p99_ms"].as_f64().unwrap_or(f64::NAN),
                v["qps"].as_f64().unwrap_or(f64::NAN),
                v["recall"].as_f64().unwrap_or(f64::NAN),
                v["build_s"].as_f64().unwrap_or(f64::NAN),
            )),
            Err(e) => out.push_str(&format!("| {name} | failed: {e:#} | | | | | | | | |\n")),
        }
    }
    out.push_str(&format!(
        "\nOne process: the index is built through the facade, then 8 reader threads each run {queries} \
         `sort_by_similarity(Query::vector, k=10)` calls (every 10th a probe of the writer's rows) while \
         one writer thread adds a row and removes the oldest (at most 6 present), each a committed \
         `add_to_index` / `remove_from_index`. A main query's answer must be the exact top-10 of the \
         base rows (writer rows are at cosine distance exactly 1, farther than any top-10), with each \
         id's true distance; on Milvus (approximate HNSW) true distances, ascending, no writer row, and \
         recall is reported. A probe must see a contiguous run of the writer's order (a committed \
         state). Latencies are of the main queries, measured in the reader threads (8 threads on 2 \
         cores: they include waiting for a core). The writer's exact-backend commits rewrite the \
         index file ({n} × {dim} float32), so few happen during the run. \
         Command: `cargo run --release -p simile-e2e --example load -- {n} {dim} 8 {queries} HOME [milvus]`.\n"
    ));
    out
}
