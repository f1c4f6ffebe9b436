//! `compute_similarity`: build an index from an array, a field, a model, or nothing.
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value};
use simile_dataset::{FieldKind, FieldValue};
use simile_index::{BackendParams, Embeddings, Metric, SimilarityBackend};
use simile_runs::{RunRecord, RunRegistry, RunState};

use crate::collection::{Collection, View};
use crate::embed::{embed_rows, EmbedJob};
use crate::index::{IndexInfo, IndexState};
use crate::model::EmbeddingModel;
use crate::options::EmbeddingsSource;
use crate::{DatasetError, Error, Result, SimilarityIndex, SimilarityOptions};

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

pub(crate) fn compute(view: &View, options: SimilarityOptions) -> Result<SimilarityIndex> {
    let ctx = view.ctx.clone();
    let dataset = view.inner.dataset().clone();
    let ds = dataset.db_id();
    if let Some(key) = &options.brain_key {
        simile_runs::validate_key(key)?;
        if ctx.store.read(|c| RunRegistry::exists(c, ds, key))? {
            return Err(simile_runs::RunsError::DuplicateKey(key.clone()).into());
        }
    }
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
    if let Some(f) = &options.patches_field {
        match dataset.field_kind(f)? {
            FieldKind::Detections => {}
            other => {
                return Err(DatasetError::FieldKind {
                    field: f.clone(),
                    expected: "detections",
                    found: format!("a {} field", other.as_str()),
                }
                .into())
            }
        }
    }

    let model: Option<Arc<dyn EmbeddingModel>> = match (&options.model_instance, &options.model) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(name)) => Some(crate::model_loader::load(&ctx, name)?),
        (None, None) => None,
    };

    // Which rows the collection has: (key, sample id) per sample or per patch.
    let rows = crate::embed::rows_of(view, options.patches_field.as_deref())?;
    let what = if options.patches_field.is_some() {
        "patches"
    } else {
        "samples"
    };

    let source = match options.embeddings.clone() {
        Some(s) => s,
        None if model.is_some() => EmbeddingsSource::Field(String::new()),
        None => return Err(Error::NoEmbeddingsSource),
    };
    let embeddings: Option<Embeddings> = match source {
        EmbeddingsSource::None => None,
        EmbeddingsSource::Array(a) => {
            if rows.is_empty() {
                return Err(Error::EmptyCollection(dataset.name().to_string()));
            }
            if a.nrows() != rows.len() {
                return Err(Error::EmbeddingsCount {
                    what,
                    expected: rows.len(),
                    got: a.nrows(),
                });
            }
            let (keys, sids): (Vec<String>, Vec<String>) = rows.iter().cloned().unzip();
            let dim = a.ncols();
            Some(Embeddings::new(dim, into_row_major(a), keys, sids)?)
        }
        EmbeddingsSource::PerSample(arrays) => {
            if options.patches_field.is_none() {
                return Err(Error::NotSupported(
                    "per-sample embedding arrays need a patches_field".into(),
                ));
            }
            if rows.is_empty() {
                return Err(Error::EmptyCollection(dataset.name().to_string()));
            }
            // Group the collection's patches by sample, in order.
            let mut per_sample: Vec<(String, Vec<String>)> = Vec::new();
            for (label, sample) in &rows {
                match per_sample.last_mut() {
                    Some((s, labels)) if s == sample => labels.push(label.clone()),
                    _ => per_sample.push((sample.clone(), vec![label.clone()])),
                }
            }
            let samples_in_view = view.inner.ids()?;
            let mut data = Vec::new();
            let mut keys = Vec::new();
            let mut sids = Vec::new();
            let mut dim = None;
            if arrays.len() != samples_in_view.len() {
                return Err(Error::EmbeddingsCount {
                    what: "samples",
                    expected: samples_in_view.len(),
                    got: arrays.len(),
                });
            }
            let by_sample: std::collections::HashMap<&String, &Vec<String>> =
                per_sample.iter().map(|(s, l)| (s, l)).collect();
            for (sample, arr) in samples_in_view.iter().zip(&arrays) {
                let labels = by_sample.get(sample).map_or(&[][..], |l| l.as_slice());
                if arr.nrows() != labels.len() {
                    return Err(Error::EmbeddingsCount {
                        what: "patches of a sample",
                        expected: labels.len(),
                        got: arr.nrows(),
                    });
                }
                if arr.nrows() == 0 {
                    continue;
                }
                let d = *dim.get_or_insert(arr.ncols());
                if arr.ncols() != d {
                    return Err(simile_index::Error::DimensionMismatch {
                        expected: d,
                        got: arr.ncols(),
                    }
                    .into());
                }
                data.extend(arr.iter().copied());
                keys.extend(labels.iter().cloned());
                sids.extend(std::iter::repeat_n(sample.clone(), labels.len()));
            }
            Some(Embeddings::new(dim.unwrap_or(0), data, keys, sids)?)
        }
        EmbeddingsSource::Field(field) => {
            if rows.is_empty() {
                return Err(Error::EmptyCollection(dataset.name().to_string()));
            }
            Some(embeddings_from_field_or_model(
                view,
                &rows,
                &field,
                model.as_deref(),
                &options,
            )?)
        }
    };

    // Locked until the run is registered: no doctor or other compute removes it meanwhile.
    let (storage_dir, storage_lock) = crate::storage::reserve(&ctx, ds)?;
    let backend_params = BackendParams {
        params,
        storage_dir: ctx.store.home().join(&storage_dir),
        dataset_name: dataset.name().to_string(),
        brain_key: options.brain_key.clone(),
        patches: options.patches_field.is_some(),
    };
    let backend: Arc<dyn SimilarityBackend> = Arc::from(factory.create(&backend_params)?);
    let info = IndexInfo {
        method: method.clone(),
        metric,
        embeddings_field: options.embeddings_field.clone(),
        model: options.model.clone(),
        patches_field: options.patches_field.clone(),
        supports_prompts: model.as_ref().is_some_and(|m| m.supports_prompts())
            && options.model.is_some(),
    };

    let filled = (|| -> Result<()> {
        if let Some(e) = &embeddings {
            if !e.is_empty() {
                backend.upsert(e)?;
            }
        }
        backend.persist()?;
        if let Some(key) = &options.brain_key {
            let mut results = Map::new();
            results.insert("storage_dir".into(), storage_dir.clone().into());
            results.insert("revision".into(), 0.into());
            results.insert("size".into(), backend.size()?.into());
            let record = RunRecord {
                key: key.clone(),
                run_type: "similarity".into(),
                method: method.clone(),
                config: info.to_config(backend.as_ref()),
                timestamp: time::OffsetDateTime::now_utc(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                state: RunState::Completed,
                results: Some(Value::Object(results)),
            };
            ctx.store
                .write(|tx| RunRegistry::register(tx, ds, &record))?;
        }
        Ok(())
    })();
    if let Err(e) = filled {
        if backend.created_storage() {
            if let Err(c) = backend.cleanup() {
                tracing::warn!(error = %c, "could not clean up after a failed compute_similarity");
            }
        }
        return Err(e);
    }

    let state = Arc::new(IndexState {
        backend: RwLock::new(backend),
        info,
        key: Mutex::new(options.brain_key.clone()),
        revision: AtomicU64::new(0),
        model: Mutex::new(model),
        duplicates: Mutex::new(None),
    });
    if let Some(key) = &options.brain_key {
        ctx.cache_lock().insert((ds, key.clone()), state.clone());
    } else {
        crate::storage::hold(&ctx, storage_lock);
    }
    let index = SimilarityIndex {
        ctx,
        dataset,
        state,
        view: None,
    };
    Ok(index)
}

