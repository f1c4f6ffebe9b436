//! Running embedding models over samples and patches: `compute_embeddings` and the model path
//! of `compute_similarity`.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::collection::{Collection, View};
use crate::model::{EmbeddingModel, ImageInput};
use crate::vectors::{Rows, VectorRows};
use crate::{Error, IndexEmbeddings, Result, SimilarityIndex};

/// A progress callback, called with `(done, total)`.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(usize, usize) + Send + Sync>);

impl Progress {
    /// Wraps `f`, called with `(done, total)` as images are embedded.
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

/// How a model runs over images, shared by [`EmbedOptions`] and
/// [`crate::SimilarityOptions`] (their setters come from [`model_run_setters`]).
#[derive(Clone, Debug)]
pub(crate) struct ModelRun {
    pub(crate) batch_size: Option<usize>,
    pub(crate) skip_failures: bool,
    pub(crate) force_square: bool,
    pub(crate) alpha: Option<f32>,
    pub(crate) progress: Option<Progress>,
}

impl Default for ModelRun {
    fn default() -> Self {
        ModelRun {
            batch_size: None,
            skip_failures: true,
            force_square: false,
            alpha: None,
            progress: None,
        }
    }
}

/// The builder setters of [`ModelRun`], for an options struct with a `run: ModelRun` field.
macro_rules! model_run_setters {
    () => {
        /// With a model: skip unreadable images with a warning (default) or fail on the first.
        pub fn skip_failures(mut self, skip: bool) -> Self {
            self.run.skip_failures = skip;
            self
        }
        /// Images per inference batch (0 is refused with `Error::InvalidOption`).
        pub fn batch_size(mut self, n: usize) -> Self {
            self.run.batch_size = Some(n);
            self
        }
        /// Patch crops grown to squares (FiftyOne's `force_square`).
        pub fn force_square(mut self, on: bool) -> Self {
            self.run.force_square = on;
            self
        }
        /// Patch crops grown (> 0) or shrunk (< 0) by `100·alpha %`.
        pub fn alpha(mut self, alpha: f32) -> Self {
            self.run.alpha = Some(alpha);
            self
        }
        /// Called with `(done, total)` while a model embeds images (for progress bars).
        pub fn progress(mut self, f: $crate::embed::Progress) -> Self {
            self.run.progress = Some(f);
            self
        }
    };
}
pub(crate) use model_run_setters;

/// Options of `compute_embeddings`.
#[derive(Clone, Default, Debug)]
pub struct EmbedOptions {
    pub(crate) field: Option<String>,
    pub(crate) patches_field: Option<String>,
    pub(crate) skip_existing: bool,
    pub(crate) run: ModelRun,
}

impl EmbedOptions {
    /// Defaults: embed every sample, store nothing (vectors only returned), skip failures.
    pub fn new() -> Self {
        Self::default()
    }
    /// Store the embeddings in this vector field (sample embeddings only), one committed
    /// transaction per batch of images; an embed that does not finish leaves the field marked
    /// incomplete (see [`crate::Dataset::embed_progress`]).
    pub fn field(mut self, f: impl Into<String>) -> Self {
        self.field = Some(f.into());
        self
    }
    /// Embed the detections of this label field (one row per patch).
    pub fn patches_field(mut self, f: impl Into<String>) -> Self {
        self.patches_field = Some(f.into());
        self
    }
    /// With `field`: samples that already have a value are not recomputed. This is how an
    /// interrupted embed is resumed: only what is missing is embedded (or, when the interrupted
    /// embed was replacing vectors, what it had not reached yet).
    pub fn skip_existing(mut self, on: bool) -> Self {
        self.skip_existing = on;
        self
    }
    model_run_setters!();
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

/// A batch of images the model has been through: `(row index, vector)` for the rows that
/// could be embedded, and how many rows were tried (`which[..tried]`).
pub(crate) struct Chunk<'a> {
    pub(crate) embedded: &'a [(usize, Vec<f32>)],
    pub(crate) tried: usize,
}

/// Runs the model over the given rows (samples or patches), in chunks; `on_chunk` sees each
/// chunk once it is embedded (to commit it). Returns (row index, vector) for the rows that
/// could be embedded; failures are skipped with a warning or, with `skip_failures = false`,
/// an error naming the sample (chunks before it have been passed to `on_chunk`).
pub(crate) fn embed_rows(
    view: &View,
    rows: &Rows,
    which: &[usize],
    model: &dyn EmbeddingModel,
    patches_field: Option<&str>,
    run: &ModelRun,
    on_chunk: &mut dyn FnMut(Chunk<'_>) -> Result<()>,
) -> Result<Vec<(usize, Vec<f32>)>> {
    check_batch_size(run.batch_size)?;
    let inputs = image_inputs(view, rows, which, patches_field, run)?;
    // Large chunks keep the engine's decode/inference pipeline full while bounding memory;
    // each chunk is also the unit of commit for a field.
    let chunk = run.batch_size.map_or(1024, |b| b.max(1) * 64);
    let total = inputs.len();
    let mut out = Vec::with_capacity(total);
    for (chunk_i, part) in inputs.chunks(chunk).enumerate() {
        let base = chunk_i * chunk;
        let report = |done: usize| {
            if let Some(p) = &run.progress {
                p.report(base + done, total);
            }
        };
        let results = model
            .embed_images_with_progress(part, &report)
            .map_err(|source| Error::Model {
                model: model.name().to_string(),
                source: Box::new(source),
            })?;
        let first_new = out.len();
        for (j, r) in results.into_iter().enumerate() {
            let row = which[base + j];
            match r {
                Ok(v) => out.push((row, v)),
                Err(e) if run.skip_failures => {
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
        on_chunk(Chunk {
            embedded: &out[first_new..],
            tried: base + part.len(),
        })?;
    }
    Ok(out)
}

/// The model inputs of the rows: each sample's file and, for patches, the label's box.
fn image_inputs(
    view: &View,
    rows: &Rows,
    which: &[usize],
    patches_field: Option<&str>,
    run: &ModelRun,
) -> Result<Vec<ImageInput>> {
    let wanted: HashSet<&str> = which.iter().map(|i| rows[*i].1.as_str()).collect();
    let mut paths = HashMap::new();
    let mut boxes = HashMap::new();
    for s in view.inner.samples()? {
        if !wanted.contains(s.id()) {
            continue;
        }
        if let Some(f) = patches_field {
            if let Some(d) = s.detections(f)? {
                for det in d.detections {
                    let b = det.bounding_box;
                    boxes.insert(det.id, [b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32]);
                }
            }
        }
        paths.insert(s.id().to_string(), s.filepath().to_path_buf());
    }
    Ok(which
        .iter()
        .map(|i| ImageInput {
            path: paths.get(&rows[*i].1).cloned().unwrap_or_default(),
            crop: patches_field.and_then(|_| boxes.get(&rows[*i].0).copied()),
            force_square: run.force_square,
            alpha: run.alpha,
        })
        .collect())
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

/// Embeds a collection's samples (or patches) with a model; see [`View::compute_embeddings`].
pub(crate) fn compute_embeddings(
    view: &View,
    model: &dyn EmbeddingModel,
    options: &EmbedOptions,
) -> Result<IndexEmbeddings> {
    check_batch_size(options.run.batch_size)?;
    let patches = options.patches_field.as_deref();
    if options.field.is_some() && patches.is_some() {
        return Err(Error::NotSupported(
            "storing patch embeddings in a field".into(),
        ));
    }
    let rows = rows_of(view, patches)?;
    let have = match &options.field {
        Some(field) => crate::resume::fill_field(
            view,
            &rows,
            field,
            options.skip_existing,
            model,
            &options.run,
        )?,
        None => {
            let all: Vec<usize> = (0..rows.len()).collect();
            let mut have = vec![None; rows.len()];
            let computed =
                embed_rows(view, &rows, &all, model, patches, &options.run, &mut |_| {
                    Ok(())
                })?;
            for (i, v) in computed {
                have[i] = Some(v);
            }
            have
        }
    };
    VectorRows::gather(&rows, have, Some(model.dim()))?.into_index_embeddings(patches.is_some())
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
