//! The in-memory index: contiguous row-major vectors plus ids, norms and a key → row map.

use std::collections::HashMap;
use std::thread;

use simile_index::{Embeddings, Error, Result};

use crate::kernel;

/// Rows per thread below which norms are computed on the calling thread.
const PARALLEL_NORM_ROWS: usize = 4096;

#[derive(Default)]
pub(crate) struct Store {
    /// Fixed by the first non-empty upsert (or the file).
    pub(crate) dim: Option<usize>,
    /// `n × dim`, row-major.
    pub(crate) data: Vec<f32>,
    /// `data` rounded to bfloat16: what the first, approximate scan reads (half the bytes).
    pub(crate) lo: Vec<u16>,
    /// `‖row‖₂` in `f64`, computed like the reference does.
    pub(crate) norms: Vec<f64>,
    pub(crate) keys: Vec<String>,
    pub(crate) sample_ids: Vec<String>,
    pub(crate) rows: HashMap<String, usize>,
    /// Bumped by every change (compared with the generation last persisted).
    pub(crate) generation: u64,
    /// `cleanup()` was called.
    pub(crate) dropped: bool,
}

impl Store {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn row(&self, r: usize) -> &[f32] {
        let dim = self.dim.unwrap_or(0);
        &self.data[r * dim..(r + 1) * dim]
    }

    /// Checks a batch against the index without changing anything.
    pub(crate) fn check_dim(&self, got: usize) -> Result<()> {
        match self.dim {
            Some(expected) if expected != got => Err(Error::DimensionMismatch { expected, got }),
            _ => Ok(()),
        }
    }

    /// Insert-or-replace; the last row of a key wins. Validates before mutating.
    pub(crate) fn upsert(&mut self, batch: &Embeddings) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let dim = batch.dim();
        self.check_dim(dim)?;
        // Everything below is infallible: the batch is finite and correctly shaped by construction.
        self.dim = Some(dim);
        let norms = batch_norms(batch.data(), dim);
        let fresh = batch.keys().iter().filter(|k| !self.rows.contains_key(*k)).count();
        self.data.reserve_exact(fresh * dim);
        self.lo.reserve_exact(fresh * dim);
        self.norms.reserve_exact(fresh);
        self.keys.reserve_exact(fresh);
        self.sample_ids.reserve_exact(fresh);
        self.rows.reserve(fresh);
        // Rows are applied in order, so a key repeated in the batch ends with its last row
        // (the semantics of `Embeddings::dedup_last_wins`, without copying the batch).
        for (i, (key, sample_id, vector)) in batch.iter().enumerate() {
            let norm = norms[i];
            match self.rows.get(key) {
                Some(&r) => {
                    self.data[r * dim..(r + 1) * dim].copy_from_slice(vector);
                    for (h, v) in self.lo[r * dim..(r + 1) * dim].iter_mut().zip(vector) {
                        *h = kernel::to_bf16(*v);
                    }
                    self.norms[r] = norm;
                    if self.sample_ids[r] != sample_id {
                        self.sample_ids[r] = sample_id.to_string();
                    }
                }
                None => {
                    let r = self.keys.len();
                    self.data.extend_from_slice(vector);
                    kernel::extend_bf16(vector, &mut self.lo);
                    self.norms.push(norm);
                    self.keys.push(key.to_string());
                    self.sample_ids.push(sample_id.to_string());
                    self.rows.insert(key.to_string(), r);
                }
            }
        }
        self.generation += 1;
        Ok(())
    }

    /// Swap-removes the present keys; returns how many were present.
    pub(crate) fn remove(&mut self, keys: &[String]) -> usize {
        let dim = self.dim.unwrap_or(0);
        let mut removed = 0;
        for key in keys {
            let Some(r) = self.rows.remove(key) else {
                continue;
            };
            removed += 1;
            let last = self.keys.len() - 1;
            if r != last {
                self.data.copy_within(last * dim..(last + 1) * dim, r * dim);
                self.lo.copy_within(last * dim..(last + 1) * dim, r * dim);
                if let Some(slot) = self.rows.get_mut(&self.keys[last]) {
                    *slot = r;
                }
            }
            self.data.truncate(last * dim);
            self.lo.truncate(last * dim);
            self.norms.swap_remove(r);
            self.keys.swap_remove(r);
            self.sample_ids.swap_remove(r);
        }
        if removed > 0 {
            self.generation += 1;
        }
        removed
    }

    /// Rows `rows` as a batch.
    pub(crate) fn select(&self, rows: &[usize]) -> Result<Embeddings> {
        let dim = self.dim.unwrap_or(0);
        let mut data = Vec::with_capacity(rows.len() * dim);
        let mut keys = Vec::with_capacity(rows.len());
        let mut sample_ids = Vec::with_capacity(rows.len());
        for &r in rows {
            data.extend_from_slice(self.row(r));
            keys.push(self.keys[r].clone());
            sample_ids.push(self.sample_ids[r].clone());
        }
        Embeddings::new(dim, data, keys, sample_ids)
    }

    /// Empties the store (after `cleanup()`); the dimension is forgotten too.
    pub(crate) fn clear(&mut self) {
        *self = Store {
            dropped: true,
            ..Store::default()
        };
    }
}

