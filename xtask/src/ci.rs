//! `cargo xtask ci` and `cargo xtask bench`.
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::milvus::{MilvusServer, StartOptions};
use crate::util::{cargo, root, run};

/// fmt check, clippy -D warnings, then the whole test suite with a real Milvus server (auth on)
/// and the ONNX Runtime library, both set up here. The server is stopped even when tests fail.
pub fn ci(_args: &[String]) -> Result<()> {
    let started = Instant::now();
    if std::env::var_os("CI").is_some() && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        // A one-shot build gains nothing from incremental state, which costs gigabytes of disk.
        // Set before any thread or child process starts; children inherit it.
        std::env::set_var("CARGO_INCREMENTAL", "0");
    }
    run(cargo().args(["fmt", "--all", "--", "--check"]))
        .context("cargo fmt --check found unformatted code")?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args([
            "doc",
            "--workspace",
            "--no-deps",
            "--all-features",
            "--locked",
        ])
        .env("RUSTDOCFLAGS", "-D warnings"))
    .context("cargo doc found broken or private intra-doc links")?;
    // Build the tests before starting the server, so it does not idle through compilation.
    run(cargo().args([
        "test",
        "--workspace",
        "--all-features",
        "--locked",
        "--no-run",
    ]))?;

    let ort = crate::models::ensure_ort().context("setting up the ONNX Runtime library")?;
    let clip_env = crate::clip_int8::test_env()
        .context("setting up the CLIP models, int8 variants and photos of the int8 tests")?;
    let (chromium, chromedriver) =
        crate::browser::ensure_browser().context("setting up the browser for the App's tests")?;
    let server = MilvusServer::start(&StartOptions::default())
        .context("starting the Milvus server for the tests")?;
    let mut test = cargo();
    test.args([
        "test",
        "--workspace",
        "--all-features",
        "--locked",
        "--no-fail-fast",
        "--",
        "--skip",
        RESTART_TEST,
    ]);
    for (k, v) in server.test_env() {
        test.env(k, v);
    }
    test.env("SIMILE_ORT_DYLIB_PATH", &ort);
    for (k, v) in &clip_env {
        test.env(k, v);
    }
    test.env("SIMILE_TEST_CHROMIUM", &chromium);
    test.env("SIMILE_TEST_CHROMEDRIVER", &chromedriver);
    test.env(
        "SIMILE_TEST_SCREENSHOTS",
        crate::util::root().join("target/app-screenshots"),
    );
    let tested = run(&mut test);
    let stopped = server.stop();
    // The restart test takes the server down, so it runs alone, on a server of its own.
    let restarted = stopped
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|()| restart_phase());
    tested.context("the test suite failed")?;
    stopped.context("stopping the Milvus server")?;
    restarted.context("the server-restart test failed")?;
    eprintln!(
        "xtask ci: all green in {:.0} s; target/ holds {:.1} GB",
        started.elapsed().as_secs_f64(),
        crate::util::dir_size(&root().join("target")) as f64 / 1e9
    );
    Ok(())
}

/// The test that restarts the Milvus server in the middle of a session (simile-milvus).
const RESTART_TEST: &str = "server_restart_mid_session_is_survived";

/// Starts a recorded server, runs [`RESTART_TEST`] with `SIMILE_TEST_MILVUS_RESTART_CMD` set to
/// `cargo xtask milvus restart` (this very binary), and stops the server whatever happens.
fn restart_phase() -> Result<()> {
    let server = crate::milvus::start_recorded(&StartOptions::default())
        .context("starting the Milvus server for the restart test")?;
    let env = server.test_env();
    server.detach();
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut test = cargo();
    test.args([
        "test",
        "-p",
        "simile-milvus",
        "--test",
        "integration",
        "--all-features",
        "--locked",
        "--",
        RESTART_TEST,
    ]);
    for (k, v) in env {
        test.env(k, v);
    }
    test.env(
        "SIMILE_TEST_MILVUS_RESTART_CMD",
        format!(
            "'{}' milvus restart",
            exe.display().to_string().replace('\'', "'\\''")
        ),
    );
    let tested = run(&mut test);
    let stopped = crate::milvus::stop_recorded();
    tested?;
    stopped.context("stopping the Milvus server")?;
    Ok(())
}

