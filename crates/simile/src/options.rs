use std::path::PathBuf;
use std::sync::Arc;

use ndarray::Array2;
use serde_json::{Map, Value};
use simile_index::Metric;

use crate::embed::{model_run_setters, ModelRun};

/// Where `compute_similarity` gets its vectors.
#[derive(Debug, Clone)]
pub enum EmbeddingsSource {
    /// Rows aligned with the collection's samples (or, with `patches_field`, its patches in
    /// view order).
    Array(Array2<f32>),
    /// Patch indexes: one `labels × dim` array per sample of the collection, in its order (rows
    /// in the order of each sample's visible labels).
    PerSample(Vec<Array2<f32>>),
    /// A vector field of the dataset: read if present.
    Field(String),
    /// Compute nothing now: an empty index to fill with `add_to_index`.
    None,
}

/// Options of [`crate::compute_similarity`], a builder. Backend parameters (`metric`,
/// `collection_name`, `consistency_level`, `uri`, ...) go through [`set`](Self::set) and override
/// the brain config and environment.
#[derive(Debug, Clone, Default)]
pub struct SimilarityOptions {
    pub(crate) brain_key: Option<String>,
    pub(crate) backend: Option<String>,
    pub(crate) embeddings: Option<EmbeddingsSource>,
    pub(crate) embeddings_npy: Option<PathBuf>,
    pub(crate) embeddings_field: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) model_instance: Option<Arc<dyn crate::model::EmbeddingModel>>,
    pub(crate) patches_field: Option<String>,
    pub(crate) params: Map<String, Value>,
    pub(crate) run: ModelRun,
}

impl SimilarityOptions {
    /// Empty options: no brain key (index not persisted), the configured backend; embeddings
    /// (array, field or `no_embeddings()`) or a model must still be given.
    pub fn new() -> Self {
        Self::default()
    }
    /// Registers the index as a brain run under this key (else the index is not persisted).
    pub fn brain_key(mut self, key: impl Into<String>) -> Self {
        self.brain_key = Some(key.into());
        self
    }
    /// Backend name ("sklearn", "milvus"); default from the brain config, else "sklearn".
    pub fn backend(mut self, name: impl Into<String>) -> Self {
        self.backend = Some(name.into());
        self
    }
    /// Precomputed embeddings, one row per sample (or patch) of the collection, in its order.
    pub fn embeddings(mut self, array: Array2<f32>) -> Self {
        self.embeddings = Some(EmbeddingsSource::Array(array));
        self
    }
    /// Precomputed embeddings in a float32 `.npy` file, one row per sample (or patch) of the
    /// collection, in its order: read in row batches straight into the index, so the build never
    /// holds the whole array. The header is checked against the file's length before anything is
    /// read ([`Error::NpySize`](crate::Error::NpySize)). Giving another source as well (an array,
    /// a field, `no_embeddings()`) is an [`Error::InvalidOption`](crate::Error::InvalidOption).
    pub fn embeddings_npy(mut self, path: impl Into<PathBuf>) -> Self {
        self.embeddings_npy = Some(path.into());
        self
    }
    /// Patch embeddings as one array per sample (with `patches_field`).
    pub fn patch_embeddings(mut self, per_sample: Vec<Array2<f32>>) -> Self {
        self.embeddings = Some(EmbeddingsSource::PerSample(per_sample));
        self
    }
    /// Embeddings stored in (or, with a model, written to) a vector field.
    pub fn embeddings_field(mut self, field: impl Into<String>) -> Self {
        let f = field.into();
        self.embeddings = Some(EmbeddingsSource::Field(f.clone()));
        self.embeddings_field = Some(f);
        self
    }
    /// `embeddings=False`: create an empty index.
    pub fn no_embeddings(mut self) -> Self {
        self.embeddings = Some(EmbeddingsSource::None);
        self
    }
    /// A model by name (e.g. "clip-vit-base32-torch"), stored in the run so prompts work later.
    pub fn model(mut self, name: impl Into<String>) -> Self {
        self.model = Some(name.into());
        self
    }
    /// A model instance (not persisted with the run).
    pub fn model_instance(mut self, model: Arc<dyn crate::model::EmbeddingModel>) -> Self {
        self.model_instance = Some(model);
        self
    }
    /// Index the detections of this label field (a patch index keyed by label id).
    pub fn patches_field(mut self, field: impl Into<String>) -> Self {
        self.patches_field = Some(field.into());
        self
    }
    /// The distance metric (a shortcut for `.set("metric", ..)`).
    pub fn metric(self, metric: Metric) -> Self {
        self.set("metric", metric.as_str())
    }
    /// A backend parameter; wins over the config file and the environment.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }
    model_run_setters!();
}

