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
//! 48      4·n·dim     vectors, row-major (f32 LE)
//! ..      ids         per row: key length (u32 LE), key (UTF-8), then the sample id length
//!                     (u32 LE; u32::MAX: same as the key) and the sample id
//! ..      4           CRC-32 of everything before it
//! ```
//!
//! Written to a temporary file, fsynced, then renamed over the old one (and the directory fsynced),
//! so a crash leaves either the old or the new index, never a torn one. Reading memory-maps the
//! file, checks it on all cores (checksum, finiteness) while deriving the bfloat16 copy and the
//! norms, and then serves the vectors from the mapping itself (little-endian machines) until the
//! first change copies them out.

use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use simile_index::{Error, Metric, Result};

use crate::kernel;
use crate::store::{max_threads, Data, KeyMap, Store};
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

fn id_section_len(store: &Store) -> usize {
    store
        .keys
        .iter()
        .zip(&store.sample_ids)
        .map(|(k, s)| 8 + k.len() + if s == k { 0 } else { s.len() })
        .sum()
}

/// The little-endian bytes of `v`, borrowed where the machine is little-endian.
fn f32_le_bytes(v: &[f32]) -> Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: `f32` has no padding and every byte of it is initialised; `u8` has alignment 1;
        // the slice covers exactly the memory of `v`, which stays borrowed for the result's life.
        Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v))
        })
    }
    #[cfg(not(target_endian = "little"))]
    {
        Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
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

fn write_body(mut file: File, metric: Metric, store: &Store) -> io::Result<File> {
    let n = store.len() as u64;
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&metric_code(metric).to_le_bytes());
    header[16..24].copy_from_slice(&(store.dim.unwrap_or(0) as u64).to_le_bytes());
    header[24..32].copy_from_slice(&n.to_le_bytes());
    header[32..40].copy_from_slice(&(id_section_len(store) as u64).to_le_bytes());

    let mut ids = Vec::with_capacity(id_section_len(store));
    for (k, s) in store.keys.iter().zip(&store.sample_ids) {
        ids.extend_from_slice(&len_u32(k)?.to_le_bytes());
        ids.extend_from_slice(k.as_bytes());
        if s == k {
            ids.extend_from_slice(&SAME_AS_KEY.to_le_bytes());
        } else {
            ids.extend_from_slice(&len_u32(s)?.to_le_bytes());
            ids.extend_from_slice(s.as_bytes());
        }
    }
    let data = f32_le_bytes(&store.data);

    // The checksum of the big vector section runs on another core while this one writes.
    let data_crc = thread::scope(|s| {
        let crc = s.spawn(|| {
            let mut h = crc32fast::Hasher::new();
            h.update(&data);
            h
        });
        file.write_all(&header)?;
        for chunk in data.chunks(8 << 20) {
            file.write_all(chunk)?;
        }
        file.write_all(&ids)?;
        crc.join()
            .map_err(|_| io::Error::other("checksum thread panicked"))
    })?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.combine(&data_crc);
    crc.update(&ids);
    file.write_all(&crc.finalize().to_le_bytes())?;
    Ok(file)
}

fn len_u32(s: &str) -> io::Result<u32> {
    u32::try_from(s.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "id longer than 4 GiB"))
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
        return Err(corrupt(format!(
            "truncated: {len} bytes is shorter than the header"
        )));
    }
    // SAFETY: the map is read-only. Writers never modify an index file in place (they write a
    // temporary file and rename it over it), and the mapped inode stays alive after an unlink, so
    // the mapped bytes do not change underneath us unless something outside simile rewrites the
    // file in place, which (like for any mmap reader) could only yield wrong values or a SIGBUS.
    let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&path))?);
    parse(map, &path).map_err(corrupt)
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

