use std::error::Error as StdError;

/// A boxed error from a backend's own client library.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Errors every similarity backend reports, so callers can match on them whatever the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector has another length than the index's dimension.
    #[error("dimension mismatch: the index holds {expected}-d vectors but got {got}-d")]
    DimensionMismatch { expected: usize, got: usize },

    /// NaN or infinity in a vector.
    #[error("vector {what} contains NaN or infinite values")]
    NonFinite { what: String },

    /// Two inputs that must line up do not.
    #[error("length mismatch: {what}: expected {expected}, got {got}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },

    /// A vector of length zero, or no query at all.
    #[error("empty input: {0}")]
    Empty(&'static str),

    /// `k` larger than the backend allows.
    #[error("k={k} is larger than the {backend} backend's maximum of {max}")]
    KTooLarge {
        backend: &'static str,
        k: usize,
        max: usize,
    },

    /// The backend does not implement an operation (see [`crate::Capabilities`]).
    #[error("the {backend} backend does not support {op}")]
    NotSupported {
        backend: &'static str,
        op: &'static str,
    },

    /// Unknown metric name.
    #[error("unsupported metric '{0}'; supported values are cosine, dotproduct, euclidean")]
    InvalidMetric(String),

    /// A backend parameter has a bad value.
    #[error("invalid {backend} parameter '{param}': {reason}")]
    InvalidParam {
        backend: &'static str,
        param: String,
        reason: String,
    },

    /// The backend could not be reached (server down, network); nothing was changed.
    #[error("cannot reach the {backend} backend at {location}")]
    Unavailable {
        backend: &'static str,
        location: String,
        #[source]
        source: BoxError,
    },

    /// The backend refused the credentials. The credentials themselves are never included.
    #[error("the {backend} backend at {location} rejected the credentials")]
    Unauthenticated {
        backend: &'static str,
        location: String,
        #[source]
        source: BoxError,
    },

    /// The index's storage is gone (for example after `cleanup()`), or was never created.
    #[error("the {backend} index '{name}' does not exist")]
    IndexMissing { backend: &'static str, name: String },

    /// Reading or writing local index files failed.
    #[error("I/O error on {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A local index file is not what it should be.
    #[error("index file {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },

    /// Any other failure of the backend's client or server.
    #[error("{backend} backend failed during {op}")]
    Backend {
        backend: &'static str,
        op: &'static str,
        #[source]
        source: BoxError,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
