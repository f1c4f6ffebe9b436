//! The in-memory index: contiguous row-major vectors plus ids, norms and a key → row map.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::thread;

use simile_index::{Embeddings, Error, Result};

use crate::kernel;

/// Values per batch below which an upsert copies on the calling thread only.
const PARALLEL_MIN_VALUES: usize = 1 << 20;

/// The key → row map. Keys are ids from the user's own dataset, so a fast non-keyed hash (FxHash's
/// multiply-rotate, 8 bytes per step, plus a final avalanche) is fine and several times faster than
/// SipHash here.
pub(crate) type KeyMap = HashMap<String, usize, BuildHasherDefault<FxHasher>>;

/// The FxHash function (as used by rustc), with a murmur3 finaliser.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Plain FxHash leaves the low bits (hashbrown's bucket index) depending on few input
        // bits; finish with murmur3's avalanche so ids that differ in one character spread out.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[derive(Default)]
pub(crate) struct Store {
    /// Fixed by the first non-empty upsert (or the file).
    pub(crate) dim: Option<usize>,
    /// `n × dim`, row-major.
    pub(crate) data: Data,
    /// `data` rounded to bfloat16: what the first, approximate scan reads (half the bytes).
    pub(crate) lo: Vec<u16>,
    /// `‖row‖₂` in `f32`: for scaling and error bounds of the approximate passes only.
    pub(crate) norms: Vec<f32>,
    pub(crate) keys: Vec<String>,
    pub(crate) sample_ids: Vec<String>,
    pub(crate) rows: KeyMap,
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
        // Rows are addressed with u32 in the search paths.
        if self.len().saturating_add(batch.len()) > u32::MAX as usize {
            return Err(Error::Backend {
                backend: crate::BACKEND,
                op: "upsert",
                source: format!("an index holds at most {} rows", u32::MAX).into(),
            });
        }
        // Everything below is infallible: the batch is finite and correctly shaped by construction.
        self.dim = Some(dim);

        // Resolve every batch row to its target row, registering new keys. Rows are resolved in
        // order, so a key repeated in the batch keeps its last sample id, and `writer` (below)
        // makes its last vector win: the semantics of `Embeddings::dedup_last_wins`, without
        // copying the batch.
        self.keys.reserve(batch.len());
        self.sample_ids.reserve(batch.len());
        self.rows.reserve(batch.len());
        let mut targets = Vec::with_capacity(batch.len());
        for (key, sample_id) in batch.keys().iter().zip(batch.sample_ids()) {
            let r = match self.rows.get(key) {
                Some(&r) => {
                    if self.sample_ids[r] != *sample_id {
                        self.sample_ids[r].clone_from(sample_id);
                    }
                    r
                }
                None => {
                    let r = self.keys.len();
                    self.keys.push(key.clone());
                    self.sample_ids.push(sample_id.clone());
                    self.rows.insert(key.clone(), r);
                    r
                }
            };
            targets.push(r);
        }
        let n = self.keys.len();
        // The batch row that writes each touched row (the last one naming it).
        let first_touched = targets.iter().copied().min().unwrap_or(n);
        let mut writer = vec![usize::MAX; n - first_touched];
        for (i, &t) in targets.iter().enumerate() {
            writer[t - first_touched] = i;
        }
        grow(self.data.to_mut(), n * dim);
        grow(&mut self.lo, n * dim);
        grow(&mut self.norms, n);

        // Copy the vectors and derive their bfloat16 rows and norms, split by target row range.
        let touched = n - first_touched;
        let threads = if batch.len() * dim < PARALLEL_MIN_VALUES {
            1
        } else {
            max_threads()
        };
        let per = touched.div_ceil(threads).max(1);
        let src = batch.data();
        let writer = &writer;
        let fill = |part: usize, data: &mut [f32], lo: &mut [u16], norms: &mut [f32]| {
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
                    &mut lo[off * dim..(off + 1) * dim],
                    &mut norms[off..off + 1],
                );
            }
        };
        let data = self.data.to_mut()[first_touched * dim..].chunks_mut(per * dim);
        let lo = self.lo[first_touched * dim..].chunks_mut(per * dim);
        let norms = self.norms[first_touched..].chunks_mut(per);
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
                self.data
                    .to_mut()
                    .copy_within(last * dim..(last + 1) * dim, r * dim);
                self.lo.copy_within(last * dim..(last + 1) * dim, r * dim);
                if let Some(slot) = self.rows.get_mut(&self.keys[last]) {
                    *slot = r;
                }
            }
            self.data.to_mut().truncate(last * dim);
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
            // Keeps counting, so nothing derived from the old content (a cached view) matches.
            generation: self.generation + 1,
            ..Store::default()
        };
    }
}

