//! `Simile::doctor`: registry and storage never silently disagree. Lists what no run references
//! (storage directories, temp files of killed writes, stale locks, Milvus collections simile
//! created), runs whose storage is missing, corrupt or gone from Milvus, and runs whose
//! recorded size differs from their backend's; with `repair`, removes what is provably orphaned
//! (never what a running compute holds: see `storage`) and marks broken runs failed.
use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Map, Value};
use simile_index::{BackendParams, Error as IndexError, SimilarityBackend};
use simile_milvus::MilvusIndex;
use simile_runs::{RunFilter, RunRecord, RunRegistry, RunState};

use crate::context::Ctx;
use crate::storage::{self, Candidate};
use crate::{Error, Result, Simile};

/// What `doctor` does besides looking.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// Remove what is provably orphaned and mark broken runs failed.
    pub repair: bool,
    /// Milvus connection parameters (`uri`, `user`, `password`, ...) over the brain config's.
    pub milvus_params: Map<String, Value>,
}

impl DoctorOptions {
    /// Look only: no repair, Milvus parameters from the brain config and environment.
    pub fn new() -> Self {
        Self::default()
    }
    /// Whether to remove what is provably orphaned and mark broken runs failed.
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }
    /// Sets a Milvus connection parameter (wins over the brain config and environment).
    pub fn milvus_param(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.milvus_params.insert(name.to_string(), value.into());
        self
    }
}

/// A storage directory no run references.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrphanStorage {
    /// Relative to the home (`indexes/<dataset id>/<name>`).
    pub path: String,
    /// Total size of its files, in bytes.
    pub bytes: u64,
    /// A running compute holds its lock: never removed.
    pub in_use: bool,
    /// Removed by this call (with `repair`).
    pub removed: bool,
}

/// A leftover temp file (`vectors.simv.tmp`) in the storage of a run: a write that was killed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempFile {
    /// Relative to the home (`indexes/<dataset id>/<name>/<file>.tmp`).
    pub path: String,
    /// Its size, in bytes.
    pub bytes: u64,
    /// Removed by this call (with `repair`).
    pub removed: bool,
}

/// What is wrong with a run's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunProblem {
    /// Its storage directory or index file is gone.
    StorageMissing,
    /// Its index file fails its checksum or cannot be parsed.
    StorageCorrupt,
    /// Its Milvus collection is gone.
    CollectionMissing,
}

impl RunProblem {
    /// Its snake_case name, as in JSON reports and the `broken` mark a repair writes.
    pub fn as_str(self) -> &'static str {
        match self {
            RunProblem::StorageMissing => "storage_missing",
            RunProblem::StorageCorrupt => "storage_corrupt",
            RunProblem::CollectionMissing => "collection_missing",
        }
    }
}

/// A run whose index cannot be used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokenRun {
    /// The dataset's name.
    pub dataset: String,
    /// The run's brain key.
    pub key: String,
    /// The run's backend ("sklearn", "milvus", ...).
    pub method: String,
    /// What is wrong with its storage.
    pub problem: RunProblem,
    /// The missing path or collection, or the corrupt file and why.
    pub detail: String,
    /// The run is marked failed (by this repair or an earlier one).
    pub marked: bool,
}

/// A run whose backend holds another number of vectors than the run recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeMismatch {
    /// The dataset's name.
    pub dataset: String,
    /// The run's brain key.
    pub key: String,
    /// The run's backend ("sklearn", "milvus", ...).
    pub method: String,
    /// Vectors the run recorded when it last changed its index.
    pub recorded: u64,
    /// Vectors the backend holds now.
    pub actual: u64,
}

/// A Milvus collection simile created for this home that no run references.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrphanCollection {
    /// The collection's name.
    pub name: String,
    /// The storage directory of the compute that created it (relative to the home).
    pub storage_dir: String,
    /// A running compute holds the lock on its storage directory: never dropped.
    pub in_use: bool,
    /// Dropped by this call (with `repair`).
    pub removed: bool,
}

