//! Running embedding models over samples and patches: `compute_embeddings` and the model path
//! of `compute_similarity`.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ndarray::Array2;
use simile_dataset::{FieldKind, FieldValue};

use crate::collection::{Collection, View};
use crate::model::{EmbeddingModel, ImageInput};
use crate::{DatasetError, Error, IndexEmbeddings, Result, SimilarityIndex};

/// A progress callback, called with `(done, total)`.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(usize, usize) + Send + Sync>);

impl Progress {
    pub fn new(f: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(f))
    }
    pub(crate) fn report(&self, done: usize, total: usize) {
        (self.0)(done, total);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// Options of `compute_embeddings`.
#[derive(Clone, Default, Debug)]
pub struct EmbedOptions {
    pub(crate) field: Option<String>,
    pub(crate) patches_field: Option<String>,
    pub(crate) skip_existing: bool,
    pub(crate) fail_fast: bool,
    pub(crate) batch_size: Option<usize>,
    pub(crate) force_square: bool,
    pub(crate) alpha: Option<f32>,
    pub(crate) progress: Option<Progress>,
}

impl EmbedOptions {
    pub fn new() -> Self {
        Self::default()
    }
    /// Store the embeddings in this vector field (sample embeddings only).
    pub fn field(mut self, f: impl Into<String>) -> Self {
        self.field = Some(f.into());
        self
    }
    /// Embed the detections of this label field (one row per patch).
    pub fn patches_field(mut self, f: impl Into<String>) -> Self {
        self.patches_field = Some(f.into());
        self
    }
    /// With `field`: samples that already have a value are not recomputed.
    pub fn skip_existing(mut self, on: bool) -> Self {
        self.skip_existing = on;
        self
    }
    /// Fail on the first unreadable image (default: skip it and log a warning).
    pub fn skip_failures(mut self, skip: bool) -> Self {
        self.fail_fast = !skip;
        self
    }
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }
    pub fn force_square(mut self, on: bool) -> Self {
        self.force_square = on;
        self
    }
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = Some(alpha);
        self
    }
    pub fn progress(mut self, f: Progress) -> Self {
        self.progress = Some(f);
        self
    }
}

pub(crate) struct EmbedJob<'a> {
    pub(crate) patches_field: Option<&'a str>,
    pub(crate) batch_size: Option<usize>,
    pub(crate) skip_failures: bool,
    pub(crate) force_square: bool,
    pub(crate) alpha: Option<f32>,
    pub(crate) progress: Option<&'a Progress>,
}

/// Rows of a collection: `(key, sample id)` per sample, or per visible patch.
pub(crate) fn rows_of(view: &View, patches_field: Option<&str>) -> Result<Vec<(String, String)>> {
    Ok(match patches_field {
        None => view
            .inner
            .ids()?
            .into_iter()
            .map(|id| (id.clone(), id))
            .collect(),
        Some(f) => view
            .inner
            .label_ids(f)?
            .into_iter()
            .map(|(s, l)| (l, s))
            .collect(),
    })
}

/// Runs the model over the given rows (samples or patches). Returns (row index, vector) for the
/// rows that could be embedded; failures are skipped with a warning or, with
/// `skip_failures = false`, an error naming the sample.
pub(crate) fn embed_rows(
    view: &View,
    rows: &[(String, String)],
    which: &[usize],
    model: &dyn EmbeddingModel,
    job: &EmbedJob<'_>,
) -> Result<Vec<(usize, Vec<f32>)>> {
    check_batch_size(job.batch_size)?;
    let wanted: HashSet<&str> = which.iter().map(|i| rows[*i].1.as_str()).collect();
    let mut paths = HashMap::new();
    let mut boxes = HashMap::new();
    for s in view.inner.samples()? {
        if !wanted.contains(s.id()) {
            continue;
        }
        if let Some(f) = job.patches_field {
            if let Some(d) = s.detections(f)? {
                for det in d.detections {
                    let b = det.bounding_box;
                    boxes.insert(det.id, [b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32]);
                }
            }
        }
        paths.insert(s.id().to_string(), s.filepath().to_path_buf());
    }
    let inputs: Vec<ImageInput> = which
        .iter()
        .map(|i| ImageInput {
            path: paths.get(&rows[*i].1).cloned().unwrap_or_default(),
            crop: job
                .patches_field
                .and_then(|_| boxes.get(&rows[*i].0).copied()),
            force_square: job.force_square,
            alpha: job.alpha,
        })
        .collect();
    // Large chunks keep the engine's decode/inference pipeline full while bounding memory.
    let chunk = job.batch_size.map_or(1024, |b| b.max(1) * 64);
    let total = inputs.len();
    let mut out = Vec::with_capacity(total);
    for (chunk_i, part) in inputs.chunks(chunk).enumerate() {
        let base = chunk_i * chunk;
        let report = |done: usize| {
            if let Some(p) = job.progress {
                p.report(base + done, total);
            }
        };
        let results = model
            .embed_images_with_progress(part, &report)
            .map_err(|source| Error::Model {
                model: model.name().to_string(),
                source: Box::new(source),
            })?;
        for (j, r) in results.into_iter().enumerate() {
            let row = which[base + j];
            match r {
                Ok(v) => out.push((row, v)),
                Err(e) if job.skip_failures => {
                    tracing::warn!(sample = %rows[row].1, error = %e, "skipping a sample that could not be embedded")
                }
                Err(source) => {
                    return Err(Error::SampleFailed {
                        sample: rows[row].1.clone(),
                        source: Box::new(source),
                    })
                }
            }
        }
    }
    Ok(out)
}

