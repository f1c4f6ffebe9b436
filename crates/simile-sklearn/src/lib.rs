//! The exact, in-process similarity backend of simile (`backend = "sklearn"`, after FiftyOne
//! Brain's scikit-learn backend).
//!
//! * **Storage**: one contiguous row-major `f32` buffer (n × dim) plus keys, owning sample ids, a
//!   key → row map, per-row `f32` norms and a bfloat16 copy of the rows (half the bytes, for the
//!   first search pass). Upserts replace rows in place (last row of a key wins) and append new
//!   ones; removals swap-remove. The dimension is fixed by the first non-empty upsert. All input
//!   is validated before anything changes.
//! * **Search**: brute force and exact, in three passes. (1) A bfloat16 scan of every candidate
//!   (AVX2+FMA kernels when the CPU has them, portable vectorisable code otherwise; split across
//!   threads for big indexes) gives each row an approximate distance with a proven error bound;
//!   a bounded heap finds the k-th best worst case and every row that could still beat it
//!   survives. (2) If many survive (near-duplicates), an `f32` scan narrows them the same way.
//!   (3) The survivors are scored in `f64` with exactly [`Metric::reference_distance`]'s formulas
//!   and ordered like [`simile_index::sort_neighbors`] (by the reported `f32` distance, ties by
//!   key). Results are therefore identical to the naive reference (keys, order and distance
//!   bits), at the speed of the half-precision scan. `reverse`, `k = None` (rank everything) and
//!   restriction to a view (scanning only the view's rows) are supported; the rows of the last
//!   big view are cached until the view or the index changes.
//! * **Persistence**: `vectors.simv` in the storage directory, format v2 (the `format` module):
//!   header, section table and one 64-byte-aligned, CRC-32-checked section each for the `f32`
//!   rows, their bfloat16 copy, the norms, the id strings, an id offsets table and an
//!   open-addressing key → row hash table. Written atomically (temporary file, fsync, rename) by
//!   [`SimilarityBackend::persist`] only when something changed. [`SklearnIndex::open`] maps it
//!   and checks header and section table only (O(1): files up to 8 MiB are verified completely),
//!   then serves everything from the page cache until the first change copies it out;
//!   [`SklearnIndex::verify`] is the complete check. Format v1 files (earlier versions) are still
//!   read; the next persist writes v2. A missing file is [`Error::IndexMissing`], a damaged one
//!   [`Error::Corrupt`].
//! * **Streaming builds**: [`SimilarityBackend::reserve`] on an empty file-backed index makes the
//!   following upserts write their rows and derived forms straight into the file being built
//!   (only the ids stay in memory); `persist` completes and publishes it (the `build` module).
//!
//! ```no_run
//! use simile_index::{Embeddings, KnnQuery, Metric, SimilarityBackend};
//! use simile_sklearn::SklearnIndex;
//!
//! # fn main() -> simile_index::Result<()> {
//! let index = SklearnIndex::create("/tmp/my-index", Metric::Cosine)?;
//! index.upsert(&Embeddings::for_samples(2, vec![1.0, 0.0, 0.0, 1.0], vec!["a".into(), "b".into()])?)?;
//! let hits = index.knn(&KnnQuery::nearest(&[1.0, 0.1], 1))?;
//! assert_eq!(hits[0].key, "a");
//! index.persist()?;
//! let again = SklearnIndex::open("/tmp/my-index")?;
//! assert_eq!(again.size()?, 2);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod buf;
mod build;
mod direct;
mod format;
mod ids;
mod index;
mod kernel;
pub mod quant;
mod search;
mod storage;
mod store;
mod v1;

use simile_index::{BackendFactory, BackendParams, Error, Metric, Result, SimilarityBackend};

pub use index::SklearnIndex;
pub use storage::FILE_NAME;

/// The backend's registered name.
pub const BACKEND: &str = "sklearn";

/// Every parameter the backend reads (the facade refuses others).
pub const PARAMS: &[&str] = &["metric"];

/// Creates and reopens [`SklearnIndex`]es in [`BackendParams::storage_dir`].
///
/// Parameters: `metric` (`cosine` by default, `dotproduct`, `euclidean`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SklearnFactory;

impl BackendFactory for SklearnFactory {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn default_metric(&self) -> Metric {
        Metric::Cosine
    }

    fn create(&self, params: &BackendParams) -> Result<Box<dyn SimilarityBackend>> {
        let metric = params.metric_or(self.default_metric())?;
        Ok(Box::new(SklearnIndex::create(&params.storage_dir, metric)?))
    }

    fn open(&self, params: &BackendParams) -> Result<Box<dyn SimilarityBackend>> {
        // Validate the configured metric even though the file is authoritative.
        let configured = params.metric_or(self.default_metric())?;
        let index = SklearnIndex::open(&params.storage_dir)?;
        if params.get_str("metric").is_some() && configured != index.metric() {
            return Err(Error::InvalidParam {
                backend: BACKEND,
                param: "metric".into(),
                reason: format!(
                    "the run record says {configured} but the index in {} was built with {}",
                    params.storage_dir.display(),
                    index.metric()
                ),
            });
        }
        Ok(Box::new(index))
    }
}
