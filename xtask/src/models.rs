//! `cargo xtask models ...`: the ONNX Runtime library and the CLIP test models.
//!
//! - `fetch-ort`: downloads the PyPI `onnxruntime==1.31.1` wheel with pip (no ort CDN),
//!   extracts `libonnxruntime.so.1.31.1` into the xtask cache and copies it into the simile
//!   home's `lib/` (`$SIMILE_HOME/lib`, else `~/.simile/lib`), where the `simile` binary finds it
//!   with no variable set; prints that path.
//! - `export-tiny`: regenerates the tiny random-weight CLIP committed under
//!   `crates/simile-embed/tests/assets/clip-tiny-random` (torch + open_clip venv).
//! - `export-vitb32`: exports ViT-B/32 (open_clip `ViT-B-32-quickgelu`, RANDOM weights, seed 0)
//!   into `<cache>/models/clip-vit-b32-random` for benchmarks (~600 MB, not committed).
//! - `golden`: regenerates the golden tokenizer / preprocessing fixtures with open_clip.
//! - `quantize [--force]`: the dynamic-int8 variant of each exported CLIP model
//!   (`<cache>/models/<name>-int8`, ONNX Runtime's `quantize_dynamic`; see [`crate::clip_int8`]).
//! - `photos`: scikit-image's sample photos from its PyPI wheel (the int8 accuracy test's input).
//! - `test-assets`: the tiny model's int8 variant and the photos; prints the variables the
//!   simile-embed tests read (`cargo xtask ci` sets them itself).
//! - `bench [--quick]`: the CLIP benchmark, side by side in one run: open_clip on torch, ONNX
//!   Runtime fp32 and int8 with the same random ViT-B/32 weights (exported and quantised first
//!   if needed); prints the markdown section of docs/benchmarks.md.
//!
//! Everything is idempotent: a second run finds the files and returns at once.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cache_dir, root, run};

/// The ONNX Runtime release `ort` 2.0.0-rc.15 with `api-31` is built against.
pub const ORT_VERSION: &str = "1.31.1";

/// Python packages of the export venv (torch from PyPI pulls CUDA wheels: ~6 GB, kept in the cache).
const EXPORT_PACKAGES: &[&str] = &[
    "torch",
    "open_clip_torch",
    "onnx",
    "onnxruntime==1.31.1",
    "pillow",
    "numpy",
];

pub fn main(args: &[String]) -> Result<()> {
    let Some((cmd, rest)) = args.split_first() else {
        print_help();
        return Ok(());
    };
    match cmd.as_str() {
        "fetch-ort" => {
            let lib = ensure_ort()?;
            let installed = install_ort(&lib)?;
            println!("{}", installed.display());
            eprintln!(
                "ONNX Runtime ready: the simile binary finds {} by itself.\n\
                 For the test suite: export SIMILE_ORT_DYLIB_PATH={}",
                installed.display(),
                lib.display()
            );
            Ok(())
        }
        "export-tiny" => {
            let out = root().join("crates/simile-embed/tests/assets/clip-tiny-random");
            export(&out, "tiny", rest)
        }
        "export-vitb32" => {
            let out = vitb32_dir();
            export(&out, "vitb32", rest)
        }
        "golden" => golden(),
        "quantize" => {
            for dir in crate::clip_int8::quantize(rest.iter().any(|a| a == "--force"), true)? {
                println!("{}", dir.display());
            }
            Ok(())
        }
        "photos" => {
            println!("{}", crate::clip_int8::ensure_photos()?.display());
            Ok(())
        }
        "test-assets" => {
            println!("export SIMILE_ORT_DYLIB_PATH={}", ensure_ort()?.display());
            for (k, v) in crate::clip_int8::test_env()? {
                println!("export {k}={}", v.display());
            }
            Ok(())
        }
        "bench" => {
            let quick = rest.iter().any(|a| a == "--quick");
            println!("{}", crate::clip_int8::section(quick));
            Ok(())
        }
        "-h" | "--help" | "help" => {
            print_help();
            Ok(())
        }
        other => bail!("unknown models command '{other}'; run `cargo xtask models help`"),
    }
}

