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
                let mut starts = (0..n).step_by(BATCH_ROWS).zip(rows.chunks(BATCH_ROWS));
                pipelined(backend, dim, |data| {
                    let Some((start, batch)) = starts.next() else {
                        return Ok(None);
                    };
                    let part = array.slice(s![start..start + batch.len(), ..]);
                    match part.as_slice() {
                        Some(values) => data.extend_from_slice(values),
                        None => data.extend(part.iter()),
                    }
                    Ok(Some(batch))
                })?;
            }
            Feed::Npy { rows, mut file } => {
                let dim = file.dim();
                let mut batches = rows.chunks(BATCH_ROWS);
                pipelined(backend, dim, |data| {
                    let Some(batch) = batches.next() else {
                        return Ok(None);
                    };
                    // The row count was checked against `rows`: every batch is there.
                    file.read_batch_into(batch.len(), data)?;
                    Ok(Some(batch))
                })?;
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

/// Upserts batches while the next one is read: `next` fills an empty buffer with the next
/// batch's rows (`dim` values each) and names its rows, on a second thread, while this thread
/// upserts the previous batch (for the exact backend: derives and writes it). Two buffers take
/// turns: a fresh 32 MiB buffer per batch costs page faults on every batch. The first error,
/// from either side, stops both.
fn pipelined<'r, F>(backend: &dyn SimilarityBackend, dim: usize, mut next: F) -> Result<()>
where
    F: FnMut(&mut Vec<f32>) -> Result<Option<&'r Rows>> + Send,
{
    use std::sync::mpsc::sync_channel;
    let (ready_tx, ready_rx) = sync_channel::<Result<Embeddings>>(1);
    let (free_tx, free_rx) = sync_channel::<Vec<f32>>(2);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut spare = vec![Vec::new(), Vec::new()];
            loop {
                let Some(mut data) = spare.pop().or_else(|| free_rx.recv().ok()) else {
                    return; // the upserting side stopped
                };
                data.clear();
                let batch = match next(&mut data) {
                    Ok(None) => return,
                    Ok(Some(rows)) => {
                        let (keys, sample_ids) = rows.iter().cloned().unzip();
                        Embeddings::new(dim, data, keys, sample_ids).map_err(Into::into)
                    }
                    Err(e) => Err(e),
                };
                let failed = batch.is_err();
                if ready_tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        // Owned here, so an early return drops it and a reader waiting for a buffer stops.
        let free_tx = free_tx;
        for batch in ready_rx {
            let batch = batch?;
            backend.upsert(&batch)?;
            // The reader may have finished: then the buffer is not needed.
            let _ = free_tx.try_send(batch.into_parts().1);
        }
        Ok(())
    })
}
