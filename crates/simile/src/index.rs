use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ndarray::{Array2, ArrayView2};
use serde_json::{Map, Value};
use simile_index::{Embeddings, Metric, SimilarityBackend};

use crate::collection::{Collection, View};
use crate::context::Ctx;
use crate::model::EmbeddingModel;
use crate::options::{AddOptions, MissingOptions};
use crate::{Error, Query, Result, SortOptions};

/// Keys of a run's config that belong to simile itself (the rest are the backend's).
pub(crate) const FACADE_KEYS: &[&str] = &[
    "type",
    "method",
    "embeddings_field",
    "model",
    "patches_field",
    "supports_prompts",
];

/// What an index is, as recorded in its brain run.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    /// Backend name.
    pub method: String,
    /// The distance metric the backend ranks by (cosine when the run recorded none).
    pub metric: Metric,
    /// The vector field the embeddings were read from (or written to), if any.
    pub embeddings_field: Option<String>,
    /// The name of the model that computed the embeddings, if one was given by name.
    pub model: Option<String>,
    /// The label field whose detections the index holds (`None`: one vector per sample).
    pub patches_field: Option<String>,
    /// Whether the stored model can embed text prompts, so `Query::Text` works on this index.
    pub supports_prompts: bool,
}

impl IndexInfo {
    pub(crate) fn to_config(&self, backend: &dyn SimilarityBackend) -> Map<String, Value> {
        let mut m = backend.persisted_config();
        simile_index::strip_credentials(&mut m);
        m.insert("type".into(), "similarity".into());
        m.insert("method".into(), self.method.clone().into());
        m.insert("metric".into(), self.metric.as_str().into());
        m.insert("embeddings_field".into(), opt(&self.embeddings_field));
        m.insert("model".into(), opt(&self.model));
        m.insert("patches_field".into(), opt(&self.patches_field));
        m.insert("supports_prompts".into(), self.supports_prompts.into());
        m
    }

