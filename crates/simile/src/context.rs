use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use simile_config::{BrainConfig, Settings};
use simile_dataset::Store;
use simile_index::BackendFactory;

use crate::collection::Dataset;
use crate::index::IndexState;
use crate::{Error, Result};

/// Everything a simile session shares: the store, the configuration, the registered backends and
/// the cache of loaded indexes.
pub(crate) struct Ctx {
    pub(crate) store: Store,
    pub(crate) settings: Settings,
    pub(crate) config: BrainConfig,
    pub(crate) backends: BTreeMap<String, Arc<dyn BackendFactory>>,
    /// The parameters each built-in backend reads (backends registered by the user are not
    /// checked: simile cannot know theirs).
    pub(crate) known_params: BTreeMap<String, &'static [&'static str]>,
    /// Loaded indexes by (dataset db id, brain key).
    pub(crate) cache: Mutex<HashMap<(i64, String), Arc<IndexState>>>,
    /// Loaded models by name.
    pub(crate) models: Mutex<HashMap<String, Arc<dyn crate::model::EmbeddingModel>>>,
    /// Locks on the storage of indexes computed without a brain key: in use while the session
    /// lives, so no doctor removes them.
    pub(crate) held_storage: Mutex<Vec<crate::storage::StorageLock>>,
    /// View restrictions of k-NN queries, cached per database version (`restrict.rs`).
    pub(crate) restrictions: crate::restrict::RestrictionCache,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simile")
            .field("home", &self.store.home())
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Ctx {
    pub(crate) fn factory(&self, name: &str) -> Result<Arc<dyn BackendFactory>> {
        self.backends
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownBackend {
                name: name.to_string(),
                available: self.backends.keys().cloned().collect(),
            })
    }

    /// Refuses parameters the backend does not read (a typo would otherwise be silently
    /// ignored). `config_cls`, which FiftyOne's brain config holds for its Python classes, is
    /// ignored.
    pub(crate) fn check_params(&self, method: &str, params: &Map<String, Value>) -> Result<()> {
        let Some(known) = self.known_params.get(method) else {
            return Ok(());
        };
        let unknown: Vec<String> = params
            .keys()
            .filter(|k| k.as_str() != "config_cls" && !known.contains(&k.as_str()))
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::UnknownParams {
            backend: method.to_string(),
            unknown,
            known: known.iter().map(|k| (*k).to_string()).collect(),
        })
    }

    pub(crate) fn cache_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(i64, String), Arc<IndexState>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A simile session: the entry point of the API.
///
/// ```no_run
/// # fn main() -> Result<(), simile::Error> {
/// let simile = simile::Simile::open()?;            // SIMILE_HOME, brain config, env
/// let dataset = simile.load_dataset("quickstart")?;
/// # Ok(()) }
/// ```
///
/// All methods are blocking and need no async runtime. Inside an async application, call them
/// from `tokio::task::spawn_blocking` (they may do disk or network I/O and CPU-heavy search).
#[derive(Clone, Debug)]
pub struct Simile {
    pub(crate) ctx: Arc<Ctx>,
}

/// Builds a [`Simile`] with a custom home, config or extra backends.
#[derive(Debug, Default)]
pub struct SimileBuilder {
    home: Option<PathBuf>,
    config: Option<BrainConfig>,
    settings: Option<Settings>,
    backends: Vec<Arc<dyn BackendFactory>>,
}

impl SimileBuilder {
    /// The data directory (overrides `SIMILE_HOME`).
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }
    /// A brain config instead of the one from the file and environment.
    pub fn brain_config(mut self, config: BrainConfig) -> Self {
        self.config = Some(config);
        self
    }
    /// Settings instead of the ones from the environment.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = Some(settings);
        self
    }
    /// Registers another backend (or replaces a built-in one of the same name).
    pub fn backend(mut self, factory: Arc<dyn BackendFactory>) -> Self {
        self.backends.push(factory);
        self
    }

    /// Opens the session: loads settings and brain config unless given, opens (or creates) the
    /// store under the home and registers the built-in backends plus the added ones.
    pub fn open(self) -> Result<Simile> {
        let mut settings = match self.settings {
            Some(s) => s,
            None => Settings::load()?,
        };
        if let Some(home) = self.home {
            settings = settings.with_home(home);
        }
        let config = match self.config {
            Some(c) => c,
            None => BrainConfig::load()?,
        };
        let store = Store::open_with(&settings.home, &[migrate_runs, crate::resume::migrate])?;
        let mut backends: BTreeMap<String, Arc<dyn BackendFactory>> = BTreeMap::new();
        let mut known_params = BTreeMap::new();
        known_params.insert(simile_sklearn::BACKEND.to_string(), simile_sklearn::PARAMS);
        known_params.insert(
            simile_milvus::BACKEND.to_string(),
            simile_milvus::config::PARAMS,
        );
        for f in builtin_backends() {
            backends.insert(f.name().to_string(), f);
        }
        for f in self.backends {
            known_params.remove(f.name());
            backends.insert(f.name().to_string(), f);
        }
        Ok(Simile {
            ctx: Arc::new(Ctx {
                store,
                settings,
                config,
                backends,
                known_params,
                cache: Mutex::new(HashMap::new()),
                models: Mutex::new(HashMap::new()),
                held_storage: Mutex::new(Vec::new()),
                restrictions: crate::restrict::RestrictionCache::default(),
            }),
        })
    }
}

