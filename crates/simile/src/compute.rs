//! `compute_similarity`: build an index from an array, a field, a model, or nothing.
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use ndarray::Array2;
use serde_json::{Map, Value};
use simile_dataset::FieldKind;
use simile_index::{BackendParams, Metric, SimilarityBackend};
use simile_runs::{RunRecord, RunRegistry, RunState};

use crate::collection::{Collection, View};
use crate::context::Ctx;
use crate::feed::Feed;
use crate::index::{IndexInfo, IndexState};
use crate::model::EmbeddingModel;
use crate::npy::NpyRows;
use crate::options::EmbeddingsSource;
use crate::vectors::{check_field_kind, check_vector_field, stored_vectors, Rows, VectorRows};
use crate::{Error, Result, SimilarityIndex, SimilarityOptions};

/// Builds a similarity index of a dataset or view and, with a brain key, registers it as a brain
/// run on the dataset.
///
/// Embeddings come from an array (rows in the collection's order), a vector field, a model, or
/// nothing (`no_embeddings()`: an empty index to fill with `add_to_index`). The backend is
/// `options.backend`, else the brain config's default, else "sklearn". On any error nothing is
/// registered and any backend storage this call created is deleted.
pub fn compute_similarity(
    collection: &impl Collection,
    options: SimilarityOptions,
) -> Result<SimilarityIndex> {
    compute(&collection.to_view(), options)
}

pub(crate) fn compute(view: &View, mut options: SimilarityOptions) -> Result<SimilarityIndex> {
    let ctx = view.ctx.clone();
    let dataset = view.inner.dataset().clone();
    check_new_key(&ctx, &dataset, options.brain_key.as_deref())?;
    let backend = ResolvedBackend::of(&ctx, &options)?;
    check_patches_field(&dataset, options.patches_field.as_deref())?;
    let model = load_model(&ctx, &options)?;
    // Checked against the collection here; read in batches once the backend exists.
    let feed = plan_feed(view, &mut options, model.as_deref())?;
    let info = IndexInfo {
        method: backend.method.clone(),
        metric: backend.metric,
        embeddings_field: options.embeddings_field.clone(),
        model: options.model.clone(),
        patches_field: options.patches_field.clone(),
        supports_prompts: model.as_ref().is_some_and(|m| m.supports_prompts())
            && options.model.is_some(),
    };
    // Locked until the run is registered: no doctor or other compute removes it meanwhile.
    let (storage_dir, storage_lock) = crate::storage::reserve(&ctx, dataset.db_id())?;
    let backend_params = BackendParams {
        params: backend.params,
        storage_dir: ctx.store.home().join(&storage_dir),
        dataset_name: dataset.name().to_string(),
        brain_key: options.brain_key.clone(),
        patches: options.patches_field.is_some(),
    };
    let created: Arc<dyn SimilarityBackend> = Arc::from(backend.factory.create(&backend_params)?);
    let filled = fill_and_register(
        &ctx,
        &dataset,
        created.as_ref(),
        feed,
        &storage_dir,
        &info,
        options.brain_key.as_deref(),
    );
    if let Err(e) = filled {
        if created.created_storage() {
            if let Err(c) = created.cleanup() {
                tracing::warn!(error = %c, "could not clean up after a failed compute_similarity");
            }
        }
        return Err(e);
    }
    let state = Arc::new(IndexState {
        backend: RwLock::new(created),
        info,
        key: Mutex::new(options.brain_key.clone()),
        revision: AtomicU64::new(0),
        model: Mutex::new(model),
        duplicates: Mutex::new(None),
    });
    if let Some(key) = &options.brain_key {
        ctx.cache_lock()
            .insert((dataset.db_id(), key.clone()), state.clone());
    } else {
        crate::storage::hold(&ctx, storage_lock);
    }
    Ok(SimilarityIndex::new(ctx, dataset, state))
}

/// A new brain key must be valid and free.
fn check_new_key(ctx: &Ctx, dataset: &simile_dataset::Dataset, key: Option<&str>) -> Result<()> {
    if let Some(key) = key {
        simile_runs::validate_key(key)?;
        if ctx
            .store
            .read(|c| RunRegistry::exists(c, dataset.db_id(), key))?
        {
            return Err(simile_runs::RunsError::DuplicateKey(key.to_string()).into());
        }
    }
    Ok(())
}

/// The backend a compute uses, with its merged, checked parameters and metric.
struct ResolvedBackend {
    method: String,
    factory: Arc<dyn simile_index::BackendFactory>,
    params: Map<String, Value>,
    metric: Metric,
}

