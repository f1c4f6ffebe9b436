//! The on-disk form of an index: one file, `vectors.simv`.
//!
//! ```text
//! offset  size        field
//! 0       8           magic "SIMVECS\0"
//! 8       4           format version (u32 LE) = 1
//! 12      4           metric (u32 LE): 0 cosine, 1 dotproduct, 2 euclidean
//! 16      8           dim (u64 LE; 0 while unknown)
//! 24      8           n, number of rows (u64 LE)
//! 32      8           byte length of the id section (u64 LE)
//! 40      8           reserved (0)
//! 48      8·n         row norms (f64 LE)
//! ..      4·n·dim     vectors, row-major (f32 LE)
//! ..      ids         per row: key length (u32 LE), key (UTF-8), then the sample id length
//!                     (u32 LE; u32::MAX: same as the key) and the sample id
//! ..      4           CRC-32 of everything before it
//! ```
//!
//! Written to a temporary file, fsynced, then renamed over the old one (and the directory fsynced),
//! so a crash leaves either the old or the new index, never a torn one.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use simile_index::{Error, Metric, Result};

use crate::kernel;
use crate::store::Store;
use crate::BACKEND;

/// The index file inside the storage directory.
pub const FILE_NAME: &str = "vectors.simv";
const TMP_NAME: &str = "vectors.simv.tmp";
const MAGIC: &[u8; 8] = b"SIMVECS\0";
const VERSION: u32 = 1;
const HEADER: usize = 48;
const SAME_AS_KEY: u32 = u32::MAX;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn metric_code(m: Metric) -> u32 {
    match m {
        Metric::Cosine => 0,
        Metric::DotProduct => 1,
        Metric::Euclidean => 2,
    }
}

fn metric_from_code(c: u32) -> Option<Metric> {
    match c {
        0 => Some(Metric::Cosine),
        1 => Some(Metric::DotProduct),
        2 => Some(Metric::Euclidean),
        _ => None,
    }
}

/// A writer that keeps a running CRC of what it writes.
struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> CrcWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.inner.write_all(bytes)
    }
}

fn id_section_len(store: &Store) -> usize {
    store
        .keys
        .iter()
        .zip(&store.sample_ids)
        .map(|(k, s)| 8 + k.len() + if s == k { 0 } else { s.len() })
        .sum()
}

/// Writes `store` to `dir/vectors.simv` atomically.
pub(crate) fn write(dir: &Path, metric: Metric, store: &Store) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(TMP_NAME);
    let path = dir.join(FILE_NAME);
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let result = write_body(file, metric, store).and_then(|file| file.sync_all());
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    // Make the rename durable. Opening a directory for fsync is not possible everywhere (Windows).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_body(file: File, metric: Metric, store: &Store) -> io::Result<File> {
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    let n = store.len() as u64;
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&metric_code(metric).to_le_bytes());
    header[16..24].copy_from_slice(&(store.dim.unwrap_or(0) as u64).to_le_bytes());
    header[24..32].copy_from_slice(&n.to_le_bytes());
    header[32..40].copy_from_slice(&(id_section_len(store) as u64).to_le_bytes());
    w.put(&header)?;

    let mut buf = vec![0u8; 1 << 16];
    for chunk in store.norms.chunks(buf.len() / 8) {
        for (b, v) in buf.chunks_exact_mut(8).zip(chunk) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        w.put(&buf[..chunk.len() * 8])?;
    }
    for chunk in store.data.chunks(buf.len() / 4) {
        for (b, v) in buf.chunks_exact_mut(4).zip(chunk) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        w.put(&buf[..chunk.len() * 4])?;
    }
    let mut ids = Vec::with_capacity(1 << 16);
    for (k, s) in store.keys.iter().zip(&store.sample_ids) {
        ids.extend_from_slice(&len_u32(k)?.to_le_bytes());
        ids.extend_from_slice(k.as_bytes());
        if s == k {
            ids.extend_from_slice(&SAME_AS_KEY.to_le_bytes());
        } else {
            ids.extend_from_slice(&len_u32(s)?.to_le_bytes());
            ids.extend_from_slice(s.as_bytes());
        }
        if ids.len() >= 1 << 16 {
            w.put(&ids)?;
            ids.clear();
        }
    }
    w.put(&ids)?;
    let crc = w.crc.clone().finalize();
    w.inner.write_all(&crc.to_le_bytes())?;
    w.inner.into_inner().map_err(io::IntoInnerError::into_error)
}

fn len_u32(s: &str) -> io::Result<u32> {
    u32::try_from(s.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "id longer than 4 GiB"))
}

/// Deletes the index files in `dir` (missing files are fine) and the directory if it is then empty.
pub(crate) fn delete(dir: &Path) -> Result<()> {
    for name in [FILE_NAME, TMP_NAME] {
        let p = dir.join(name);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&p)(e)),
        }
    }
    // Only succeeds when nothing else lives there.
    let _ = fs::remove_dir(dir);
    Ok(())
}

