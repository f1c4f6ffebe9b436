//! The index's content: contiguous row-major vectors plus their int8 codes, norms, ids and a
//! key → row map; each owned, or served from a mapped index file until the first change copies
//! it out (or, while a streaming build runs, from the file being built: the `build` module).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::thread;

use simile_index::{Embeddings, Error, Result};

use crate::buf::Buf;
use crate::build::Builder;
use crate::ids::{FxHasher, Ids, OwnedIds};
use crate::kernel;
use crate::quant;

/// Values per batch below which an upsert copies on the calling thread only.
pub(crate) const PARALLEL_MIN_VALUES: usize = 1 << 20;

/// Up to this many rows, `select` reads the rows of a mapped file instead of mapping them in.
const SELECT_READ_MAX: usize = 64;

#[derive(Default)]
pub(crate) struct Store {
    /// Fixed by the first non-empty upsert (or the file).
    pub(crate) dim: Option<usize>,
    /// `n × dim`, row-major.
    pub(crate) data: Buf<f32>,
    /// Per row, `data` quantised to int8 codes and a scale (`quant::code_stride(dim)` bytes):
    /// what the first, approximate scan reads (a quarter of the bytes).
    pub(crate) lo: Buf<u8>,
    /// `‖row‖₂` in `f32`: for scaling and error bounds of the approximate passes only.
    pub(crate) norms: Buf<f32>,
    /// Keys and sample ids of the rows, and the key → row map.
    pub(crate) ids: Ids,
    /// The index file the mapped buffers come from (read with `pread` where mapping would
    /// fault in too much: `search::gather`).
    pub(crate) file: Option<std::sync::Arc<std::fs::File>>,
    /// Bumped by every change (compared with the generation last persisted).
    pub(crate) generation: u64,
    /// `cleanup()` was called.
    pub(crate) dropped: bool,
    /// A streaming build in progress: rows go to its file, not to memory.
    pub(crate) build: Option<Builder>,
    /// Rows announced by `reserve` on an empty file-backed index: the first upsert starts a
    /// streaming build with room for them.
    pub(crate) reserved: usize,
}

/// Where each row of a batch goes: existing rows keep theirs, new keys get new rows in order.
pub(crate) struct Plan {
    /// Per batch row, its target row.
    pub(crate) targets: Vec<usize>,
    /// The batch row of each new key's first occurrence, in the order of their new rows.
    fresh: Vec<usize>,
    /// The number of rows before the batch.
    pub(crate) old_n: usize,
}

impl Plan {
    /// The number of rows after the batch.
    pub(crate) fn n(&self) -> usize {
        self.old_n + self.fresh.len()
    }

    /// The lowest row the batch writes.
    pub(crate) fn first_touched(&self) -> usize {
        self.targets.iter().copied().min().unwrap_or(self.n())
    }

    /// For rows `first_touched()..n()`, the batch row that writes each (the last one naming it),
    /// `usize::MAX` for rows it leaves alone.
    pub(crate) fn writers(&self) -> Vec<usize> {
        let first = self.first_touched();
        let mut writer = vec![usize::MAX; self.n() - first];
        for (i, &t) in self.targets.iter().enumerate() {
            writer[t - first] = i;
        }
        writer
    }
}

/// Validates a non-empty batch against the store and resolves its rows, changing nothing.
pub(crate) fn plan(store: &Store, batch: &Embeddings) -> Result<Plan> {
    store.check_dim(batch.dim())?;
    // Rows are addressed with u32 in the search paths.
    if store.len().saturating_add(batch.len()) > u32::MAX as usize {
        return Err(Error::Backend {
            backend: crate::BACKEND,
            op: "upsert",
            source: format!("an index holds at most {} rows", u32::MAX).into(),
        });
    }
    let old_n = store.len();
    let mut fresh_rows: HashMap<&str, usize, BuildHasherDefault<FxHasher>> = HashMap::default();
    let mut fresh = Vec::new();
    let targets = batch
        .keys()
        .iter()
        .enumerate()
        .map(|(i, key)| match store.ids.row(key) {
            Some(r) => r,
            None => *fresh_rows.entry(key.as_str()).or_insert_with(|| {
                fresh.push(i);
                old_n + fresh.len() - 1
            }),
        })
        .collect();
    Ok(Plan {
        targets,
        fresh,
        old_n,
    })
}

/// Registers the batch's new keys and sample ids (a key repeated in the batch keeps its last
/// sample id: the semantics of `Embeddings::dedup_last_wins`).
pub(crate) fn commit_ids(ids: &mut OwnedIds, batch: &Embeddings, plan: &Plan) {
    let (keys, samples) = (batch.keys(), batch.sample_ids());
    ids.keys.reserve(plan.fresh.len());
    ids.sample_ids.reserve(plan.fresh.len());
    ids.rows.reserve(plan.fresh.len());
    for &i in &plan.fresh {
        ids.rows.insert(keys[i].clone(), ids.keys.len());
        ids.keys.push(keys[i].clone());
        ids.sample_ids.push(samples[i].clone());
    }
    for (i, &r) in plan.targets.iter().enumerate() {
        if ids.sample_ids[r] != samples[i] {
            ids.sample_ids[r].clone_from(&samples[i]);
        }
    }
}

