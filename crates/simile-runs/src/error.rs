/// Errors of the brain-run registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunsError {
    /// No run with this key on the dataset.
    #[error("dataset has no brain run with key '{0}'")]
    UnknownKey(String),

    /// A run with this key already exists on the dataset.
    #[error("a brain run with key '{0}' already exists")]
    DuplicateKey(String),

    /// The key is not a valid identifier (Python's `str.isidentifier()` rules).
    #[error(
        "invalid brain run key '{0}': keys must be valid variable names \
         (a letter or '_', then letters, digits or '_')"
    )]
    InvalidKey(String),

    /// The database failed.
    #[error("brain run registry database error")]
    Sqlite(#[from] rusqlite::Error),

    /// A stored record cannot be read back.
    #[error("brain run '{key}' is corrupt: {reason}")]
    Corrupt {
        /// The run's brain key.
        key: String,
        /// What cannot be read.
        reason: String,
    },

    /// A record cannot be stored (e.g. a timestamp outside RFC 3339's years 0–9999).
    #[error("brain run '{key}' cannot be stored: {reason}")]
    InvalidRecord {
        /// The run's brain key.
        key: String,
        /// Why it cannot be stored.
        reason: String,
    },
}

/// `Result` with [`RunsError`].
pub type Result<T, E = RunsError> = std::result::Result<T, E>;
