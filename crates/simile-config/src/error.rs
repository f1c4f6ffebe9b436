use std::path::PathBuf;

/// Errors loading the configuration. Messages never contain configuration values (which may be
/// secrets), only file names, keys and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The brain config file exists but cannot be read.
    #[error("cannot read the brain config file {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The brain config file is not valid JSON.
    #[error("the brain config file {} is not valid JSON", path.display())]
    MalformedFile {
        /// The file.
        path: PathBuf,
        /// The JSON error (its position; the parser's message quotes no values).
        #[source]
        source: serde_json::Error,
    },

    /// The brain config file is JSON but not of the expected shape.
    #[error("the brain config file {}: '{field}' must be {expected}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// The field of the wrong shape.
        field: String,
        /// The shape it must have.
        expected: &'static str,
    },

    /// A merged configuration value has the wrong type.
    #[error("invalid brain config value at '{key}' (from {origin}): {reason}")]
    Invalid {
        /// The dotted key (e.g. `similarity_backends.milvus`).
        key: String,
        /// Where the value came from (a file or a variable's name).
        origin: String,
        /// What is wrong (never the value itself).
        reason: String,
    },

    /// No home directory is known and the variable that would replace it is unset.
    #[error("cannot determine the home directory; set {var}")]
    NoHomeDir {
        /// The variable to set instead (`SIMILE_HOME`).
        var: &'static str,
    },
}
