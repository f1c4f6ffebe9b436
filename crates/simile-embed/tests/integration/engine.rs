//! The engine on the committed tiny RANDOM-WEIGHT CLIP: parity with torch, batching, ordering,
//! per-sample failures, patches, concurrency, typed errors.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use simile_embed::{
    embed_images_strict, load_clip, load_model, ClipModel, EmbedError, EmbeddingModel, ImageInput,
    ItemError, ModelOptions, TINY_RANDOM,
};

use crate::{assets, cosine, ort_path};

fn opts(batch_size: usize) -> ModelOptions {
    ModelOptions {
        ort_dylib_path: Some(ort_path()),
        models_dir: None,
        cache_dir: std::env::temp_dir().join("simile-embed-tests"),
        batch_size,
        threads: 2,
        offline: true,
    }
}

fn tiny() -> &'static ClipModel {
    static M: OnceLock<ClipModel> = OnceLock::new();
    M.get_or_init(|| load_clip(TINY_RANDOM, &opts(4), None).unwrap())
}

fn golden_dir() -> PathBuf {
    assets().join("golden")
}

fn tiny_golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(golden_dir().join("tiny.json")).unwrap()).unwrap()
}

fn vec_of(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn tiny_model_is_labelled_random_and_has_both_towers() {
    let m = tiny();
    assert_eq!(m.name(), "clip-tiny-random");
    assert_eq!(m.dim(), 64);
    assert!(m.supports_prompts());
    assert!(m.manifest().random_weights);
}

#[test]
fn image_embeddings_match_torch() {
    let g = tiny_golden();
    let cases = g["images"].as_array().unwrap();
    let inputs: Vec<ImageInput> = cases
        .iter()
        .map(|c| ImageInput::new(golden_dir().join(c["image"].as_str().unwrap())))
        .collect();
    let got = embed_images_strict(tiny(), &inputs).unwrap();
    for (c, e) in cases.iter().zip(&got) {
        let want = vec_of(&c["embedding"]);
        let cos = cosine(e, &want);
        let name = c["image"].as_str().unwrap();
        let min = if name.ends_with(".png") {
            0.99999
        } else {
            0.9995
        };
        assert!(cos >= min, "{name}: cosine {cos}");
        if name.ends_with(".png") {
            let max = e
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(max < 1e-3, "{name}: max diff {max}");
        }
    }
}

#[test]
fn patch_embeddings_match_torch() {
    let g = tiny_golden();
    let cases = g["crops"].as_array().unwrap();
    let mut inputs = Vec::new();
    for c in cases {
        let path = golden_dir().join(c["image"].as_str().unwrap());
        let b = vec_of(&c["box"]);
        let crop = [b[0], b[1], b[2], b[3]];
        let fs = c["force_square"].as_bool().unwrap();
        let alpha = c["alpha"].as_f64().map(|a| a as f32);
        // the pixel box equals ETA's
        let img = simile_embed::preprocess::load_rgb(&path).unwrap();
        let px = simile_embed::preprocess::patch_box(img.width(), img.height(), crop, fs, alpha)
            .unwrap();
        let want_px: Vec<u32> = c["pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(px.to_vec(), want_px, "{c}");
        inputs.push(ImageInput::patch(path, crop, fs, alpha));
    }
    let got = embed_images_strict(tiny(), &inputs).unwrap();
    for (c, e) in cases.iter().zip(&got) {
        let cos = cosine(e, &vec_of(&c["embedding"]));
        let min = if c["image"].as_str().unwrap().ends_with(".png") {
            0.99999
        } else {
            0.9995
        };
        assert!(cos >= min, "{c}: cosine {cos}");
    }
}

#[test]
fn prompt_embeddings_match_torch() {
    let g = tiny_golden();
    let cases = g["prompts"].as_array().unwrap();
    let prompts: Vec<String> = cases
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    let got = tiny().embed_prompts(&prompts).unwrap();
    assert_eq!(got.len(), prompts.len());
    for (c, e) in cases.iter().zip(&got) {
        let want = vec_of(&c["embedding"]);
        let cos = cosine(e, &want);
        assert!(cos >= 0.99999, "{:?}: cosine {cos}", c["text"]);
        let max = e
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(max < 1e-3, "{:?}: max diff {max}", c["text"]);
    }
}

fn images() -> Vec<PathBuf> {
    [
        "photo.jpg",
        "wide.jpg",
        "tall.png",
        "rgba.png",
        "small_gray.png",
    ]
    .iter()
    .map(|n| golden_dir().join("images").join(n))
    .collect()
}

#[test]
fn results_keep_input_order_whatever_the_batch_size() {
    let paths = images();
    // 23 inputs: the 5 images repeated in a scrambled order.
    let order: Vec<usize> = (0..23).map(|i| (i * 3 + i / 5) % 5).collect();
    let inputs: Vec<ImageInput> = order.iter().map(|&i| ImageInput::new(&paths[i])).collect();
    let singles: Vec<Vec<f32>> = paths
        .iter()
        .map(|p| {
            embed_images_strict(tiny(), &[ImageInput::new(p)])
                .unwrap()
                .remove(0)
        })
        .collect();
    for bs in [1, 3, 16, 64] {
        let m = load_clip(TINY_RANDOM, &opts(bs), None).unwrap();
        let got = embed_images_strict(&m, &inputs).unwrap();
        assert_eq!(got.len(), inputs.len());
        for (k, (&i, e)) in order.iter().zip(&got).enumerate() {
            let cos = cosine(e, &singles[i]);
            assert!(cos > 0.99999, "batch {bs}, position {k}: cosine {cos}");
        }
    }
}

#[test]
fn failures_are_reported_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    let good = images()[0].clone();
    let inputs = vec![
        ImageInput::new(&good),
        ImageInput::new(dir.path().join("missing.png")),
        ImageInput::new(&corrupt),
        ImageInput::patch(&good, [0.5, 0.5, 0.0, 0.3], false, None),
        ImageInput::new(&good),
    ];
    let got = tiny().embed_images(&inputs).unwrap();
    assert_eq!(got.len(), 5);
    assert!(got[0].is_ok() && got[4].is_ok());
    assert!(
        matches!(got[1], Err(ItemError::Read { .. })),
        "{:?}",
        got[1]
    );
    assert!(
        matches!(got[2], Err(ItemError::Decode { .. })),
        "{:?}",
        got[2]
    );
    assert!(
        matches!(got[3], Err(ItemError::InvalidCrop { .. })),
        "{:?}",
        got[3]
    );
    let (a, b) = (got[0].as_ref().unwrap(), got[4].as_ref().unwrap());
    assert!(cosine(a, b) > 0.99999);

    // not skipping: a typed error naming the first failing input
    match embed_images_strict(tiny(), &inputs) {
        Err(EmbedError::Item {
            index,
            path,
            source,
        }) => {
            assert_eq!(index, 1);
            assert_eq!(path, dir.path().join("missing.png"));
            assert!(matches!(source, ItemError::Read { .. }));
        }
        other => panic!("expected an Item error, got {other:?}"),
    }
}

#[test]
fn concurrent_callers_get_their_own_sessions() {
    let paths = images();
    let inputs: Vec<ImageInput> = paths.iter().map(ImageInput::new).collect();
    let expected = embed_images_strict(tiny(), &inputs).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| embed_images_strict(tiny(), &inputs).unwrap()))
            .collect();
        for h in handles {
            let got = h.join().unwrap();
            for (a, b) in got.iter().zip(&expected) {
                assert!(cosine(a, b) > 0.99999);
            }
        }
    });
    let p = tiny().embed_prompts(&["a dog".to_string()]).unwrap();
    assert_eq!(p[0].len(), 64);
}

