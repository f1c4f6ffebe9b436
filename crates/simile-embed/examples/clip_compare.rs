//! Cosine between two models' embeddings (e.g. a dynamic-int8 variant and its fp32 model) on real
//! photos and text prompts, through the engine's own decoding, preprocessing and tokenizer.
//! Prints one JSON line (`cargo xtask models bench` puts it in docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p simile-embed --example clip_compare -- FP32_DIR INT8_DIR PHOTOS_DIR ORT_LIB
//! ```
//! `ORT_LIB`: the ONNX Runtime library (`cargo xtask models fetch-ort`). The photos are scikit-image's sample photos
//! (`cargo xtask models photos`); the same list as the int8 test in tests/integration/int8.rs.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::path::PathBuf;

use simile_embed::{embed_images_strict, load_clip, EmbeddingModel, ImageInput, ModelOptions};

#[path = "common/int8_inputs.rs"]
mod int8_inputs;
use int8_inputs::{PHOTOS, PROMPTS};

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

fn stats(c: &[f64]) -> (f64, f64) {
    let min = c.iter().cloned().fold(f64::INFINITY, f64::min);
    (min, c.iter().sum::<f64>() / c.len() as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [a, b, photos, ort] = &args[..] else {
        eprintln!("usage: clip_compare FP32_DIR INT8_DIR PHOTOS_DIR ORT_LIB");
        std::process::exit(2);
    };
    let opts = ModelOptions {
        ort_dylib_path: Some(PathBuf::from(ort)),
        models_dir: None,
        cache_dir: std::env::temp_dir(),
        batch_size: 16,
        threads: 2,
        offline: true,
    };
    let fp32 = load_clip(a, &opts, None).unwrap();
    let int8 = load_clip(b, &opts, None).unwrap();
    let inputs: Vec<ImageInput> = PHOTOS
        .iter()
        .map(|p| ImageInput::new(PathBuf::from(photos).join(p)))
        .collect();
    let x = embed_images_strict(&fp32, &inputs).unwrap();
    let y = embed_images_strict(&int8, &inputs).unwrap();
    let img: Vec<f64> = x.iter().zip(&y).map(|(p, q)| cosine(p, q)).collect();
    let prompts: Vec<String> = PROMPTS.iter().map(|p| p.to_string()).collect();
    let x = fp32.embed_prompts(&prompts).unwrap();
    let y = int8.embed_prompts(&prompts).unwrap();
    let txt: Vec<f64> = x.iter().zip(&y).map(|(p, q)| cosine(p, q)).collect();
    for (name, c) in PHOTOS.iter().zip(&img) {
        eprintln!("{name}: {c:.6}");
    }
    let (pm, pa) = stats(&img);
    let (tm, ta) = stats(&txt);
    let how = int8
        .manifest()
        .description
        .split(" of ")
        .next()
        .unwrap_or_default()
        .to_string();
    println!(
        "{}",
        serde_json::json!({
            "fp32": fp32.name(), "int8": int8.name(), "random_weights": int8.manifest().random_weights,
            "photos": img.len(), "photo_min": pm, "photo_mean": pa,
            "prompts": txt.len(), "prompt_min": tm, "prompt_mean": ta, "quantization": how,
        })
    );
}
