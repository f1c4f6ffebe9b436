//! `cargo xtask bench --only scale` (and part of `cargo xtask bench --scale`): the million-image
//! table of issue 11, measured on the release CLI and the facade, each step in its own process
//! under GNU `time` (wall seconds and peak RSS as the kernel counts them, not estimated).
//!
//! The vectors are random `f32` (`N × 512`, cosine). The `.npy` and the path list are written
//! here, streaming (no full array in this process).
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::util::{cargo, root, run, target_dir};

const DIM: usize = 512;

/// One measured process: wall seconds, peak RSS in MB, its stdout.
pub(crate) struct Measured {
    pub(crate) secs: f64,
    pub(crate) peak_mb: f64,
    pub(crate) stdout: String,
}

/// Runs `bin args` under `/usr/bin/time -f "%e %M"` (installed with apt when missing).
pub(crate) fn measure(bin: &Path, args: &[&str]) -> Result<Measured> {
    ensure_gnu_time()?;
    let report = target_dir().join("scale-time.txt");
    eprintln!("$ {} {}", bin.display(), args.join(" "));
    // Wall time from here (GNU time's %e has 10 ms steps); peak RSS from GNU time (the kernel's).
    let started = std::time::Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&report)
        .arg(bin)
        .args(args)
        .output()
        .context("running /usr/bin/time")?;
    let wall = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{} {args:?} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&report).context("reading GNU time's report")?;
    let mut it = text.split_whitespace();
    let _gnu_secs = it.next();
    let kb: f64 = it.next().unwrap_or("nan").parse().unwrap_or(f64::NAN);
    Ok(Measured {
        secs: wall,
        peak_mb: kb / 1024.0,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

fn ensure_gnu_time() -> Result<()> {
    if Path::new("/usr/bin/time").exists() {
        return Ok(());
    }
    run(Command::new("apt-get").args(["install", "-y", "-q", "time"]))
        .context("installing GNU time (apt package `time`)")
}

/// Writes an `n × DIM` little-endian f32 `.npy` of uniform values in [-1, 1), row by row.
fn write_npy(path: &Path, n: usize) -> Result<()> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {DIM}), }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces and a newline to 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut w = BufWriter::with_capacity(1 << 22, std::fs::File::create(path)?);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&u16::try_from(header.len())?.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut row = vec![0u8; DIM * 4];
    for _ in 0..n {
        for v in row.chunks_exact_mut(4) {
            // xorshift64*: plenty for benchmark vectors.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
            let x = r as f32 / (1u32 << 23) as f32 - 1.0;
            v.copy_from_slice(&x.to_le_bytes());
        }
        w.write_all(&row)?;
    }
    w.flush()?;
    Ok(())
}