/// The rows' `f32` values: owned, or read in place from a memory-mapped index file until the
/// first change.
#[derive(Default)]
pub(crate) struct Data {
    /// The values, unless `mapped`.
    owned: Vec<f32>,
    mapped: Option<Mapped>,
}

/// `len` little-endian `f32`s at byte `offset` of `map`, 4-byte aligned (checked when made by
/// [`Data::from_map`]).
struct Mapped {
    map: Arc<memmap2::Mmap>,
    offset: usize,
    len: usize,
}

impl Mapped {
    fn values(&self) -> &[f32] {
        let bytes = &self.map[self.offset..self.offset + self.len * 4];
        // SAFETY: `from_map` made a `Mapped` only on a little-endian machine, for a 4-byte-aligned
        // range of exactly `len · 4` bytes inside the map; every bit pattern is a valid `f32`; the
        // map is immutable and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), self.len) }
    }
}

impl Data {
    /// `len` little-endian `f32`s at byte `offset` of `map`: used in place when this machine is
    /// little-endian and the address is aligned, converted into an owned vector otherwise.
    /// `offset + 4·len` must not exceed the map (callers check; a short map yields what fits).
    pub(crate) fn from_map(map: Arc<memmap2::Mmap>, offset: usize, len: usize) -> Data {
        let bytes = map
            .get(offset..offset.saturating_add(len.saturating_mul(4)))
            .unwrap_or_default();
        let aligned = (bytes.as_ptr() as usize) % std::mem::align_of::<f32>() == 0;
        if cfg!(target_endian = "little") && aligned && bytes.len() == len * 4 {
            return Data {
                owned: Vec::new(),
                mapped: Some(Mapped { map, offset, len }),
            };
        }
        let owned = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Data {
            owned,
            mapped: None,
        }
    }

    pub(crate) fn is_mapped(&self) -> bool {
        self.mapped.is_some()
    }

    /// The owned vector, copying the mapped values out first if needed.
    pub(crate) fn to_mut(&mut self) -> &mut Vec<f32> {
        if let Some(m) = self.mapped.take() {
            self.owned = m.values().to_vec();
        }
        &mut self.owned
    }
}

impl std::ops::Deref for Data {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match &self.mapped {
            Some(m) => m.values(),
            None => &self.owned,
        }
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
        assert_eq!(s.row(s.rows["a"]), &[4., 4.]);
        assert_eq!(s.remove(&["a".into(), "zz".into()]), 1);
        assert_eq!(s.len(), 2);
        for (i, k) in s.keys.iter().enumerate() {
            assert_eq!(s.rows[k], i);
        }
        assert_eq!(s.row(s.rows["c"]), &[3., 3.]);
        assert!((f64::from(s.norms[s.rows["c"]]) - kernel::norm64(&[3., 3.])).abs() < 1e-6);
        assert_eq!(s.lo.len(), s.data.len());
        assert!(s
            .data
            .iter()
            .zip(&s.lo)
            .all(|(v, h)| kernel::to_bf16(*v) == *h));
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
    fn key_hash_spreads_similar_ids() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<FxHasher>::default();
        // Sequential hex ids (the common case) must land in distinct low-bit buckets.
        let buckets: std::collections::HashSet<u64> = (0..4096u64)
            .map(|i| build.hash_one(format!("{:024x}", 0x6543_0000_0000u64 + i)) & 0xFFF)
            .collect();
        assert!(
            buckets.len() > 2400,
            "only {} of 4096 buckets used",
            buckets.len()
        );
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
            let r = s.rows[key];
            assert_eq!(s.row(r), v, "{key}");
            assert!((f64::from(s.norms[r]) - kernel::norm64(v)).abs() < 1e-4);
            assert!(s.lo[r * dim..(r + 1) * dim]
                .iter()
                .zip(v)
                .all(|(h, x)| *h == kernel::to_bf16(*x)));
        }
    }
}
