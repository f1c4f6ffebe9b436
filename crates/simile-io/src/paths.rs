//! Import a list of media paths (FiftyOne's `Dataset.add_images(paths)`).
use std::path::PathBuf;

use simile_dataset::{Dataset, NewSample};

use crate::media::absolute;
use crate::{ImportReport, IoError, Result, SkipReason};

/// Adds one sample per path (made absolute, relative to the current directory), in order.
///
/// Paths that are not existing files are reported in [`ImportReport::skipped`]
/// ([`SkipReason::MissingFile`]) and left out; the rest is added in one transaction. When the
/// list is not empty but every path was skipped, nothing is added and the result is
/// [`IoError::NothingImported`] (`from` describes the list in that error, e.g. its file name).
///
/// Each path costs one `stat` (nothing is opened or decoded): an absolute path without `..` is
/// kept as given (like FiftyOne's `abspath`, symlinks are not resolved), so a list of a million
/// paths is a million `stat`s and one transaction.
pub fn import_paths(dataset: &Dataset, paths: &[PathBuf], from: &str) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut samples = Vec::with_capacity(paths.len());
    for path in paths {
        if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            report.skip(path.display().to_string(), SkipReason::MissingFile);
            continue;
        }
        let plain = path.is_absolute()
            && path
                .components()
                .all(|c| !matches!(c, std::path::Component::ParentDir));
        let abs = if plain {
            path.components().collect()
        } else {
            absolute(path)?
        };
        samples.push(NewSample::new(abs));
    }
    if samples.is_empty() && !paths.is_empty() {
        return IoError::check_imported(report, || from.to_string());
    }
    report.added = dataset.add_samples(samples)?;
    tracing::info!(
        dataset = dataset.name(),
        added = report.added.len(),
        skipped = report.skipped.len(),
        "imported paths"
    );
    Ok(report)
}