fn print_help() {
    println!(
        "cargo xtask models <cmd>\n\n  fetch-ort        ONNX Runtime {ORT_VERSION} from the PyPI wheel, installed in ~/.simile/lib\n  export-tiny      re-export the committed tiny random-weight CLIP (needs torch: ~6 GB venv)\n  export-vitb32    export ViT-B/32 with RANDOM weights for benchmarks (not committed)\n  quantize [--force]  dynamic-int8 variant of each exported CLIP (<cache>/models/<name>-int8)\n  photos           scikit-image's sample photos (PyPI wheel) for the int8 accuracy test\n  test-assets      export + quantize + photos; prints the variables the tests read\n  golden           regenerate golden tokenizer/preprocessing fixtures with open_clip\n  bench [--quick]  CLIP: open_clip/torch vs ORT fp32 vs ORT int8, side by side (markdown)"
    );
}

/// Where `export-vitb32` writes the random-weight ViT-B/32 (benchmarks read it from here).
pub fn vitb32_dir() -> PathBuf {
    cache_dir().join("models").join("clip-vit-b32-random")
}

/// `pip download --no-deps --only-binary=:all:` of one requirement into `dir` (a wheel only).
pub(crate) fn pip_download(dir: &Path, requirement: &str) -> Result<()> {
    run(Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
        ])
        .arg(dir)
        .arg(requirement))
}