/// The main job on a fresh machine: fetch the ONNX Runtime library (PyPI wheel), build the CLI
/// and run `simile quickstart` with it (extra arguments are passed on).
pub fn quickstart(args: &[String]) -> Result<()> {
    let ort = crate::models::ensure_ort().context("setting up the ONNX Runtime library")?;
    // Cargo's own progress (not --quiet): a first build on a fresh machine takes minutes.
    eprintln!(
        "building simile in release mode: the first build takes several minutes (about 12 on \
         2 cores); later runs start at once"
    );
    run(cargo().args(["build", "--release", "-p", "simile-cli"]))?;
    // The binary just built, run directly: `cargo run --quiet` would rebuild silently if a
    // source changed in between, and the user would see nothing for minutes.
    let mut cmd = Command::new(simile_bin());
    cmd.arg("quickstart")
        .args(args)
        .env("SIMILE_ORT_DYLIB_PATH", &ort);
    run(&mut cmd)
}

/// The release `simile` binary that `cargo build --release -p simile-cli` makes.
fn simile_bin() -> PathBuf {
    crate::util::target_dir().join("release").join("simile")
}

/// `cargo xtask app [args]`: builds the CLI and runs `simile app` (the App on 127.0.0.1:5151)
/// with the ONNX Runtime library set up (text search needs it).
pub fn app(args: &[String]) -> Result<()> {
    let ort = crate::models::ensure_ort().context("setting up the ONNX Runtime library")?;
    run(cargo().args(["build", "--release", "-p", "simile-cli"]))?;
    let mut cmd = Command::new(simile_bin());
    cmd.arg("app").args(args).env("SIMILE_ORT_DYLIB_PATH", &ort);
    run(&mut cmd)
}

/// End-to-end benchmarks. Runs each measured phase in its own process (so peak RSS is per
/// phase), compares with the Python peer's published numbers, and writes docs/benchmarks.md.
pub fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let scale = args.iter().any(|a| a == "--scale");
    if let Some(pos) = args.iter().position(|a| a == "--only") {
        let which = args.get(pos + 1).map(String::as_str).unwrap_or("");
        return bench_only(which, quick, scale);
    }
    let sizes: &[usize] = if quick { &[20_000] } else { &[20_000, 100_000] };
    run(cargo().args(["build", "--release", "-p", "simile", "--example", "bench"]))?;
    let bin = root().join("target/release/examples/bench");
    let mut report = String::new();
    report.push_str("# Benchmarks\n\n");
    report.push_str(&format!(
        "Produced by `cargo xtask bench{}` on this project's CI machine kind (2 cores, 24 GiB). \
         Peer numbers are FiftyOne 1.22.1 / fiftyone-brain 0.25.0 (sklearn backend, MongoDB 6.0.5) as measured on \
         the same kind of machine in `shared/reference/fiftyone-brain-behaviour.md` §16; \
         ratio = peer / simile (higher is better for simile).\n\n",
        if quick { " --quick" } else { "" }
    ));
    report.push_str("## Exact backend (sklearn), 512-d float32, cosine, k=10\n\n");
    report.push_str("| N | measure | simile | peer | ratio |\n|---|---|---|---|---|\n");
    for &n in sizes {
        let home = tempdir_for(n)?;
        let build = run_json(
            &bin,
            &["build", &n.to_string(), "512", home.to_str().unwrap_or(".")],
        )?;
        let query = run_json(
            &bin,
            &["query", &n.to_string(), "512", home.to_str().unwrap_or(".")],
        )?;
        let _ = std::fs::remove_dir_all(&home);
        let rows = FACADE_MEASURES.iter().map(|m| {
            let phase = if m.from_build { &build } else { &query };
            (
                m.label,
                phase[m.key].as_f64(),
                m.peer.and_then(|p| peer_number(n, p)),
                m.prec,
            )
        });
        for (what, ours, theirs, prec) in rows {
            let ours = ours.unwrap_or(f64::NAN);
            let (t, r) = match theirs {
                Some(p) => (format!("{p:.prec$}"), format!("{:.1}×", p / ours)),
                None => ("–".into(), "–".into()),
            };
            report.push_str(&format!("| {n} | {what} | {ours:.prec$} | {t} | {r} |\n"));
        }
    }
    report.push_str("\nThe query process measures: a cold `load_brain_results` (reading the index file), then 20 timed \
        queries after one warm-up, each `dataset.sort_by_similarity(Query::id(..), k=10)` followed by `view.ids()` \
        (the ids out of the SQLite store), like the peer's `values(\"id\")`.\n");
    report.push_str(&milvus_section(quick));
    report.push_str(&clip_section(quick));
    report.push_str(&app_section(quick));
    report.push_str(&crate::dups_bench::section(quick, scale));
    if scale {
        report.push_str(&crate::scale::section(quick, true));
    }
    let out = root().join("docs/benchmarks.md");
    std::fs::create_dir_all(root().join("docs"))?;
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    println!("{report}");
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// One measure of the facade bench (`crates/simile/examples/bench.rs`): its label, which phase's
/// JSON holds it under which key, the peer's number (see [`peer_number`]) and the decimals shown.
struct Measure {
    label: &'static str,
    from_build: bool,
    key: &'static str,
    peer: Option<&'static str>,
    prec: usize,
}