/// Options of `sort_by_similarity`.
#[derive(Debug, Clone, Default)]
pub struct SortOptions {
    pub(crate) k: Option<usize>,
    pub(crate) reverse: bool,
    pub(crate) dist_field: Option<String>,
    pub(crate) brain_key: Option<String>,
}

impl SortOptions {
    /// No limit (`k=None`: the whole view, sorted), default brain key.
    pub fn new() -> Self {
        Self::default()
    }
    /// At most `k` results.
    pub fn k(mut self, k: usize) -> Self {
        self.k = Some(k);
        self
    }
    /// `Some(k)` or `None` (all).
    pub fn limit(mut self, k: Option<usize>) -> Self {
        self.k = k;
        self
    }
    /// Least similar first.
    pub fn reverse(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }
    /// Writes each returned sample's distance to this field: a new field, or one that holds
    /// distances already (numbers or null). Any other field is refused before anything is
    /// written (`DatasetError::NotADistanceField`). For patch results the distance goes to
    /// this attribute of the matched labels, under the same rule.
    pub fn dist_field(mut self, field: impl Into<String>) -> Self {
        self.dist_field = Some(field.into());
        self
    }
    /// The similarity run to sort with (default: the dataset's only compatible one, or the
    /// first of several with a warning).
    pub fn brain_key(mut self, key: impl Into<String>) -> Self {
        self.brain_key = Some(key.into());
        self
    }
}

/// Options of `add_to_index`.
#[derive(Debug, Clone, Copy)]
pub struct AddOptions {
    /// Replace the vectors of ids already present (default) or leave them as they are.
    pub overwrite: bool,
    /// If false, ids already present are an error (nothing is added).
    pub allow_existing: bool,
    /// Log a warning for ids already present.
    pub warn_existing: bool,
}

impl Default for AddOptions {
    fn default() -> Self {
        AddOptions {
            overwrite: true,
            allow_existing: true,
            warn_existing: false,
        }
    }
}

/// Options of `remove_from_index` and `get_embeddings`.
#[derive(Debug, Clone, Copy)]
pub struct MissingOptions {
    /// If false, absent ids are an error (nothing is changed).
    pub allow_missing: bool,
    /// Log a warning for absent ids.
    pub warn_missing: bool,
}

impl Default for MissingOptions {
    fn default() -> Self {
        MissingOptions {
            allow_missing: true,
            warn_missing: false,
        }
    }
}

/// Filters for `list_brain_runs`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub(crate) run_type: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) patches_field: Option<String>,
    pub(crate) supports_prompts: Option<bool>,
}

impl RunFilter {
    /// Matches every run.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only similarity runs.
    pub fn similarity() -> Self {
        RunFilter::new().run_type("similarity")
    }
    /// Only runs of this type (`"similarity"`, `"uniqueness"`, ...).
    pub fn run_type(mut self, t: impl Into<String>) -> Self {
        self.run_type = Some(t.into());
        self
    }
    /// Backend ("sklearn", "milvus").
    pub fn method(mut self, m: impl Into<String>) -> Self {
        self.method = Some(m.into());
        self
    }
    /// Only runs over the patches of this label field.
    pub fn patches_field(mut self, f: impl Into<String>) -> Self {
        self.patches_field = Some(f.into());
        self
    }
    /// Only runs that do (`true`) or do not (`false`) support text prompts.
    pub fn supports_prompts(mut self, b: bool) -> Self {
        self.supports_prompts = Some(b);
        self
    }
}
