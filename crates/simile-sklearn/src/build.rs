//! Streaming builds: after `reserve(n)` on an empty file-backed index, upserted rows go straight
//! into the temporary index file (`vectors.simv.tmp`), pre-sized for n rows, instead of memory.
//!
//! Each batch's `f32` rows, int8 codes and norms are derived in memory (one batch) and written
//! at their final offsets of the three row sections (format v3); rows are fixed-size, so a key
//! seen again overwrites its row in place. Only the ids stay in memory. The row sections' CRCs
//! are accumulated while batches only append (the usual case) and completed from the file
//! otherwise. Queries meanwhile read the rows through a read-only map of the same file (written
//! through its descriptor only under the store's write lock), so they see every batch. More rows
//! than announced move the sections to a file twice as big. `persist` writes the id sections and
//! the header, fsyncs, renames the file into place and serves everything from it; `remove` (not
//! part of a bulk build) or an I/O error copies the rows into memory and deletes the file.
//! Files are written with `pwrite`, not through a writable map; appended rows go past the page
//! cache where the system allows it (`direct.rs`), since filling fresh page cache costs more CPU
//! than the rest of a build.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use simile_index::{Embeddings, Error, Metric, Result};

use crate::buf::{le_bytes, Buf};
use crate::direct::Direct;
use crate::format::{self, RowLayout, Section};
use crate::kernel;
use crate::storage::{self, io_err, TMP_NAME};
use crate::store::{commit_ids, max_threads, Plan, Store, PARALLEL_MIN_VALUES};

/// The file a growing build moves its sections to, before it is renamed to `TMP_NAME`.
pub(crate) const GROW_NAME: &str = "vectors.simv.tmp.grow";

/// A streaming build in progress.
pub(crate) struct Builder {
    file: File,
    /// Appends of new rows, one per row section: whole blocks past the page cache.
    direct: [Direct; 3],
    /// The codes and norms of the last appended batch (reused: fresh buffers cost page faults).
    scratch: (Vec<u8>, Vec<f32>),
    dir: PathBuf,
    dim: usize,
    /// Rows the file has room for.
    cap: usize,
    layout: RowLayout,
    /// CRC-32 of the first `crc_rows` rows of each row section.
    crc: [crc32fast::Hasher; 3],
    crc_rows: usize,
    /// Published: the file is the index now and must not be deleted.
    done: bool,
}

impl Drop for Builder {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(self.dir.join(TMP_NAME));
        }
    }
}

/// Byte sizes of one row in the three row sections.
fn row_bytes(dim: usize) -> [u64; 3] {
    [dim as u64 * 4, crate::quant::code_stride(dim) as u64, 4]
}

impl Builder {
    fn offsets(&self) -> [u64; 3] {
        [self.layout.vectors, self.layout.codes, self.layout.norms]
    }

