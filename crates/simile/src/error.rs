use simile_dataset::DatasetError;

/// Errors of the simile facade. Lower layers' errors are kept as typed sources.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The dataset store failed: unknown or duplicate dataset, bad id or field, SQLite error.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The brain-run registry failed: unknown, duplicate or invalid brain key, corrupt record.
    #[error(transparent)]
    Runs(#[from] simile_runs::RunsError),
    /// The configuration cannot be loaded: bad brain config file or variable, no home directory.
    #[error(transparent)]
    Config(#[from] simile_config::ConfigError),
    /// A similarity backend failed: dimension mismatch, bad metric, missing or corrupt index,
    /// unreachable server.
    #[error(transparent)]
    Index(#[from] simile_index::Error),

    /// An import, export or the quickstart generator failed (nothing was imported).
    #[error(transparent)]
    Import(#[from] simile_io::IoError),

    /// A zoo dataset name simile does not provide.
    #[error("unknown zoo dataset '{0}'; available offline: quickstart")]
    UnknownZooDataset(String),

    /// No backend registered under that name.
    #[error("unsupported backend '{name}'; the available backends are {available:?}")]
    UnknownBackend {
        /// The backend name asked for (possibly blank).
        name: String,
        /// The names of the registered backends, sorted.
        available: Vec<String>,
    },

    /// `sort_by_similarity` without a brain key on a dataset with no usable similarity run.
    #[error("dataset '{dataset}' has no compatible similarity results for its {what}")]
    NoSimilarityRun {
        /// The dataset's name.
        dataset: String,
        /// What a run had to index: `samples`, `samples that supports text prompts` or
        /// `patches in '<field>'`.
        what: String,
    },

    /// An embeddings array whose rows do not match the samples (or patches) being indexed.
    #[error("the number of embeddings ({got}) does not match the number of {what} ({expected}) in the collection")]
    EmbeddingsCount {
        /// What the rows must align with: "samples", "patches", "patches of a sample" or "ids".
        what: &'static str,
        /// How many rows were needed.
        expected: usize,
        /// How many rows the embeddings have.
        got: usize,
    },

    /// Nothing to index.
    #[error("the collection '{0}' is empty: there is nothing to index")]
    EmptyCollection(String),

    /// Backend parameters (per call, from the brain config or the environment) that the
    /// backend does not read.
    #[error("unknown {backend} parameter(s) {}: the {backend} backend takes {}", quoted(.unknown), .known.join(", "))]
    UnknownParams {
        /// The backend name ("sklearn", "milvus").
        backend: String,
        /// The parameter names it does not read.
        unknown: Vec<String>,
        /// The parameter names it does read.
        known: Vec<String>,
    },

    /// `add_to_index` with sample ids that are not samples of the dataset (nothing is added).
    #[error("{count} sample id(s) not in dataset '{dataset}': {}; nothing was added", quoted(.ids))]
    UnknownSampleIds {
        /// The dataset's name.
        dataset: String,
        /// How many of the given sample ids are not in the dataset.
        count: usize,
        /// The first few.
        ids: Vec<String>,
    },

    /// `add_to_index` on a patch index with label ids that are not detections of the given
    /// samples in the patches field (nothing is added).
    #[error("{count} label id(s) are not detections in '{field}' of the sample given with them: {}; nothing was added", quoted(.ids))]
    UnknownLabelIds {
        /// The index's patches field.
        field: String,
        /// How many distinct label ids are not detections of their sample.
        count: usize,
        /// The first few.
        ids: Vec<String>,
    },

    /// An option value that cannot work (e.g. a batch size of 0).
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// The option ("batch_size", "bins", "plot file", ...).
        option: &'static str,
        /// Why the value is refused and what is accepted.
        reason: String,
    },

    /// Query ids not in the index.
    #[error("query ids {ids:?} do not exist in the index '{key}'")]
    QueryIdsNotFound {
        /// The index's brain key (empty for an unregistered index).
        key: String,
        /// The first few query ids the index does not hold.
        ids: Vec<String>,
    },

    /// A text query on an index whose model cannot embed prompts.
    #[error("invalid query {query:?}: the index '{key}' does not support text prompts (it has no model with a text tower)")]
    PromptsNotSupported {
        /// The index's brain key (empty for an unregistered index).
        key: String,
        /// The prompts, joined with " | ".
        query: String,
    },

    /// An empty query.
    #[error("at least one query must be provided")]
    EmptyQuery,

    /// `add_to_index(allow_existing = false)` with ids already in the index.
    #[error("found {count} ids (e.g. '{example}') that are already present in the index")]
    ExistingIds {
        /// How many of the given ids are already in the index.
        count: usize,
        /// The first of them.
        example: String,
    },

    /// `remove_from_index` / `get_embeddings` with `allow_missing = false` and absent ids.
    #[error("found {count} ids (e.g. '{example}') that are not present in the index")]
    MissingIds {
        /// How many of the given ids are not in the index.
        count: usize,
        /// The first of them.
        example: String,
    },

    /// A patches view queried with an index of another field (or a sample index).
    #[error("brain run '{key}' indexes {index:?}, not the patches of '{view}'")]
    PatchesFieldMismatch {
        /// The brain key of the index used.
        key: String,
        /// The label field whose patches the index holds (`None`: a sample index).
        index: Option<String>,
        /// The label field of the patches view.
        view: String,
    },

    /// A patch index needs label ids.
    #[error("this index holds patches of '{field}': label ids are required")]
    LabelIdsRequired {
        /// The index's patches field.
        field: String,
    },

    /// Label ids given to a sample index.
    #[error("this index does not support label ids (it is not a patch index)")]
    LabelIdsNotSupported,

    /// A brain-run record that cannot be used (e.g. it names a backend that is not available).
    #[error("brain run '{key}' cannot be loaded: {reason}")]
    BadRun {
        /// The run's brain key.
        key: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// No embeddings source and no model.
    #[error("no embeddings source: pass embeddings (an array or a field name), a model, or `no_embeddings()`")]
    NoEmbeddingsSource,

    /// Reading or writing a `.npy` file failed.
    #[error("cannot read or write the .npy file {path}: {reason}")]
    Npy {
        /// The file.
        path: String,
        /// What is wrong (bad header, dtype, shape, or the writer's error).
        reason: String,
    },

    /// A `.npy` file whose length is not what its header declares: truncated, claiming more
    /// rows than it holds, or with bytes after the data. Checked before any data is read.
    #[error("the .npy file {path} should be {expected} bytes long ({header} bytes of header and {} bytes of data, as its shape says) but is {actual} bytes: it is truncated or has trailing bytes", .expected - .header)]
    NpySize {
        /// The file.
        path: String,
        /// The length of the header (where the data starts).
        header: u64,
        /// The length the header implies: header plus rows × dim × 4.
        expected: u64,
        /// The file's real length.
        actual: u64,
    },

    /// Filesystem error.
    #[error("I/O error on {path}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An embedding model failed as a whole.
    #[error("model '{model}' failed")]
    Model {
        /// The model's name.
        model: String,
        /// The model's error (loading, inference or prompt embedding).
        #[source]
        source: Box<crate::model::EmbedError>,
    },

    /// The index has no stored model (it was built from precomputed embeddings).
    #[error("brain run '{key}' has no stored model")]
    NoModel {
        /// The index's brain key (empty for an unregistered index).
        key: String,
    },

    /// One sample could not be embedded (with `skip_failures(false)`).
    #[error("cannot embed sample '{sample}'")]
    SampleFailed {
        /// The sample's id.
        sample: String,
        /// Why its image could not be embedded.
        #[source]
        source: Box<crate::model::ItemError>,
    },

    /// A vector field that an unfinished embed (killed, or failed) left part-filled, used as a
    /// source of embeddings.
    #[error("field '{field}' of dataset '{dataset}' is incomplete: an embed with model '{model}' stopped after {done} of {total} samples; rerun the embed with skip_existing (`simile embed --skip-existing`) to finish it")]
    IncompleteField {
        /// The dataset's name.
        dataset: String,
        /// The part-filled vector field.
        field: String,
        /// The model the unfinished embed ran.
        model: String,
        /// Samples the unfinished embed had done.
        done: usize,
        /// Samples of its collection.
        total: usize,
    },

    /// Resuming an unfinished embed with another model would mix two models' vectors.
    #[error("field '{field}' of dataset '{dataset}' is part-filled by an unfinished embed with model '{started_with}': resume it with that model, or embed again without skip_existing to replace every vector with '{model}'")]
    ResumeWithAnotherModel {
        /// The dataset's name.
        dataset: String,
        /// The part-filled vector field.
        field: String,
        /// The model the unfinished embed ran.
        started_with: String,
        /// The model this resume was asked to use.
        model: String,
    },

    /// The operation needs a feature this build or this index does not have.
    #[error("not supported: {0}")]
    NotSupported(String),
}

/// `'a', 'b', 'c'` (ids and names in messages).
fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Result` with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Dataset(DatasetError::Sqlite(e))
    }
}
