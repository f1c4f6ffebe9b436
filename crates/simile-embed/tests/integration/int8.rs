//! The dynamic-int8 CLIP variants (made by `cargo xtask models quantize` with ONNX Runtime's
//! `quantize_dynamic`, `tools/quantize_clip.py`) against their fp32 models: cosine of the
//! embeddings on real photos (scikit-image's sample photos) and on text prompts, through the
//! engine's own decoding, preprocessing and tokenizer.
//!
//! THE WEIGHTS ARE RANDOM: no pretrained CLIP weights are reachable offline. The suite checks
//! the tiny model (its fp32 files are in the source tree; quantising needs only a small
//! onnxruntime venv). The ViT-B/32 variant — the real architecture, 12 + 12 layers — is checked
//! with the same photos, prompts and threshold by `cargo xtask bench --only clip` (its export
//! needs a 6 GB torch venv, which CI does not install; figures in docs/benchmarks.md).
//!
//! Inputs: `SIMILE_TEST_CLIP_MODELS` (a directory holding `clip-tiny-random-int8`) and
//! `SIMILE_TEST_PHOTOS` (the photos), both set by `cargo xtask ci`; `cargo xtask models
//! test-assets` makes them and prints the exports. Without the variables the default xtask cache (`target/xtask-cache`) is tried; a
//! missing model or photo fails the test, it never skips.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use simile_embed::manifest::Precision;
use simile_embed::{
    embed_images_strict, load_clip, ClipModel, EmbeddingModel, ImageInput, ModelOptions,
    TINY_RANDOM,
};

use crate::{cosine, ort_path};

#[path = "../../examples/common/int8_inputs.rs"]
mod int8_inputs;
use int8_inputs::{PHOTOS, PROMPTS};

/// The minimum cosine asked of every photo and every prompt.
const MIN_COSINE: f64 = 0.999;

fn default_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/xtask-cache")
}

fn from_env_or_cache(var: &str, fallback: PathBuf, what: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ if fallback.is_dir() => fallback,
        _ => panic!(
            "{var} is not set and {} does not exist: {what}. Run `cargo xtask models test-assets` \
             and export the variables it prints (or run the suite through `cargo xtask ci`).",
            fallback.display()
        ),
    }
}

fn models_dir() -> PathBuf {
    from_env_or_cache(
        "SIMILE_TEST_CLIP_MODELS",
        default_cache().join("models"),
        "the exported random-weight CLIP models and their int8 variants are needed",
    )
}

fn photos() -> Vec<PathBuf> {
    let dir = from_env_or_cache(
        "SIMILE_TEST_PHOTOS",
        default_cache().join("photos/skimage-0.26.0"),
        "scikit-image's sample photos are needed",
    );
    PHOTOS
        .iter()
        .map(|name| {
            let p = dir.join(name);
            assert!(p.is_file(), "photo {} is missing", p.display());
            p
        })
        .collect()
}

fn load(name: &str) -> ClipModel {
    let dir = models_dir();
    assert!(
        dir.join(name).join("manifest.json").is_file(),
        "model {name} is missing from {} (cargo xtask models test-assets)",
        dir.display()
    );
    let opts = ModelOptions {
        ort_dylib_path: Some(ort_path()),
        models_dir: Some(dir),
        cache_dir: std::env::temp_dir().join("simile-embed-tests"),
        batch_size: 16,
        threads: 2,
        offline: true,
    };
    load_clip(name, &opts, None).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// The tiny random CLIP (fp32, in the source tree) and its int8 variant.
fn tiny_pair() -> &'static (ClipModel, ClipModel) {
    static M: OnceLock<(ClipModel, ClipModel)> = OnceLock::new();
    M.get_or_init(|| {
        let opts = ModelOptions {
            ort_dylib_path: Some(ort_path()),
            models_dir: None,
            cache_dir: std::env::temp_dir().join("simile-embed-tests"),
            batch_size: 16,
            threads: 2,
            offline: true,
        };
        let fp32 = load_clip(TINY_RANDOM, &opts, None).unwrap();
        (fp32, load("clip-tiny-random-int8"))
    })
}

