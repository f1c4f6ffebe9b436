//! The near-duplicates section of `docs/benchmarks.md` (`crates/simile/examples/dup_bench.rs`),
//! each phase in its own process so its peak RSS is its own.
use anyhow::Result;
use serde_json::Value;

use crate::ci::{run_json, run_json_env};
use crate::milvus::{MilvusServer, StartOptions};
use crate::scale::measure;
use crate::util::{cargo, root, run, target_dir};

/// One measured call: label, dup_bench arguments, the peer's figure, on Milvus or not.
struct Phase {
    label: &'static str,
    args: Vec<String>,
    peer: &'static str,
    milvus: bool,
}

fn phase(label: &'static str, args: &[&str], peer: &'static str, milvus: bool) -> Phase {
    Phase {
        label,
        args: args.iter().map(|a| a.to_string()).collect(),
        peer,
        milvus,
    }
}

/// What a `dups` run found: planted copies found, and how it searched.
fn found(v: &Value) -> String {
    let Some(d) = v.get("duplicates") else {
        return String::new();
    };
    let mut s = format!(
        " ({d} found; {} of {} planted)",
        v["planted_found"], v["planted"]
    );
    if let Some(w) = v.get("milvus_settle_s").and_then(Value::as_f64) {
        s.push_str(&format!(
            "; measured once the server had finished its background indexing ({w:.0} s after the insert)"
        ));
    }
    if let Some(c) = v["method"].get("cells") {
        s.push_str(&format!(
            "; **clustered**: {c} cells, recall on {} sampled points {}/{} near pairs",
            v["method"]["sampled_rows"], v["method"]["same_cell"], v["method"]["near_pairs"]
        ));
    }
    s
}

/// `find_duplicates(0.1)` as a user meets it: the dataset and index persisted by one process
/// (`dup_bench build`), then a fresh process (`dup_bench open-dups`) that opens them and calls it,
/// under GNU time (its peak RSS is the kernel's, for the whole process).
fn fresh_process_row(bin: &std::path::Path, n: usize, rate: f64) -> Result<String> {
    let home = target_dir().join("dups-bench-home");
    let _ = std::fs::remove_dir_all(&home);
    let home_arg = home.display().to_string();
    let built = run_json(bin, &["build", &n.to_string(), &home_arg]);
    let measured = built.and_then(|_| measure(bin, &["open-dups", &home_arg, "0.1"]));
    let _ = std::fs::remove_dir_all(&home);
    let m = measured?;
    let v: Value = serde_json::from_str(m.stdout.trim())?;
    let floor = (n * n) as f64 * 512.0 / (rate * 1e9);
    Ok(format!(
        "| {n} | find_duplicates(thresh=0.1) in a fresh process that opens the persisted index{} \
         | {:.2} s (process {:.2} s) | {floor:.2} s | crashed at 1.16M (fiftyone-brain#224) \
         | {:.0} MB, whole process (after open: {:.0} MB) |\n",
        found(&v),
        v["seconds"].as_f64().unwrap_or(f64::NAN),
        m.secs,
        m.peak_mb,
        v["peak_rss_after_open_mb"].as_f64().unwrap_or(f64::NAN),
    ))
}