const FACADE_MEASURES: [Measure; 8] = [
    Measure {
        label: "compute_similarity from an array (s)",
        from_build: true,
        key: "compute_s",
        peer: Some("compute"),
        prec: 3,
    },
    Measure {
        label: "cold load_brain_results (s)",
        from_build: false,
        key: "cold_load_s",
        peer: Some("load"),
        prec: 3,
    },
    Measure {
        label: "sort_by_similarity(id) + ids, median (ms)",
        from_build: false,
        key: "query_id_median_ms",
        peer: Some("query"),
        prec: 2,
    },
    Measure {
        label: "sort_by_similarity(id) + ids, p90 (ms)",
        from_build: false,
        key: "query_id_p90_ms",
        peer: Some("query_p90"),
        prec: 2,
    },
    Measure {
        label: "sort_by_similarity(vector) + ids, median (ms)",
        from_build: false,
        key: "query_vec_median_ms",
        peer: Some("query_vec"),
        prec: 2,
    },
    Measure {
        label: "view (half the samples) query, median (ms)",
        from_build: false,
        key: "query_view_median_ms",
        peer: Some("query_view"),
        prec: 2,
    },
    Measure {
        label: "peak RSS, build process (MB)",
        from_build: true,
        key: "peak_rss_mb",
        peer: None,
        prec: 0,
    },
    Measure {
        label: "peak RSS, query process (MB)",
        from_build: false,
        key: "peak_rss_mb",
        peer: Some("rss"),
        prec: 0,
    },
];