    pub(crate) fn from_config(method: &str, config: &Map<String, Value>) -> Result<IndexInfo> {
        let s = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
        let metric = match s("metric") {
            Some(m) => m.parse()?,
            None => Metric::Cosine,
        };
        Ok(IndexInfo {
            method: method.to_string(),
            metric,
            embeddings_field: s("embeddings_field"),
            model: s("model"),
            patches_field: s("patches_field"),
            supports_prompts: config
                .get("supports_prompts")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

fn opt(v: &Option<String>) -> Value {
    v.clone().map(Value::String).unwrap_or(Value::Null)
}

/// A loaded index shared by every handle on the same brain run.
#[derive(Debug)]
pub(crate) struct IndexState {
    pub(crate) backend: RwLock<Arc<dyn SimilarityBackend>>,
    pub(crate) info: IndexInfo,
    pub(crate) key: Mutex<Option<String>>,
    /// The run's revision this backend reflects (bumped on each change).
    pub(crate) revision: AtomicU64,
    pub(crate) model: Mutex<Option<Arc<dyn EmbeddingModel>>>,
    /// The last `find_duplicates` / `find_unique` result on this run.
    pub(crate) duplicates: Mutex<Option<Arc<crate::Duplicates>>>,
}

impl IndexState {
    pub(crate) fn backend(&self) -> Arc<dyn SimilarityBackend> {
        self.backend
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub(crate) fn key(&self) -> Option<String> {
        self.key.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub(crate) fn set_key(&self, key: Option<String>) {
        *self.key.lock().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

/// The embeddings `get_embeddings` returns: rows with their sample ids and, for patch indexes,
/// label ids.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEmbeddings {
    /// One row per returned vector (`rows × dim`).
    pub embeddings: Array2<f32>,
    /// The sample id of each row.
    pub sample_ids: Vec<String>,
    /// The label id of each row for a patch index; `None` for a sample index.
    pub label_ids: Option<Vec<String>>,
}

/// A similarity index: the result of `compute_similarity` or `load_brain_results`.
///
/// Changes (`add_to_index`, `remove_from_index`) are durable when the call returns, for a
/// registered index; `cleanup()` deletes the backend's data; `use_view` restricts queries.
#[derive(Debug, Clone)]
pub struct SimilarityIndex {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) dataset: simile_dataset::Dataset,
    pub(crate) state: Arc<IndexState>,
    pub(crate) view: Option<simile_dataset::View>,
}

impl SimilarityIndex {
    /// A handle on a loaded index, without a view restriction.
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        dataset: simile_dataset::Dataset,
        state: Arc<IndexState>,
    ) -> Self {
        SimilarityIndex {
            ctx,
            dataset,
            state,
            view: None,
        }
    }

    /// The brain key (None for an unregistered index).
    pub fn key(&self) -> Option<String> {
        self.state.key()
    }
    /// What the index is: backend, metric, embeddings source, model, patches field.
    pub fn info(&self) -> &IndexInfo {
        &self.state.info
    }
    /// The distance metric the backend ranks by.
    pub fn metric(&self) -> Metric {
        self.state.info.metric
    }
    /// Backend name.
    pub fn backend_name(&self) -> &str {
        &self.state.info.method
    }
    /// Whether text queries (`Query::Text`) work: the stored model has a text tower.
    pub fn supports_prompts(&self) -> bool {
        self.state.info.supports_prompts
    }
    /// The label field whose patches the index holds (`None` for a sample index).
    pub fn patches_field(&self) -> Option<&str> {
        self.state.info.patches_field.as_deref()
    }
    /// The backend itself (e.g. `index.backend().as_any().downcast_ref::<MilvusIndex>()` to reach
    /// the Milvus client and collection).
    pub fn backend(&self) -> Arc<dyn SimilarityBackend> {
        self.state.backend()
    }
    /// The dataset the index is registered on.
    pub fn dataset(&self) -> crate::Dataset {
        crate::Dataset::new(self.dataset.clone(), self.ctx.clone())
    }

    /// Number of vectors in the backend.
    pub fn total_index_size(&self) -> Result<usize> {
        Ok(self.backend().size()?)
    }

    /// Number of vectors in the current view (== `total_index_size` without a view).
    pub fn index_size(&self) -> Result<usize> {
        match &self.view {
            None => self.total_index_size(),
            Some(v) => {
                let keys = self.view_keys(v)?;
                Ok(self
                    .backend()
                    .contains(&keys)?
                    .into_iter()
                    .filter(|b| *b)
                    .count())
            }
        }
    }

    /// Samples (or patches) in the current view that are not in the index (None without a view).
    pub fn missing_size(&self) -> Result<Option<usize>> {
        match &self.view {
            None => Ok(None),
            Some(v) => {
                let keys = self.view_keys(v)?;
                let n = self
                    .backend()
                    .contains(&keys)?
                    .into_iter()
                    .filter(|b| !*b)
                    .count();
                Ok(if n == 0 { None } else { Some(n) })
            }
        }
    }

    /// Index keys of a view: sample ids, or visible label ids for a patch index.
    pub(crate) fn view_keys(&self, view: &simile_dataset::View) -> Result<Vec<String>> {
        Ok(match &self.state.info.patches_field {
            None => view.ids()?,
            Some(f) => view.label_ids(f)?.into_iter().map(|(_, l)| l).collect(),
        })
    }

    /// Restricts queries to a view (of the same dataset). Returns the restricted handle.
    pub fn use_view(&self, view: &impl Collection) -> SimilarityIndex {
        let v = view.to_view();
        let mut out = self.clone();
        out.view = if v.inner.is_full() {
            None
        } else {
            Some(v.inner.clone())
        };
        out
    }
    /// Removes the view restriction.
    pub fn clear_view(&self) -> SimilarityIndex {
        let mut out = self.clone();
        out.view = None;
        out
    }
    /// Whether a view restriction is active.
    pub fn has_view(&self) -> bool {
        self.view.is_some()
    }

    /// Adds (upserts) vectors: `embeddings` rows align with `sample_ids` (and `label_ids` for a
    /// patch index). Re-added ids get their new vectors unless `overwrite` is false; the same
    /// id twice in one call keeps the last row (with a warning). Durable when it returns.
    ///
    /// Every sample id must be a sample of the dataset ([`Error::UnknownSampleIds`]) and, for a
    /// patch index, every label id a detection of its sample in the patches field
    /// ([`Error::UnknownLabelIds`]); otherwise nothing is added.
    pub fn add_to_index(
        &self,
        embeddings: ArrayView2<'_, f32>,
        sample_ids: &[String],
        label_ids: Option<&[String]>,
        options: AddOptions,
    ) -> Result<()> {
        let keys: Vec<String> = match (&self.state.info.patches_field, label_ids) {
            (Some(_), Some(l)) => l.to_vec(),
            (Some(f), None) => return Err(Error::LabelIdsRequired { field: f.clone() }),
            (None, Some(_)) => return Err(Error::LabelIdsNotSupported),
            (None, None) => sample_ids.to_vec(),
        };
        if embeddings.nrows() != sample_ids.len() || keys.len() != sample_ids.len() {
            return Err(Error::EmbeddingsCount {
                what: "ids",
                expected: sample_ids.len(),
                got: embeddings.nrows(),
            });
        }
        self.check_rows(sample_ids, label_ids)?;
        let data: Vec<f32> = embeddings.iter().copied().collect();
        let batch = Embeddings::new(embeddings.ncols(), data, keys, sample_ids.to_vec())?;
        let rows = batch.len();
        let batch = batch.dedup_last_wins();
        if batch.len() < rows {
            tracing::warn!(
                repeated = rows - batch.len(),
                "the same id was given more than once: the last row of each is kept"
            );
        }
        self.mutate(|backend| {
            let mut batch = batch;
            if !options.overwrite || !options.allow_existing || options.warn_existing {
                let present = backend.contains(batch.keys())?;
                let existing: Vec<usize> = (0..present.len()).filter(|i| present[*i]).collect();
                if let Some(first) = existing.first() {
                    let example = batch.keys()[*first].clone();
                    if !options.allow_existing {
                        return Err(Error::ExistingIds {
                            count: existing.len(),
                            example,
                        });
                    }
                    if options.warn_existing {
                        tracing::warn!(
                            count = existing.len(),
                            example = %example,
                            "ids already present in the index: {}",
                            if options.overwrite { "replacing" } else { "ignoring" }
                        );
                    }
                    if !options.overwrite {
                        let keep: Vec<usize> =
                            (0..present.len()).filter(|i| !present[*i]).collect();
                        batch = batch.select_rows(&keep);
                    }
                }
            }
            if !batch.is_empty() {
                backend.upsert(&batch)?;
            }
            Ok(())
        })
    }

    /// Refuses rows whose sample is not in the dataset, or (patch index) whose label is not a
    /// detection of that sample in the patches field: the index would hold vectors of nothing.
    fn check_rows(&self, sample_ids: &[String], label_ids: Option<&[String]>) -> Result<()> {
        let missing = self.dataset.missing_ids(sample_ids)?;
        if !missing.is_empty() {
            return Err(Error::UnknownSampleIds {
                dataset: self.dataset.name().to_string(),
                count: missing.len(),
                ids: missing.into_iter().take(5).collect(),
            });
        }
        let (Some(field), Some(labels)) = (&self.state.info.patches_field, label_ids) else {
            return Ok(());
        };
        let present: HashSet<(String, String)> = self
            .dataset
            .view()
            .select(sample_ids)
            .label_ids(field)?
            .into_iter()
            .collect();
        let mut seen = HashSet::new();
        let unknown: Vec<String> = sample_ids
            .iter()
            .zip(labels)
            .filter(|(s, l)| !present.contains(&((*s).clone(), (*l).clone())))
            .map(|(_, l)| l.clone())
            .filter(|l| seen.insert(l.clone()))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::UnknownLabelIds {
            field: field.clone(),
            count: unknown.len(),
            ids: unknown.into_iter().take(5).collect(),
        })
    }

    /// Removes samples (for a patch index: all their patches). Absent ids are ignored, or an
    /// error with `allow_missing = false` (then nothing is removed). Returns how many vectors
    /// were removed.
    pub fn remove_from_index(
        &self,
        sample_ids: &[String],
        options: MissingOptions,
    ) -> Result<usize> {
        match &self.state.info.patches_field {
            None => self.remove_keys(sample_ids.to_vec(), options),
            Some(_) => {
                let backend = self.backend();
                let rows = backend.get_by_sample_ids(sample_ids)?;
                let found: HashSet<&String> = rows.sample_ids().iter().collect();
                check_missing(sample_ids.iter().filter(|s| !found.contains(s)), options)?;
                self.remove_keys(rows.keys().to_vec(), MissingOptions::default())
            }
        }
    }

    /// Removes patches by label id (patch indexes only).
    pub fn remove_labels_from_index(
        &self,
        label_ids: &[String],
        options: MissingOptions,
    ) -> Result<usize> {
        if self.state.info.patches_field.is_none() {
            return Err(Error::LabelIdsNotSupported);
        }
        self.remove_keys(label_ids.to_vec(), options)
    }

    fn remove_keys(&self, keys: Vec<String>, options: MissingOptions) -> Result<usize> {
        self.mutate(|backend| {
            if !options.allow_missing || options.warn_missing {
                let present = backend.contains(&keys)?;
                check_missing(
                    keys.iter()
                        .zip(&present)
                        .filter(|(_, p)| !**p)
                        .map(|(k, _)| k),
                    options,
                )?;
            }
            Ok(backend.remove(&keys)?)
        })
    }

    /// Embeddings of the given samples (all patches of each sample for a patch index), in the
    /// order asked.
    pub fn get_embeddings(
        &self,
        sample_ids: &[String],
        options: MissingOptions,
    ) -> Result<IndexEmbeddings> {
        let backend = self.backend();
        let rows = match &self.state.info.patches_field {
            None => backend.get(sample_ids)?,
            Some(_) => backend.get_by_sample_ids(sample_ids)?,
        };
        let found: HashSet<&String> = rows.sample_ids().iter().collect();
        check_missing(sample_ids.iter().filter(|s| !found.contains(s)), options)?;
        Ok(self.to_index_embeddings(rows))
    }

    /// Embeddings of the given patches (patch indexes only), in the order asked.
    pub fn get_label_embeddings(
        &self,
        label_ids: &[String],
        options: MissingOptions,
    ) -> Result<IndexEmbeddings> {
        if self.state.info.patches_field.is_none() {
            return Err(Error::LabelIdsNotSupported);
        }
        let rows = self.backend().get(label_ids)?;
        let found: HashSet<&String> = rows.keys().iter().collect();
        check_missing(label_ids.iter().filter(|s| !found.contains(s)), options)?;
        Ok(self.to_index_embeddings(rows))
    }

    /// Every embedding of the current view (the whole index without a view).
    pub fn get_all_embeddings(&self) -> Result<IndexEmbeddings> {
        match &self.view {
            Some(v) => {
                let keys = self.view_keys(v)?;
                let rows = self.backend().get(&keys)?;
                Ok(self.to_index_embeddings(rows))
            }
            None => Ok(self.to_index_embeddings(self.backend().get_all()?)),
        }
    }

    fn to_index_embeddings(&self, rows: Embeddings) -> IndexEmbeddings {
        let patches = self.state.info.patches_field.is_some();
        let (dim, data, keys, sample_ids) = rows.into_parts();
        let n = keys.len();
        let embeddings =
            Array2::from_shape_vec((n, dim), data).unwrap_or_else(|_| Array2::zeros((0, dim)));
        IndexEmbeddings {
            embeddings,
            sample_ids,
            label_ids: if patches { Some(keys) } else { None },
        }
    }

    /// Sorts the current view (the dataset without one) by similarity to `query`.
    pub fn sort_by_similarity(
        &self,
        query: impl Into<Query>,
        options: SortOptions,
    ) -> Result<View> {
        let view = match &self.view {
            Some(v) => View {
                inner: v.clone(),
                ctx: self.ctx.clone(),
            },
            None => self.dataset().view(),
        };
        crate::sort::sort_with_index(&view, self, query.into(), options)
    }

    /// Deletes the backend's data (the sklearn files, the Milvus collection). The brain-run
    /// record stays until `delete_brain_run`.
    pub fn cleanup(&self) -> Result<()> {
        self.backend().cleanup()?;
        Ok(())
    }

    /// Runs a change on the backend. For a registered index this happens inside a write
    /// transaction on the run record: the index is reloaded first if another process changed
    /// it, persisted after, and its revision bumped — so concurrent writers never lose updates.
    fn mutate<T>(&self, f: impl FnOnce(&dyn SimilarityBackend) -> Result<T>) -> Result<T> {
        let Some(key) = self.state.key() else {
            return f(self.backend().as_ref());
        };
        let ds = self.dataset.db_id();
        self.ctx.store.write(|tx| {
            let rec = simile_runs::RunRegistry::get(tx, ds, &key)?;
            let revision = crate::brain::revision_of(&rec);
            if revision != self.state.revision.load(Ordering::SeqCst) {
                crate::brain::reopen(&self.ctx, &self.dataset, &self.state, &rec, &Map::new())?;
            }
            let backend = self.backend();
            let out = f(backend.as_ref())?;
            backend.persist()?;
            let mut results = rec
                .results
                .clone()
                .unwrap_or_else(|| Value::Object(Map::new()));
            if let Value::Object(m) = &mut results {
                m.insert("revision".into(), (revision + 1).into());
                // What `simile doctor` compares the backend's size with.
                m.insert("size".into(), backend.size()?.into());
            }
            simile_runs::RunRegistry::set_results(tx, ds, &key, Some(&results))?;
            self.state.revision.store(revision + 1, Ordering::SeqCst);
            Ok(out)
        })
    }
}

fn check_missing<'a>(
    mut missing: impl Iterator<Item = &'a String>,
    options: MissingOptions,
) -> Result<()> {
    if options.allow_missing && !options.warn_missing {
        return Ok(());
    }
    let Some(first) = missing.next() else {
        return Ok(());
    };
    let count = 1 + missing.count();
    if !options.allow_missing {
        return Err(Error::MissingIds {
            count,
            example: first.clone(),
        });
    }
    tracing::warn!(count, example = %first, "ids not present in the index were ignored");
    Ok(())
}