/// Reference-exact `f64` norms of the rows of `data`, on two threads for big batches.
pub(crate) fn batch_norms(data: &[f32], dim: usize) -> Vec<f64> {
    let n = if dim == 0 { 0 } else { data.len() / dim };
    let threads = thread::available_parallelism().map_or(1, |t| t.get()).min(4);
    if threads < 2 || n < 2 * PARALLEL_NORM_ROWS {
        let mut out = Vec::with_capacity(n);
        kernel::norms64(data, dim, &mut out);
        return out;
    }
    let per = n.div_ceil(threads);
    thread::scope(|s| {
        let handles: Vec<_> = data
            .chunks(per * dim)
            .map(|part| {
                s.spawn(move || {
                    let mut out = Vec::with_capacity(per);
                    kernel::norms64(part, dim, &mut out);
                    out
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(keys: &[&str], values: &[f32]) -> Embeddings {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        Embeddings::for_samples(2, values.to_vec(), keys).unwrap()
    }

    #[test]
    fn upsert_remove_keep_map_consistent() {
        let mut s = Store::default();
        s.upsert(&batch(&["a", "b", "c", "a"], &[1., 1., 2., 2., 3., 3., 4., 4.])).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.row(s.rows["a"]), &[4., 4.]);
        assert_eq!(s.remove(&["a".into(), "zz".into()]), 1);
        assert_eq!(s.len(), 2);
        for (i, k) in s.keys.iter().enumerate() {
            assert_eq!(s.rows[k], i);
        }
        assert_eq!(s.row(s.rows["c"]), &[3., 3.]);
        assert_eq!(s.norms[s.rows["c"]], kernel::norm64(&[3., 3.]));
        assert_eq!(s.lo.len(), s.data.len());
        assert!(s.data.iter().zip(&s.lo).all(|(v, h)| kernel::to_bf16(*v) == *h));
        assert!(matches!(
            s.upsert(&Embeddings::for_samples(3, vec![0.; 3], vec!["x".into()]).unwrap()),
            Err(Error::DimensionMismatch { expected: 2, got: 3 })
        ));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn threaded_norms_match() {
        let dim = 5;
        let data: Vec<f32> = (0..dim * 9001).map(|i| (i % 17) as f32 - 8.0).collect();
        let norms = batch_norms(&data, dim);
        assert_eq!(norms.len(), 9001);
        for (i, row) in data.chunks_exact(dim).enumerate() {
            assert_eq!(norms[i], kernel::norm64(row));
        }
    }
}
