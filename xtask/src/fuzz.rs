//! `cargo xtask fuzz [--minutes N]`: every fuzz harness (`simile-fuzz`'s `check`) in its long
//! mode, `SIMILE_FUZZ_SECONDS` set so that the harnesses share N minutes (default 10). The short
//! pass of the same harnesses runs in `cargo test` (and so in `cargo xtask ci`).
//!
//! A failure prints the minimal input and a `SIMILE_FUZZ_SEED` that replays it; every crash
//! found becomes a regression test next to the harness.
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, root};

/// (package, target arguments, test name filter, number of `check` calls in those tests).
const TARGETS: &[(&str, &[&str], &str, u64)] = &[
    ("simile-io", &["--lib"], "npy::tests::fuzz", 3),
    ("simile-io", &["--test", "integration"], "fuzz::", 3),
    ("simile-config", &["--test", "integration"], "fuzz::", 2),
    ("simile-e2e", &["--test", "e2e"], "fuzz::", 4),
    ("simile-app", &["--test", "integration"], "fuzz::", 5),
    ("simile-cli", &["--test", "integration"], "fuzz::", 1),
];

pub fn fuzz(args: &[String]) -> Result<()> {
    let minutes: f64 = match args {
        [] => 10.0,
        [flag, n] if flag == "--minutes" => n.parse().context("--minutes takes a number")?,
        _ => bail!("usage: cargo xtask fuzz [--minutes N]"),
    };
    for (pkg, target, _, _) in TARGETS {
        let status = cargo()
            .args(["test", "-p", pkg])
            .args(*target)
            .arg("--no-run")
            .current_dir(root())
            .status()?;
        if !status.success() {
            bail!("building the tests of {pkg} failed");
        }
    }
    let harnesses: u64 = TARGETS.iter().map(|t| t.3).sum();
    let seconds = ((minutes * 60.0) as u64 / harnesses).max(1);
    eprintln!("fuzz: {harnesses} harnesses, {seconds} s each");
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut lines = Vec::new();
    for (pkg, target, filter, _) in TARGETS {
        let out = cargo()
            .args(["test", "-p", pkg])
            .args(*target)
            .arg(filter)
            .args(["--", "--test-threads", "1", "--nocapture"])
            .env("SIMILE_FUZZ_SECONDS", seconds.to_string())
            .env_remove("PROPTEST_CASES")
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running the fuzz harnesses of {pkg}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for l in text.lines() {
            let line = format!("{pkg}: {l}");
            if (l.starts_with("fuzz target") || l.starts_with("minimal input"))
                && !lines.contains(&line)
            {
                eprintln!("  {line}");
                lines.push(line);
            }
        }
        if !out.status.success() {
            eprintln!("{text}");
            failed.push(format!("{pkg} {}", target.join(" ")));
        }
    }
    eprintln!(
        "fuzz: {} harness runs in {:.0} s; {} failed",
        lines.len(),
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("fuzz failures in: {}", failed.join(", "));
    }
    Ok(())
}
