//! The exact, in-process similarity backend of simile (`backend = "sklearn"`, after FiftyOne
//! Brain's scikit-learn backend).
//!
//! * Storage: one contiguous row-major `Vec<f32>` plus keys, owning sample ids, per-row norms and a
//!   key → row map. Upserts replace rows in place, removals swap-remove.
//! * Search: brute force and exact. A vectorised `f32` scan (AVX2+FMA when the CPU has it, split
//!   across threads for big indexes) finds the candidates; the few rows near the k-th distance are
//!   re-scored in `f64` with [`Metric::reference_distance`]'s formulas, so results equal the naive
//!   reference. Supports `reverse`, `k = None` (rank everything) and restriction to a view.
//! * Persistence: `vectors.simv` in the storage directory (format in the `storage` module), written
//!   atomically by [`SimilarityBackend::persist`] when something changed, memory-mapped on open.
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

mod index;
mod kernel;
mod search;
mod storage;
mod store;

use simile_index::{BackendFactory, BackendParams, Error, Metric, Result, SimilarityBackend};

pub use index::SklearnIndex;
pub use storage::FILE_NAME;

/// The backend's registered name.
pub const BACKEND: &str = "sklearn";

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
