//! Imports, exports and the offline zoo: thin wrappers over `simile-io` that create datasets in
//! the session's store (and remove them again when an import fails as a whole).
use std::path::Path;

pub use simile_io::{ExportReport, ImageDirOptions, ImportReport, IoError, SkipReason, Skipped};

use crate::{Dataset, Error, Result, Simile, View};

impl Simile {
    /// A dataset from FiftyOne's zoo names, available offline: `"quickstart"` is ~200 generated
    /// images of shapes with `ground_truth` detections and a few near-duplicates (generated into
    /// `<home>/quickstart` on first use; nothing is downloaded).
    pub fn load_zoo_dataset(&self, name: &str) -> Result<Dataset> {
        match name {
            "quickstart" => {
                let store = &self.ctx.store;
                let ds =
                    simile_io::load_quickstart(store, &simile_io::quickstart::default_dir(store))?;
                Ok(Dataset::new(ds, self.ctx.clone()))
            }
            other => Err(Error::UnknownZooDataset(other.to_string())),
        }
    }

    fn import_into(
        &self,
        name: &str,
        import: impl FnOnce(&simile_dataset::Dataset) -> simile_io::Result<ImportReport>,
    ) -> Result<(Dataset, ImportReport)> {
        let ds = self.ctx.store.create_dataset(name)?;
        match import(&ds) {
            Ok(report) => Ok((Dataset::new(ds, self.ctx.clone()), report)),
            Err(e) => {
                // Nothing half-made: the new dataset goes too.
                let _ = self.ctx.store.delete_dataset(name);
                Err(e.into())
            }
        }
    }

    /// A new dataset from a folder of images (recursive). Unreadable files are reported.
    pub fn import_image_dir(
        &self,
        name: &str,
        dir: &Path,
        options: &ImageDirOptions,
    ) -> Result<(Dataset, ImportReport)> {
        self.import_into(name, |ds| simile_io::import_image_dir(ds, dir, options))
    }

    /// A new dataset with one sample per media path (FiftyOne's `add_images`): paths are made
    /// absolute; files that do not exist are reported and left out, and a list of which nothing
    /// exists is an error (no dataset is created). `from` names the list in that error.
    pub fn import_paths(
        &self,
        name: &str,
        paths: &[std::path::PathBuf],
        from: &str,
    ) -> Result<(Dataset, ImportReport)> {
        self.import_into(name, |ds| simile_io::import_paths(ds, paths, from))
    }

    /// A new dataset from COCO detection JSON (boxes into `label_field`). Bad boxes, missing
    /// images, file names outside `images_dir` and unknown categories are reported per item; an
    /// `images_dir` that is not a directory, or a file of which no image could be imported, is
    /// an error (no dataset is created).
    pub fn import_coco(
        &self,
        name: &str,
        json: &Path,
        images_dir: &Path,
        label_field: &str,
    ) -> Result<(Dataset, ImportReport)> {
        self.import_into(name, |ds| {
            simile_io::import_coco(ds, json, images_dir, label_field)
        })
    }

    /// A new dataset from FiftyOne's dataset export (`FiftyOneDataset`), keeping sample and
    /// label ids so FiftyOne's runs and Milvus collections line up.
    pub fn import_fiftyone(&self, name: &str, dir: &Path) -> Result<(Dataset, ImportReport)> {
        self.import_into(name, |ds| simile_io::import_fiftyone(ds, dir))
    }
}

impl View {
    /// Writes COCO detection JSON (`labels.json`) and the images (`data/`) to `out_dir`.
    pub fn export_coco(&self, label_field: &str, out_dir: &Path) -> Result<ExportReport> {
        Ok(simile_io::export_coco(&self.inner, label_field, out_dir)?)
    }
    /// Writes FiftyOne's dataset format (`metadata.json`, `samples.json`, `data/`) to `out_dir`.
    pub fn export_fiftyone(&self, out_dir: &Path) -> Result<ExportReport> {
        Ok(simile_io::export_fiftyone(&self.inner, out_dir)?)
    }
}