fn migrate_runs(
    conn: &rusqlite::Connection,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(simile_runs::RunRegistry::migrate(conn)?)
}

fn builtin_backends() -> Vec<Arc<dyn BackendFactory>> {
    vec![
        Arc::new(simile_sklearn::SklearnFactory),
        Arc::new(simile_milvus::MilvusFactory),
    ]
}

impl Simile {
    /// Opens the session from the environment: `SIMILE_HOME` (default `~/.simile`), the brain
    /// config file and `FIFTYONE_BRAIN_*` / `SIMILE_*` variables.
    pub fn open() -> Result<Simile> {
        SimileBuilder::default().open()
    }
    /// Opens the session on a given data directory (config still from file and environment).
    pub fn open_at(home: impl AsRef<Path>) -> Result<Simile> {
        SimileBuilder::default().home(home.as_ref()).open()
    }
    /// A [`SimileBuilder`] for a custom home, config, settings or extra backends.
    pub fn builder() -> SimileBuilder {
        SimileBuilder::default()
    }

    /// The data directory.
    pub fn home(&self) -> &Path {
        self.ctx.store.home()
    }
    /// The brain config in use (default backend and per-backend parameters).
    pub fn brain_config(&self) -> &BrainConfig {
        &self.ctx.config
    }
    /// The settings in use (home, model directories, ONNX Runtime path, offline mode).
    pub fn settings(&self) -> &Settings {
        &self.ctx.settings
    }
    /// Names of the available similarity backends.
    pub fn backends(&self) -> Vec<String> {
        self.ctx.backends.keys().cloned().collect()
    }

    /// Loads an embedding model by name (FiftyOne's `load_zoo_model`): "clip-vit-base32-torch"
    /// (OpenAI ViT-B/32, from `SIMILE_MODELS_DIR`, the model cache, or a download when online),
    /// "clip-tiny-random" (a tiny CLIP with random weights, for tests).
    pub fn load_model(&self, name: &str) -> Result<Arc<dyn crate::model::EmbeddingModel>> {
        crate::model_loader::load(&self.ctx, name)
    }

    fn wrap(&self, inner: simile_dataset::Dataset) -> Dataset {
        Dataset::new(inner, self.ctx.clone())
    }
    /// Creates a new, empty dataset (`DatasetError::AlreadyExists` if the name is taken).
    pub fn create_dataset(&self, name: &str) -> Result<Dataset> {
        Ok(self.wrap(self.ctx.store.create_dataset(name)?))
    }
    /// Loads an existing dataset by name (`DatasetError::NotFound` if there is none).
    pub fn load_dataset(&self, name: &str) -> Result<Dataset> {
        Ok(self.wrap(self.ctx.store.load_dataset(name)?))
    }
    /// Whether a dataset of that name exists.
    pub fn dataset_exists(&self, name: &str) -> Result<bool> {
        Ok(self.ctx.store.dataset_exists(name)?)
    }
    /// Names of all datasets in the store, sorted.
    pub fn list_datasets(&self) -> Result<Vec<String>> {
        Ok(self.ctx.store.list_datasets()?)
    }
    /// Deletes a dataset, its brain runs and their index data (local storage, and the Milvus
    /// collections simile created for them). What it keeps, and why, is in the result: storage
    /// a clone's runs still use, a collection given by name, a collection on a server it
    /// cannot reach, storage a running compute holds.
    pub fn delete_dataset(&self, name: &str) -> Result<crate::DatasetDeletion> {
        crate::cleanup::delete_dataset(&self.ctx, name)
    }
}
