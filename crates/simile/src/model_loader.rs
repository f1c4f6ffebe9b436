//! Resolving model names to models (CLIP through `simile-embed`).
use std::sync::Arc;

use crate::context::Ctx;
use crate::model::EmbeddingModel;
use crate::{Error, Result, SimilarityIndex};

/// Loads a model by name.
pub(crate) fn load(_ctx: &Ctx, name: &str) -> Result<Arc<dyn EmbeddingModel>> {
    Err(Error::NotSupported(format!(
        "model '{name}': this build has no model loader; pass a model instance with `model_instance`"
    )))
}

/// The model of an index (the one it was built with, or loaded from its stored name).
pub(crate) fn index_model(index: &SimilarityIndex) -> Result<Arc<dyn EmbeddingModel>> {
    let mut slot = index.state.model.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = slot.as_ref() {
        return Ok(m.clone());
    }
    let Some(name) = index.state.info.model.clone() else {
        return Err(Error::NotSupported("this index has no stored model".into()));
    };
    let m = load(&index.ctx, &name)?;
    *slot = Some(m.clone());
    Ok(m)
}