impl ResolvedBackend {
    /// `options.backend`, else the brain config's default, else "sklearn"; parameters from the
    /// config, the environment and the call, unknown ones refused; the metric resolved.
    fn of(ctx: &Ctx, options: &SimilarityOptions) -> Result<ResolvedBackend> {
        // A blank name is a mistake, not a request for the default.
        if let Some(blank) = options.backend.as_deref().filter(|b| b.trim().is_empty()) {
            return Err(Error::UnknownBackend {
                name: blank.to_string(),
                available: ctx.backends.keys().cloned().collect(),
            });
        }
        let method = ctx.config.resolve_backend(options.backend.as_deref());
        let factory = ctx.factory(&method)?;
        let mut params = ctx.config.backend_params(&method, &options.params);
        ctx.check_params(&method, &params)?;
        let metric: Metric = match params.get("metric") {
            Some(Value::String(m)) => m.parse()?,
            Some(Value::Null) | None => factory.default_metric(),
            Some(other) => return Err(simile_index::Error::InvalidMetric(other.to_string()).into()),
        };
        params.insert("metric".into(), metric.as_str().into());
        Ok(ResolvedBackend {
            method,
            factory,
            params,
            metric,
        })
    }
}

/// A patches field must be a detections field.
fn check_patches_field(dataset: &simile_dataset::Dataset, field: Option<&str>) -> Result<()> {
    match field {
        Some(f) => check_field_kind(dataset, f, FieldKind::Detections),
        None => Ok(()),
    }
}

fn load_model(
    ctx: &Arc<Ctx>,
    options: &SimilarityOptions,
) -> Result<Option<Arc<dyn EmbeddingModel>>> {
    Ok(match (&options.model_instance, &options.model) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(name)) => Some(crate::model_loader::load(ctx, name)?),
        (None, None) => None,
    })
}

/// The vectors to index, from the options' source (None: an empty index), checked against the
/// collection's rows. An array is taken out of the options (not copied); a `.npy` file is opened
/// and its header checked, not read.
fn plan_feed(
    view: &View,
    options: &mut SimilarityOptions,
    model: Option<&dyn EmbeddingModel>,
) -> Result<Option<Feed>> {
    let dataset = view.inner.dataset();
    let npy = match (options.embeddings_npy.take(), &options.embeddings) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidOption {
                option: "embeddings",
                reason: "give one source of embeddings: an array, a .npy file or a field, not two"
                    .into(),
            })
        }
        (npy, _) => npy,
    };
    // Which rows the collection has: (key, sample id) per sample or per patch.
    let rows = crate::embed::rows_of(view, options.patches_field.as_deref())?;
    let source = match (options.embeddings.take(), npy) {
        (Some(s), _) => s,
        (None, Some(path)) => {
            if rows.is_empty() {
                return Err(Error::EmptyCollection(dataset.name().to_string()));
            }
            let file = NpyRows::open(&path)?;
            check_count(rows.len(), file.rows(), options.patches_field.is_some())?;
            return Ok(Some(Feed::Npy { rows, file }));
        }
        (None, None) if model.is_some() => EmbeddingsSource::Field(String::new()),
        (None, None) => return Err(Error::NoEmbeddingsSource),
    };
    if matches!(source, EmbeddingsSource::None) {
        return Ok(None);
    }
    if matches!(source, EmbeddingsSource::PerSample(_)) && options.patches_field.is_none() {
        return Err(Error::NotSupported(
            "per-sample embedding arrays need a patches_field".into(),
        ));
    }
    if rows.is_empty() {
        return Err(Error::EmptyCollection(dataset.name().to_string()));
    }
    Ok(Some(match source {
        EmbeddingsSource::None => return Ok(None),
        EmbeddingsSource::Array(array) => {
            check_count(rows.len(), array.nrows(), options.patches_field.is_some())?;
            Feed::Array { rows, array }
        }
        EmbeddingsSource::PerSample(arrays) => {
            Feed::Ready(from_per_sample(view, &rows, &arrays)?.into_embeddings()?)
        }
        // A stored field without a model: read a batch of samples at a time.
        EmbeddingsSource::Field(field)
            if model.is_none() && !field.is_empty() && options.patches_field.is_none() =>
        {
            check_vector_field(dataset, &field)?;
            crate::resume::ensure_complete(&view.ctx.store, dataset, &field)?;
            Feed::Field {
                rows,
                dataset: dataset.clone(),
                field,
            }
        }
        EmbeddingsSource::Field(field) => Feed::Ready(
            from_field_or_model(view, &rows, &field, model, options)?.into_embeddings()?,
        ),
    }))
}

