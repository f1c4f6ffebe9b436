//! Filling a new index in row batches: `compute_similarity` hands the backend at most
//! [`BATCH_ROWS`] rows at a time (after a [`SimilarityBackend::reserve`] hint), so a build never
//! holds a second full copy of the vectors: an array is sliced, a `.npy` file is read a batch at
//! a time, a vector field is read a batch of samples at a time.
use ndarray::{s, Array2};
use simile_index::{Embeddings, SimilarityBackend};

use crate::npy::NpyRows;
use crate::vectors::{stored_vectors, Rows, VectorRows};
use crate::Result;

/// The most rows one `upsert` of a build gets.
pub(crate) const BATCH_ROWS: usize = 16_384;

/// The vectors a compute indexes, checked against the collection's rows but not yet read.
pub(crate) enum Feed {
    /// Rows assembled already (patch arrays, model output).
    Ready(Embeddings),
    /// An array with one row per row of the collection (checked).
    Array {
        rows: Vec<(String, String)>,
        array: Array2<f32>,
    },
    /// A `.npy` file with one row per row of the collection (checked, not yet read).
    Npy {
        rows: Vec<(String, String)>,
        file: NpyRows,
    },
    /// A complete vector field of the dataset, read a batch of samples at a time; samples
    /// without a vector are skipped with a warning.
    Field {
        rows: Vec<(String, String)>,
        dataset: simile_dataset::Dataset,
        field: String,
    },
}

impl Feed {
    /// At most how many rows this feed upserts (the `reserve` hint).
    fn len(&self) -> usize {
        match self {
            Feed::Ready(e) => e.len(),
            Feed::Array { rows, .. } | Feed::Npy { rows, .. } | Feed::Field { rows, .. } => {
                rows.len()
            }
        }
    }

    /// `reserve`s, then upserts every row in batches of at most [`BATCH_ROWS`]. The first
    /// failing batch (a non-finite value, a dimension mismatch, a read error) stops the feed
    /// with its error; the caller cleans the backend up.
    pub(crate) fn into_backend(self, backend: &dyn SimilarityBackend) -> Result<()> {
        let n = self.len();
        if n == 0 {
            return Ok(());
        }
        backend.reserve(n)?;
        match self {
            Feed::Ready(e) => {
                let (dim, data, keys, sample_ids) = e.into_parts();
                for (start, chunk) in (0..n)
                    .step_by(BATCH_ROWS)
                    .zip(data.chunks(BATCH_ROWS * dim))
                {
                    let end = (start + BATCH_ROWS).min(n);
                    backend.upsert(&Embeddings::new(
                        dim,
                        chunk.to_vec(),
                        keys[start..end].to_vec(),
                        sample_ids[start..end].to_vec(),
                    )?)?;
                }
            }
            Feed::Array { rows, array } => {
                let dim = array.ncols();
                let mut data = Vec::new();
                for (start, batch) in (0..n).step_by(BATCH_ROWS).zip(rows.chunks(BATCH_ROWS)) {
                    let part = array.slice(s![start..start + batch.len(), ..]);
                    data.clear();
                    match part.as_slice() {
                        Some(values) => data.extend_from_slice(values),
                        None => data.extend(part.iter()),
                    }
                    data = upsert_batch(backend, dim, data, batch)?;
                }
            }
            Feed::Npy { rows, mut file } => {
                let dim = file.dim();
                let mut data = Vec::new();
                for batch in rows.chunks(BATCH_ROWS) {
                    // The row count was checked against `rows`: every batch is there.
                    file.read_batch_into(batch.len(), &mut data)?;
                    data = upsert_batch(backend, dim, data, batch)?;
                }
            }
            Feed::Field {
                rows,
                dataset,
                field,
            } => {
                let mut dim = None;
                let mut missing = 0;
                for batch in rows.chunks(BATCH_ROWS) {
                    let have = stored_vectors(&dataset, &field, batch)?;
                    missing += have.iter().filter(|v| v.is_none()).count();
                    let e = VectorRows::gather(batch, have, dim)?.into_embeddings()?;
                    if !e.is_empty() {
                        dim = Some(e.dim());
                        backend.upsert(&e)?;
                    }
                }
                if missing > 0 {
                    tracing::warn!(
                        count = missing,
                        field,
                        "samples without embeddings in the field are not indexed"
                    );
                }
            }
        }
        Ok(())
    }
}

/// Upserts one batch (`data` holds `rows.len()` rows of `dim` values) and hands its buffer
/// back for the next one: a fresh 32 MiB buffer per batch costs page faults on every batch.
fn upsert_batch(
    backend: &dyn SimilarityBackend,
    dim: usize,
    data: Vec<f32>,
    rows: &Rows,
) -> Result<Vec<f32>> {
    let (keys, sample_ids) = rows.iter().cloned().unzip();
    let batch = Embeddings::new(dim, data, keys, sample_ids)?;
    backend.upsert(&batch)?;
    Ok(batch.into_parts().1)
}