/// A batch size of 0 cannot embed anything: refused rather than silently replaced.
pub(crate) fn check_batch_size(batch_size: Option<usize>) -> Result<()> {
    match batch_size {
        Some(0) => Err(Error::InvalidOption {
            option: "batch_size",
            reason: "must be at least 1".into(),
        }),
        _ => Ok(()),
    }
}

/// The vectors a vector field holds for the rows' samples, aligned with `rows` (`None` where
/// unset). A field of another kind is an error; a missing field is `DatasetError::UnknownField`.
pub(crate) fn stored_vectors(
    dataset: &simile_dataset::Dataset,
    field: &str,
    rows: &[(String, String)],
) -> Result<Vec<Option<Vec<f32>>>> {
    match dataset.field_kind(field)? {
        FieldKind::Vector => {
            let ids: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
            Ok(dataset.vectors(field, &ids)?)
        }
        other => Err(DatasetError::FieldKind {
            field: field.to_string(),
            expected: "vector",
            found: format!("a {} field", other.as_str()),
        }
        .into()),
    }
}

/// Embeds a collection's samples (or patches) with a model; see [`View::compute_embeddings`].
pub(crate) fn compute_embeddings(
    view: &View,
    model: &dyn EmbeddingModel,
    options: &EmbedOptions,
) -> Result<IndexEmbeddings> {
    check_batch_size(options.batch_size)?;
    let dataset = view.inner.dataset();
    let patches = options.patches_field.as_deref();
    if options.field.is_some() && patches.is_some() {
        return Err(Error::NotSupported(
            "storing patch embeddings in a field".into(),
        ));
    }
    let rows = rows_of(view, patches)?;
    let mut have: Vec<Option<Vec<f32>>> = vec![None; rows.len()];
    if let (Some(field), true) = (&options.field, options.skip_existing) {
        match stored_vectors(dataset, field, &rows) {
            Ok(v) => have = v,
            Err(Error::Dataset(DatasetError::UnknownField { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    let which: Vec<usize> = (0..rows.len()).filter(|i| have[*i].is_none()).collect();
    let job = EmbedJob {
        patches_field: patches,
        batch_size: options.batch_size,
        skip_failures: !options.fail_fast,
        force_square: options.force_square,
        alpha: options.alpha,
        progress: options.progress.as_ref(),
    };
    let computed = embed_rows(view, &rows, &which, model, &job)?;
    if let Some(field) = &options.field {
        let values: Vec<(String, FieldValue)> = computed
            .iter()
            .map(|(i, v)| (rows[*i].1.clone(), FieldValue::Vector(v.clone())))
            .collect();
        if !values.is_empty() {
            dataset.set_values(field, values)?;
        }
    }
    for (i, v) in computed {
        have[i] = Some(v);
    }
    let dim = model.dim();
    let mut data = Vec::new();
    let mut sample_ids = Vec::new();
    let mut label_ids = Vec::new();
    for (i, v) in have.into_iter().enumerate() {
        let Some(v) = v else { continue };
        if v.len() != dim {
            return Err(simile_index::Error::DimensionMismatch {
                expected: dim,
                got: v.len(),
            }
            .into());
        }
        data.extend(v);
        sample_ids.push(rows[i].1.clone());
        label_ids.push(rows[i].0.clone());
    }
    let n = sample_ids.len();
    Ok(IndexEmbeddings {
        embeddings: Array2::from_shape_vec((n, dim), data)
            .map_err(|e| Error::NotSupported(e.to_string()))?,
        sample_ids,
        label_ids: patches.map(|_| label_ids),
    })
}

impl View {
    /// Embeds this view's samples (or, with `patches_field`, its patches) with a model, in view
    /// order; with `field` the vectors are also stored on the samples (like FiftyOne's
    /// `compute_embeddings(model, embeddings_field=...)`). Unreadable images are skipped (see
    /// `skip_failures`). Nothing is added to any index.
    pub fn compute_embeddings(
        &self,
        model: &dyn EmbeddingModel,
        options: EmbedOptions,
    ) -> Result<IndexEmbeddings> {
        compute_embeddings(self, model, &options)
    }
}

impl crate::Dataset {
    /// [`View::compute_embeddings`] on the whole dataset.
    pub fn compute_embeddings(
        &self,
        model: &dyn EmbeddingModel,
        options: EmbedOptions,
    ) -> Result<IndexEmbeddings> {
        compute_embeddings(&self.view(), model, &options)
    }
}

impl SimilarityIndex {
    /// Embeds a collection with the index's model (and its patches field): the spec's
    /// `index.compute_embeddings(view)`. Nothing is added to the index.
    pub fn compute_embeddings(
        &self,
        collection: &impl Collection,
        options: EmbedOptions,
    ) -> Result<IndexEmbeddings> {
        let model = crate::model_loader::index_model(self)?;
        let mut options = options;
        if options.patches_field.is_none() {
            options.patches_field = self.patches_field().map(str::to_string);
        }
        compute_embeddings(&collection.to_view(), model.as_ref(), &options)
    }
}
