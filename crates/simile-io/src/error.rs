use std::path::PathBuf;

use simile_dataset::DatasetError;

/// Errors of imports, exports and the quickstart generator.
///
/// Problems with single items (one unreadable image, one bad box, one unknown category) are not
/// errors: they are reported in [`crate::ImportReport::skipped`] and the rest is imported. An
/// `IoError` means nothing was imported (or, for exports, the export is incomplete).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// A file or directory could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not a directory (image folders, FiftyOne dataset directories).
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// A JSON file is not valid JSON.
    #[error("{path} is not valid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A file is valid JSON but not in the expected format (e.g. no `images` list in a COCO file).
    #[error("{path} is not a valid {format} file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The format expected (`COCO`, `FiftyOne`, ...).
        format: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Every item of a non-empty input was skipped: an import of nothing is an error (and
    /// creates nothing). `first` is the first item reported.
    #[error("nothing was imported from {from}: every item was skipped ({skipped} reported), e.g. {first}")]
    NothingImported {
        /// The input (file or directory).
        from: String,
        /// How many items were reported skipped.
        skipped: usize,
        /// The first item reported, and why.
        first: crate::Skipped,
    },
    /// An image could not be encoded (quickstart) or decoded where that is fatal.
    #[error("image error for {path}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
    /// A label field name the store does not accept.
    #[error("invalid label field name {0:?}")]
    InvalidField(String),
    /// The store refused the samples or could not be read.
    #[error("dataset store error")]
    Dataset(#[from] DatasetError),
}

impl IoError {
    /// `NothingImported` when `report` added nothing but skipped something.
    pub(crate) fn check_imported(
        report: crate::ImportReport,
        from: impl FnOnce() -> String,
    ) -> Result<crate::ImportReport> {
        match report.skipped.first() {
            Some(first) if report.added.is_empty() => Err(IoError::NothingImported {
                from: from(),
                skipped: report.skipped.len(),
                first: first.clone(),
            }),
            _ => Ok(report),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`IoError`].
pub type Result<T, E = IoError> = std::result::Result<T, E>;
