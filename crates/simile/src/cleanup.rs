//! Deleting runs and datasets together with their storage, broken or not: `brain delete
//! --cleanup` on a corrupt index, `dataset delete` (which says what it keeps, and why).
use std::sync::Arc;

use serde::Serialize;
use serde_json::Map;
use simile_dataset::Store;
use simile_index::Error as IndexError;
use simile_milvus::MilvusIndex;
use simile_runs::{RunFilter, RunRecord, RunRegistry};

use crate::brain::{open_params, storage_dir_of};
use crate::context::Ctx;
use crate::storage::{self, Candidate};
use crate::{Dataset, Error, Result};

/// Storage that a deletion left in place, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptStorage {
    /// A storage directory (relative to the home) or `milvus collection <name>`.
    pub what: String,
    /// Why it was kept (e.g. "a run of another dataset (a clone) still uses it").
    pub why: String,
}

/// What `delete_dataset` deleted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetDeletion {
    /// The deleted dataset's name.
    pub name: String,
    /// Brain runs deleted with it.
    pub runs: usize,
    /// Storage removed: directories (relative to the home) and `milvus collection <name>`.
    pub removed: Vec<String>,
    /// Storage of its runs that was left in place, each with the reason.
    pub kept: Vec<KeptStorage>,
}

/// Whether an error says the index itself is broken (rather than, say, unreachable).
fn is_broken(e: &Error) -> bool {
    matches!(
        e,
        Error::BadRun { .. }
            | Error::Index(IndexError::IndexMissing { .. })
            | Error::Index(IndexError::Corrupt { .. })
    )
}

impl Dataset {
    /// Deletes a run's index data and then its record — also when the index is broken (its
    /// storage missing or corrupt: whatever of it exists is deleted). When the data cannot be
    /// deleted for another reason (a Milvus server that cannot be reached), the record stays
    /// and the error is returned, so nothing is lost track of.
    pub fn delete_brain_run_and_data(&self, key: &str) -> Result<()> {
        let rec = self.get_brain_info(key)?;
        match self.load_brain_results(key).and_then(|i| i.cleanup()) {
            Ok(()) => {}
            Err(e) if is_broken(&e) => {
                tracing::warn!(key, error = %e, "the index is broken: deleting what exists of it");
            }
            Err(e) => return Err(e),
        }
        self.delete_brain_run(key)?;
        // What the backend did not remove itself (a corrupt file, temp files, the directory).
        if let Ok(rel) = storage_dir_of(&rec) {
            remove_unreferenced_dir(&self.ctx, &rel)?;
        }
        Ok(())
    }
}

/// Removes a run's local storage directory unless another run (of a clone) still names it.
fn remove_unreferenced_dir(ctx: &Ctx, rel: &str) -> Result<bool> {
    if !storage::is_storage_path(rel) {
        return Ok(false);
    }
    let dir = ctx.store.home().join(rel);
    if !dir.exists() || storage::referenced(&storage::refs(ctx)?, rel) {
        return Ok(false);
    }
    storage::remove_dir(&dir)?;
    Ok(true)
}

/// Deletes a dataset, its runs, and their storage: local index directories and the Milvus
/// collections simile created for them. Keeps (and says why) storage that another dataset's
/// run still uses (a clone), a collection simile did not create, anything a running compute
/// holds, and a collection on a server it cannot reach (`simile doctor --repair` drops it
/// later).
pub(crate) fn delete_dataset(ctx: &Arc<Ctx>, name: &str) -> Result<DatasetDeletion> {
    let dataset = ctx.store.load_dataset(name)?;
    let id = dataset.db_id();
    let records = ctx
        .store
        .read(|c| RunRegistry::list_records(c, id, &RunFilter::new()))?;
    let runs = ctx.store.write(|tx| {
        let n = RunRegistry::delete_all(tx, id)?;
        Store::delete_dataset_in(tx, &dataset)?;
        Ok::<_, Error>(n)
    })?;
    ctx.cache_lock().retain(|(d, _), _| *d != id);
    let mut out = DatasetDeletion {
        name: name.to_string(),
        runs,
        removed: Vec::new(),
        kept: Vec::new(),
    };

    let refs = storage::refs(ctx)?;
    for rec in &records {
        let Ok(rel) = storage_dir_of(rec) else {
            continue;
        };
        if rec.method == simile_milvus::BACKEND {
            drop_collection(ctx, &dataset, rec, &rel, &refs, &mut out);
        }
        if storage::referenced(&refs, &rel) && ctx.store.home().join(&rel).exists() {
            out.kept.push(KeptStorage {
                what: rel,
                why: "a run of another dataset (a clone) still uses it".into(),
            });
        }
    }
    for c in storage::candidates(ctx, Some(id))? {
        match c {
            Candidate::Free { rel, lock: _l, .. } => {
                storage::remove_dir(&ctx.store.home().join(&rel))?;
                out.removed.push(rel);
            }
            Candidate::InUse { rel, .. } => out.kept.push(KeptStorage {
                what: rel,
                why: "a compute in another process is using it".into(),
            }),
        }
    }
    // The dataset's folder, when nothing is left in it.
    let _ = std::fs::remove_dir(ctx.store.home().join(storage::INDEXES).join(id.to_string()));
    Ok(out)
}

/// Drops a deleted run's Milvus collection if simile created it for that run and no other run
/// uses it; otherwise records why it stays.
fn drop_collection(
    ctx: &Ctx,
    dataset: &simile_dataset::Dataset,
    rec: &RunRecord,
    rel: &str,
    refs: &[simile_runs::RunRefs],
    out: &mut DatasetDeletion,
) {
    let Some(name) = rec.config.get("collection_name").and_then(|v| v.as_str()) else {
        return;
    };
    let what = format!("milvus collection {name}");
    let keep = |out: &mut DatasetDeletion, why: String| {
        out.kept.push(KeptStorage {
            what: what.clone(),
            why,
        })
    };
    if storage::referenced(refs, name) {
        return keep(
            out,
            "a run of another dataset (a clone) still uses it".into(),
        );
    }
    let result = (|| -> Result<Option<bool>> {
        let factory = ctx.factory(&rec.method)?;
        let backend = factory.open(&open_params(ctx, dataset, rec, &Map::new())?)?;
        let Some(m) = backend.as_any().downcast_ref::<MilvusIndex>() else {
            return Ok(Some(false));
        };
        let owner = match m.collection_owner(name) {
            Ok(o) => o,
            Err(IndexError::IndexMissing { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if owner.as_deref() != Some(ctx.store.home().join(rel).as_path()) {
            return Ok(Some(false));
        }
        m.drop_named_collection(name)?;
        Ok(Some(true))
    })();
    match result {
        Ok(None) => {}
        Ok(Some(true)) => out.removed.push(what),
        Ok(Some(false)) => keep(
            out,
            "simile did not create it (it was given by name): drop it yourself if you want it gone"
                .into(),
        ),
        Err(e) => keep(
            out,
            format!("Milvus: {e}; `simile doctor --repair` drops it once the server is back"),
        ),
    }
}