/// An array or file must have exactly one row per row of the collection.
fn check_count(expected: usize, got: usize, patches: bool) -> Result<()> {
    if got != expected {
        return Err(Error::EmbeddingsCount {
            what: if patches { "patches" } else { "samples" },
            expected,
            got,
        });
    }
    Ok(())
}

/// Patch embeddings as one `labels × dim` array per sample of the view, in its order.
fn from_per_sample(view: &View, rows: &Rows, arrays: &[Array2<f32>]) -> Result<VectorRows> {
    let samples_in_view = view.inner.ids()?;
    if arrays.len() != samples_in_view.len() {
        return Err(Error::EmbeddingsCount {
            what: "samples",
            expected: samples_in_view.len(),
            got: arrays.len(),
        });
    }
    // The collection's patches grouped by sample, in order.
    let mut by_sample: HashMap<&str, Vec<&str>> = HashMap::new();
    for (label, sample) in rows {
        by_sample.entry(sample).or_default().push(label);
    }
    let mut out = VectorRows::with_dim(None);
    for (sample, arr) in samples_in_view.iter().zip(arrays) {
        let labels = by_sample
            .get(sample.as_str())
            .map_or(&[][..], Vec::as_slice);
        if arr.nrows() != labels.len() {
            return Err(Error::EmbeddingsCount {
                what: "patches of a sample",
                expected: labels.len(),
                got: arr.nrows(),
            });
        }
        for (label, row) in labels.iter().zip(arr.rows()) {
            out.push(label, sample, &row.to_vec())?;
        }
    }
    Ok(out)
}

/// Vectors from a field; missing ones are computed with the model (and written back to the
/// field, when one is named: the resumable path of `resume::fill_field`) or, without a model,
/// skipped with a warning. A field an unfinished embed left part-filled is refused.
fn from_field_or_model(
    view: &View,
    rows: &Rows,
    field: &str,
    model: Option<&dyn EmbeddingModel>,
    options: &SimilarityOptions,
) -> Result<VectorRows> {
    let dataset = view.inner.dataset();
    let patches = options.patches_field.as_deref();
    let have = match model {
        Some(m) if !field.is_empty() && patches.is_none() => {
            crate::resume::fill_field(view, rows, field, true, m, &options.run)?
        }
        Some(m) => {
            let all: Vec<usize> = (0..rows.len()).collect();
            let mut have = vec![None; rows.len()];
            let computed =
                crate::embed::embed_rows(view, rows, &all, m, patches, &options.run, &mut |_| {
                    Ok(())
                })?;
            for (i, v) in computed {
                have[i] = Some(v);
            }
            have
        }
        None => {
            let have = if !field.is_empty() && patches.is_none() {
                crate::resume::ensure_complete(&view.ctx.store, dataset, field)?;
                stored_vectors(dataset, field, rows)?
            } else {
                vec![None; rows.len()]
            };
            let missing = have.iter().filter(|v| v.is_none()).count();
            if missing > 0 {
                tracing::warn!(
                    count = missing,
                    field,
                    "samples without embeddings in the field are not indexed"
                );
            }
            have
        }
    };
    VectorRows::gather(rows, have, None)
}

/// Fills the new backend, persists it and, with a key, registers the run (last).
fn fill_and_register(
    ctx: &Ctx,
    dataset: &simile_dataset::Dataset,
    backend: &dyn SimilarityBackend,
    feed: Option<Feed>,
    storage_dir: &str,
    info: &IndexInfo,
    key: Option<&str>,
) -> Result<()> {
    if let Some(feed) = feed {
        feed.into_backend(backend)?;
    }
    backend.persist()?;
    if let Some(key) = key {
        let mut results = Map::new();
        results.insert("storage_dir".into(), storage_dir.into());
        results.insert("revision".into(), 0.into());
        results.insert("size".into(), backend.size()?.into());
        let record = RunRecord {
            key: key.to_string(),
            run_type: "similarity".into(),
            method: info.method.clone(),
            config: info.to_config(backend),
            timestamp: time::OffsetDateTime::now_utc(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            state: RunState::Completed,
            results: Some(Value::Object(results)),
        };
        ctx.store
            .write(|tx| RunRegistry::register(tx, dataset.db_id(), &record))?;
    }
    Ok(())
}
