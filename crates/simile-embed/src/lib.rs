//! simile-embed: CLIP image, patch and text-prompt embeddings on ONNX Runtime.
//!
//! - **ONNX Runtime is loaded at run time** (`ort` with `load-dynamic`) from the path in
//!   [`ModelOptions::ort_dylib_path`] (the facade fills it from `simile_config`, whose env var is
//!   `SIMILE_ORT_DYLIB_PATH`). Any ONNX Runtime >= 1.31 works, e.g.
//!   `onnxruntime/capi/libonnxruntime.so.1.31.1` from the PyPI `onnxruntime==1.31.1` wheel; in a
//!   checkout `cargo xtask models fetch-ort` puts it in the xtask cache. With no path configured,
//!   `libonnxruntime.so` is looked up through the system loader's search path. A missing or too
//!   old library is [`EmbedError::RuntimeLoad`] / [`EmbedError::RuntimeNotConfigured`], never a
//!   panic. This crate reads no environment variables itself.
//! - **Preprocessing and tokenizer identical to open_clip** ([`preprocess`], [`tokenizer`]),
//!   pinned by golden fixtures produced with open_clip.
//! - **Models** are described by a [`manifest::ModelManifest`]; [`load_model`] resolves names
//!   (`clip-vit-base32-torch` is FiftyOne's name of OpenAI's ViT-B/32) in a models directory, the
//!   download cache, or downloads them. `clip-tiny-random` is a tiny CLIP with RANDOM weights
//!   committed for tests.
//! - [`EmbeddingModel`] is the trait the rest of simile uses; users can implement it.
#![deny(clippy::unwrap_used)]
#![warn(missing_docs)]

pub mod clip;
mod decode;
pub mod download;
mod error;
mod html;
pub mod manifest;
pub mod preprocess;
mod resample;
pub mod runtime;
pub mod tokenizer;

use std::path::PathBuf;

pub use clip::{ClipModel, EngineOptions};
pub use download::{Progress, ProgressFn};
pub use error::{BoxError, EmbedError, ItemError, Result};
pub use manifest::{ModelManifest, TINY_RANDOM, VIT_B32};

/// A model that turns images (and maybe text prompts) into vectors.
///
/// Implemented by [`ClipModel`]; users can implement it for their own models.
pub trait EmbeddingModel: Send + Sync + std::fmt::Debug {
    /// The model's name (stored in brain-run configs).
    fn name(&self) -> &str;
    /// Embedding dimension.
    fn dim(&self) -> usize;
    /// Whether [`EmbeddingModel::embed_prompts`] works (the model has a text tower).
    fn supports_prompts(&self) -> bool;
    /// One entry per input, in order; `Err` for an unreadable/corrupt image or a bad crop.
    /// The outer `Err` is for failures of the model itself.
    fn embed_images(
        &self,
        inputs: &[ImageInput],
    ) -> Result<Vec<std::result::Result<Vec<f32>, ItemError>>, EmbedError>;
    /// [`EmbeddingModel::embed_images`] calling `progress(done)` as inputs finish (`done` counts
    /// inputs embedded or failed so far, up to `inputs.len()`), for progress bars. The default
    /// reports once at the end.
    fn embed_images_with_progress(
        &self,
        inputs: &[ImageInput],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<std::result::Result<Vec<f32>, ItemError>>, EmbedError> {
        let out = self.embed_images(inputs)?;
        progress(inputs.len());
        Ok(out)
    }
    /// One embedding per prompt, in order.
    fn embed_prompts(&self, prompts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// One image to embed: a whole image, or a patch of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInput {
    /// Image file (JPEG, PNG, WebP, BMP, GIF, TIFF).
    pub path: PathBuf,
    /// Optional relative `[x, y, w, h]` box (FiftyOne detection format) to embed instead of the
    /// whole image.
    pub crop: Option<[f32; 4]>,
    /// Minimally grow the crop to a square (FiftyOne's `force_square`).
    pub force_square: bool,
    /// Expand (`> 0`) or shrink (`< 0`) the crop by `100*alpha %` (FiftyOne's `alpha`).
    pub alpha: Option<f32>,
}

impl ImageInput {
    /// The whole image at `path`.
    pub fn new(path: impl Into<PathBuf>) -> ImageInput {
        ImageInput {
            path: path.into(),
            crop: None,
            force_square: false,
            alpha: None,
        }
    }

    /// A patch of the image at `path`.
    pub fn patch(
        path: impl Into<PathBuf>,
        crop: [f32; 4],
        force_square: bool,
        alpha: Option<f32>,
    ) -> ImageInput {
        ImageInput {
            path: path.into(),
            crop: Some(crop),
            force_square,
            alpha,
        }
    }
}

/// How to find, fetch and run a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// ONNX Runtime library file (`libonnxruntime.so[.1.31.1]`); `None`: already loaded, or the
    /// system loader's search path.
    pub ort_dylib_path: Option<PathBuf>,
    /// Directory of user models (`<dir>/<name>/manifest.json` + ONNX files).
    pub models_dir: Option<PathBuf>,
    /// Cache for downloaded models (`<cache_dir>/models/<name>/`).
    pub cache_dir: PathBuf,
    /// Images/prompts per ONNX Runtime call (0: 16).
    pub batch_size: usize,
    /// ONNX Runtime threads, also the number of image-decoding threads (0: all cores).
    pub threads: usize,
    /// Never download.
    pub offline: bool,
}

impl ModelOptions {
    /// Options with a cache directory and defaults for the rest (offline, batch 16, all cores).
    pub fn new(cache_dir: impl Into<PathBuf>) -> ModelOptions {
        ModelOptions {
            ort_dylib_path: None,
            models_dir: None,
            cache_dir: cache_dir.into(),
            batch_size: 16,
            threads: 0,
            offline: true,
        }
    }
}

/// Loads a model by name (or model directory path).
///
/// Names: `clip-vit-base32-torch` (alias of `clip-vit-base32`, OpenAI ViT-B/32), `clip-tiny-random`
/// (tiny, RANDOM weights, committed for tests), any `<models_dir>/<name>` with a
/// `manifest.json`, or a directory path. See [`manifest::resolve`] for the search order.
pub fn load_model(name: &str, opts: &ModelOptions) -> Result<Box<dyn EmbeddingModel>> {
    Ok(Box::new(load_clip(name, opts, None)?))
}

/// [`load_model`] returning the concrete type, with an optional download progress callback.
pub fn load_clip(
    name: &str,
    opts: &ModelOptions,
    progress: Option<ProgressFn<'_>>,
) -> Result<ClipModel> {
    let resolved = manifest::resolve(
        name,
        &manifest::ResolveOptions {
            models_dir: opts.models_dir.as_deref(),
            cache_dir: &opts.cache_dir,
            offline: opts.offline,
        },
        progress,
    )?;
    let env = runtime::environment(opts.ort_dylib_path.as_deref())?;
    ClipModel::open(
        env,
        &resolved.dir,
        resolved.manifest,
        EngineOptions::for_machine(opts.batch_size, opts.threads),
    )
}

/// Embeds images and fails on the first input that cannot be embedded (FiftyOne's
/// `skip_failures=False`), with [`EmbedError::Item`] naming it.
pub fn embed_images_strict(
    model: &dyn EmbeddingModel,
    inputs: &[ImageInput],
) -> Result<Vec<Vec<f32>>> {
    model
        .embed_images(inputs)?
        .into_iter()
        .enumerate()
        .map(|(index, r)| {
            r.map_err(|source| EmbedError::Item {
                index,
                path: inputs[index].path.clone(),
                source,
            })
        })
        .collect()
}
