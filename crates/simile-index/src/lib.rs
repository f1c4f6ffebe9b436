//! The similarity-backend contract of simile.
//!
//! Every backend (the exact in-process `simile-sklearn`, the Milvus server backend `simile-milvus`)
//! implements [`SimilarityBackend`] and ships a [`BackendFactory`]; the `simile` facade selects a
//! factory by name. Distances mean the same on every backend (see [`Metric`]).
//!
// The suite exists only with its feature: link to it only then (no broken links without it).
#![cfg_attr(
    feature = "conformance",
    doc = "With the `conformance` feature, [`conformance`] holds the test suite every backend runs \
           through [`conformance_tests!`]."
)]
#![cfg_attr(
    not(feature = "conformance"),
    doc = "With the `conformance` feature, the `conformance` module holds the test suite every \
           backend runs through the `conformance_tests!` macro."
)]
#![warn(missing_docs)]

mod backend;
mod borrowed;
mod embeddings;
mod error;
mod metric;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use backend::{
    is_secret_param, strip_credentials, BackendFactory, BackendParams, Capabilities, KnnQuery,
    Neighbor, Secret, SimilarityBackend, CONNECTION_PARAMS, SECRET_PARAMS,
};
pub use borrowed::BorrowedRows;
pub use embeddings::{mean_of_rows, Embeddings};
pub use error::{BoxError, Error, Result};
pub use metric::Metric;

/// Sorts hits closest-first (or farthest-first), breaking ties by key, so every backend returns
/// the same order for the same distances.
pub fn sort_neighbors(hits: &mut [Neighbor], reverse: bool) {
    hits.sort_by(|a, b| {
        let ord = a.distance.total_cmp(&b.distance);
        let ord = if reverse { ord.reverse() } else { ord };
        ord.then_with(|| a.key.cmp(&b.key))
    });
}