pub fn section(quick: bool, scale: bool) -> String {
    let mut out = String::from(
        "\n## Near-duplicates and uniqueness (512-d, cosine, 1 % planted near-duplicates)\n\n",
    );
    let result = (|| -> Result<String> {
        run(cargo().args([
            "build",
            "--release",
            "-p",
            "simile",
            "--example",
            "dup_bench",
        ]))?;
        let bin = root().join("target/release/examples/dup_bench");
        let gemm = run_json(&bin, &["gemm"])?;
        let rate = gemm["gflops"].as_f64().unwrap_or(f64::NAN);
        let mut t = format!(
            "GEMM rate measured in this run (f32, both cores, `gemm` crate): **{rate:.0} GFLOP/s**. \
             The floor of an exact all-pairs pass is N²·d flops (N²/2 pairs × 2d) ÷ that rate. Peak RSS \
             is the call's own (the peak is reset after the data set-up), with the RSS before the call \
             (the dataset and the loaded index) in brackets.\n\n\
             | N | measure | simile | all-pairs floor | peer (FiftyOne 1.22.1) | peak RSS (before) |\n\
             |---|---|---|---|---|---|\n"
        );
        let mut phases = vec![
            phase(
                "find_duplicates(thresh=0.1)",
                &["dups", "20000", "0.1"],
                "4.6 s, 4.5 GB",
                false,
            ),
            phase(
                "find_unique(10000)",
                &["unique", "20000", "10000"],
                "72 s",
                false,
            ),
            phase("compute_uniqueness", &["uniqueness", "20000"], "–", false),
        ];
        if !quick {
            phases.extend([
                phase(
                    "find_duplicates(thresh=0.1)",
                    &["dups", "100000", "0.1"],
                    "–",
                    false,
                ),
                phase(
                    "find_duplicates(thresh=0.1) on **Milvus** (vectors pulled in batches)",
                    &["dups", "100000", "0.1", "exact", "milvus"],
                    "– (no Milvus support)",
                    true,
                ),
                phase("compute_uniqueness", &["uniqueness", "100000"], "–", false),
            ]);
        }
        // Non-Milvus phases first, then the Milvus one, with the server stopped right after: a
        // running server keeps building its index in the background and would slow the others.
        let (remote, local): (Vec<&Phase>, Vec<&Phase>) = phases.iter().partition(|p| p.milvus);
        let mut rows: Vec<(usize, String)> = Vec::new();
        for (k, p) in local.iter().chain(remote.iter()).enumerate() {
            let n: f64 = p.args[1].parse().unwrap_or(f64::NAN);
            let floor = n * n * 512.0 / (rate * 1e9);
            let argv: Vec<&str> = p.args.iter().map(String::as_str).collect();
            let v = if p.milvus {
                let server = MilvusServer::start(&StartOptions::default())?;
                let v = run_json_env(&bin, &argv, &server.test_env());
                drop(server);
                v?
            } else {
                run_json(&bin, &argv)?
            };
            let order = phases.iter().position(|q| std::ptr::eq(q, *p)).unwrap_or(k);
            rows.push((
                order,
                format!(
                    "| {} | {}{} | {:.2} s | {floor:.2} s | {} | {:.0} MB ({:.0} MB) |\n",
                    p.args[1],
                    p.label,
                    found(&v),
                    v["seconds"].as_f64().unwrap_or(f64::NAN),
                    p.peer,
                    v["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
                    v["rss_before_mb"].as_f64().unwrap_or(f64::NAN),
                ),
            ));
        }
        rows.sort_by_key(|r| r.0);
        for (_, row) in rows {
            t.push_str(&row);
        }
        if scale {
            t.push_str(&fresh_process_row(&bin, 1_000_000, rate)?);
        }
        Ok(t)
    })();
    match result {
        Ok(t) => out.push_str(&t),
        Err(e) => out.push_str(&format!("Duplicates bench failed: {e:#}\n")),
    }
    out.push_str(
        "\nUp to 250,000 points every result is exact. The all-pairs passes start from int8 codes of the rows \
         (`int8_pairs.rs`: exact integer dot products — AVX-512 VNNI, AVX2 or portable, the same integers — \
         and a certified per-pair error bound): `find_duplicates` bounds each pair from above on the columns \
         with the most energy (`a·b ≤ a_S·b_S + ‖a_R‖‖b_R‖`, the subset product in int8 plus its bound; as many \
         columns, a multiple of 32 up to half, as a sample of 128 × 2048 pairs says pays at the threshold), each \
         chunk of 512 rows against the rows kept before it and against its own earlier rows, then decides the \
         pairs that pass from the full f32 product when it is clear of a proven error bound and in f64 \
         otherwise. `find_unique` records each point's 48 nearest earlier points by int8 score \
         in one all-pairs pass and bisects the threshold on those lists (same answer as a full pass per probe). \
         `compute_uniqueness` keeps, per point, every point whose int8 lower bound is within the 3rd-smallest \
         int8 upper bound and scores only those exactly (same answer as brute force, ties included). From \
         250,000 points (the 1M row, `cargo xtask bench --scale`) the greedy rule runs inside ~√N k-means cells \
         with a repair pass through each kept point's second cell: every reported pair is exact, the recall \
         column is measured against every point, and `planted` counts the copies found. The Milvus row reads the \
         vectors back (four requests in flight) and then runs the same exact code, so its answers equal the \
         exact backend's.\n",
    );
    if scale {
        out.push_str(
            "\nThe 1M row is measured as a user meets it: `dup_bench build 1000000 HOME` persists the dataset and \
             its index, then a fresh process, `dup_bench open-dups HOME 0.1` (what `simile similarity duplicates` \
             does: open, load, call), runs under GNU `time`, so its peak RSS is the whole process's as the kernel \
             counts it. The exact backend lends its memory-mapped rows (`SimilarityBackend::with_rows`) and, when \
             the index rows are in walk order (an index computed in dataset order), the algorithms run on them in \
             place: the 2.05 GB of vectors are not copied. Of the peak, about 2.0 GB are the mapped f32 rows (clean \
             page cache, counted as `RssFile`, which the kernel can drop under pressure) and about 0.3 GB the \
             process's own (the walk's keys, the cell lists, k-means blocks). A view that is a strict subset, an \
             index in another order and Milvus copy the rows out as before, with the same answers.\n",
        );
    }
    out
}