/// Per-item cosines of two models' embeddings of the photos, then of the prompts.
fn cosines(fp32: &ClipModel, int8: &ClipModel) -> (Vec<f64>, Vec<f64>) {
    let inputs: Vec<ImageInput> = photos().into_iter().map(ImageInput::new).collect();
    let a = embed_images_strict(fp32, &inputs).unwrap();
    let b = embed_images_strict(int8, &inputs).unwrap();
    let images = a.iter().zip(&b).map(|(x, y)| cosine(x, y)).collect();
    let prompts: Vec<String> = PROMPTS.iter().map(|p| p.to_string()).collect();
    let a = fp32.embed_prompts(&prompts).unwrap();
    let b = int8.embed_prompts(&prompts).unwrap();
    let texts = a.iter().zip(&b).map(|(x, y)| cosine(x, y)).collect();
    (images, texts)
}

#[allow(clippy::print_stderr)] // the measured figures, for the test log (helper, not a #[test] fn)
fn check(label: &str, names: &[&str], cos: &[f64]) -> Vec<String> {
    let min = cos.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean = cos.iter().sum::<f64>() / cos.len() as f64;
    eprintln!(
        "{label}: int8 vs fp32 cosine min {min:.6}, mean {mean:.6} over {} (RANDOM weights)",
        cos.len()
    );
    names
        .iter()
        .zip(cos)
        .filter(|(_, c)| **c < MIN_COSINE)
        .map(|(n, c)| format!("{label} {n:?}: cosine {c:.6} < {MIN_COSINE}"))
        .collect()
}

#[test]
fn int8_variant_is_selected_by_name_and_shares_the_fp32_interface() {
    let (fp32, int8) = tiny_pair();
    let (f, q) = (fp32.manifest(), int8.manifest());
    assert_eq!(int8.name(), "clip-tiny-random-int8");
    assert_eq!(q.precision, Precision::Int8);
    assert_eq!(f.precision, Precision::Fp32);
    assert_eq!(q.quantized_from.as_deref(), Some(f.name.as_str()));
    assert!(q.random_weights, "the variant of a random export says so");
    assert!(q.description.contains("int8"), "{}", q.description);
    // Same interface: inputs, outputs, tokenizer context, preprocessing, dimension.
    assert_eq!(q.dim, f.dim);
    assert_eq!(q.preprocess, f.preprocess);
    assert_eq!(
        (&q.image.input, &q.image.output),
        (&f.image.input, &f.image.output)
    );
    let (qt, ft) = (q.text.as_ref().unwrap(), f.text.as_ref().unwrap());
    assert_eq!(
        (&qt.input, &qt.output, qt.context_length),
        (&ft.input, &ft.output, ft.context_length)
    );
    // The towers really run 8-bit matrix products (dynamic quantisation: `MatMulInteger` fed by
    // `DynamicQuantizeLinear`), which the fp32 files do not contain, and are smaller.
    let bytes = |m: &ClipModel, file: &str| std::fs::read(m.dir().join(file)).unwrap();
    let has = |b: &[u8], op: &[u8]| b.windows(op.len()).any(|w| w == op);
    for (qf, ff) in [(&q.image.file, &f.image.file), (&qt.file, &ft.file)] {
        let (qb, fb) = (bytes(int8, qf), bytes(fp32, ff));
        assert!(has(&qb, b"MatMulInteger"), "{qf}: no int8 MatMul");
        assert!(!has(&fb, b"MatMulInteger"), "{ff}: the fp32 model is fp32");
        assert!(
            qb.len() < fb.len(),
            "{qf}: {} B vs fp32 {} B",
            qb.len(),
            fb.len()
        );
    }
}

#[test]
fn tiny_int8_embeddings_match_fp32_on_photos_and_prompts() {
    let (fp32, int8) = tiny_pair();
    assert_eq!(int8.manifest().quantized_from.as_deref(), Some(TINY_RANDOM));
    let (images, texts) = cosines(fp32, int8);
    let mut failures = check("tiny photos", PHOTOS, &images);
    failures.extend(check("tiny prompts", PROMPTS, &texts));
    assert!(failures.is_empty(), "{failures:#?}");
}
