/// Errors of the dataset store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// No dataset of this name.
    #[error("dataset '{0}' not found")]
    NotFound(String),
    /// A dataset of this name exists already.
    #[error("dataset '{0}' already exists")]
    AlreadyExists(String),
    /// A dataset name the store does not accept.
    #[error("invalid dataset name {0:?}: names must be non-empty and free of control characters")]
    InvalidName(String),
    /// Not a 24-hex sample or label id.
    #[error("invalid id {0:?}: ids are 24 hexadecimal characters")]
    InvalidId(String),
    /// A sample id that is not in the dataset (sample id, dataset name).
    #[error("sample '{0}' is not in dataset '{1}'")]
    UnknownSample(String, String),
    /// A field the dataset does not have.
    #[error("field '{field}' does not exist on dataset '{dataset}'")]
    UnknownField {
        /// The dataset's name.
        dataset: String,
        /// The field's name.
        field: String,
    },
    /// A field name the store does not accept.
    #[error("invalid field name {0:?}: use letters, digits and '_' (not starting with a digit); 'id' and 'filepath' are reserved")]
    InvalidField(String),
    /// A field holds another kind of value than the operation needs.
    #[error("field '{field}' holds {found}, not {expected}")]
    FieldKind {
        /// The field's name.
        field: String,
        /// The kind needed.
        expected: &'static str,
        /// The kind it holds.
        found: String,
    },
    /// Distances would overwrite a field that holds something else.
    #[error("field '{field}' of dataset '{dataset}' holds {found}, not distances: it is not overwritten (choose another field name)")]
    NotADistanceField {
        /// The dataset's name.
        dataset: String,
        /// The field's name.
        field: String,
        /// What the field holds.
        found: String,
    },
    /// A vector field value of another dimension than the field's.
    #[error("vector for '{id}' in field '{field}' has dimension {got}, expected {expected}")]
    VectorDimension {
        /// The field's name.
        field: String,
        /// The sample's id.
        id: String,
        /// The field's dimension.
        expected: usize,
        /// The value's length.
        got: usize,
    },
    /// A vector field value with NaN or infinity.
    #[error("vector for '{id}' in field '{field}' contains NaN or infinite values")]
    NonFiniteVector {
        /// The field's name.
        field: String,
        /// The sample's id.
        id: String,
    },
    /// A detection's box is not relative `[x, y, w, h]` inside the image.
    #[error("invalid bounding box {bbox:?} for label '{label}': expected [x, y, w, h] relative, within [0, 1], w and h > 0")]
    InvalidBoundingBox {
        /// The detection's label.
        label: String,
        /// The box as given.
        bbox: [f64; 4],
    },
    /// A view stage (or its JSON description) that cannot be applied.
    #[error("invalid view stage: {0}")]
    InvalidStage(String),
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}")]
    Io {
        /// The directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The home cannot be written (see `Store::open_with`).
    #[error("the home {path} is read-only: this command changes data and cannot run there (read commands work)")]
    ReadOnlyHome {
        /// The home directory.
        path: String,
    },
    /// A schema migration (of this crate or a layer above) failed.
    #[error("a schema migration failed")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored JSON cannot be read back.
    #[error("stored data for '{what}' is corrupt")]
    Corrupt {
        /// What was being read (a sample id, a field).
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with [`DatasetError`].
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