/// Makes sure `libonnxruntime.so.1.31.1` is in the xtask cache and returns its absolute path.
///
/// Downloads the PyPI wheel with `pip download --no-deps` (no ort CDN, works with only PyPI
/// reachable) and extracts the one library file with Python's `zipfile`. Idempotent.
pub fn ensure_ort() -> Result<PathBuf> {
    let dir = cache_dir().join(format!("onnxruntime-{ORT_VERSION}"));
    let lib_name = lib_file_name();
    let lib = dir.join(&lib_name);
    if lib.is_file() {
        return Ok(lib);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let wheel_dir = dir.join("wheel");
    let wheel = match find_wheel(&wheel_dir)? {
        Some(w) => w,
        None => {
            pip_download(&wheel_dir, &format!("onnxruntime=={ORT_VERSION}"))
                .context("downloading the onnxruntime wheel from PyPI with pip")?;
            find_wheel(&wheel_dir)?.with_context(|| {
                format!("pip left no onnxruntime wheel in {}", wheel_dir.display())
            })?
        }
    };
    let member = format!("onnxruntime/capi/{lib_name}");
    let tmp = dir.join(format!("{lib_name}.partial"));
    let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nopen(sys.argv[3], 'wb').write(z.read(sys.argv[2]))\n";
    run(Command::new(python())
        .args(["-c", script])
        .arg(&wheel)
        .arg(&member)
        .arg(&tmp))
    .with_context(|| format!("extracting {member} from {}", wheel.display()))?;
    std::fs::rename(&tmp, &lib).with_context(|| format!("moving {} into place", tmp.display()))?;
    // The wheel is only needed once; keep the cache small.
    let _ = std::fs::remove_dir_all(&wheel_dir);
    Ok(lib)
}

/// The simile home's `lib/` (`$SIMILE_HOME/lib`, else `~/.simile/lib`): where simile-config's
/// `Settings` looks for the ONNX Runtime library when no variable names one.
fn simile_lib_dir() -> Result<PathBuf> {
    let home = match std::env::var_os("SIMILE_HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".simile"))
            .context("neither SIMILE_HOME nor HOME is set: nowhere to install the library")?,
    };
    Ok(home.join("lib"))
}

/// Copies the library into the simile home's `lib/` (a copy, so cleaning `target/` keeps it);
/// idempotent.
fn install_ort(lib: &Path) -> Result<PathBuf> {
    let dir = simile_lib_dir()?;
    let name = lib
        .file_name()
        .context("the library path has no file name")?;
    let dest = dir.join(name);
    let same = |a: &Path, b: &Path| matches!((std::fs::metadata(a), std::fs::metadata(b)), (Ok(x), Ok(y)) if x.len() == y.len());
    if same(lib, &dest) {
        return Ok(dest);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!("{}.partial", name.to_string_lossy()));
    std::fs::copy(lib, &tmp)
        .with_context(|| format!("copying {} to {}", lib.display(), tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("moving {} into place", tmp.display()))?;
    Ok(dest)
}

/// The library file name inside the wheel's `onnxruntime/capi/`.
fn lib_file_name() -> String {
    if cfg!(target_os = "macos") {
        format!("libonnxruntime.{ORT_VERSION}.dylib")
    } else if cfg!(windows) {
        "onnxruntime.dll".to_string()
    } else {
        format!("libonnxruntime.so.{ORT_VERSION}")
    }
}

fn find_wheel(dir: &Path) -> Result<Option<PathBuf>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(&format!("onnxruntime-{ORT_VERSION}-")) && name.ends_with(".whl") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// The system Python (`$SIMILE_PYTHON`, else `python3`).
pub(crate) fn python() -> String {
    std::env::var("SIMILE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The torch + open_clip venv used by the export scripts (`<cache>/clip-venv`), created on demand.
pub(crate) fn export_venv() -> Result<PathBuf> {
    venv(
        "clip-venv",
        EXPORT_PACKAGES,
        "torch + open_clip (~6 GB, a few minutes)",
    )
}

/// Python packages of the quantisation venv: ONNX Runtime's own tooling, no torch (~0.2 GB).
const QUANT_PACKAGES: &[&str] = &["onnx", "onnxruntime==1.31.1", "numpy"];

/// The venv `tools/quantize_clip.py` runs in: onnx + onnxruntime only, so the int8 tests of
/// `cargo xtask ci` never need the 6 GB torch venv.
pub(crate) fn quant_venv() -> Result<PathBuf> {
    venv("quant-venv", QUANT_PACKAGES, "onnx + onnxruntime (~0.2 GB)")
}

/// A venv in the cache with `packages`, made once (a marker file records what it holds).
fn venv(name: &str, packages: &[&str], what: &str) -> Result<PathBuf> {
    let venv = cache_dir().join(name);
    let py = venv.join("bin").join("python");
    let marker = venv.join(".simile-ready");
    if marker.is_file() {
        return Ok(py);
    }
    if !py.is_file() {
        std::fs::create_dir_all(cache_dir())?;
        run(Command::new(python()).args(["-m", "venv"]).arg(&venv))?;
    }
    eprintln!("installing {what} into {}", venv.display());
    run(Command::new(&py)
        .args(["-m", "pip", "install", "-q"])
        .args(packages))?;
    std::fs::write(&marker, packages.join("\n"))?;
    Ok(py)
}

pub(crate) fn export(out: &Path, arch: &str, rest: &[String]) -> Result<()> {
    let force = rest.iter().any(|a| a == "--force");
    if !force && out.join("manifest.json").is_file() {
        eprintln!(
            "{} already exists (use --force to re-export)",
            out.display()
        );
        return Ok(());
    }
    let py = export_venv()?;
    run(Command::new(py)
        .arg(root().join("tools/export_clip.py"))
        .args(["--arch", arch, "--out"])
        .arg(out))
}

fn golden() -> Result<()> {
    let py = export_venv()?;
    run(Command::new(py)
        .arg(root().join("tools/make_golden.py"))
        .arg("--out")
        .arg(root().join("crates/simile-embed/tests/assets/golden")))
}
