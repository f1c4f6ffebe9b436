//! `cargo xtask <task>`: the one automation entry of the workspace.
//!
//! - `ci`: fmt check, clippy -D warnings, the whole test suite (with a real Milvus server and
//!   the ONNX Runtime library set up first)
//! - `quickstart`: the main job: set up ONNX Runtime, then `simile quickstart` (embedded default)
//! - `app [args]`: `simile app` (the App on http://127.0.0.1:5151) with ONNX Runtime set up
//! - `bench`: end-to-end benchmarks, written to docs/benchmarks.md
//! - `fuzz [--minutes N]`: the fuzz harnesses in their long mode (the short pass runs in `ci`)
//! - `milvus start|stop|status`  the real Milvus server from PyPI, no Docker
//! - `models ...`                ONNX Runtime library and CLIP test models
//! - `browser`                   Debian's chromium + chromedriver for the App's browser tests
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod browser;
mod ci;
mod clip_int8;
mod dups_bench;
mod fuzz;
mod load;
mod milvus;
mod models;
mod scale;
mod util;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        print_help();
        return Ok(());
    };
    match task.as_str() {
        "ci" => ci::ci(rest),
        "bench" => ci::bench(rest),
        "fuzz" => fuzz::fuzz(rest),
        "quickstart" => ci::quickstart(rest),
        "app" => ci::app(rest),
        "milvus" => milvus::main(rest),
        "models" => models::main(rest),
        "browser" => browser::main(rest),
        "-h" | "--help" | "help" => {
            print_help();
            Ok(())
        }
        other => bail!("unknown task '{other}'; run `cargo xtask help`"),
    }
}

fn print_help() {
    println!(
        "cargo xtask <task>\n\n  quickstart [args]      the main job: demo dataset -> CLIP -> index -> queries (sets up ONNX Runtime)\n  app [args]             the App: browse and query datasets in a browser (simile app)\n  ci                     fmt, clippy, all tests (starts and stops Milvus itself)\n  bench [--quick] [--scale] [--only app,dups,load,clip,scale]\n                         benchmarks -> docs/benchmarks.md (--scale: near-duplicates and the 1M table too)\n  fuzz [--minutes N]     the parsers' fuzz harnesses, long (default 10 minutes)\n  milvus start|stop|status\n  models <cmd>           ONNX Runtime library and CLIP test models\n  browser                install chromium + chromedriver (the App's browser tests)"
    );
}
