use std::path::PathBuf;

/// Errors loading the configuration. Messages never contain configuration values (which may be
/// secrets), only file names, keys and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The brain config file exists but cannot be read.
    #[error("cannot read the brain config file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The brain config file is not valid JSON.
    #[error("the brain config file {} is not valid JSON", path.display())]
    MalformedFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The brain config file is JSON but not of the expected shape.
    #[error("the brain config file {}: '{field}' must be {expected}", path.display())]
    InvalidFile {
        path: PathBuf,
        field: String,
        expected: &'static str,
    },

    /// A merged configuration value has the wrong type.
    #[error("invalid brain config value at '{key}' (from {origin}): {reason}")]
    Invalid {
        key: String,
        origin: String,
        reason: String,
    },

    /// No home directory is known and the variable that would replace it is unset.
    #[error("cannot determine the home directory; set {var}")]
    NoHomeDir { var: &'static str },
}
