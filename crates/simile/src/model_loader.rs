//! Resolving model names to models (CLIP through `simile-embed`), cached per session.
use std::sync::Arc;

use crate::context::Ctx;
use crate::model::{EmbeddingModel, ModelOptions};
use crate::{Error, Result, SimilarityIndex};

/// Loads a model by name (e.g. "clip-vit-base32-torch"), once per session.
pub(crate) fn load(ctx: &Ctx, name: &str) -> Result<Arc<dyn EmbeddingModel>> {
    let mut models = ctx.models.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = models.get(name) {
        return Ok(m.clone());
    }
    let s = &ctx.settings;
    let opts = ModelOptions {
        ort_dylib_path: s.ort_dylib_path.clone(),
        models_dir: s.models_dir.clone(),
        cache_dir: s.model_cache_dir.clone(),
        batch_size: 16,
        threads: 0,
        offline: s.offline,
    };
    let model: Arc<dyn EmbeddingModel> = Arc::from(simile_embed::load_model(name, &opts).map_err(
        |source| Error::Model {
            model: name.to_string(),
            source: Box::new(source),
        },
    )?);
    models.insert(name.to_string(), model.clone());
    Ok(model)
}

/// The model of an index (the one it was built with, or loaded from its stored name).
pub(crate) fn index_model(index: &SimilarityIndex) -> Result<Arc<dyn EmbeddingModel>> {
    let mut slot = index.state.model.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = slot.as_ref() {
        return Ok(m.clone());
    }
    let Some(name) = index.state.info.model.clone() else {
        return Err(Error::NoModel {
            key: index.key().unwrap_or_default(),
        });
    };
    let m = load(&index.ctx, &name)?;
    *slot = Some(m.clone());
    Ok(m)
}
