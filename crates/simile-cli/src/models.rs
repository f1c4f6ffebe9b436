//! `simile models`: the models simile knows by name, whether their weights are random test
//! exports, their precision (fp32, or an int8 variant and the model it was made from), and where
//! each is looked for on disk (in the order `load_model` tries).
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{json, Value};
use simile::model::{builtin_manifests, tiny_random_dir, ModelManifest};
use simile::Simile;

/// One place a model is looked for.
struct Location {
    path: PathBuf,
    what: &'static str,
    present: bool,
}

struct Known {
    manifest: ModelManifest,
    locations: Vec<Location>,
}

/// True when `dir` holds a usable model: its own manifest and files, or `builtin`'s files.
fn present(dir: &Path, builtin: Option<&ModelManifest>) -> bool {
    match ModelManifest::load(dir) {
        Ok(m) => m.files_present(dir),
        Err(_) => builtin.is_some_and(|b| b.files_present(dir)),
    }
}

/// The manifest actually found in a present location (it may say `random_weights`), else `m`.
fn effective(m: ModelManifest, locations: &[Location]) -> ModelManifest {
    locations
        .iter()
        .find(|l| l.present)
        .and_then(|l| ModelManifest::load(&l.path).ok())
        .unwrap_or(m)
}

fn known(simile: &Simile) -> Vec<Known> {
    let s = simile.settings();
    let mut out = Vec::new();
    let tiny_dir = tiny_random_dir();
    if let Ok(m) = ModelManifest::load(&tiny_dir) {
        out.push(Known {
            manifest: m,
            locations: vec![Location {
                present: present(&tiny_dir, None),
                path: tiny_dir,
                what: "the simile-embed source tree (tests only)",
            }],
        });
    }
    for m in builtin_manifests() {
        let mut locations = Vec::new();
        if let Some(dir) = &s.models_dir {
            let path = dir.join(&m.name);
            locations.push(Location {
                present: present(&path, Some(&m)),
                path,
                what: "models dir (SIMILE_MODELS_DIR)",
            });
        }
        let path = s.model_cache_dir.join("models").join(&m.name);
        locations.push(Location {
            present: present(&path, Some(&m)),
            path,
            what: if m.quantized_from.is_some() {
                "cache (made from the fp32 model by tools/quantize_clip.py, never downloaded)"
            } else if s.offline {
                "download cache (offline: not downloaded)"
            } else {
                "download cache (downloaded on first use)"
            },
        });
        out.push(Known {
            manifest: effective(m, &locations),
            locations,
        });
    }
    // Other models with a manifest in the models dir (used by directory name).
    if let Some(dir) = &s.models_dir {
        let mut extra: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("manifest.json").is_file())
            .collect();
        extra.sort();
        for path in extra {
            let Ok(m) = ModelManifest::load(&path) else {
                continue;
            };
            let name = path.file_name().map(|n| n.to_string_lossy().to_string());
            if out.iter().any(|k| {
                name.as_deref()
                    .is_some_and(|n| k.manifest.answers_to(n) || k.manifest.name == m.name)
            }) {
                continue;
            }
            out.push(Known {
                manifest: m,
                locations: vec![Location {
                    present: present(&path, None),
                    path,
                    what: "models dir (SIMILE_MODELS_DIR)",
                }],
            });
        }
    }
    out
}

/// Writes to stdout; a closed pipe (`simile models | head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// `writeln!` into a String (which cannot fail).
macro_rules! outln {
    ($t:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($t, $($arg)*);
    }};
}

pub fn run(simile: &Simile, json: bool) -> Result<()> {
    let s = simile.settings();
    let models = known(simile);
    if json {
        let rows: Vec<Value> = models
            .iter()
            .map(|k| {
                let m = &k.manifest;
                json!({
                    "name": m.name,
                    "aliases": m.aliases,
                    "description": m.description,
                    "dim": m.dim,
                    "text_prompts": m.text.is_some(),
                    "random_weights": m.random_weights,
                    "precision": m.precision.as_str(),
                    "quantized_from": m.quantized_from,
                    "present": k.locations.iter().any(|l| l.present),
                    "locations": k.locations.iter().map(|l| json!({
                        "path": l.path.display().to_string(), "what": l.what, "present": l.present,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        emit(&serde_json::to_string_pretty(&json!({
            "models": rows,
            "models_dir": s.models_dir.as_ref().map(|d| d.display().to_string()),
            "cache_dir": s.model_cache_dir.display().to_string(),
            "offline": s.offline,
            "onnx_runtime": s.ort_dylib_path.as_ref().map(|p| json!({
                "path": p.display().to_string(), "present": p.is_file(),
            })),
        }))?);
        return Ok(());
    }
    let mut t = String::new();
    for k in &models {
        let m = &k.manifest;
        let mut head = m.name.clone();
        if !m.aliases.is_empty() {
            head.push_str(&format!(" (also: {})", m.aliases.join(", ")));
        }
        outln!(t, "{head}");
        if m.random_weights {
            outln!(
                t,
                "  RANDOM WEIGHTS: a test export; its embeddings mean nothing"
            );
        }
        outln!(
            t,
            "  precision: {}",
            match &m.quantized_from {
                Some(base) => format!(
                    "{} (quantised variant of {base}: same inputs, tokenizer and preprocessing)",
                    m.precision
                ),
                None => m.precision.to_string(),
            }
        );
        outln!(
            t,
            "  {}-d, {}{}",
            m.dim,
            if m.text.is_some() {
                "image and text prompts"
            } else {
                "images only"
            },
            if m.description.is_empty() {
                String::new()
            } else {
                format!("; {}", m.description)
            }
        );
        for l in &k.locations {
            outln!(
                t,
                "  {:<8} {}  [{}]",
                if l.present { "present" } else { "missing" },
                l.path.display(),
                l.what
            );
        }
    }
    match &s.ort_dylib_path {
        Some(p) => outln!(
            t,
            "ONNX Runtime: {} ({})",
            p.display(),
            if p.is_file() { "present" } else { "missing" }
        ),
        None => outln!(
            t,
            "ONNX Runtime: none found (set SIMILE_ORT_DYLIB_PATH, or `cargo xtask models fetch-ort` \
             in a checkout installs it in ~/.simile/lib)"
        ),
    }
    if s.models_dir.is_none() {
        outln!(t, "(set SIMILE_MODELS_DIR to a directory of <model name>/ folders to use your own copies)");
    }
    emit(t.trim_end());
    Ok(())
}