    /// Creates `path` with room for `cap` rows of `dim` values, and maps it.
    fn create(
        path: &Path,
        cap: usize,
        dim: usize,
    ) -> Result<(File, RowLayout, Arc<memmap2::Mmap>)> {
        let layout = format::row_layout(cap, dim).ok_or_else(|| Error::Backend {
            backend: crate::BACKEND,
            op: "reserve",
            source: format!("{cap} rows of dimension {dim} do not fit in a file").into(),
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err(path))?;
        // Sparse: unwritten space takes no disk.
        file.set_len(layout.end).map_err(io_err(path))?;
        // SAFETY: read-only map of our own temporary file, which is only written through `file`
        // while the store is write-locked (no slice of the map is alive then), and only ever grows
        // or is replaced, never shrunk, while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(path))?;
        Ok((file, layout, Arc::new(map)))
    }

    /// Puts `store` (empty, file-backed) in building mode for about `cap` rows of `dim` values.
    pub(crate) fn start(store: &mut Store, dir: &Path, cap: usize, dim: usize) -> Result<()> {
        if cfg!(target_endian = "big") || !store.ids.is_empty() || store.build.is_some() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (file, layout, map) = Self::create(&dir.join(TMP_NAME), cap, dim)?;
        store.build = Some(Builder {
            direct: Direct::open_each(&dir.join(TMP_NAME)),
            scratch: Default::default(),
            file,
            dir: dir.to_path_buf(),
            dim,
            cap,
            layout,
            crc: Default::default(),
            crc_rows: 0,
            done: false,
        });
        remap(store, map);
        tracing::debug!(dir = %dir.display(), cap, dim, "streaming build started");
        Ok(())
    }

    /// Moves the rows to a file with room for `cap` rows.
    fn grow(&mut self, n: usize, cap: usize) -> Result<Arc<memmap2::Mmap>> {
        let path = self.dir.join(GROW_NAME);
        let (file, layout, map) = Self::create(&path, cap, self.dim)?;
        let copy = || -> io::Result<()> {
            let new = [layout.vectors, layout.codes, layout.norms];
            let mut buf = vec![0u8; 8 << 20];
            for ((from, to), size) in self.offsets().into_iter().zip(new).zip(row_bytes(self.dim)) {
                let len = n as u64 * size;
                let mut done = 0;
                while done < len {
                    let step = (buf.len() as u64).min(len - done) as usize;
                    format::read_at(&self.file, from + done, &mut buf[..step])?;
                    format::write_at(&file, to + done, &buf[..step])?;
                    done += step as u64;
                }
            }
            Ok(())
        };
        if let Err(e) = copy() {
            let _ = fs::remove_file(&path);
            return Err(io_err(&path)(e));
        }
        let tmp = self.dir.join(TMP_NAME);
        fs::rename(&path, &tmp).map_err(io_err(&tmp))?;
        tracing::debug!(from = self.cap, to = cap, "streaming build grew its file");
        self.direct = Direct::open_each(&tmp);
        self.file = file;
        self.layout = layout;
        self.cap = cap;
        Ok(map)
    }
}

/// Points the row buffers at `map` (empty; `set_lens` sizes them).
fn remap(store: &mut Store, map: Arc<memmap2::Mmap>) {
    let Some(b) = &store.build else { return };
    let [v, l, n] = b.offsets();
    let rows = store.len();
    let dim = b.dim;
    store.data = Buf::from_map(Arc::clone(&map), v as usize, rows * dim);
    store.lo = Buf::from_map(
        Arc::clone(&map),
        l as usize,
        rows * crate::quant::code_stride(dim),
    );
    store.norms = Buf::from_map(map, n as usize, rows);
}

/// The batch rows `writer` names (`usize::MAX`: none), copied, with their derived forms.
fn derive(batch: &Embeddings, writer: &[usize]) -> (Vec<f32>, Vec<u8>, Vec<f32>) {
    let dim = batch.dim();
    let stride = crate::quant::code_stride(dim);
    let rows = writer.len();
    let mut data = vec![0f32; rows * dim];
    let mut lo = vec![0u8; rows * stride];
    let mut norms = vec![0f32; rows];
    let threads = if rows * dim < PARALLEL_MIN_VALUES {
        1
    } else {
        max_threads()
    };
    let per = rows.div_ceil(threads).max(1);
    let src = batch.data();
    let fill = |part: usize, data: &mut [f32], lo: &mut [u8], norms: &mut [f32]| {
        for (off, &i) in writer[part * per..][..norms.len()].iter().enumerate() {
            if i != usize::MAX {
                data[off * dim..(off + 1) * dim].copy_from_slice(&src[i * dim..(i + 1) * dim]);
            }
        }
        kernel::derive_rows(data, dim, lo, norms);
    };
    thread::scope(|s| {
        let fill = &fill;
        let parts = data
            .chunks_mut(per * dim)
            .zip(lo.chunks_mut(per * stride))
            .zip(norms.chunks_mut(per))
            .enumerate();
        for (part, ((data, lo), norms)) in parts {
            if threads <= 1 {
                fill(part, data, lo, norms);
            } else {
                s.spawn(move || fill(part, data, lo, norms));
            }
        }
    });
    (data, lo, norms)
}

/// Upserts a planned batch into the file being built (`store.build` is set).
pub(crate) fn upsert(store: &mut Store, batch: &Embeddings, plan: &Plan) -> Result<()> {
    match write_rows(store, batch, plan) {
        Ok(()) => {
            commit_ids(store.ids.to_mut(), batch, plan);
            store.dim = Some(batch.dim());
            set_lens(store);
            store.generation += 1;
            Ok(())
        }
        Err(e) => {
            // The file may now hold part of the batch past the rows in use (harmless: those rows
            // are rewritten before use) or overwritten existing rows: keep nothing of it.
            tracing::warn!(error = %e, "streaming build failed; continuing in memory");
            set_lens(store);
            store.leave_build();
            Err(e)
        }
    }
}

fn set_lens(store: &mut Store) {
    let (rows, dim) = (store.len(), store.dim.unwrap_or(0));
    store.data.set_mapped_len(rows * dim);
    store
        .lo
        .set_mapped_len(rows * crate::quant::code_stride(dim));
    store.norms.set_mapped_len(rows);
}

fn write_rows(store: &mut Store, batch: &Embeddings, plan: &Plan) -> Result<()> {
    let dim = batch.dim();
    let n = plan.n();
    let map = match &mut store.build {
        Some(b) if n > b.cap => Some(b.grow(plan.old_n, n.max(b.cap.saturating_mul(2)))?),
        _ => None,
    };
    if let Some(map) = map {
        remap(store, map);
    }
    let Some(b) = &mut store.build else {
        return Ok(());
    };
    let path = b.dir.join(TMP_NAME);
    let first = plan.first_touched();
    let writer = plan.writers();
    let old_n = plan.old_n;
    if first == old_n
        && writer.len() == batch.len()
        && writer.iter().enumerate().all(|(i, &w)| w == i)
    {
        return append(b, batch, old_n).map_err(io_err(&path));
    }
    let (data, lo, norms) = derive(batch, &writer);
    let sections = [le_bytes(&data), le_bytes(&lo), le_bytes(&norms)];
    let sizes = row_bytes(dim);
    let offsets = b.offsets();
    // Overwritten rows, one by one (keys seen again: rare in a bulk build).
    for (off, _) in writer[..old_n.saturating_sub(first)]
        .iter()
        .enumerate()
        .filter(|(_, &i)| i != usize::MAX)
    {
        for s in 0..3 {
            let size = sizes[s] as usize;
            let at = offsets[s] + (first + off) as u64 * sizes[s];
            format::write_at(&b.file, at, &sections[s][off * size..(off + 1) * size])
                .map_err(io_err(&path))?;
        }
    }
    // New rows, in one append per section.
    let skip = old_n.saturating_sub(first);
    for s in 0..3 {
        let bytes = &sections[s][skip * sizes[s] as usize..];
        b.direct[s]
            .append(&b.file, offsets[s] + old_n as u64 * sizes[s], bytes)
            .map_err(io_err(&path))?;
    }
    if first < b.crc_rows {
        // Hashed rows changed: the checksums are computed from the file at the end.
        b.crc = Default::default();
        b.crc_rows = 0;
    } else if first == old_n && b.crc_rows == old_n {
        for s in 0..3 {
            b.crc[s].update(&sections[s][skip * sizes[s] as usize..]);
        }
        b.crc_rows = n;
    }
    Ok(())
}

/// Appends a batch of new keys, in order (a bulk build's every batch): the batch's own rows are
/// the vector section's bytes, written on a second thread while this one derives the codes and
/// norms and writes them.
fn append(b: &mut Builder, batch: &Embeddings, old_n: usize) -> io::Result<()> {
    let dim = batch.dim();
    let sizes = row_bytes(dim);
    let offsets = b.offsets();
    let at: [u64; 3] = std::array::from_fn(|s| offsets[s] + old_n as u64 * sizes[s]);
    let data = le_bytes(batch.data());
    let Builder {
        file,
        direct: [dv, dl, dn],
        scratch: (lo, norms),
        crc: [cv, cl, cn],
        crc_rows,
        ..
    } = b;
    let hashed = *crc_rows == old_n;
    let file = &*file;
    thread::scope(|s| {
        let vectors = s.spawn(|| -> io::Result<()> {
            dv.append(file, at[0], &data)?;
            if hashed {
                cv.update(&data);
            }
            Ok(())
        });
        lo.clear();
        lo.resize(batch.len() * crate::quant::code_stride(dim), 0);
        norms.clear();
        norms.resize(batch.len(), 0.0);
        kernel::derive_rows(batch.data(), dim, lo, norms);
        let (lb, nb) = (le_bytes(lo), le_bytes(norms));
        let rest = dl
            .append(file, at[1], &lb)
            .and_then(|()| dn.append(file, at[2], &nb));
        if hashed {
            cl.update(&lb);
            cn.update(&nb);
        }
        let vectors = vectors
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked")));
        rest.and(vectors)
    })?;
    if hashed {
        *crc_rows = old_n + batch.len();
    }
    Ok(())
}

/// Finishes the build: the id sections and header, fsync, rename into place; the store is then
/// served from the published file.
pub(crate) fn finish(store: &mut Store, metric: Metric) -> Result<()> {
    let Some(b) = &mut store.build else {
        return Ok(());
    };
    let n = store.ids.len();
    let path = b.dir.join(TMP_NAME);
    let write = |b: &mut Builder| -> io::Result<()> {
        let sizes = row_bytes(b.dim);
        let mut rows = [Section::default(); 3];
        for (s, row) in rows.iter_mut().enumerate() {
            let offset = b.offsets()[s];
            let mut crc = b.crc[s].clone();
            if b.crc_rows < n {
                let from = offset + b.crc_rows as u64 * sizes[s];
                let len = (n - b.crc_rows) as u64 * sizes[s];
                crc.combine(&format::crc_of_file(&b.file, from, len)?);
            }
            *row = Section {
                offset,
                len: n as u64 * sizes[s],
                crc: crc.finalize(),
            };
        }
        format::write_tail(&b.file, metric, b.dim, rows, &store.ids, b.layout.end)?;
        b.file.sync_all()
    };
    write(b).map_err(io_err(&path))?;
    let dir = b.dir.clone();
    storage::publish(&dir)?;
    b.done = true;
    match storage::read(&dir) {
        Ok((_, fresh)) => {
            *store = Store {
                generation: store.generation,
                ..fresh
            };
            Ok(())
        }
        Err(e) => {
            store.leave_build();
            Err(e)
        }
    }
}