fn parse(map: Arc<memmap2::Mmap>, path: &Path) -> Result<(Metric, Store), String> {
    let bytes: &[u8] = &map;
    if &bytes[..8] != MAGIC {
        return Err("not a simile vector file (bad magic)".into());
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(format!(
            "unsupported format version {version} (expected {VERSION})"
        ));
    }
    let metric = metric_from_code(u32_at(bytes, 12))
        .ok_or_else(|| format!("unknown metric code {}", u32_at(bytes, 12)))?;
    let dim = usize::try_from(u64_at(bytes, 16)).map_err(|_| "dimension too large".to_string())?;
    let n = usize::try_from(u64_at(bytes, 24)).map_err(|_| "row count too large".to_string())?;
    let ids_len =
        usize::try_from(u64_at(bytes, 32)).map_err(|_| "id section too large".to_string())?;
    if n > 0 && dim == 0 {
        return Err(format!("{n} rows of dimension 0"));
    }
    let data_len = n
        .checked_mul(dim)
        .and_then(|v| v.checked_mul(4))
        .ok_or("vector section too large")?;
    let expected = [HEADER, data_len, ids_len, 4]
        .iter()
        .try_fold(0usize, |a, b| a.checked_add(*b))
        .ok_or("sections too large")?;
    if bytes.len() != expected {
        let what = if bytes.len() < expected {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(format!(
            "{what}: the header announces {n} rows of dimension {dim} ({expected} bytes) but the file has {} bytes",
            bytes.len()
        ));
    }
    let ids_start = HEADER + data_len;
    let stored_crc = u32_at(bytes, expected - 4);
    let ids = &bytes[ids_start..expected - 4];

    // The vectors are used in place from the mapping (page cache, no copy) where the machine
    // allows it; otherwise converted once.
    let data = Data::from_map(Arc::clone(&map), HEADER, n * dim);

    // Split by rows across threads: each part checksums its bytes and derives the bfloat16 copy
    // and the norms. Ids are parsed here meanwhile.
    let mut lo = vec![0u16; n * dim];
    let mut norms = vec![0f32; n];
    let threads = if n * dim < 1 << 20 { 1 } else { max_threads() };
    let per = n.div_ceil(threads).max(1);
    let (parts, parsed) = thread::scope(|s| {
        let handles: Vec<_> = data
            .chunks(per * dim.max(1))
            .zip(lo.chunks_mut(per * dim.max(1)))
            .zip(norms.chunks_mut(per))
            .enumerate()
            .map(|(part, ((rows, lo), norms))| {
                let src = &bytes[HEADER + part * per * dim * 4..][..rows.len() * 4];
                s.spawn(move || {
                    let mut crc = crc32fast::Hasher::new();
                    crc.update(src);
                    let finite = rows.iter().fold(true, |ok, v| ok & v.is_finite());
                    kernel::derive_rows(rows, dim, lo, norms);
                    (crc, finite)
                })
            })
            .collect();
        let parsed = parse_ids(ids, n);
        let parts: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        (parts, parsed)
    });
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..HEADER]);
    let mut finite = true;
    for part in parts {
        let (part_crc, part_finite) = part.map_err(|_| "a reader thread panicked".to_string())?;
        crc.combine(&part_crc);
        finite &= part_finite;
    }
    crc.update(ids);
    let crc = crc.finalize();
    if crc != stored_crc {
        return Err(format!(
            "checksum mismatch (stored {stored_crc:08x}, computed {crc:08x})"
        ));
    }
    let (keys, sample_ids, rows) = parsed?;
    if !finite {
        let pos = data.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(format!("row {} holds a non-finite value", pos / dim.max(1)));
    }
    tracing::debug!(path = %path.display(), n, dim, %metric, mapped = data.is_mapped(), "read sklearn index file");
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

type Ids = (Vec<String>, Vec<String>, KeyMap);

/// The id section: per row the key and the sample id.
fn parse_ids(ids: &[u8], n: usize) -> Result<Ids, String> {
    let mut keys = Vec::with_capacity(n);
    let mut sample_ids = Vec::with_capacity(n);
    let mut rows = KeyMap::with_capacity_and_hasher(n, Default::default());
    let mut at = 0usize;
    let take = |at: &mut usize, len: usize| -> Result<&str, String> {
        let end = at
            .checked_add(len)
            .filter(|e| *e <= ids.len())
            .ok_or("id section truncated")?;
        let s =
            std::str::from_utf8(&ids[*at..end]).map_err(|_| "an id is not UTF-8".to_string())?;
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
    Ok((keys, sample_ids, rows))
}

/// The index file of a storage directory.
pub(crate) fn file_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}
