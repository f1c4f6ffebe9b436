use std::fmt;

/// Why an item was not imported (or exported).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Not a supported image file (by extension).
    NotAnImage,
    /// An image file that exists but cannot be decoded.
    Unreadable(String),
    /// A referenced media file does not exist.
    MissingFile,
    /// A bounding box that is not finite, has a non-positive size or lies outside the image.
    BadBox {
        /// The box as given.
        bbox: [f64; 4],
    },
    /// An annotation whose category id is not in `categories`.
    UnknownCategory(String),
    /// An annotation whose image id is not in `images` (or whose image was skipped).
    UnknownImage(String),
    /// A JSON item missing required keys or with values of the wrong type.
    Malformed(String),
    /// An id that appears twice in the input.
    DuplicateId(String),
    /// A sample id that is already in the dataset.
    AlreadyInDataset(String),
    /// A media path from an import file that would leave the directory it must stay in (an
    /// absolute path, or one with `..`).
    OutsideImagesDir,
    /// A field whose kind (JSON, detections, vector) differs from the dataset's schema or from
    /// earlier samples.
    FieldKindConflict {
        /// The field's name.
        field: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NotAnImage => write!(f, "not a supported image file"),
            SkipReason::Unreadable(e) => write!(f, "unreadable image: {e}"),
            SkipReason::MissingFile => write!(f, "file not found"),
            SkipReason::BadBox { bbox } => write!(
                f,
                "bad bounding box {bbox:?}: needs a positive size and must lie inside the image"
            ),
            SkipReason::UnknownCategory(c) => write!(f, "unknown category id {c}"),
            SkipReason::UnknownImage(i) => write!(f, "unknown or skipped image id {i}"),
            SkipReason::Malformed(m) => write!(f, "malformed item: {m}"),
            SkipReason::DuplicateId(i) => write!(f, "duplicate id {i}"),
            SkipReason::AlreadyInDataset(i) => write!(f, "sample {i} is already in the dataset"),
            SkipReason::OutsideImagesDir => write!(
                f,
                "the path leads outside the images directory (absolute, or with '..')"
            ),
            SkipReason::FieldKindConflict { field } => {
                write!(
                    f,
                    "field '{field}' holds a different kind of value elsewhere"
                )
            }
        }
    }
}

/// One item that was not imported, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The file, or a locator of the item inside a labels file (e.g. `labels.json#annotations[3]`).
    pub path: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// The outcome of an import: the ids of the samples added (in order) and what was skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// Sample ids added, in import order.
    pub added: Vec<String>,
    /// Items left out, each with its reason. Labels skipped inside an imported sample appear here
    /// too (the sample itself is imported without them).
    pub skipped: Vec<Skipped>,
}

impl ImportReport {
    pub(crate) fn skip(&mut self, path: impl Into<String>, reason: SkipReason) {
        let s = Skipped {
            path: path.into(),
            reason,
        };
        tracing::debug!(item = %s.path, reason = %s.reason, "skipped");
        self.skipped.push(s);
    }
}

/// The outcome of an export.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportReport {
    /// Number of samples written.
    pub exported: usize,
    /// Number of labels written.
    pub labels: usize,
    /// Samples or fields left out (e.g. media files that no longer exist).
    pub skipped: Vec<Skipped>,
}

impl ExportReport {
    pub(crate) fn skip(&mut self, path: impl Into<String>, reason: SkipReason) {
        let s = Skipped {
            path: path.into(),
            reason,
        };
        tracing::debug!(item = %s.path, reason = %s.reason, "not exported");
        self.skipped.push(s);
    }
}
