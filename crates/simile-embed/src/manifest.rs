//! Model manifests (`manifest.json` beside the ONNX files) and model name resolution.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::download::{download, DownloadSpec, ProgressFn};
use crate::error::{EmbedError, Result};
use crate::preprocess::PreprocessConfig;

/// One tower (image or text) of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TowerSpec {
    /// File name inside the model directory.
    pub file: String,
    /// Lower-case hex sha256 of the file, when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Where to download the file from when it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Input tensor name (`pixel_values` f32 `[N,3,S,S]` or `input_ids` i64 `[N,77]`).
    pub input: String,
    /// Output tensor name (`[N, dim]` f32).
    pub output: String,
    /// Optional attention-mask input of text towers exported from Hugging Face (i64 `[N,77]`,
    /// 1 up to and including EOT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_mask: Option<String>,
    /// Text context length (77).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<usize>,
}

/// Numeric precision of a model's weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float weights (the exported model).
    #[default]
    Fp32,
    /// Dynamic int8: int8 weights, activations quantised per batch at run time
    /// (`onnxruntime.quantization.quantize_dynamic`; see `tools/quantize_clip.py`).
    Int8,
}

impl Precision {
    /// `"fp32"` or `"int8"`, as in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Canonical name.
    pub name: String,
    /// Other names that resolve to this model (e.g. FiftyOne's zoo name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Human description.
    #[serde(default)]
    pub description: String,
    /// True for models with random weights (tests, benchmarks): their embeddings mean nothing.
    #[serde(default)]
    pub random_weights: bool,
    /// Architecture note.
    #[serde(default)]
    pub architecture: String,
    /// Embedding dimension.
    pub dim: usize,
    /// The image tower.
    pub image: TowerSpec,
    /// The text tower, if the model can embed prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TowerSpec>,
    /// Preprocessing.
    #[serde(default)]
    pub preprocess: PreprocessConfig,
    /// Weight precision (`fp32` when absent).
    #[serde(default)]
    pub precision: Precision,
    /// For a quantised variant: the name of the fp32 model it was made from (same inputs,
    /// outputs, tokenizer and preprocessing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantized_from: Option<String>,
}

impl ModelManifest {
    /// Reads `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<ModelManifest> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|source| EmbedError::Io {
            path: path.clone(),
            source,
        })?;
        let m: ModelManifest =
            serde_json::from_str(&text).map_err(|e| EmbedError::InvalidManifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        m.validate(&path)?;
        Ok(m)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| {
            Err(EmbedError::InvalidManifest {
                path: path.to_path_buf(),
                reason,
            })
        };
        if self.dim == 0 {
            return bad("dim must be > 0".into());
        }
        if self.preprocess.image_size == 0 {
            return bad("preprocess.image_size must be > 0".into());
        }
        for t in std::iter::once(&self.image).chain(self.text.as_ref()) {
            let p = Path::new(&t.file);
            if t.file.is_empty()
                || p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return bad(format!(
                    "file '{}' must be a plain name inside the model directory",
                    t.file
                ));
            }
        }
        Ok(())
    }

    /// Whether `name` designates this model.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }

    fn towers(&self) -> impl Iterator<Item = &TowerSpec> {
        std::iter::once(&self.image).chain(self.text.as_ref())
    }

    /// True when every file is present in `dir`.
    pub fn files_present(&self, dir: &Path) -> bool {
        self.towers().all(|t| dir.join(&t.file).is_file())
    }
}

/// Name of the tiny random-weight CLIP committed with this crate (tests only).
pub const TINY_RANDOM: &str = "clip-tiny-random";

/// Canonical name of OpenAI's CLIP ViT-B/32 (alias: FiftyOne's `clip-vit-base32-torch`).
pub const VIT_B32: &str = "clip-vit-base32";

/// Canonical name of the dynamic-int8 variant of [`VIT_B32`] (alias `clip-vit-base32-torch-int8`).
/// Not downloaded: made from the fp32 model with `tools/quantize_clip.py`.
pub const VIT_B32_INT8: &str = "clip-vit-base32-int8";

/// The committed tiny model's directory (in this crate's source tree).
pub fn tiny_random_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/assets/clip-tiny-random")
}

