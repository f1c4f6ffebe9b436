use std::path::PathBuf;

/// A boxed error from a dependency (ONNX Runtime, HTTP client, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the embedding engine. Callers can match on the variants; messages say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The ONNX Runtime shared library could not be loaded (missing, wrong file, too old).
    #[error(
        "cannot load the ONNX Runtime library from {path}: {reason}. Point `ort_dylib_path` \
         (SIMILE_ORT_DYLIB_PATH) at libonnxruntime.so >= 1.31 (in a checkout: `cargo xtask models fetch-ort`)"
    )]
    RuntimeLoad {
        /// The library file tried.
        path: PathBuf,
        /// Why it could not be loaded.
        reason: String,
    },

    /// No ONNX Runtime library was configured.
    #[error(
        "no ONNX Runtime library configured: set `ort_dylib_path` (env SIMILE_ORT_DYLIB_PATH) to \
         libonnxruntime.so >= 1.31 (from the PyPI `onnxruntime` wheel, onnxruntime/capi/; in a \
         checkout: `cargo xtask models fetch-ort`)"
    )]
    RuntimeNotConfigured,

    /// ONNX Runtime failed (creating a session, running the model).
    #[error("ONNX Runtime failed during {op}")]
    Runtime {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// A model name that is neither built in nor found in the models directory.
    #[error("unknown model '{name}'; known models: {known}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },

    /// The model is known but its files are not available and cannot be downloaded.
    #[error("model '{name}' is not available offline: {hint}")]
    ModelUnavailable {
        /// The model's name.
        name: String,
        /// How to make it available.
        hint: String,
    },

    /// A model manifest is malformed or inconsistent with the model files.
    #[error("invalid model manifest {path}: {reason}")]
    InvalidManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The model has no text tower, so it cannot embed prompts.
    #[error("model '{0}' cannot embed text prompts")]
    PromptsNotSupported(String),

    /// A download failed (HTTP status, network, I/O).
    #[error("downloading {url} failed: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// What failed (HTTP status, network, I/O).
        reason: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// A downloaded or local file does not have the expected checksum.
    #[error("checksum mismatch for {path}: expected sha256 {expected}, got {got}")]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The expected sha256 (hex).
        expected: String,
        /// The file's sha256 (hex).
        got: String,
    },

    /// A downloaded file has another size than announced.
    #[error("{url}: expected {expected} bytes, received {got}")]
    Truncated {
        /// The URL.
        url: String,
        /// The announced size in bytes.
        expected: u64,
        /// The bytes received.
        got: u64,
    },

    /// One input failed and the caller asked not to skip failures.
    #[error("input #{index} ({path}) failed")]
    Item {
        /// The input's position in the batch.
        index: usize,
        /// The input's file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: ItemError,
    },

    /// A bad option value.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with its value.
        reason: String,
    },

    /// Local file I/O.
    #[error("I/O error on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Why one input (image or crop) could not be embedded. Reported per sample, like FiftyOne's
/// `skip_failures=True`. Cheap to clone (sources are shared).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ItemError {
    /// The file could not be read.
    #[error("cannot read image {path}")]
    Read {
        /// The image file.
        path: PathBuf,
        /// The underlying error (shared, so the error clones cheaply).
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    /// The bytes are not a decodable image.
    #[error("cannot decode image {path}")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The underlying error (shared, so the error clones cheaply).
        #[source]
        source: std::sync::Arc<image::ImageError>,
    },
    /// The file ends before the image does (a partial download or copy): the decoder would
    /// fill the missing rows with grey, so it is refused instead.
    #[error("image {path} is truncated: {reason}")]
    Truncated {
        /// The image file.
        path: PathBuf,
        /// What is missing (e.g. the end-of-image marker).
        reason: &'static str,
    },
    /// The image decoder crashed on this file (caught; the other inputs go on).
    #[error("the decoder failed on {path}: {reason}")]
    DecoderPanic {
        /// The image file.
        path: PathBuf,
        /// The decoder's panic message.
        reason: String,
    },
    /// The crop box is invalid (non-finite, or empty once mapped to pixels).
    #[error("invalid crop {crop:?} for a {width}x{height} image: {reason}")]
    InvalidCrop {
        /// The crop box as given (relative `[x, y, w, h]`).
        crop: [f32; 4],
        /// The image's width in pixels.
        width: u32,
        /// The image's height in pixels.
        height: u32,
        /// What is wrong with the box.
        reason: &'static str,
    },
}

/// `Result` with [`EmbedError`].
pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

impl ItemError {
    /// The input's file.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ItemError::Read { path, .. }
            | ItemError::Decode { path, .. }
            | ItemError::Truncated { path, .. }
            | ItemError::DecoderPanic { path, .. } => Some(path),
            ItemError::InvalidCrop { .. } => None,
        }
    }
}

impl EmbedError {
    pub(crate) fn runtime(op: &'static str, e: impl Into<BoxError>) -> Self {
        EmbedError::Runtime {
            op,
            source: e.into(),
        }
    }
}