impl Store {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
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

    /// Insert-or-replace; the last row of a key wins. Validates before mutating; all or nothing.
    pub(crate) fn upsert(&mut self, batch: &Embeddings) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let plan = plan(self, batch)?;
        if self.build.is_some() {
            return crate::build::upsert(self, batch, &plan);
        }
        // Everything below is infallible: the batch is finite and correctly shaped by construction.
        let dim = batch.dim();
        self.dim = Some(dim);
        commit_ids(self.ids.to_mut(), batch, &plan);
        let n = plan.n();
        let first_touched = plan.first_touched();
        let writer = plan.writers();
        grow(self.data.to_mut(), n * dim);
        let stride = quant::code_stride(dim);
        grow(self.lo.to_mut(), n * stride);
        grow(self.norms.to_mut(), n);

        // Copy the vectors and derive their codes and norms, split by target row range.
        let touched = n - first_touched;
        let threads = if batch.len() * dim < PARALLEL_MIN_VALUES {
            1
        } else {
            max_threads()
        };
        let per = touched.div_ceil(threads).max(1);
        let src = batch.data();
        let writer = &writer;
        let fill = |part: usize, data: &mut [f32], lo: &mut [u8], norms: &mut [f32]| {
            let base = part * per;
            for (off, &i) in writer[base..(base + norms.len()).min(touched)]
                .iter()
                .enumerate()
            {
                if i == usize::MAX {
                    continue;
                }
                let row = &mut data[off * dim..(off + 1) * dim];
                row.copy_from_slice(&src[i * dim..(i + 1) * dim]);
                kernel::derive_rows(
                    row,
                    dim,
                    &mut lo[off * stride..(off + 1) * stride],
                    &mut norms[off..off + 1],
                );
            }
        };
        let data = self.data.to_mut()[first_touched * dim..].chunks_mut(per * dim);
        let lo = self.lo.to_mut()[first_touched * stride..].chunks_mut(per * stride);
        let norms = self.norms.to_mut()[first_touched..].chunks_mut(per);
        let parts = data.zip(lo).zip(norms).enumerate();
        if threads <= 1 {
            for (part, ((data, lo), norms)) in parts {
                fill(part, data, lo, norms);
            }
        } else {
            thread::scope(|s| {
                let fill = &fill;
                for (part, ((data, lo), norms)) in parts {
                    s.spawn(move || fill(part, data, lo, norms));
                }
            });
        }
        self.generation += 1;
        Ok(())
    }

    /// Swap-removes the present keys; returns how many were present. (Ends a streaming build
    /// first: its rows are copied into memory.)
    pub(crate) fn remove(&mut self, keys: &[String]) -> usize {
        if !keys.iter().any(|k| self.ids.row(k).is_some()) {
            return 0;
        }
        self.leave_build();
        let dim = self.dim.unwrap_or(0);
        let stride = quant::code_stride(dim);
        let data = self.data.to_mut();
        let lo = self.lo.to_mut();
        let norms = self.norms.to_mut();
        let ids = self.ids.to_mut();
        let mut removed = 0;
        for key in keys {
            let Some(r) = ids.rows.remove(key) else {
                continue;
            };
            removed += 1;
            let last = ids.keys.len() - 1;
            if r != last {
                data.copy_within(last * dim..(last + 1) * dim, r * dim);
                lo.copy_within(last * stride..(last + 1) * stride, r * stride);
                if let Some(slot) = ids.rows.get_mut(&ids.keys[last]) {
                    *slot = r;
                }
            }
            data.truncate(last * dim);
            lo.truncate(last * stride);
            norms.swap_remove(r);
            ids.keys.swap_remove(r);
            ids.sample_ids.swap_remove(r);
        }
        self.generation += 1;
        removed
    }

    /// Ends a streaming build by copying its rows into memory (its file is deleted).
    pub(crate) fn leave_build(&mut self) {
        if self.build.take().is_some() {
            self.data.to_mut();
            self.lo.to_mut();
            self.norms.to_mut();
        }
    }

    /// Room for `additional` more rows in memory (owned stores only).
    pub(crate) fn reserve_memory(&mut self, additional: usize) {
        let dim = self.dim.unwrap_or(0);
        if !self.data.is_mapped() {
            self.data
                .to_mut()
                .reserve_exact(additional.saturating_mul(dim));
            self.lo
                .to_mut()
                .reserve_exact(additional.saturating_mul(quant::code_stride(dim)));
            self.norms.to_mut().reserve_exact(additional);
        }
        if let Ids::Owned(o) = &mut self.ids {
            o.keys.reserve_exact(additional);
            o.sample_ids.reserve_exact(additional);
            o.rows.reserve(additional);
        }
    }

    /// Rows `rows` as a batch.
    pub(crate) fn select(&self, rows: &[usize]) -> Result<Embeddings> {
        let dim = self.dim.unwrap_or(0);
        // A few rows of a mapped file (a query's own vector) are read, not faulted in through
        // the map: a fault reads the device's whole readahead window around the row (8 MB on
        // the machines measured: ~6 ms per query by id right after a build).
        let few = (rows.len() <= SELECT_READ_MAX)
            .then(|| {
                rows.iter()
                    .map(|&r| u32::try_from(r).ok())
                    .collect::<Option<Vec<_>>>()
            })
            .flatten()
            .and_then(|rows| crate::search::gather(self, &rows));
        let mut data = match few {
            Some((data, _)) => data,
            None => Vec::with_capacity(rows.len() * dim),
        };
        let copy = data.is_empty();
        let mut keys = Vec::with_capacity(rows.len());
        let mut sample_ids = Vec::with_capacity(rows.len());
        for &r in rows {
            if copy {
                data.extend_from_slice(self.row(r));
            }
            keys.push(self.ids.key(r).to_string());
            sample_ids.push(self.ids.sample_id(r).to_string());
        }
        Embeddings::new(dim, data, keys, sample_ids)
    }

    /// Empties the store (after `cleanup()`); the dimension is forgotten too.
    pub(crate) fn clear(&mut self) {
        *self = Store {
            dropped: true,
            // Keeps counting, so nothing derived from the old content (a cached view) matches.
            generation: self.generation + 1,
            ..Store::default()
        };
    }
}