/// Manifests this crate knows by name. ViT-B/32 comes as the two-file ONNX export (vision and
/// text towers of OpenAI's weights) published on Hugging Face; its checksums are not pinned here,
/// so they are computed on first download and written into the cached manifest. Its int8 variant
/// has no download: it is made locally from the fp32 files (`tools/quantize_clip.py`) and shares
/// their inputs, outputs, tokenizer and preprocessing.
pub fn builtin_manifests() -> Vec<ModelManifest> {
    let tower = |file: &str, url: Option<&str>, input: &str, output: &str| TowerSpec {
        file: file.into(),
        sha256: None,
        size: None,
        url: url.map(Into::into),
        input: input.into(),
        output: output.into(),
        attention_mask: None,
        context_length: None,
    };
    let vit = |urls: Option<(&str, &str)>| {
        let mut text = tower("text.onnx", urls.map(|u| u.1), "input_ids", "text_embeds");
        text.attention_mask = Some("attention_mask".into());
        text.context_length = Some(77);
        (
            tower(
                "image.onnx",
                urls.map(|u| u.0),
                "pixel_values",
                "image_embeds",
            ),
            text,
        )
    };
    let (image, text) = vit(Some((
        "https://huggingface.co/Qdrant/clip-ViT-B-32-vision/resolve/main/model.onnx",
        "https://huggingface.co/Qdrant/clip-ViT-B-32-text/resolve/main/model.onnx",
    )));
    let fp32 = ModelManifest {
        name: VIT_B32.into(),
        aliases: vec!["clip-vit-base32-torch".into(), "ViT-B-32".into()],
        description: "OpenAI CLIP ViT-B/32 (image + text towers, 512-d)".into(),
        random_weights: false,
        architecture: "CLIP ViT-B/32".into(),
        dim: 512,
        image,
        text: Some(text),
        preprocess: PreprocessConfig::default(),
        precision: Precision::Fp32,
        quantized_from: None,
    };
    let (image, text) = vit(None);
    let int8 = ModelManifest {
        name: VIT_B32_INT8.into(),
        aliases: fp32.aliases.iter().map(|a| format!("{a}-int8")).collect(),
        description: "OpenAI CLIP ViT-B/32, dynamic int8 (made locally from clip-vit-base32 \
                      with tools/quantize_clip.py)"
            .into(),
        image,
        text: Some(text),
        precision: Precision::Int8,
        quantized_from: Some(VIT_B32.into()),
        ..fp32.clone()
    };
    vec![fp32, int8]
}

/// Where a model's files live, once resolved.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// Directory holding the ONNX files.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: ModelManifest,
}

/// Where to look for models and whether downloads are allowed.
#[derive(Debug, Clone, Copy)]
pub struct ResolveOptions<'a> {
    /// User models directory (`<dir>/<name>/manifest.json`).
    pub models_dir: Option<&'a Path>,
    /// Download cache (`<cache>/models/<name>/`).
    pub cache_dir: &'a Path,
    /// Never download.
    pub offline: bool,
}

fn known_names() -> String {
    let mut names = vec![TINY_RANDOM.to_string()];
    for m in builtin_manifests() {
        names.push(m.name.clone());
        names.extend(m.aliases.iter().cloned());
    }
    names.join(", ")
}