/// A run that could not be checked (its backend is unknown or unreachable).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UncheckedRun {
    /// The dataset's name.
    pub dataset: String,
    /// The run's brain key.
    pub key: String,
    /// The run's backend ("sklearn", "milvus", ...).
    pub method: String,
    /// Why it could not be checked (e.g. "Milvus could not be reached").
    pub reason: String,
}

/// Whether Milvus was looked at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MilvusCheck {
    /// The server was reached: its runs and simile's collections on it were checked.
    Checked,
    /// No Milvus is configured and no run uses it.
    Skipped {
        /// Why it was not looked at.
        reason: String,
    },
    /// Connecting to the server or listing its collections failed: its runs are unchecked.
    Unreachable {
        /// The error, with its chain of causes joined by ": ".
        error: String,
    },
}

/// What `doctor` found (and, with `repair`, did).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoctorReport {
    /// The data directory checked.
    pub home: PathBuf,
    /// Whether this call repaired (`DoctorOptions::repair`).
    pub repair: bool,
    /// Storage directories no run references.
    pub orphan_storage: Vec<OrphanStorage>,
    /// Temp files of killed writes in the storage of runs.
    pub temp_files: Vec<TempFile>,
    /// Lock files of killed computes whose directory never came to be.
    pub stale_locks: Vec<String>,
    /// Runs whose storage or collection is missing or corrupt.
    pub broken_runs: Vec<BrokenRun>,
    /// Runs whose backend holds another number of vectors than they recorded.
    pub size_mismatches: Vec<SizeMismatch>,
    /// Milvus collections simile created for this home that no run references.
    pub orphan_collections: Vec<OrphanCollection>,
    /// Runs that could not be checked (unknown backend, unreachable server).
    pub unchecked_runs: Vec<UncheckedRun>,
    /// Whether Milvus was checked, skipped or unreachable.
    pub milvus: MilvusCheck,
    /// Runs checked.
    pub runs: usize,
}

impl DoctorReport {
    /// Problems left after this call: orphans not removed (and not in use), broken runs
    /// (marked or not: `brain delete --cleanup` removes them), size mismatches.
    pub fn unresolved(&self) -> usize {
        self.orphan_storage
            .iter()
            .filter(|o| !o.removed && !o.in_use)
            .count()
            + self.temp_files.iter().filter(|t| !t.removed).count()
            + if self.repair {
                0
            } else {
                self.stale_locks.len()
            }
            + self.broken_runs.len()
            + self.size_mismatches.len()
            + self
                .orphan_collections
                .iter()
                .filter(|o| !o.removed && !o.in_use)
                .count()
    }
    /// Nothing found at all.
    pub fn is_healthy(&self) -> bool {
        self.orphan_storage.is_empty()
            && self.temp_files.is_empty()
            && self.stale_locks.is_empty()
            && self.broken_runs.is_empty()
            && self.size_mismatches.is_empty()
            && self.orphan_collections.is_empty()
    }
}

impl Simile {
    /// Checks that the registry and the storage agree (see [`DoctorReport`]); with
    /// `options.repair`, removes what is provably orphaned and marks broken runs failed.
    ///
    /// Never removes the storage of a compute running in another process (it holds a lock on
    /// it), a run's storage, or a Milvus collection simile did not create for this home.
    pub fn doctor(&self, options: DoctorOptions) -> Result<DoctorReport> {
        doctor(&self.ctx, &options)
    }
}