/// Grows `v` to `len` elements, the new ones zero. A fresh allocation comes zeroed from the OS and
/// is left untouched here, so its pages are first touched (faulted in) by the threads that fill
/// them rather than by one `memset`.
fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if len <= v.capacity() {
        v.resize(len, T::default());
        return;
    }
    let cap = len.max(v.capacity() + v.capacity() / 2);
    let mut fresh = vec![T::default(); cap];
    fresh[..v.len()].copy_from_slice(v);
    fresh.truncate(len);
    *v = fresh;
}

/// Scan threads to use for big jobs.
pub(crate) fn max_threads() -> usize {
    thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 4)
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
        s.upsert(&batch(
            &["a", "b", "c", "a"],
            &[1., 1., 2., 2., 3., 3., 4., 4.],
        ))
        .unwrap();
        assert_eq!(s.len(), 3);
        let row = |s: &Store, k: &str| s.ids.row(k).unwrap();
        assert_eq!(s.row(row(&s, "a")), &[4., 4.]);
        assert_eq!(s.remove(&["a".into(), "zz".into()]), 1);
        assert_eq!(s.len(), 2);
        for i in 0..s.len() {
            assert_eq!(row(&s, s.ids.key(i)), i);
        }
        assert_eq!(s.row(row(&s, "c")), &[3., 3.]);
        assert!((f64::from(s.norms[row(&s, "c")]) - kernel::norm64(&[3., 3.])).abs() < 1e-6);
        let stride = quant::code_stride(2);
        assert_eq!(s.lo.len(), s.len() * stride);
        for r in 0..s.len() {
            let mut want = vec![0u8; stride];
            quant::quantize_row(s.row(r), &mut want);
            assert_eq!(&s.lo[r * stride..(r + 1) * stride], &want[..]);
        }
        assert!(matches!(
            s.upsert(&Embeddings::for_samples(3, vec![0.; 3], vec!["x".into()]).unwrap()),
            Err(Error::DimensionMismatch {
                expected: 2,
                got: 3
            })
        ));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn big_upsert_with_repeats_and_replacements() {
        let dim = 300;
        let n = 5000;
        let keys: Vec<String> = (0..n).map(|i| format!("k{}", i % 4000)).collect();
        let data: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let batch = Embeddings::for_samples(dim, data, keys).unwrap();
        let mut s = Store::default();
        s.upsert(&batch.select_rows(&(0..100).collect::<Vec<_>>()))
            .unwrap();
        s.upsert(&batch).unwrap();
        assert_eq!(s.len(), 4000);
        let last = batch.clone().dedup_last_wins();
        for (key, _, v) in last.iter() {
            let r = s.ids.row(key).unwrap();
            assert_eq!(s.row(r), v, "{key}");
            assert!((f64::from(s.norms[r]) - kernel::norm64(v)).abs() < 1e-4);
            let stride = quant::code_stride(dim);
            let mut want = vec![0u8; stride];
            quant::quantize_row(v, &mut want);
            assert_eq!(&s.lo[r * stride..(r + 1) * stride], &want[..], "{key}");
        }
    }
}
