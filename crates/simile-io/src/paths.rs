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
pub fn import_paths(dataset: &Dataset, paths: &[PathBuf], from: &str) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut samples = Vec::with_capacity(paths.len());
    for path in paths {
        if !path.is_file() {
            report.skip(path.display().to_string(), SkipReason::MissingFile);
            continue;
        }
        samples.push(NewSample::new(absolute(path)?));
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