/// Reads `dir/vectors.simv`.
pub(crate) fn read(dir: &Path) -> Result<(Metric, Store)> {
    let path = dir.join(FILE_NAME);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::IndexMissing {
                backend: BACKEND,
                name: path.display().to_string(),
            })
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let len = file.metadata().map_err(io_err(&path))?.len();
    let corrupt = |reason: String| Error::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    if len < (HEADER + 4) as u64 {
        return Err(corrupt(format!("truncated: {len} bytes is shorter than the header")));
    }
    // SAFETY: the map is read-only and private to this call. Writers never modify an index file in
    // place (they write a temporary file and rename it over), so the mapped file does not change
    // underneath us unless someone outside simile truncates it, which the length checks below and
    // the checksum would then report as corruption (or, at worst, a SIGBUS as for any mmap reader).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&path))?;
    parse(&map, &path).map_err(corrupt)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn parse(bytes: &[u8], path: &Path) -> Result<(Metric, Store), String> {
    if &bytes[..8] != MAGIC {
        return Err("not a simile vector file (bad magic)".into());
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(format!("unsupported format version {version} (expected {VERSION})"));
    }
    let metric = metric_from_code(u32_at(bytes, 12)).ok_or_else(|| format!("unknown metric code {}", u32_at(bytes, 12)))?;
    let dim = usize::try_from(u64_at(bytes, 16)).map_err(|_| "dimension too large".to_string())?;
    let n = usize::try_from(u64_at(bytes, 24)).map_err(|_| "row count too large".to_string())?;
    let ids_len = usize::try_from(u64_at(bytes, 32)).map_err(|_| "id section too large".to_string())?;
    if n > 0 && dim == 0 {
        return Err(format!("{n} rows of dimension 0"));
    }
    let norms_len = n.checked_mul(8).ok_or("row count too large")?;
    let data_len = n
        .checked_mul(dim)
        .and_then(|v| v.checked_mul(4))
        .ok_or("vector section too large")?;
    let expected = [HEADER, norms_len, data_len, ids_len, 4]
        .iter()
        .try_fold(0usize, |a, b| a.checked_add(*b))
        .ok_or("sections too large")?;
    if bytes.len() != expected {
        let what = if bytes.len() < expected { "truncated" } else { "trailing bytes" };
        return Err(format!(
            "{what}: the header announces {n} rows of dimension {dim} ({expected} bytes) but the file has {} bytes",
            bytes.len()
        ));
    }
    let body = &bytes[..expected - 4];
    let stored_crc = u32_at(bytes, expected - 4);
    let crc = crc32fast::hash(body);
    if crc != stored_crc {
        return Err(format!("checksum mismatch (stored {stored_crc:08x}, computed {crc:08x})"));
    }

    let norms_start = HEADER;
    let data_start = norms_start + norms_len;
    let ids_start = data_start + data_len;
    let norms: Vec<f64> = bytes[norms_start..data_start]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    let data: Vec<f32> = bytes[data_start..ids_start]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // Branch-free so it vectorises; the position is only looked for when something is wrong.
    if !data.iter().fold(true, |ok, v| ok & v.is_finite()) {
        let pos = data.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(format!("row {} holds a non-finite value", pos / dim.max(1)));
    }

    let ids = &bytes[ids_start..expected - 4];
    let mut keys = Vec::with_capacity(n);
    let mut sample_ids = Vec::with_capacity(n);
    let mut rows = HashMap::with_capacity(n);
    let mut at = 0usize;
    let take = |at: &mut usize, len: usize| -> Result<&str, String> {
        let end = at.checked_add(len).filter(|e| *e <= ids.len()).ok_or("id section truncated")?;
        let s = std::str::from_utf8(&ids[*at..end]).map_err(|_| "an id is not UTF-8".to_string())?;
        *at = end;
        Ok(s)
    };
    let take_len = |at: &mut usize| -> Result<u32, String> {
        if *at + 4 > ids.len() {
            return Err("id section truncated".into());
        }
        let v = u32_at(ids, *at);
        *at += 4;
        Ok(v)
    };
    for r in 0..n {
        let klen = take_len(&mut at)?;
        let key = take(&mut at, klen as usize)?.to_string();
        let slen = take_len(&mut at)?;
        let sample = if slen == SAME_AS_KEY {
            key.clone()
        } else {
            take(&mut at, slen as usize)?.to_string()
        };
        if rows.insert(key.clone(), r).is_some() {
            return Err(format!("key '{key}' appears twice"));
        }
        keys.push(key);
        sample_ids.push(sample);
    }
    if at != ids.len() {
        return Err("id section has trailing bytes".into());
    }
    let mut lo = Vec::with_capacity(data.len());
    kernel::extend_bf16(&data, &mut lo);
    tracing::debug!(path = %path.display(), n, dim, %metric, "opened sklearn index file");
    Ok((
        metric,
        Store {
            dim: (dim > 0).then_some(dim),
            data,
            lo,
            norms,
            keys,
            sample_ids,
            rows,
            generation: 0,
            dropped: false,
        },
    ))
}

/// The index file of a storage directory.
pub(crate) fn file_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}
