//! Brain-run management on datasets: list, info, load, rename, delete.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value};
use simile_index::BackendParams;
use simile_runs::{RunRecord, RunRegistry};

use crate::context::Ctx;
use crate::index::{IndexInfo, IndexState, FACADE_KEYS};
use crate::{Dataset, Error, Result, RunFilter, SimilarityIndex};

/// A brain run's record as `get_brain_info` returns it.
pub type BrainInfo = RunRecord;

pub(crate) fn revision_of(rec: &RunRecord) -> u64 {
    rec.results
        .as_ref()
        .and_then(|r| r.get("revision"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

pub(crate) fn storage_dir_of(rec: &RunRecord) -> Result<String> {
    rec.results
        .as_ref()
        .and_then(|r| r.get("storage_dir"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::BadRun {
            key: rec.key.clone(),
            reason: "its record has no storage directory".into(),
        })
}

/// Backend parameters for reopening a run: config file/env, then load-time overrides, then the
/// run's persisted backend settings (which describe how the index was built, so they win).
pub(crate) fn open_params(
    ctx: &Ctx,
    dataset: &simile_dataset::Dataset,
    rec: &RunRecord,
    overrides: &Map<String, Value>,
) -> Result<BackendParams> {
    let mut params = ctx.config.backend_params(&rec.method, overrides);
    ctx.check_params(&rec.method, &params)?;
    for (k, v) in &rec.config {
        if !FACADE_KEYS.contains(&k.as_str()) {
            params.insert(k.clone(), v.clone());
        }
    }
    let info = IndexInfo::from_config(&rec.method, &rec.config)?;
    Ok(BackendParams {
        params,
        storage_dir: ctx.store.home().join(storage_dir_of(rec)?),
        dataset_name: dataset.name().to_string(),
        brain_key: Some(rec.key.clone()),
        patches: info.patches_field.is_some(),
    })
}

/// Swaps in a freshly opened backend (another process changed the index).
pub(crate) fn reopen(
    ctx: &Ctx,
    dataset: &simile_dataset::Dataset,
    state: &IndexState,
    rec: &RunRecord,
    overrides: &Map<String, Value>,
) -> Result<()> {
    let factory = ctx.factory(&rec.method)?;
    let backend = factory.open(&open_params(ctx, dataset, rec, overrides)?)?;
    *state.backend.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(backend);
    state.revision.store(revision_of(rec), Ordering::SeqCst);
    Ok(())
}

/// Loads (or reuses from the cache) the index of a brain run.
pub(crate) fn load_state(
    ctx: &Arc<Ctx>,
    dataset: &simile_dataset::Dataset,
    key: &str,
    overrides: &Map<String, Value>,
) -> Result<Arc<IndexState>> {
    let ds = dataset.db_id();
    let rec = ctx.store.read(|c| RunRegistry::get(c, ds, key))?;
    let revision = revision_of(&rec);
    let cached = ctx.cache_lock().get(&(ds, key.to_string())).cloned();
    if let Some(state) = cached {
        if overrides.is_empty() {
            if state.revision.load(Ordering::SeqCst) != revision {
                reopen(ctx, dataset, &state, &rec, overrides)?;
            }
            return Ok(state);
        }
    }
    let factory = ctx.factory(&rec.method).map_err(|e| Error::BadRun {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    let backend = factory.open(&open_params(ctx, dataset, &rec, overrides)?)?;
    let state = Arc::new(IndexState {
        backend: RwLock::new(Arc::from(backend)),
        info: IndexInfo::from_config(&rec.method, &rec.config)?,
        key: Mutex::new(Some(key.to_string())),
        revision: AtomicU64::new(revision),
        model: Mutex::new(None),
        duplicates: Mutex::new(None),
    });
    ctx.cache_lock()
        .insert((ds, key.to_string()), state.clone());
    Ok(state)
}

impl Dataset {
    /// Brain keys, sorted, optionally filtered by type, backend, patches field, prompt support.
    pub fn list_brain_runs(&self, filter: &RunFilter) -> Result<Vec<String>> {
        let f = simile_runs::RunFilter {
            run_type: filter.run_type.clone(),
            method: filter.method.clone(),
            patches_field: filter.patches_field.clone(),
            supports_prompts: filter.supports_prompts,
        };
        Ok(self
            .ctx
            .store
            .read(|c| RunRegistry::list(c, self.db_id(), &f))?)
    }

    /// Whether the dataset has a brain run (of any type) with this key.
    pub fn has_brain_run(&self, key: &str) -> Result<bool> {
        Ok(self
            .ctx
            .store
            .read(|c| RunRegistry::exists(c, self.db_id(), key))?)
    }

    /// The run's record: key, version, timestamp, config (never credentials).
    pub fn get_brain_info(&self, key: &str) -> Result<BrainInfo> {
        Ok(self
            .ctx
            .store
            .read(|c| RunRegistry::get(c, self.db_id(), key))?)
    }

    /// Loads the similarity index of a run; credentials come from the brain config / env.
    pub fn load_brain_results(&self, key: &str) -> Result<SimilarityIndex> {
        self.load_brain_results_with(key, &Map::new())
    }

    /// Loads the similarity index of a run with extra backend parameters (credentials, `uri`,
    /// ...) that win over the config file and environment.
    pub fn load_brain_results_with(
        &self,
        key: &str,
        overrides: &Map<String, Value>,
    ) -> Result<SimilarityIndex> {
        let state = load_state(&self.ctx, &self.inner, key, overrides)?;
        Ok(SimilarityIndex::new(
            self.ctx.clone(),
            self.inner.clone(),
            state,
        ))
    }

    /// Renames a run. The backend data is untouched (a Milvus collection keeps its name).
    pub fn rename_brain_run(&self, key: &str, new_key: &str) -> Result<()> {
        let ds = self.db_id();
        self.ctx
            .store
            .write(|tx| RunRegistry::rename(tx, ds, key, new_key))?;
        let mut cache = self.ctx.cache_lock();
        if let Some(state) = cache.remove(&(ds, key.to_string())) {
            state.set_key(Some(new_key.to_string()));
            cache.insert((ds, new_key.to_string()), state);
        }
        Ok(())
    }

    /// Deletes a run's **record** only; the backend's data stays (call `cleanup()` on the index
    /// first to delete it). Loaded handles keep working, unregistered.
    pub fn delete_brain_run(&self, key: &str) -> Result<()> {
        let ds = self.db_id();
        self.ctx
            .store
            .write(|tx| RunRegistry::delete(tx, ds, key))?;
        if let Some(state) = self.ctx.cache_lock().remove(&(ds, key.to_string())) {
            state.set_key(None);
        }
        Ok(())
    }

    /// Deletes every run record of the dataset.
    pub fn delete_brain_runs(&self) -> Result<()> {
        let ds = self.db_id();
        self.ctx.store.write(|tx| RunRegistry::delete_all(tx, ds))?;
        let mut cache = self.ctx.cache_lock();
        for (_, s) in cache.iter().filter(|((d, _), _)| *d == ds) {
            s.set_key(None);
        }
        cache.retain(|(d, _), _| *d != ds);
        Ok(())
    }
}