fn doctor(ctx: &Ctx, options: &DoctorOptions) -> Result<DoctorReport> {
    let home = ctx.store.home();
    if options.repair {
        // A read-only home can be checked, not repaired.
        ctx.store.check_writable()?;
    }
    let mut report = DoctorReport {
        home: home.to_path_buf(),
        repair: options.repair,
        orphan_storage: Vec::new(),
        temp_files: Vec::new(),
        stale_locks: storage::stale_locks(home, options.repair)?,
        broken_runs: Vec::new(),
        size_mismatches: Vec::new(),
        orphan_collections: Vec::new(),
        unchecked_runs: Vec::new(),
        milvus: MilvusCheck::Checked,
        runs: 0,
    };

    for c in storage::candidates(ctx, None)? {
        match c {
            Candidate::InUse { rel, bytes } => report.orphan_storage.push(OrphanStorage {
                path: rel,
                bytes,
                in_use: true,
                removed: false,
            }),
            Candidate::Free {
                rel,
                bytes,
                lock: _lock,
            } => {
                let removed = options.repair && {
                    storage::remove_dir(&home.join(&rel))?;
                    tracing::info!(path = %rel, bytes, "removed orphan index storage");
                    true
                };
                report.orphan_storage.push(OrphanStorage {
                    path: rel,
                    bytes,
                    in_use: false,
                    removed,
                });
            }
        }
    }
    check_temp_files(ctx, options.repair, &mut report)?;

    let milvus = milvus_handle(ctx, options)?;
    match &milvus {
        Ok(Some(_)) => {}
        Ok(None) => {
            report.milvus = MilvusCheck::Skipped {
                reason: "no Milvus is configured and no run uses it".into(),
            }
        }
        Err(e) => {
            report.milvus = MilvusCheck::Unreachable {
                error: error_chain(e),
            }
        }
    }
    let milvus = milvus.ok().flatten();
    check_runs(ctx, options, milvus.is_some(), &mut report)?;
    if let Some(m) = &milvus {
        if let Err(e) = check_collections(ctx, m, options.repair, &mut report) {
            report.milvus = MilvusCheck::Unreachable {
                error: error_chain(&e),
            };
        }
    }
    Ok(report)
}

/// `*.tmp` files in the storage of runs. Removed inside a write transaction on the store: index
/// changes persist inside one, so none is writing its temp file meanwhile.
fn check_temp_files(ctx: &Ctx, repair: bool, report: &mut DoctorReport) -> Result<()> {
    let home = ctx.store.home();
    let refs = storage::refs(ctx)?;
    let dirs: BTreeSet<String> = storage::storage_dirs(home, None)?
        .into_iter()
        .filter(|d| storage::referenced(&refs, d))
        .collect();
    let found = storage::temp_files(home, &dirs);
    if found.is_empty() {
        return Ok(());
    }
    let removed = repair && {
        ctx.store.write(|_tx| {
            for (path, _) in &found {
                let p = home.join(path);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(storage::io_err(&p)(e)),
                }
            }
            Ok::<_, Error>(())
        })?;
        true
    };
    report
        .temp_files
        .extend(found.into_iter().map(|(path, bytes)| TempFile {
            path,
            bytes,
            removed,
        }));
    Ok(())
}

