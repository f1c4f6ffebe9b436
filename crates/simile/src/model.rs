//! Embedding models: CLIP on ONNX Runtime from `simile-embed`, or your own implementation of
//! [`EmbeddingModel`].
pub use simile_embed::{
    load_model, EmbedError, EmbeddingModel, ImageInput, ItemError, ModelOptions,
};
