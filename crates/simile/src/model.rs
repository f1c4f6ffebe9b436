//! Embedding models: CLIP on ONNX Runtime from `simile-embed`, or your own implementation of
//! [`EmbeddingModel`].
/// The models `simile-embed` knows by name and their manifests (what `simile models` lists).
pub use simile_embed::manifest::{builtin_manifests, tiny_random_dir, ModelManifest};
pub use simile_embed::{
    load_model, EmbedError, EmbeddingModel, ImageInput, ItemError, ModelOptions,
};