/// A handle on the Milvus server to list collections with: `Ok(None)` when no Milvus is
/// configured and no run uses it; `Err` (inside) when it cannot be reached.
fn milvus_handle(
    ctx: &Ctx,
    options: &DoctorOptions,
) -> Result<std::result::Result<Option<MilvusIndex>, IndexError>> {
    let method = simile_milvus::BACKEND;
    let params = ctx.config.backend_params(method, &options.milvus_params);
    let mut used = false;
    for name in ctx.store.list_datasets()? {
        let ds = ctx.store.load_dataset(&name)?.db_id();
        let filter = RunFilter::new().method(method);
        used |= !ctx
            .store
            .read(|c| RunRegistry::list(c, ds, &filter))?
            .is_empty();
    }
    if !used && !params.contains_key("uri") {
        return Ok(Ok(None));
    }
    let bp = BackendParams {
        params,
        storage_dir: ctx.store.home().join(storage::INDEXES),
        dataset_name: "simile-doctor".into(),
        brain_key: None,
        patches: false,
    };
    Ok(MilvusIndex::connect(&bp).map(Some))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The size a run recorded when it last changed its index.
pub(crate) fn recorded_size(rec: &RunRecord) -> Option<u64> {
    rec.results.as_ref()?.get("size")?.as_u64()
}

/// What opening a run's index says about it.
enum Checked {
    Ok { size: u64 },
    Broken(RunProblem, String),
    Unchecked(String),
}

fn check_run(
    ctx: &Ctx,
    dataset: &simile_dataset::Dataset,
    rec: &RunRecord,
    overrides: &Map<String, Value>,
) -> Checked {
    let factory = match ctx.factory(&rec.method) {
        Ok(f) => f,
        Err(e) => return Checked::Unchecked(e.to_string()),
    };
    let params = match crate::brain::open_params(ctx, dataset, rec, overrides) {
        Ok(p) => p,
        Err(e) => return Checked::Unchecked(e.to_string()),
    };
    let backend: Box<dyn SimilarityBackend> = match factory.open(&params) {
        Ok(b) => b,
        Err(e) => return classify(e),
    };
    // Opening a big exact index reads only its header: check every section here.
    if let Some(s) = backend
        .as_any()
        .downcast_ref::<simile_sklearn::SklearnIndex>()
    {
        if let Err(e) = s.verify() {
            return classify(e);
        }
    }
    if let Some(m) = backend.as_any().downcast_ref::<MilvusIndex>() {
        match m.collection_exists() {
            // An index computed with no embeddings has no collection until its first add.
            Ok(false) if recorded_size(rec) == Some(0) => return Checked::Ok { size: 0 },
            Ok(false) => {
                return Checked::Broken(
                    RunProblem::CollectionMissing,
                    format!("collection '{}' does not exist", m.collection_name()),
                )
            }
            Ok(true) => {}
            Err(e) => return classify(e),
        }
    }
    match backend.size() {
        Ok(n) => Checked::Ok { size: n as u64 },
        Err(e) => classify(e),
    }
}

fn classify(e: IndexError) -> Checked {
    match e {
        IndexError::IndexMissing { backend, name } if backend == simile_milvus::BACKEND => {
            Checked::Broken(
                RunProblem::CollectionMissing,
                format!("collection '{name}' does not exist"),
            )
        }
        IndexError::IndexMissing { name, .. } => {
            Checked::Broken(RunProblem::StorageMissing, format!("{name} does not exist"))
        }
        IndexError::Corrupt { path, reason } => {
            Checked::Broken(RunProblem::StorageCorrupt, format!("{path}: {reason}"))
        }
        other => Checked::Unchecked(error_chain(&other)),
    }
}

fn check_runs(
    ctx: &Ctx,
    options: &DoctorOptions,
    milvus_ok: bool,
    report: &mut DoctorReport,
) -> Result<()> {
    for name in ctx.store.list_datasets()? {
        let dataset = ctx.store.load_dataset(&name)?;
        let ds = dataset.db_id();
        let records = ctx
            .store
            .read(|c| RunRegistry::list_records(c, ds, &RunFilter::new()))?;
        for rec in records {
            if crate::brain::storage_dir_of(&rec).is_err() {
                continue; // not an index (a uniqueness run, ...)
            }
            report.runs += 1;
            let is_milvus = rec.method == simile_milvus::BACKEND;
            let checked = if is_milvus && !milvus_ok {
                Checked::Unchecked("Milvus could not be reached".into())
            } else {
                let overrides = if is_milvus {
                    options.milvus_params.clone()
                } else {
                    Map::new()
                };
                check_run(ctx, &dataset, &rec, &overrides)
            };
            match checked {
                Checked::Ok { size } => match recorded_size(&rec) {
                    Some(recorded) if recorded != size => {
                        report.size_mismatches.push(SizeMismatch {
                            dataset: name.clone(),
                            key: rec.key.clone(),
                            method: rec.method.clone(),
                            recorded,
                            actual: size,
                        })
                    }
                    _ => {}
                },
                Checked::Unchecked(reason) => report.unchecked_runs.push(UncheckedRun {
                    dataset: name.clone(),
                    key: rec.key.clone(),
                    method: rec.method.clone(),
                    reason,
                }),
                Checked::Broken(problem, detail) => {
                    let already = rec.state == RunState::Failed && broken_mark(&rec).is_some();
                    let marked = already
                        || (options.repair && mark_broken(ctx, ds, &rec, problem, &detail)?);
                    report.broken_runs.push(BrokenRun {
                        dataset: name.clone(),
                        key: rec.key.clone(),
                        method: rec.method.clone(),
                        problem,
                        detail,
                        marked,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The `broken` entry a repair wrote into a run's results.
pub(crate) fn broken_mark(rec: &RunRecord) -> Option<&Value> {
    rec.results.as_ref()?.get("broken")
}

/// Marks a run failed, saying why in its results (`broken: {problem, detail}`), unless it
/// changed since it was checked.
fn mark_broken(
    ctx: &Ctx,
    ds: i64,
    rec: &RunRecord,
    problem: RunProblem,
    detail: &str,
) -> Result<bool> {
    let marked = ctx.store.write(|tx| {
        let now = RunRegistry::get(tx, ds, &rec.key)?;
        if now.results != rec.results {
            return Ok::<_, Error>(false);
        }
        let mut results = now.results.unwrap_or_else(|| Value::Object(Map::new()));
        if let Value::Object(m) = &mut results {
            m.insert(
                "broken".into(),
                serde_json::json!({"problem": problem.as_str(), "detail": detail}),
            );
        }
        RunRegistry::set_results(tx, ds, &rec.key, Some(&results))?;
        RunRegistry::set_state(tx, ds, &rec.key, RunState::Failed)?;
        Ok(true)
    })?;
    ctx.cache_lock().remove(&(ds, rec.key.clone()));
    if marked {
        tracing::warn!(key = %rec.key, problem = problem.as_str(), "marked a broken run failed");
    }
    Ok(marked)
}

/// Collections simile created for this home that no run references.
fn check_collections(
    ctx: &Ctx,
    milvus: &MilvusIndex,
    repair: bool,
    report: &mut DoctorReport,
) -> Result<()> {
    let home = ctx.store.home();
    let before = storage::refs(ctx)?;
    let mut locked = Vec::new();
    for c in milvus.simile_collections()? {
        let Ok(rel) = c.storage_dir.strip_prefix(home) else {
            continue; // another home's
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        if storage::referenced(&before, &rel) || storage::referenced(&before, &c.name) {
            continue;
        }
        // A compute creates the dataset's folder before it locks; no folder, no compute.
        let lock = if c.storage_dir.parent().is_some_and(|p| p.is_dir()) {
            match storage::StorageLock::try_acquire(&c.storage_dir)? {
                Some(l) => Some(l),
                None => {
                    report.orphan_collections.push(OrphanCollection {
                        name: c.name,
                        storage_dir: rel,
                        in_use: true,
                        removed: false,
                    });
                    continue;
                }
            }
        } else {
            None
        };
        locked.push((c.name, rel, lock));
    }
    let after = storage::refs(ctx)?;
    for (name, rel, _lock) in locked {
        if storage::referenced(&after, &rel) || storage::referenced(&after, &name) {
            continue;
        }
        let removed = repair && {
            milvus.drop_named_collection(&name)?;
            tracing::info!(collection = %name, "dropped an orphan Milvus collection");
            true
        };
        report.orphan_collections.push(OrphanCollection {
            name,
            storage_dir: rel,
            in_use: false,
            removed,
        });
    }
    Ok(())
}
