//! Dataset imports and exports for simile, and the offline quickstart dataset.
//!
//! - [`import_image_dir`]: a folder of images (recursive, common formats).
//! - [`import_paths`]: a list of media paths.
//! - [`import_coco`] / [`export_coco`]: COCO detection JSON (`bbox` in pixels) to and from a
//!   `Detections` label field.
//! - [`import_fiftyone`] / [`export_fiftyone`]: FiftyOne's own dataset format
//!   (`fiftyone.types.FiftyOneDataset`), keeping sample and label ids.
//! - [`quickstart`]: ~200 generated images of shapes with exact boxes and a few
//!   near-duplicates, so the spec's recipes run with no network.
//!
//! Imports validate everything first and then add all samples in one transaction: problems
//! with single items are reported in [`ImportReport::skipped`], never half-imported.

#![warn(missing_docs)]

mod coco;
mod error;
mod fiftyone;
mod image_dir;
mod media;
mod npy;
mod paths;
pub mod quickstart;
mod report;

pub use coco::{export_coco, import_coco, BOX_TOLERANCE_PX};
pub use error::{IoError, Result};
pub use fiftyone::{export_fiftyone, import_fiftyone, EXPORT_FIFTYONE_VERSION};
pub use image_dir::{import_image_dir, ImageDirOptions};
pub use media::{image_dimensions, is_image_path, IMAGE_EXTENSIONS};
pub use paths::import_paths;
pub use quickstart::load_quickstart;
pub use report::{ExportReport, ImportReport, SkipReason, Skipped};
