//! # simile
//!
//! Similarity search for computer-vision datasets: FiftyOne Brain's `compute_similarity`,
//! `sort_by_similarity`, brain runs and similarity indexes, in Rust.
//!
//! ```no_run
//! use simile::{Simile, SimilarityOptions, SortOptions, Query};
//! # fn main() -> Result<(), simile::Error> {
//! let simile = Simile::open()?;
//! let dataset = simile.load_dataset("quickstart")?;
//! # let embeddings = ndarray::Array2::<f32>::zeros((dataset.len()?, 512));
//! let index = dataset.compute_similarity(
//!     SimilarityOptions::new().brain_key("img_sim").embeddings(embeddings),
//! )?;
//! let first = dataset.view().first()?.expect("a sample");
//! let view = dataset.sort_by_similarity(Query::id(first.id()), SortOptions::new().k(10).brain_key("img_sim"))?;
//! for sample in view.samples()? {
//!     println!("{} {}", sample.id(), sample.filepath().display());
//! }
//! index.cleanup()?;                     // delete the backend's data
//! dataset.delete_brain_run("img_sim")?; // delete the run record
//! # Ok(()) }
//! ```
//!
//! ## Sync and async
//! The API is blocking and needs no runtime: call it from a plain `fn main()`. Inside an async
//! application, call it from `tokio::task::spawn_blocking` so searches and I/O do not block the
//! runtime's workers; network backends drive their own runtime and never panic when called from
//! inside another one.

#![warn(missing_docs)]

mod brain;
mod cleanup;
mod clustered;
mod collection;
mod compute;
mod context;
mod doctor;
mod duplicates;
mod embed;
mod error;
mod feed;
mod greedy;
mod index;
mod int8_pairs;
mod int8_panel;
pub mod io;
mod knn8;
mod matmul;
pub mod model;
mod model_loader;
mod nearest_kept;
mod neighbors;
pub mod npy;
mod options;
mod plot;
mod query;
mod restrict;
mod resume;
mod row_prep;
mod sort;
mod storage;
mod sub_int8;
mod sub_width;
mod thresh_search;
mod uniqueness;
mod vectors;
mod walk;

pub use brain::BrainInfo;
pub use cleanup::{DatasetDeletion, KeptStorage};
pub use clustered::Recall;
pub use collection::{Collection, Dataset, PatchesView, View};
pub use compute::compute_similarity;
pub use context::{Simile, SimileBuilder};
pub use doctor::{
    BrokenRun, DoctorOptions, DoctorReport, MilvusCheck, OrphanCollection, OrphanStorage,
    RunProblem, SizeMismatch, TempFile, UncheckedRun,
};
pub use duplicates::{
    Duplicates, DuplicatesBy, DuplicatesMethod, DuplicatesSearch, DuplicatesViewOptions,
    CLUSTERED_FROM,
};
pub use embed::{EmbedOptions, Progress};
pub use error::{Error, Result};
pub use index::{IndexEmbeddings, IndexInfo, SimilarityIndex};
pub use options::{
    AddOptions, EmbeddingsSource, MissingOptions, RunFilter, SimilarityOptions, SortOptions,
};
pub use plot::{Histogram, MAX_PLOT_BINS};
pub use query::Query;
pub use resume::EmbedProgress;
pub use uniqueness::{ExactDuplicates, UniquenessSource, UNIQUENESS};

pub use ndarray;
pub use simile_config::{BrainConfig, Settings};
pub use simile_dataset::{
    parse_stages, stages_to_json, DatasetError, Detection, Detections, FieldKind, FieldValue,
    Filter, LabelFilter, NewSample, Page, Patch, Sample, Stage, TAGS_FIELD,
};
pub use simile_index::{BackendFactory, Error as IndexError, Metric, SimilarityBackend};
pub use simile_milvus::{MilvusFactory, MilvusIndex};
pub use simile_runs::RunsError;
pub use simile_sklearn::{SklearnFactory, SklearnIndex};