/// Vectors from a field; missing ones are computed with the model (and written back to the
/// field, when one is named) or, without a model, skipped with a warning.
fn embeddings_from_field_or_model(
    view: &View,
    rows: &[(String, String)],
    field: &str,
    model: Option<&dyn EmbeddingModel>,
    options: &SimilarityOptions,
) -> Result<Embeddings> {
    let dataset = view.inner.dataset();
    let patches = options.patches_field.is_some();
    let mut have: Vec<Option<Vec<f32>>> = vec![None; rows.len()];
    if !field.is_empty() && !patches {
        match crate::embed::stored_vectors(dataset, field, rows) {
            Ok(v) => have = v,
            // No such field yet: the model fills it.
            Err(Error::Dataset(DatasetError::UnknownField { .. })) if model.is_some() => {}
            Err(e) => return Err(e),
        }
    }
    let missing: Vec<usize> = (0..rows.len()).filter(|i| have[*i].is_none()).collect();
    if !missing.is_empty() {
        match model {
            Some(m) => {
                let job = EmbedJob {
                    patches_field: options.patches_field.as_deref(),
                    batch_size: options.batch_size,
                    skip_failures: options.skip_failures,
                    force_square: options.force_square,
                    alpha: options.alpha,
                    progress: options.progress.as_ref(),
                };
                let computed = embed_rows(view, rows, &missing, m, &job)?;
                let mut to_store = Vec::new();
                for (i, v) in computed {
                    if !field.is_empty() && !patches {
                        to_store.push((rows[i].1.clone(), FieldValue::Vector(v.clone())));
                    }
                    have[i] = Some(v);
                }
                if !to_store.is_empty() {
                    dataset.set_values(field, to_store)?;
                }
            }
            None => tracing::warn!(
                count = missing.len(),
                field,
                "samples without embeddings in the field are not indexed"
            ),
        }
    }
    let mut dim = None;
    let mut data = Vec::new();
    let mut keys = Vec::new();
    let mut sids = Vec::new();
    for (i, v) in have.into_iter().enumerate() {
        let Some(v) = v else { continue };
        let d = *dim.get_or_insert(v.len());
        if v.len() != d {
            return Err(simile_index::Error::DimensionMismatch {
                expected: d,
                got: v.len(),
            }
            .into());
        }
        data.extend(v);
        keys.push(rows[i].0.clone());
        sids.push(rows[i].1.clone());
    }
    Ok(Embeddings::new(dim.unwrap_or(0), data, keys, sids)?)
}

/// The array's values row-major, without a copy when it already is (the usual case).
fn into_row_major(a: ndarray::Array2<f32>) -> Vec<f32> {
    if a.is_standard_layout() {
        let len = a.len();
        let (mut v, offset) = a.into_raw_vec_and_offset();
        let off = offset.unwrap_or(0);
        if off == 0 && v.len() == len {
            return v;
        }
        v.truncate(off + len);
        return v.split_off(off);
    }
    a.iter().copied().collect()
}
