//! `simile doctor [--repair]`: what the registry and the storage disagree on, and (with
//! `--repair`) removing what is provably orphaned.
use anyhow::{bail, Result};
use clap::Args;
use simile::{DoctorOptions, DoctorReport, MilvusCheck, Simile};

use super::{plural, print_json};

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Remove what is provably orphaned (index storage no run references and no running
    /// compute holds, temp files of killed writes, Milvus collections simile created for runs
    /// that are gone) and mark broken runs failed.
    #[arg(long)]
    pub repair: bool,
    /// Milvus connection parameter (uri, user, password, ...): key=value, repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(simile: &Simile, args: DoctorArgs, json: bool) -> Result<()> {
    let mut options = DoctorOptions::new().repair(args.repair);
    options.milvus_params = super::parse_sets(&args.set)?;
    let report = simile.doctor(options)?;
    if json {
        print_json(&serde_json::to_value(&report)?);
    } else {
        print_text(&report);
    }
    let left = report.unresolved();
    if left > 0 {
        if args.repair {
            bail!(
                "{} left that --repair does not fix (see above)",
                plural(left, "problem", "problems")
            );
        }
        bail!(
            "{} found: `simile doctor --repair` removes what is orphaned and marks broken runs",
            plural(left, "problem", "problems")
        );
    }
    Ok(())
}

/// "1.5 MB", "312 bytes".
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return plural(bytes as usize, "byte", "bytes");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn print_text(r: &DoctorReport) {
    println!("home: {}", r.home.display());
    let milvus = match &r.milvus {
        MilvusCheck::Checked => "checked".to_string(),
        MilvusCheck::Skipped { reason } => format!("not checked ({reason})"),
        MilvusCheck::Unreachable { error } => format!("could not be reached: {error}"),
    };
    println!(
        "{} checked; Milvus collections: {milvus}",
        plural(r.runs, "index run", "index runs")
    );
    let done = |removed: bool, in_use: bool| {
        if removed {
            "  [removed]"
        } else if in_use {
            "  [in use by a running compute: kept]"
        } else {
            ""
        }
    };
    if !r.orphan_storage.is_empty() {
        println!("index storage that no run references:");
        for o in &r.orphan_storage {
            println!(
                "  {}  {}{}",
                o.path,
                size(o.bytes),
                done(o.removed, o.in_use)
            );
        }
    }
    if !r.temp_files.is_empty() {
        println!("temp files of interrupted writes:");
        for t in &r.temp_files {
            println!("  {}  {}{}", t.path, size(t.bytes), done(t.removed, false));
        }
    }
    if !r.stale_locks.is_empty() {
        println!("lock files of computes that were killed:");
        for l in &r.stale_locks {
            println!("  {l}{}", done(r.repair, false));
        }
    }
    if !r.orphan_collections.is_empty() {
        println!("Milvus collections simile created that no run references:");
        for c in &r.orphan_collections {
            println!(
                "  {}  (for {}){}",
                c.name,
                c.storage_dir,
                done(c.removed, c.in_use)
            );
        }
    }
    if !r.broken_runs.is_empty() {
        println!("broken runs (delete with `simile brain delete DATASET KEY --cleanup`):");
        for b in &r.broken_runs {
            println!(
                "  dataset '{}', run '{}' ({}): {}: {}{}",
                b.dataset,
                b.key,
                b.method,
                b.problem.as_str().replace('_', " "),
                b.detail,
                if b.marked { "  [marked failed]" } else { "" }
            );
        }
    }
    if !r.size_mismatches.is_empty() {
        println!("runs whose backend holds another number of vectors than recorded:");
        for m in &r.size_mismatches {
            println!(
                "  dataset '{}', run '{}' ({}): recorded {}, the backend has {}",
                m.dataset, m.key, m.method, m.recorded, m.actual
            );
        }
    }
    if !r.unchecked_runs.is_empty() {
        println!("runs not checked:");
        for u in &r.unchecked_runs {
            println!(
                "  dataset '{}', run '{}' ({}): {}",
                u.dataset, u.key, u.method, u.reason
            );
        }
    }
    if r.is_healthy() {
        println!("no problems found");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_english() {
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(999), "999 bytes");
        assert_eq!(size(1500), "1.5 KB");
        assert_eq!(size(519_000_000), "519.0 MB");
    }
}
