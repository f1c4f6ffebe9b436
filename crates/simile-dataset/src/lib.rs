//! simile's dataset model and its embedded store.
//!
//! A [`Store`] is one SQLite file (WAL mode) under a data directory (`SIMILE_HOME`). It holds
//! [`Dataset`]s of [`Sample`]s: a 24-hex id like FiftyOne's ObjectIds, a `filepath`, JSON fields,
//! label fields ([`Detections`] with their own label ids) and vector fields (stored as compact
//! little-endian f32 blobs). A [`View`] is a dataset plus [`Stage`]s (select, exclude, take,
//! limit, skip, match, filter_labels, a ranked result), evaluated lazily.
//!
//! This crate knows nothing about embeddings models, similarity backends or brain runs; layers
//! above add their own tables through [`Store::open_with`] migrations.

#![warn(missing_docs)]

mod dataset;
mod error;
mod filter;
mod guards;
mod id;
mod labels;
mod page;
mod patches;
mod spec;
mod store;
mod tags;
mod view;

pub use dataset::{Dataset, NewSample, Sample};
pub use error::{DatasetError, Result};
pub use filter::{Filter, LabelFilter};
pub use id::{check_object_id, is_object_id, new_object_id};
pub use labels::{check_field_name, Detection, Detections, FieldKind, FieldValue};
pub use page::Page;
pub use patches::{Patch, PatchesView};
pub use spec::{parse_stages, stages_to_json};
pub use store::{Migration, Store, DB_FILE};
pub use tags::TAGS_FIELD;
pub use view::{Stage, View};