#[test]
fn empty_inputs_give_empty_outputs() {
    assert!(tiny().embed_images(&[]).unwrap().is_empty());
    assert!(tiny().embed_prompts(&[]).unwrap().is_empty());
}

fn copy_tiny_with(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let src = assets().join("clip-tiny-random");
    for f in ["image.onnx", "text.onnx"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("manifest.json")).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string(&m).unwrap(),
    )
    .unwrap();
}

#[test]
fn image_only_model_refuses_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("image-only");
    std::fs::create_dir(&model_dir).unwrap();
    copy_tiny_with(&model_dir, |m| {
        m.as_object_mut().unwrap().remove("text");
        m["name"] = "image-only".into();
    });
    let mut o = opts(8);
    o.models_dir = Some(dir.path().to_path_buf());
    let m = load_model("image-only", &o).unwrap();
    assert!(!m.supports_prompts());
    assert!(matches!(
        m.embed_prompts(&["x".to_string()]),
        Err(EmbedError::PromptsNotSupported(_))
    ));
    assert_eq!(
        m.embed_images(&[ImageInput::new(&images()[2])])
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn wrong_tensor_names_are_a_manifest_error() {
    let dir = tempfile::tempdir().unwrap();
    copy_tiny_with(dir.path(), |m| m["image"]["output"] = "nope".into());
    let err = load_model(dir.path().to_str().unwrap(), &opts(8)).unwrap_err();
    match err {
        EmbedError::InvalidManifest { reason, .. } => {
            assert!(reason.contains("image_embeds"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn vit_b32_offline_without_files_says_how_to_provide_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(8);
    o.models_dir = Some(dir.path().to_path_buf());
    o.cache_dir = dir.path().join("cache");
    let err = load_model("clip-vit-base32-torch", &o).unwrap_err();
    assert!(
        matches!(err, EmbedError::ModelUnavailable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("offline"), "{err}");
}

/// A user-supplied model works through the same trait object the facade uses.
#[derive(Debug)]
struct Constant;

impl EmbeddingModel for Constant {
    fn name(&self) -> &str {
        "constant"
    }
    fn dim(&self) -> usize {
        2
    }
    fn supports_prompts(&self) -> bool {
        false
    }
    fn embed_images(
        &self,
        inputs: &[ImageInput],
    ) -> Result<Vec<Result<Vec<f32>, ItemError>>, EmbedError> {
        Ok(inputs.iter().map(|_| Ok(vec![1.0, 0.0])).collect())
    }
    fn embed_prompts(&self, _: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Err(EmbedError::PromptsNotSupported("constant".into()))
    }
}

#[test]
fn user_models_plug_in() {
    let m: Box<dyn EmbeddingModel> = Box::new(Constant);
    let got = embed_images_strict(m.as_ref(), &[ImageInput::new("x.png")]).unwrap();
    assert_eq!(got, vec![vec![1.0, 0.0]]);
}

#[test]
fn progress_reaches_the_input_count_monotonically() {
    let paths = images();
    let mut inputs: Vec<ImageInput> = (0..11).map(|i| ImageInput::new(&paths[i % 5])).collect();
    inputs.push(ImageInput::new("/nonexistent/x.jpg"));
    let seen = std::sync::Mutex::new(Vec::new());
    let cb = |done: usize| seen.lock().unwrap().push(done);
    let out = tiny().embed_images_with_progress(&inputs, &cb).unwrap();
    assert_eq!(out.len(), 12);
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&12));
    // batch size 4: several reports, not just the final one
    assert!(seen.len() >= 3, "{seen:?}");
}

/// Text towers exported from Hugging Face also take an `attention_mask` (1 for SOT..EOT, 0 for
/// padding). `tests/assets/hf-text-stub` is a tiny NON-CLIP stand-in with that interface
/// (`tools/export_clip.py --arch hf-text-stub`), with reference outputs from torch.
#[test]
fn attention_mask_inputs_are_fed_like_hugging_face() {
    let stub = assets().join("hf-text-stub");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        assets().join("clip-tiny-random/image.onnx"),
        dir.path().join("image.onnx"),
    )
    .unwrap();
    std::fs::copy(stub.join("text_hf.onnx"), dir.path().join("text.onnx")).unwrap();
    let mut m: Value = serde_json::from_str(
        &std::fs::read_to_string(assets().join("clip-tiny-random/manifest.json")).unwrap(),
    )
    .unwrap();
    m["name"] = "hf-stub".into();
    m["text"] = serde_json::json!({
        "file": "text.onnx", "input": "input_ids", "attention_mask": "attention_mask",
        "output": "text_embeds", "context_length": 77
    });
    std::fs::write(dir.path().join("manifest.json"), m.to_string()).unwrap();
    let model = load_model(dir.path().to_str().unwrap(), &opts(2)).unwrap();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(stub.join("hf_stub.json")).unwrap()).unwrap();
    let prompts: Vec<String> = reference["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let got = model.embed_prompts(&prompts).unwrap();
    for (e, want) in got.iter().zip(reference["embeddings"].as_array().unwrap()) {
        let want = vec_of(want);
        let max = e
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(max < 1e-4, "max diff {max}");
    }
}