fn tempdir_for(n: usize) -> Result<PathBuf> {
    let d = root().join("target").join(format!("bench-home-{n}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

pub(crate) fn run_json(bin: &std::path::Path, args: &[&str]) -> Result<serde_json::Value> {
    run_json_env(bin, args, &[])
}

pub(crate) fn run_json_env(
    bin: &std::path::Path,
    args: &[&str],
    env: &[(String, String)],
) -> Result<serde_json::Value> {
    eprintln!("$ {} {}", bin.display(), args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {:?} failed: {}",
            bin.display(),
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("bench output is not JSON: {line}"))
}

/// The peer's numbers from shared/reference/fiftyone-brain-behaviour.md §16 (medians, or the
/// first run where several are given).
fn peer_number(n: usize, what: &str) -> Option<f64> {
    match (n, what) {
        (20_000, "compute") => Some(11.59),
        (20_000, "load") => Some(4.92),
        (20_000, "query") => Some(24.5),
        (20_000, "query_p90") => Some(32.7),
        (20_000, "query_vec") => Some(20.8),
        (20_000, "query_view") => Some(36.6),
        (20_000, "rss") => Some(1560.0),
        (100_000, "compute") => Some(62.17),
        (100_000, "load") => Some(24.76),
        (100_000, "query") => Some(148.0),
        (100_000, "query_p90") => Some(160.0),
        (100_000, "query_vec") => Some(150.0),
        (100_000, "query_view") => Some(323.0),
        (100_000, "rss") => Some(5220.0),
        _ => None,
    }
}

/// The Milvus backend against a real server: raw SDK insert rate vs the backend's upsert in the
/// same run, and query latency (the example prints a markdown table).
fn milvus_section(quick: bool) -> String {
    let n = if quick { "20000" } else { "100000" };
    let mut out = format!("\n## Milvus backend (real Milvus 2.3.5 from PyPI, {n} × 512)\n\n");
    let result = (|| -> Result<String> {
        run(cargo().args([
            "build",
            "--release",
            "-p",
            "simile-milvus",
            "--example",
            "milvus_bench",
        ]))?;
        let server = MilvusServer::start(&StartOptions::default())?;
        let mut cmd = Command::new(root().join("target/release/examples/milvus_bench"));
        cmd.args([n, "512"]).current_dir(root());
        for (k, v) in server.test_env() {
            cmd.env(k, v);
        }
        let output = cmd.output();
        // The facade end to end on the same server: dataset + compute_similarity(backend milvus),
        // then a separate process that loads the run and times sort_by_similarity.
        let facade = (|| -> Result<(serde_json::Value, serde_json::Value)> {
            run(cargo().args(["build", "--release", "-p", "simile", "--example", "bench"]))?;
            let bin = root().join("target/release/examples/bench");
            let home = root().join("target").join(format!("bench-home-milvus-{n}"));
            let _ = std::fs::remove_dir_all(&home);
            std::fs::create_dir_all(&home)?;
            let home_s = home.to_str().unwrap_or(".");
            let env = server.test_env();
            let build = run_json_env(&bin, &["build", n, "512", home_s, "milvus"], &env)?;
            let query = run_json_env(&bin, &["query", n, "512", home_s, "milvus"], &env)?;
            let _ = std::fs::remove_dir_all(&home);
            Ok((build, query))
        })();
        let stopped = server.stop();
        let output = output.context("running milvus_bench")?;
        stopped?;
        if !output.status.success() {
            bail!(
                "milvus_bench failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut table = String::from_utf8_lossy(&output.stdout).to_string();
        table.push_str(&format!(
            "\nThrough the facade (`Dataset::compute_similarity` with backend `milvus`, then `sort_by_similarity(k=10)` + `ids()` \
             in a new process after the HNSW build; 20 queries each; `cargo run --release -p simile --example bench -- build|query {n} 512 HOME milvus`):\n\n\
             | measure | value |\n|---|---|\n"
        ));
        match facade {
            Ok((build, query)) => {
                // The same measures as the exact backend's table, peak RSS aside.
                for m in FACADE_MEASURES
                    .iter()
                    .filter(|m| !m.key.starts_with("peak_rss"))
                {
                    let phase = if m.from_build { &build } else { &query };
                    let value = phase[m.key].as_f64().unwrap_or(f64::NAN);
                    table.push_str(&format!("| {} | {value:.3} |\n", m.label));
                }
            }
            Err(e) => table.push_str(&format!("| not measured | {e:#} |\n")),
        }
        Ok(table)
    })();
    match result {
        Ok(table) => out.push_str(&table),
        Err(e) => out.push_str(&format!("Not measured in this run: {e:#}\n")),
    }
    out.push_str(&format!(
        "\nCommand: `cargo run --release -p simile-milvus --example milvus_bench -- {n} 512` against a server from \
         `cargo xtask milvus start`. Targets: backend upsert ≥ 0.9× the raw SDK insert rate; query by id (Session) median ≤ 5 ms.\n"
    ));
    out
}

/// CLIP ViT-B/32 (random weights, same compute as the real model): open_clip on torch, ONNX
/// Runtime fp32 and int8, side by side in one run (see [`crate::clip_int8::section`]).
fn clip_section(quick: bool) -> String {
    crate::clip_int8::section(quick)
}

/// The App server (`crates/simile-app/examples/app_bench.rs`): pages, cold thumbnails, sort
/// overhead over the facade, and API latency while large thumbnails are made.
fn app_section(quick: bool) -> String {
    let mut out = String::from("\n## The App server (in process: server time, no network)\n\n");
    let result = (|| -> Result<String> {
        run(cargo().args([
            "build",
            "--release",
            "-p",
            "simile-app",
            "--example",
            "app_bench",
        ]))?;
        let bin = root().join("target/release/examples/app_bench");
        let runs: &[(usize, usize)] = if quick {
            &[(20_000, 512)]
        } else {
            &[(100_000, 512), (1_000_000, 64)]
        };
        let mut table = String::from(
            "| N × dim | first page request (cold) | page 0 (50) | page at 90 % | first page + 50 cold thumbnails | POST /sort k=25 | facade query alone | App overhead | API during 24-MP thumbnails (median / max) |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for &(n, dim) in runs {
            let home = tempdir_for(n)?;
            let v = run_json(
                &bin,
                &[
                    &n.to_string(),
                    &dim.to_string(),
                    home.to_str().unwrap_or("."),
                ],
            )?;
            let _ = std::fs::remove_dir_all(&home);
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            table.push_str(&format!(
                "| {n} × {dim} | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} ms | {:.1} ms | {:.1} ms | {:+.1} ms | {:.1} / {:.1} ms |\n",
                f("page_cold_ms"),
                f("page0_ms"),
                f("page_far_ms"),
                f("first_page_cold_thumbs_ms"),
                f("sort_api_ms"),
                f("sort_facade_ms"),
                f("sort_api_ms") - f("sort_facade_ms"),
                f("api_during_big_thumbs_ms"),
                f("api_during_big_thumbs_max_ms"),
            ));
        }
        Ok(table)
    })();
    match result {
        Ok(t) => out.push_str(&t),
        Err(e) => out.push_str(&format!("App bench failed: {e:#}\n")),
    }
    out.push_str(
        "\nGoals (issue 9): first page with cold thumbnails ≤ 150 ms, sort ≤ 30 ms, the page at 90 % as fast as page 0, \
         at 1M a page ≤ 2× its 100k time and a sort ≤ 10 ms over the backend's own query. The floor of a sort is the \
         facade's own query (an exact scan: N × dim × 4 bytes read ÷ memory bandwidth; see the exact-backend table); \
         the App adds JSON and the result's samples. The first page request of a view walks its `seq` column once (for \
         a whole dataset the covering `(dataset, seq)` index) to count it and bookmark every 1024th row; that page \
         index is kept until the data changes, so later pages at any offset seek to a bookmark and skip < 1024 index \
         entries, and never read a skipped sample. Only the measured pages' samples \
         have image files (64 × 48 JPEGs; eight 24-MP JPEGs for the responsiveness column, made 2 at a time).\n",
    );
    out
}

/// `cargo xtask bench --only app,dups [--quick]`: re-measures only those sections and replaces
/// them in docs/benchmarks.md (each section names the command that produced it).
fn bench_only(which: &str, quick: bool, scale: bool) -> Result<()> {
    let out = root().join("docs/benchmarks.md");
    let cmd = format!(
        "cargo xtask bench --only {which}{}{}",
        if quick { " --quick" } else { "" },
        if scale { " --scale" } else { "" }
    );
    let mut sections = Vec::new();
    for name in which.split(',').filter(|n| !n.is_empty()) {
        let section = match name {
            "app" => app_section(quick),
            "dups" => crate::dups_bench::section(quick, scale),
            "load" => crate::load::section(quick),
            "clip" => clip_section(quick),
            "scale" => crate::scale::section(quick, scale),
            other => bail!("unknown section '{other}' (app, dups, load, clip, scale)"),
        };
        let section = section.replacen("\n\n", &format!("\n\nProduced by `{cmd}`.\n\n"), 1);
        let heading = section
            .trim_start()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        sections.push((heading, section));
    }
    // Read only now: the runs take minutes and others may have edited other sections meanwhile.
    let mut doc = std::fs::read_to_string(&out).unwrap_or_else(|_| "# Benchmarks\n".into());
    for (heading, section) in &sections {
        doc = replace_section(&doc, heading, section);
    }
    std::fs::write(&out, &doc).with_context(|| format!("writing {}", out.display()))?;
    println!("{doc}");
    Ok(())
}

/// `doc` with the `## ` section whose heading starts like `heading` (up to its first " (")
/// replaced by `section`, or `section` appended.
fn replace_section(doc: &str, heading: &str, section: &str) -> String {
    let key = heading.split(" (").next().unwrap_or(heading);
    let mut parts: Vec<String> = Vec::new();
    let mut replaced = false;
    for (i, part) in doc.split("\n## ").enumerate() {
        let full = if i == 0 {
            part.to_string()
        } else {
            format!("## {part}")
        };
        if i > 0 && full.starts_with(key) {
            parts.push(section.trim().to_string());
            replaced = true;
        } else {
            parts.push(full.trim_end().to_string());
        }
    }
    if !replaced {
        parts.push(section.trim().to_string());
    }
    parts.join("\n\n") + "\n"
}
