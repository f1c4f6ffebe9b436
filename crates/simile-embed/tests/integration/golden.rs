//! Parity with the Python reference (open_clip), from fixtures made by tools/make_golden.py.
use serde_json::Value;
use simile_embed::preprocess::{load_rgb, preprocess, PreprocessConfig};
use simile_embed::tokenizer::ClipTokenizer;

use crate::assets;

fn golden(name: &str) -> Value {
    let p = assets().join("golden").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

#[test]
fn token_ids_equal_open_clip() {
    let tok = ClipTokenizer::new();
    let cases = golden("tokens.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<i64> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let got = tok.tokenize(text);
        if got[..] != want[..] {
            failures.push(format!("{text:?}\n  want {want:?}\n  got  {:?}", &got[..]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} prompts differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn preprocessed_tensors_equal_open_clip() {
    let cfg = PreprocessConfig::default();
    let one_level = 1.0 / 255.0 / 0.26;
    let mut failures = Vec::new();
    for c in golden("preprocess.json").as_array().unwrap() {
        let image = assets().join("golden").join(c["image"].as_str().unwrap());
        let want = read_f32(&assets().join("golden").join(c["tensor"].as_str().unwrap()));
        let got = preprocess(&load_rgb(&image).unwrap(), &cfg);
        assert_eq!(got.len(), want.len());
        let diffs: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
        let max = diffs.iter().cloned().fold(0.0, f32::max);
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let name = image.file_name().unwrap().to_string_lossy().to_string();
        eprintln!(
            "{name}: max |diff| {max:.2e} ({:.2} grey levels), mean {mean:.2e}",
            max / one_level
        );
        if name.ends_with(".png") {
            // PNG decoding is lossless and the resampler is Pillow's: identical pixels.
            if max >= 1e-5 {
                failures.push(format!("{name}: max diff {max}"));
            }
        } else {
            // JPEG: libjpeg-turbo (PIL) and zune-jpeg (image crate) decode a few pixels
            // differently (IDCT / chroma upsampling rounding): measured max ~4.7 grey levels,
            // mean ~0.3 level. The resampling itself is exact (see the PNG cases).
            if max > 8.0 * one_level || mean > 0.5 * one_level {
                failures.push(format!("{name}: max diff {max}, mean {mean}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