/// Finds (and if needed downloads) the model called `name`.
///
/// Order: `name` as a directory with a `manifest.json`; the committed tiny test model;
/// `models_dir/<name or canonical name>/`; `cache_dir/models/<canonical name>/`; a download
/// of a built-in manifest into that cache (unless offline).
pub fn resolve(
    name: &str,
    opts: &ResolveOptions<'_>,
    progress: Option<ProgressFn<'_>>,
) -> Result<ResolvedModel> {
    let as_dir = Path::new(name);
    if as_dir.join("manifest.json").is_file() {
        return finish(as_dir.to_path_buf());
    }
    if name == TINY_RANDOM {
        let dir = tiny_random_dir();
        if dir.join("manifest.json").is_file() {
            return finish(dir);
        }
        return Err(EmbedError::ModelUnavailable {
            name: name.into(),
            hint: format!(
                "the tiny test model ships in the simile-embed source tree ({}), which is not here",
                dir.display()
            ),
        });
    }
    let builtin = builtin_manifests().into_iter().find(|m| m.answers_to(name));
    let canonical = builtin.as_ref().map_or(name, |m| m.name.as_str());
    if let Some(models_dir) = opts.models_dir {
        for candidate in [name, canonical] {
            let dir = models_dir.join(candidate);
            if dir.join("manifest.json").is_file() {
                return finish(dir);
            }
        }
        // A user directory with only the ONNX files gets the built-in manifest.
        if let Some(m) = &builtin {
            for candidate in [name, canonical] {
                let dir = models_dir.join(candidate);
                if m.files_present(&dir) {
                    return Ok(ResolvedModel {
                        dir,
                        manifest: m.clone(),
                    });
                }
            }
        }
    }
    let cached = opts.cache_dir.join("models").join(canonical);
    if cached.join("manifest.json").is_file() {
        if let Ok(r) = finish(cached.clone()) {
            return Ok(r);
        }
    }
    let Some(manifest) = builtin else {
        return Err(EmbedError::UnknownModel {
            name: name.into(),
            known: known_names(),
        });
    };
    let how = format!(
        "put its ONNX files ({}) and optionally a manifest.json in {}/{}",
        manifest
            .towers()
            .map(|t| t.file.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        opts.models_dir
            .map_or_else(|| "<models_dir>".to_string(), |d| d.display().to_string()),
        manifest.name
    );
    if let Some(base) = &manifest.quantized_from {
        // Quantised variants are made locally, never downloaded.
        return Err(EmbedError::ModelUnavailable {
            name: name.into(),
            hint: format!(
                "it is made from the fp32 model '{base}' with ONNX Runtime's quantization \
                 tooling, not downloaded: `python tools/quantize_clip.py --src <the {base} \
                 directory> --out <models_dir>/{}` (needs `pip install onnxruntime onnx`); \
                 or {how}",
                manifest.name
            ),
        });
    }
    if opts.offline {
        return Err(EmbedError::ModelUnavailable {
            name: name.into(),
            hint: format!("downloads are disabled (offline); {how}"),
        });
    }
    fetch_into(&manifest, &cached, progress).map_err(|e| match e {
        EmbedError::Download { url, reason, .. } => EmbedError::ModelUnavailable {
            name: name.into(),
            hint: format!("downloading {url} failed ({reason}); {how}"),
        },
        other => other,
    })?;
    finish(cached)
}

fn finish(dir: PathBuf) -> Result<ResolvedModel> {
    let manifest = ModelManifest::load(&dir)?;
    for t in manifest.towers() {
        let f = dir.join(&t.file);
        if !f.is_file() {
            return Err(EmbedError::ModelUnavailable {
                name: manifest.name.clone(),
                hint: format!("{} is missing", f.display()),
            });
        }
    }
    Ok(ResolvedModel { dir, manifest })
}

/// Downloads every tower of `manifest` into `dir` and writes `dir/manifest.json` with the
/// checksums and sizes of what was fetched.
pub fn fetch_into(
    manifest: &ModelManifest,
    dir: &Path,
    progress: Option<ProgressFn<'_>>,
) -> Result<()> {
    let mut out = manifest.clone();
    let towers: Vec<&mut TowerSpec> = std::iter::once(&mut out.image)
        .chain(out.text.as_mut())
        .collect();
    for t in towers {
        let Some(url) = t.url.clone() else {
            return Err(EmbedError::ModelUnavailable {
                name: manifest.name.clone(),
                hint: format!("{} has no download URL", t.file),
            });
        };
        let dest = dir.join(&t.file);
        download(
            &DownloadSpec {
                url: &url,
                dest: &dest,
                sha256: t.sha256.as_deref(),
                size: t.size,
            },
            progress,
        )?;
        t.sha256 = Some(crate::download::sha256_file(&dest)?);
        t.size = std::fs::metadata(&dest).map(|m| m.len()).ok();
    }
    let path = dir.join("manifest.json");
    let json = serde_json::to_string_pretty(&out).map_err(|e| EmbedError::InvalidManifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&path, json).map_err(|source| EmbedError::Io { path, source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fiftyone_alias_resolves_to_vit_b32() {
        let m = builtin_manifests();
        assert!(m
            .iter()
            .any(|m| m.answers_to("clip-vit-base32-torch") && m.dim == 512));
    }

    #[test]
    fn int8_variant_is_named_like_the_fp32_model_and_shares_its_interface() {
        let all = builtin_manifests();
        let fp32 = all.iter().find(|m| m.name == VIT_B32).unwrap();
        for name in [VIT_B32_INT8, "clip-vit-base32-torch-int8", "ViT-B-32-int8"] {
            let q = all.iter().find(|m| m.answers_to(name)).unwrap();
            assert_eq!(q.name, VIT_B32_INT8, "{name}");
            assert_eq!(q.precision, Precision::Int8);
            assert_eq!(q.quantized_from.as_deref(), Some(VIT_B32));
            assert_eq!(q.dim, fp32.dim);
            assert_eq!(q.preprocess, fp32.preprocess);
            let (qt, ft) = (q.text.as_ref().unwrap(), fp32.text.as_ref().unwrap());
            assert_eq!(
                (&qt.input, &qt.attention_mask, qt.context_length),
                (&ft.input, &ft.attention_mask, ft.context_length)
            );
            assert!(q.image.url.is_none() && qt.url.is_none(), "made locally");
        }
        assert_eq!(fp32.precision, Precision::Fp32);
        assert!(!fp32.answers_to("clip-vit-base32-torch-int8"));
    }

    #[test]
    fn missing_int8_variant_says_how_to_make_it_even_online() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(
            "clip-vit-base32-torch-int8",
            &ResolveOptions {
                models_dir: Some(dir.path()),
                cache_dir: dir.path(),
                offline: false,
            },
            None,
        )
        .unwrap_err();
        match err {
            EmbedError::ModelUnavailable { name, hint } => {
                assert_eq!(name, "clip-vit-base32-torch-int8");
                assert!(hint.contains("tools/quantize_clip.py"), "{hint}");
                assert!(hint.contains("clip-vit-base32-int8"), "{hint}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn manifest_without_precision_reads_as_fp32() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = serde_json::to_value(&builtin_manifests()[0]).unwrap();
        v.as_object_mut().unwrap().remove("precision");
        std::fs::write(dir.path().join("manifest.json"), v.to_string()).unwrap();
        let m = ModelManifest::load(dir.path()).unwrap();
        assert_eq!(m.precision, Precision::Fp32);
        assert_eq!(m.quantized_from, None);
        v["precision"] = "int8".into();
        std::fs::write(dir.path().join("manifest.json"), v.to_string()).unwrap();
        assert_eq!(
            ModelManifest::load(dir.path()).unwrap().precision,
            Precision::Int8
        );
    }

    #[test]
    fn offline_without_files_is_a_typed_error_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(
            "clip-vit-base32-torch",
            &ResolveOptions {
                models_dir: Some(dir.path()),
                cache_dir: dir.path(),
                offline: true,
            },
            None,
        )
        .unwrap_err();
        match err {
            EmbedError::ModelUnavailable { hint, .. } => {
                assert!(hint.contains("image.onnx"), "{hint}");
                assert!(hint.contains("offline"), "{hint}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(
            "no-such-model",
            &ResolveOptions {
                models_dir: None,
                cache_dir: dir.path(),
                offline: true,
            },
            None,
        )
        .unwrap_err();
        assert!(matches!(err, EmbedError::UnknownModel { .. }), "{err:?}");
    }

    #[test]
    fn tiny_manifest_parses_and_is_labelled_random() {
        let r = resolve(
            TINY_RANDOM,
            &ResolveOptions {
                models_dir: None,
                cache_dir: Path::new("/nonexistent"),
                offline: true,
            },
            None,
        )
        .unwrap();
        assert!(r.manifest.random_weights);
        assert_eq!(r.manifest.dim, 64);
        assert!(r.manifest.description.contains("RANDOM"));
    }

    #[test]
    fn manifest_rejects_paths_outside_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = builtin_manifests().remove(0);
        m.image.file = "../evil.onnx".into();
        std::fs::write(
            dir.path().join("manifest.json"),
            serde_json::to_string(&m).unwrap(),
        )
        .unwrap();
        let err = ModelManifest::load(dir.path()).unwrap_err();
        assert!(matches!(err, EmbedError::InvalidManifest { .. }), "{err:?}");
    }
}