/// Writes the path list and creates its files (empty, 1000 per folder): `--from-paths` imports
/// only files that exist, as a real list of images would be.
fn write_paths(path: &Path, files: &Path, n: usize) -> Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        let dir = files.join(format!("{:04}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        let file = dir.join(format!("{i:07}.jpg"));
        std::fs::File::create(&file)?;
        writeln!(w, "{}", file.display())?;
    }
    w.flush()?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The section for docs/benchmarks.md; a failure is reported inside it.
/// With `beyond`, also the 5M row (CLI only).
pub fn section(quick: bool, beyond: bool) -> String {
    let n = if quick { 100_000 } else { 1_000_000 };
    match measure_all(n) {
        Ok(s) if beyond => s + &beyond_ram(5_000_000),
        Ok(s) => s,
        Err(e) => format!(
            "## A million images: streaming builds and cold starts ({n} × {DIM})\n\n\
             The run failed: {e:#}\n"
        ),
    }
}

fn measure_all(n: usize) -> Result<String> {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "simile-cli",
        "-p",
        "simile",
        "--example",
        "bench",
    ]))?;
    let simile = target_dir().join("release/simile");
    let bench = target_dir().join("release/examples/bench");
    let work = root().join("target").join(format!("scale-{n}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = measure_in(&work, n, &simile, &bench);
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The CLI's steps on `n` samples: create from a path list, two pages, compute from a `.npy`,
/// five sorts (median time, largest RSS). The files and the home are removed afterwards.
struct CliSteps {
    create: Measured,
    head: Measured,
    deep: Measured,
    compute: Measured,
    sort_s: f64,
    sort_mb: f64,
    /// The first sort after the build: the build writes past the page cache, so this one reads
    /// the int8 codes from disk.
    first_sort_s: f64,
}

fn cli_steps(work: &Path, n: usize, simile: &Path) -> Result<CliSteps> {
    let s = |p: &PathBuf| p.to_str().unwrap_or_default().to_string();
    let home = work.join("home");
    let npy = work.join("vectors.npy");
    let paths = work.join("paths.txt");
    write_npy(&npy, n)?;
    write_paths(&paths, &work.join("files"), n)?;
    let h = s(&home);
    let cli = |args: &[&str]| -> Result<Measured> {
        let mut all = vec!["--home", h.as_str()];
        all.extend_from_slice(args);
        measure(simile, &all)
    };
    let create = cli(&[
        "dataset",
        "create",
        "big",
        "--from-paths",
        &s(&paths),
        "--json",
    ])?;
    let head = cli(&["dataset", "head", "big", "-n", "10", "--json"])?;
    let first: Value = serde_json::from_str(&head.stdout).context("head --json")?;
    let id = first[0]["id"].as_str().unwrap_or_default().to_string();
    let deep = cli(&[
        "dataset",
        "head",
        "big",
        "-n",
        "10",
        "--skip",
        &(n - 1000).to_string(),
        "--json",
    ])?;
    let compute = cli(&[
        "similarity",
        "compute",
        "big",
        "--brain-key",
        "k",
        "--metric",
        "cosine",
        "--embeddings",
        &s(&npy),
        "--json",
    ])?;
    let _ = std::fs::remove_file(&npy);
    let mut sorts = Vec::new();
    for _ in 0..5 {
        sorts.push(cli(&[
            "similarity",
            "sort",
            "big",
            "--brain-key",
            "k",
            "--id",
            &id,
            "-k",
            "10",
            "--json",
        ])?);
    }
    let _ = std::fs::remove_dir_all(&home);
    Ok(CliSteps {
        create,
        head,
        deep,
        compute,
        first_sort_s: sorts.first().map_or(f64::NAN, |m| m.secs),
        sort_s: median(sorts.iter().map(|m| m.secs).collect()),
        sort_mb: sorts.iter().map(|m| m.peak_mb).fold(0.0, f64::max),
    })
}

/// The 1-minute load average (`/proc/loadavg`), or "unknown": figures from a busy machine are
/// slower, and the reader should know.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Beyond RAM: `n` (5M) × 512 through the CLI only — the f32 rows alone are 10 GB.
pub fn beyond_ram(n: usize) -> String {
    let load = load_average();
    let run = || -> Result<String> {
        let simile = target_dir().join("release/simile");
        let work = root().join("target").join(format!("scale-{n}"));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let steps = cli_steps(&work, n, &simile);
        let _ = std::fs::remove_dir_all(&work);
        let c = steps?;
        Ok(format!(
            "\n**Beyond RAM** ({n} × {DIM}: {:.1} GB of f32 rows, {:.1} GB index file, 24 GiB machine), CLI only: \
             `dataset create --from-paths` {:.1} s / {:.0} MB; `similarity compute --embeddings F.npy` {:.1} s / {:.0} MB; \
             `similarity sort -k 10` process {:.2} s (median of 5) / {:.0} MB (issue-11 goal: build streaming, query ≤ 0.2 s; \
             its int8 pass reads {:.2} GB; the first sort after the build, which reads them from disk: {:.2} s). \
             1-minute load average before the run: {}.\n",
            (n * DIM * 4) as f64 / 1e9,
            (n * (DIM * 5 + 8)) as f64 / 1e9,
            c.create.secs,
            c.create.peak_mb,
            c.compute.secs,
            c.compute.peak_mb,
            c.sort_s,
            c.sort_mb,
            (n * (DIM + 4)) as f64 / 1e9,
            c.first_sort_s,
            load,
        ))
    };
    run().unwrap_or_else(|e| format!("\n**Beyond RAM** ({n} × {DIM}): the run failed: {e:#}\n"))
}

fn measure_in(work: &Path, n: usize, simile: &Path, bench: &Path) -> Result<String> {
    let load = load_average();
    let s = |p: &PathBuf| p.to_str().unwrap_or_default().to_string();
    let CliSteps {
        create,
        head,
        deep,
        compute,
        sort_s,
        sort_mb,
        first_sort_s,
    } = cli_steps(work, n, simile)?;

    // The facade: an in-memory array handed over, then a cold process that loads and queries.
    let fhome = s(&work.join("facade"));
    let ns = n.to_string();
    let build = measure(bench, &["build", &ns, "512", &fhome])?;
    let built: Value = serde_json::from_str(build.stdout.lines().last().unwrap_or_default())?;
    let query = measure(bench, &["query", &ns, "512", &fhome])?;
    let q: Value = serde_json::from_str(query.stdout.lines().last().unwrap_or_default())?;
    let bw = measure(bench, &["bandwidth", "0", "0", "."])?;
    let gbps = serde_json::from_str::<Value>(bw.stdout.lines().last().unwrap_or_default())?
        ["read_gb_s"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let disk = measure(bench, &["disk", "0", "0", &s(&work.to_path_buf())])?;
    let disk_gbps = serde_json::from_str::<Value>(disk.stdout.lines().last().unwrap_or_default())?
        ["write_gb_s"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    // A query's first pass reads the int8 codes and scales: n × (dim + 4) bytes.
    let scan_ms = (n * (DIM + 4)) as f64 / (gbps * 1e9) * 1e3;
    // What a build writes durably: f32 rows and int8 codes (ids and norms are small).
    let written_gb = (n * (DIM * 5 + 4)) as f64 / 1e9;
    let f32_gb = (n * DIM * 4) as f64 / 1e9;
    let mut out = format!(
        "## A million images: streaming builds and cold starts ({n} × {DIM}, cosine, 2 cores)\n\n"
    );
    out.push_str(
        "Each step is its own process under GNU `time` (wall time, peak RSS from the kernel). Vectors are random f32. \
         The physical limits use this machine's measured read bandwidth (`bench bandwidth`: two threads summing a 1 GiB array): \
         ",
    );
    out.push_str(&format!(
        "**{gbps:.1} GB/s**; durable writes where the index lives (`bench disk`: 1 GiB in 8 MiB direct writes, then fsync): \
         **{disk_gbps:.2} GB/s**; the f32 vectors are {f32_gb:.2} GB. 1-minute load average before the run: {load}.\n\n\
         | step | measured | issue-11 goal | physical limit |\n|---|---|---|---|\n"
    ));
    let row = |out: &mut String, what: &str, m: String, goal: &str, limit: String| {
        out.push_str(&format!("| {what} | {m} | {goal} | {limit} |\n"));
    };
    row(
        &mut out,
        "`simile dataset create --from-paths` (N lines)",
        format!("{:.2} s, {:.0} MB", create.secs, create.peak_mb),
        "–",
        "–".into(),
    );
    row(
        &mut out,
        "`simile dataset head -n 10` (process)",
        format!("{:.0} ms, {:.0} MB", head.secs * 1e3, head.peak_mb),
        "no full scan",
        "–".into(),
    );
    row(
        &mut out,
        "`simile dataset head -n 10 --skip N−1000` (process)",
        format!("{:.0} ms, {:.0} MB", deep.secs * 1e3, deep.peak_mb),
        "no full scan",
        "–".into(),
    );
    row(
        &mut out,
        "`simile similarity compute --embeddings F.npy`",
        format!("{:.2} s, {:.0} MB", compute.secs, compute.peak_mb),
        "≤ 8 s, ≤ 2.6 GB",
        format!(
            "write {written_gb:.2} GB durably (f32 rows + int8 codes) ≈ {:.1} s",
            written_gb / disk_gbps
        ),
    );
    row(
        &mut out,
        "`simile similarity sort --id … -k 10`, process start to exit (median of 5, max RSS)",
        format!(
            "{:.0} ms, {sort_mb:.0} MB (the first, reading the codes from disk: {:.0} ms)",
            sort_s * 1e3,
            first_sort_s * 1e3
        ),
        "≤ 0.3 s",
        format!("one int8 pass ≈ {scan_ms:.0} ms"),
    );
    row(
        &mut out,
        "`compute_similarity` from an in-memory array (facade)",
        format!("{:.2} s, {:.0} MB", f(&built, "compute_s"), build.peak_mb),
        "≤ 5 s, ≤ 2.6 GB",
        format!(
            "the caller's array is {f32_gb:.2} GB; writing {written_gb:.2} GB durably ≈ {:.1} s",
            written_gb / disk_gbps
        ),
    );
    row(
        &mut out,
        "cold `load_brain_results`",
        format!("{:.2} ms", f(&q, "cold_load_s") * 1e3),
        "≤ 0.05 s",
        "O(1) with everything persisted".into(),
    );
    row(
        &mut out,
        "warm query by id, median",
        format!("{:.1} ms", f(&q, "query_id_median_ms")),
        "≤ 30 ms",
        format!("{scan_ms:.0} ms"),
    );
    row(
        &mut out,
        "warm query by vector, median",
        format!("{:.1} ms", f(&q, "query_vec_median_ms")),
        "≤ 30 ms",
        format!("{scan_ms:.0} ms"),
    );
    row(
        &mut out,
        "query on a half-dataset view (match stage), median",
        format!("{:.1} ms", f(&q, "query_view_median_ms")),
        "≤ 100 ms",
        format!("{:.0} ms", scan_ms / 2.0),
    );
    row(
        &mut out,
        "peak RSS of the query process",
        format!("{:.0} MB", query.peak_mb),
        "≤ 2.3 GB",
        "–".into(),
    );
    out.push('\n');
    Ok(out)
}
