//! Embedding models used by `compute_similarity(model=...)` and text-prompt queries.
//!
//! TEMPORARY: mirrors the `simile-embed` trait until that crate lands; then this module becomes
//! a re-export of `simile_embed`.
use std::path::PathBuf;

/// One image (or crop of one) to embed.
#[derive(Debug, Clone)]
pub struct ImageInput {
    pub path: PathBuf,
    /// Relative `[x, y, w, h]` crop (a patch).
    pub crop: Option<[f32; 4]>,
    pub force_square: bool,
    pub alpha: Option<f32>,
}

/// A per-item failure (unreadable image).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ItemError {
    pub path: String,
    pub reason: String,
}

/// A model failure.
#[derive(Debug, thiserror::Error)]
#[error("embedding model error: {0}")]
pub struct EmbedError(pub String);

/// A model that embeds images (and, for CLIP-like models, text prompts).
pub trait EmbeddingModel: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    fn dim(&self) -> usize;
    fn supports_prompts(&self) -> bool;
    fn embed_images(
        &self,
        inputs: &[ImageInput],
    ) -> Result<Vec<Result<Vec<f32>, ItemError>>, EmbedError>;
    fn embed_prompts(&self, prompts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}
