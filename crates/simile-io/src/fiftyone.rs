//! FiftyOne's own dataset format (`fiftyone.types.FiftyOneDataset`).
//!
//! Matched against FiftyOne's `FiftyOneDatasetExporter` / `FiftyOneDatasetImporter`
//! (`fiftyone/utils/data/exporters.py`, `importers.py`) and `fiftyone/core/odm/database.py`:
//!
//! - `metadata.json`: the dataset document (`name`, `version`, `media_type`, `sample_fields`
//!   with `{name, ftype, embedded_doc_type, subfield, fields, db_field, ...}`, runs, ...);
//! - `samples.json`: `{"samples": [doc, ...]}`, each doc the sample's MongoDB document written
//!   with `bson.json_util.dumps` (so `{"_id": {"$oid": ...}}`, `{"$date": ...}`, `NaN`), with
//!   `filepath` relative to the export directory (`data/<name>`) when media were exported; or,
//!   with `use_dirs=True`, a `samples/` directory of one JSON file per sample;
//! - `data/`: the media.
//!
//! Label fields are `{"_cls": "Detections", "detections": [{"_id": {"$oid"}, "_cls":
//! "Detection", "attributes": {}, "tags": [], "label", "bounding_box", "confidence"?,
//! <dynamic attributes>...}]}`. Sample and label ids are preserved, so brain runs and Milvus
//! collections made by FiftyOne (keyed by those ids) line up with the imported samples.
//!
//! Checked against FiftyOne 1.22.1 (see `tests/integration/assets/fiftyone-1.22.1`): sample
//! documents it writes (`$numberDouble` NaN, `$binary` vectors) import with their ids, and the
//! `samples.json` documents written here parse with its `Sample.from_dict` with the same sample,
//! label and classification ids and vectors. Not checked: loading the written `metadata.json`
//! into a real FiftyOne database (that needs MongoDB, which cannot be installed here).
mod export;
mod import;
mod json;

pub use export::export_fiftyone;
pub use import::import_fiftyone;

/// The format's name in errors.
const FORMAT: &str = "FiftyOne dataset";

/// The FiftyOne version written into exported `metadata.json`. FiftyOne migrates documents
/// from older versions when importing, adding fields introduced since (e.g. `created_at`).
pub const EXPORT_FIFTYONE_VERSION: &str = "0.21.0";
