/// Errors of the dataset store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    #[error("dataset '{0}' not found")]
    NotFound(String),
    #[error("dataset '{0}' already exists")]
    AlreadyExists(String),
    #[error("invalid dataset name {0:?}: names must be non-empty and free of control characters")]
    InvalidName(String),
    #[error("invalid id {0:?}: ids are 24 hexadecimal characters")]
    InvalidId(String),
    #[error("sample '{0}' is not in dataset '{1}'")]
    UnknownSample(String, String),
    #[error("field '{field}' does not exist on dataset '{dataset}'")]
    UnknownField { dataset: String, field: String },
    #[error("invalid field name {0:?}: use letters, digits and '_' (not starting with a digit); 'id' and 'filepath' are reserved")]
    InvalidField(String),
    #[error("field '{field}' holds {found}, not {expected}")]
    FieldKind {
        field: String,
        expected: &'static str,
        found: String,
    },
    /// Distances would overwrite a field that holds something else.
    #[error("field '{field}' of dataset '{dataset}' holds {found}, not distances: it is not overwritten (choose another field name)")]
    NotADistanceField {
        dataset: String,
        field: String,
        found: String,
    },
    #[error("vector for '{id}' in field '{field}' has dimension {got}, expected {expected}")]
    VectorDimension {
        field: String,
        id: String,
        expected: usize,
        got: usize,
    },
    #[error("vector for '{id}' in field '{field}' contains NaN or infinite values")]
    NonFiniteVector { field: String, id: String },
    #[error("invalid bounding box {bbox:?} for label '{label}': expected [x, y, w, h] relative, within [0, 1], w and h > 0")]
    InvalidBoundingBox { label: String, bbox: [f64; 4] },
    #[error("invalid view stage: {0}")]
    InvalidStage(String),
    #[error("cannot create the data directory {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a schema migration failed")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data for '{what}' is corrupt")]
    Corrupt {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with [`DatasetError`].
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
