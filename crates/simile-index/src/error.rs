use std::error::Error as StdError;

/// A boxed error from a backend's own client library.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Errors every similarity backend reports, so callers can match on them whatever the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector has another length than the index's dimension.
    #[error("dimension mismatch: the index holds {expected}-d vectors but got {got}-d")]
    DimensionMismatch {
        /// The index's dimension.
        expected: usize,
        /// The vector's length.
        got: usize,
    },

    /// NaN or infinity in a vector.
    #[error("vector {what} contains NaN or infinite values")]
    NonFinite {
        /// Which vector (a key, or "query").
        what: String,
    },

    /// Two inputs that must line up do not.
    #[error("length mismatch: {what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// What does not line up.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        got: usize,
    },

    /// A vector of length zero, or no query at all.
    #[error("empty input: {0}")]
    Empty(&'static str),

    /// `k` larger than the backend allows.
    #[error("k={k} is larger than the {backend} backend's maximum of {max}")]
    KTooLarge {
        /// The backend's name.
        backend: &'static str,
        /// The `k` asked for.
        k: usize,
        /// The backend's largest `k`.
        max: usize,
    },

    /// The backend does not implement an operation (see [`crate::Capabilities`]).
    #[error("the {backend} backend does not support {op}")]
    NotSupported {
        /// The backend's name.
        backend: &'static str,
        /// The operation.
        op: &'static str,
    },

    /// Unknown metric name.
    #[error("unsupported metric '{0}'; supported values are cosine, dotproduct, euclidean")]
    InvalidMetric(String),

    /// A backend parameter has a bad value.
    #[error("invalid {backend} parameter '{param}': {reason}")]
    InvalidParam {
        /// The backend's name.
        backend: &'static str,
        /// The parameter's name.
        param: String,
        /// What is wrong with its value (never the value of a secret).
        reason: String,
    },

    /// The backend could not be reached (server down, network); nothing was changed.
    #[error("cannot reach the {backend} backend at {location}")]
    Unavailable {
        /// The backend's name.
        backend: &'static str,
        /// Where it was looked for (a URI without credentials).
        location: String,
        /// The client library's error.
        #[source]
        source: BoxError,
    },

    /// The backend refused the credentials. The credentials themselves are never included.
    #[error("the {backend} backend at {location} rejected the credentials")]
    Unauthenticated {
        /// The backend's name.
        backend: &'static str,
        /// Where it was looked for (a URI without credentials).
        location: String,
        /// The client library's error.
        #[source]
        source: BoxError,
    },

    /// The index's storage is gone (for example after `cleanup()`), or was never created.
    #[error("the {backend} index '{name}' does not exist")]
    IndexMissing {
        /// The backend's name.
        backend: &'static str,
        /// The index's name (collection or directory).
        name: String,
    },

    /// Reading or writing local index files failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A local index file is not what it should be.
    #[error("index file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Any other failure of the backend's client or server.
    #[error("{backend} backend failed during {op}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The operation that failed.
        op: &'static str,
        /// The client library's or server's error.
        #[source]
        source: BoxError,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
