//! The on-disk form of an index: one file, `vectors.simv`, in format v3 (layout and checks in the
//! `format` module; files of formats v1 and v2, written by earlier versions, are still read: `v1`,
//! and `open_v2` for v2, whose int8 codes are derived in memory and written by the next change).
//!
//! Written to a temporary file (`vectors.simv.tmp`), fsynced, then renamed over the old one (and
//! the directory fsynced), so a crash leaves either the old or the new index, never a torn one.
//! A streaming build (the `build` module) fills that same temporary file batch by batch.
//!
//! **Checking.** Opening memory-maps the file and checks the header, its checksum and the section
//! table: O(1), nothing proportional to the rows is read or computed; vectors, int8 codes,
//! norms and ids are then all served from the mapping (page cache) until the first change copies
//! them out. Files of at most [`VERIFY_AT_OPEN`] bytes are also verified completely at open
//! (milliseconds). The complete verification of a file of any size (every section's checksum,
//! finite vectors, derived forms consistent, ids and hash table intact) is
//! [`verify_file`], exposed as `SklearnIndex::verify`: a bit flipped inside a big file's
//! sections goes unnoticed by `open` (answers may then be wrong, never a panic) until verified.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use simile_index::{Error, Metric, Result};

use crate::buf::{le_bytes, Buf};
use crate::format::{self, Header, Kind, Section};
use crate::ids::{self, Ids, MappedIds};
use crate::store::Store;
use crate::{v1, BACKEND};

/// The index file inside the storage directory.
pub const FILE_NAME: &str = "vectors.simv";
pub(crate) const TMP_NAME: &str = "vectors.simv.tmp";
/// Files up to this size are verified completely when opened.
pub(crate) const VERIFY_AT_OPEN: usize = 8 << 20;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `store` to `dir/vectors.simv` atomically.
pub(crate) fn write(dir: &Path, metric: Metric, store: &Store) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(TMP_NAME);
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let result = write_body(&file, metric, store).and_then(|()| file.sync_all());
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    publish(dir)
}

/// Renames the synced temporary file over the index file and makes that durable.
pub(crate) fn publish(dir: &Path) -> Result<()> {
    let path = dir.join(FILE_NAME);
    fs::rename(dir.join(TMP_NAME), &path).map_err(io_err(&path))?;
    // Opening a directory for fsync is not possible everywhere (Windows).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `bytes` at `offset` in chunks, returning their section entry.
fn write_section(file: &File, offset: u64, bytes: &[u8]) -> io::Result<Section> {
    let mut crc = crc32fast::Hasher::new();
    let mut at = offset;
    for chunk in bytes.chunks(8 << 20) {
        format::write_at(file, at, chunk)?;
        crc.update(chunk);
        at += chunk.len() as u64;
    }
    Ok(Section {
        offset,
        len: bytes.len() as u64,
        crc: crc.finalize(),
    })
}

fn write_body(file: &File, metric: Metric, store: &Store) -> io::Result<()> {
    let dim = store.dim.unwrap_or(0);
    let layout = format::row_layout(store.len(), dim)
        .ok_or_else(|| io::Error::other("the index is too large for a file"))?;
    let rows = [
        write_section(file, layout.vectors, &le_bytes(&store.data))?,
        write_section(file, layout.codes, &le_bytes(&store.lo))?,
        write_section(file, layout.norms, &le_bytes(&store.norms))?,
    ];
    format::write_tail(file, metric, dim, rows, &store.ids, layout.end)
}

/// Deletes the index files in `dir` (missing files are fine) and the directory if it is then empty.
pub(crate) fn delete(dir: &Path) -> Result<()> {
    for name in [FILE_NAME, TMP_NAME, crate::build::GROW_NAME] {
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

/// Maps `path` read-only (the map and the open file).
fn map_file(path: &Path) -> Result<(Arc<memmap2::Mmap>, Arc<File>)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::IndexMissing {
                backend: BACKEND,
                name: path.display().to_string(),
            })
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    // SAFETY: the map is read-only. Writers never modify an index file in place (they write a
    // temporary file and rename it over it), and the mapped inode stays alive after an unlink, so
    // the mapped bytes do not change underneath us unless something outside simile rewrites the
    // file in place, which (like for any mmap reader) could only yield wrong values or a SIGBUS.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(path))?;
    Ok((Arc::new(map), Arc::new(file)))
}

fn corrupt(path: &Path) -> impl FnOnce(String) -> Error + '_ {
    move |reason| Error::Corrupt {
        path: path.display().to_string(),
        reason,
    }
}

/// The format version of a mapped file.
fn version(bytes: &[u8]) -> Result<u32, String> {
    if bytes.len() < 12 {
        return Err(format!(
            "truncated: {} bytes is shorter than the header",
            bytes.len()
        ));
    }
    if &bytes[..8] != format::MAGIC {
        return Err("not a simile vector file (bad magic)".into());
    }
    match format::u32_at(bytes, 8) {
        v @ (v1::VERSION | format::VERSION_BF16 | format::VERSION) => Ok(v),
        v => Err(format!(
            "unsupported format version {v} (this version reads 1, 2 and 3)"
        )),
    }
}

/// Reads `dir/vectors.simv`.
pub(crate) fn read(dir: &Path) -> Result<(Metric, Store)> {
    let path = dir.join(FILE_NAME);
    let (map, file) = map_file(&path)?;
    let parsed = match version(&map) {
        Ok(v1::VERSION) => v1::parse(map, &path),
        Ok(_) => open_v2(map).map(|(metric, store)| {
            (
                metric,
                Store {
                    file: Some(file),
                    ..store
                },
            )
        }),
        Err(e) => Err(e),
    };
    parsed.map_err(corrupt(&path))
}

/// The complete check of `dir/vectors.simv` (see the module docs).
pub(crate) fn verify_file(dir: &Path) -> Result<()> {
    let path = dir.join(FILE_NAME);
    let (map, _) = map_file(&path)?;
    let checked = match version(&map) {
        // Reading a v1 file checks all of it.
        Ok(v1::VERSION) => v1::parse(Arc::clone(&map), &path).map(|_| ()),
        Ok(_) => Header::decode(&map).and_then(|h| format::verify(&map, &h, &mapped_ids(&map, &h))),
        Err(e) => Err(e),
    };
    checked.map_err(corrupt(&path))
}

/// The id sections of a decoded file, in place.
fn mapped_ids(map: &Arc<memmap2::Mmap>, h: &Header) -> MappedIds {
    let table = h.section(Kind::Table);
    MappedIds {
        map: Arc::clone(map),
        n: h.n,
        strings: h.range(Kind::Strings),
        offsets: h.range(Kind::Offsets).0,
        table: table.offset as usize,
        slots: (table.len / 4) as usize,
    }
}

/// A store served from a mapped v3 (or v2) file.
pub(crate) fn open_v2(map: Arc<memmap2::Mmap>) -> Result<(Metric, Store), String> {
    let h = Header::decode(&map)?;
    let ids = mapped_ids(&map, &h);
    if map.len() <= VERIFY_AT_OPEN {
        format::verify(&map, &h, &ids)?;
    }
    let ids = if h.hash_version == ids::HASH_VERSION {
        Ids::Mapped(ids)
    } else {
        tracing::debug!(
            version = h.hash_version,
            "key hash table of another hash version: key map rebuilt in memory"
        );
        Ids::Owned(ids::copy_out(&ids))
    };
    let values = h.n * h.dim;
    let data = Buf::from_map(Arc::clone(&map), h.range(Kind::Vectors).0, values);
    let stride = crate::quant::code_stride(h.dim);
    let (lo, generation) = if h.version == format::VERSION_BF16 {
        // bfloat16 rows on disk: the int8 codes are derived here, once, and the next persist
        // writes them (a v3 file).
        tracing::info!(
            rows = h.n,
            "index file of format v2: int8 codes derived in memory; the next change rewrites it as v3"
        );
        let mut codes = vec![0u8; h.n * stride];
        let mut norms = vec![0f32; h.n];
        crate::kernel::derive_rows(&data, h.dim, &mut codes, &mut norms);
        (Buf::owned(codes), 1)
    } else {
        (
            Buf::from_map(Arc::clone(&map), h.range(Kind::Codes).0, h.n * stride),
            0,
        )
    };
    let store = Store {
        dim: (h.dim > 0).then_some(h.dim),
        data,
        lo,
        norms: Buf::from_map(Arc::clone(&map), h.range(Kind::Norms).0, h.n),
        ids,
        generation,
        ..Store::default()
    };
    Ok((h.metric, store))
}

/// The index file of a storage directory.
pub(crate) fn file_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::HEADER_LEN;
    use simile_index::Embeddings;

    fn store(n: usize, dim: usize, seed: u32) -> Store {
        let data: Vec<f32> = (0..n * dim)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect();
        let keys = (0..n).map(|i| format!("key-{i}")).collect();
        let mut s = Store::default();
        s.upsert(&Embeddings::for_samples(dim, data, keys).unwrap())
            .unwrap();
        s
    }

    fn assert_same(a: &Store, b: &Store) {
        assert_eq!(a.len(), b.len());
        assert_eq!(a.dim, b.dim);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.data), bits(&b.data));
        assert_eq!(&*a.lo, &*b.lo);
        assert_eq!(bits(&a.norms), bits(&b.norms));
        for r in 0..a.len() {
            assert_eq!(a.ids.key(r), b.ids.key(r));
            assert_eq!(a.ids.sample_id(r), b.ids.sample_id(r));
            assert_eq!(b.ids.row(a.ids.key(r)), Some(r));
        }
    }

    fn corrupt_reason(dir: &Path) -> String {
        match read(dir) {
            Err(Error::Corrupt { reason, .. }) => reason,
            Err(e) => panic!("expected Error::Corrupt, got {e}"),
            Ok(_) => panic!("expected Error::Corrupt, the file opened"),
        }
    }

    /// Recomputes the header checksum after an edit of the header or section table.
    fn reseal(b: &mut [u8]) {
        let crc = crc32fast::hash(&b[..HEADER_LEN]);
        b[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&crc.to_le_bytes());
    }

    fn put_u64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// Byte position of field `at` (8: offset, 16: length) of section `i`'s table entry.
    fn entry(i: usize, at: usize) -> usize {
        64 + 32 * i + at
    }

    #[test]
    fn v2_is_served_from_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(300, 17, 1);
        write(dir.path(), Metric::Euclidean, &s).unwrap();
        let (metric, back) = read(dir.path()).unwrap();
        assert_eq!(metric, Metric::Euclidean);
        assert_same(&s, &back);
        if cfg!(target_endian = "little") {
            assert!(back.data.is_mapped() && back.lo.is_mapped() && back.norms.is_mapped());
        }
        assert!(back.ids.is_mapped());
        assert_eq!(back.generation, 0, "nothing to write back");
        // Empty index.
        write(dir.path(), Metric::Cosine, &Store::default()).unwrap();
        let (_, empty) = read(dir.path()).unwrap();
        assert_eq!((empty.len(), empty.dim), (0, None));
        verify_file(dir.path()).unwrap();
    }

    #[test]
    fn bad_v2_files_are_corrupt_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), Metric::Cosine, &store(40, 8, 2)).unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = fs::read(&path).unwrap();
        let try_bad = |what: &str, edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            edit(&mut b);
            fs::write(&path, &b).unwrap();
            let reason = corrupt_reason(dir.path());
            assert!(
                matches!(verify_file(dir.path()), Err(Error::Corrupt { .. })),
                "{what}"
            );
            reason
        };
        for keep in [0, 11, 100, HEADER_LEN + 3, 400, good.len() - 1] {
            try_bad("truncated", &|b| b.truncate(keep));
        }
        try_bad("trailing", &|b| b.push(0));
        let r = try_bad("header flip", &|b| b[20] ^= 1);
        assert!(r.contains("header checksum"), "{r}");
        let r = try_bad("section beyond the file", &|b| {
            put_u64(b, entry(5, 8), 1 << 40);
            reseal(b);
        });
        assert!(r.contains("outside the file"), "{r}");
        let r = try_bad("offset + length overflows", &|b| {
            put_u64(b, entry(3, 8), u64::MAX - 63);
            reseal(b);
        });
        assert!(r.contains("outside the file"), "{r}");
        let r = try_bad("lying length", &|b| {
            put_u64(b, entry(0, 16), 40 * 8 * 4 - 4);
            reseal(b);
        });
        assert!(r.contains("not the"), "{r}");
        let r = try_bad("misaligned", &|b| {
            let off = u64::from_le_bytes(b[entry(3, 8)..][..8].try_into().unwrap());
            put_u64(b, entry(3, 8), off + 4);
            reseal(b);
        });
        assert!(r.contains("misaligned"), "{r}");
        let r = try_bad("overlap", &|b| {
            let vectors = u64::from_le_bytes(b[entry(0, 8)..][..8].try_into().unwrap());
            put_u64(b, entry(2, 8), vectors + 64);
            reseal(b);
        });
        assert!(r.contains("overlap"), "{r}");
        let r = try_bad("n·dim overflow", &|b| {
            put_u64(b, 16, u64::MAX / 2);
            reseal(b);
        });
        assert!(r.contains("overflow"), "{r}");
        let r = try_bad("too many rows", &|b| {
            put_u64(b, 24, u64::from(u32::MAX) + 1);
            reseal(b);
        });
        assert!(r.contains("at most"), "{r}");
        let r = try_bad("table not a power of two", &|b| {
            put_u64(b, entry(5, 16), 4 * 100);
            reseal(b);
        });
        assert!(r.contains("power of two") || r.contains("outside"), "{r}");
        let r = try_bad("unknown version", &|b| b[8] = 9);
        assert!(r.contains("unsupported format version 9"), "{r}");
        // A flipped bit inside any section: caught by the section checksums (this small file
        // is verified completely at open).
        let vectors = u64::from_le_bytes(good[entry(0, 8)..][..8].try_into().unwrap()) as usize;
        for at in [vectors + 5, good.len() / 2, good.len() - 3] {
            let r = try_bad("section flip", &|b| b[at] ^= 0x40);
            assert!(r.contains("checksum mismatch in the"), "{r}");
        }
        fs::write(&path, &good).unwrap();
        assert_eq!(read(dir.path()).unwrap().1.len(), 40);
    }

    #[test]
    fn big_files_open_without_reading_and_verify_finds_damage() {
        let dir = tempfile::tempdir().unwrap();
        // 9000 × (200 × 5 + 8) bytes: above the size verified at open.
        write(dir.path(), Metric::Cosine, &store(9000, 200, 3)).unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut b = fs::read(&path).unwrap();
        assert!(b.len() > VERIFY_AT_OPEN);
        verify_file(dir.path()).unwrap();
        let vectors = u64::from_le_bytes(b[entry(0, 8)..][..8].try_into().unwrap()) as usize;
        b[vectors + 4 * 1234] ^= 0x01;
        fs::write(&path, &b).unwrap();
        let (_, s) = read(dir.path()).unwrap();
        assert_eq!(s.len(), 9000, "structurally sound: opens");
        match verify_file(dir.path()) {
            Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("vectors"), "{reason}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    /// A file of format v2 (bfloat16 rows where v3 has int8 codes), as the previous version
    /// wrote it.
    fn write_v2_for_test(dir: &Path, metric: Metric, s: &Store) {
        let (n, dim) = (s.len(), s.dim.unwrap_or(0));
        let values = (n * dim) as u64;
        let vectors = format::DATA_START;
        let bf16 = format::align(vectors + values * 4);
        let norms = format::align(bf16 + values * 2);
        let end = format::align(norms + n as u64 * 4);
        let path = dir.join(FILE_NAME);
        let file = File::create(&path).unwrap();
        let lo: Vec<u16> = s.data.iter().map(|v| format::to_bf16(*v)).collect();
        let rows = [
            write_section(&file, vectors, &le_bytes(&s.data)).unwrap(),
            write_section(&file, bf16, &le_bytes(&lo)).unwrap(),
            write_section(&file, norms, &le_bytes(&s.norms)).unwrap(),
        ];
        format::write_tail(&file, metric, dim, rows, &s.ids, end).unwrap();
        drop(file);
        let mut b = fs::read(&path).unwrap();
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        reseal(&mut b);
        fs::write(&path, &b).unwrap();
    }

    #[test]
    fn v2_files_are_read_and_the_next_write_is_v3() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for (n, dim) in [(60, 9), (9000, 200)] {
            let s = store(n, dim, 5);
            write_v2_for_test(dir.path(), Metric::Euclidean, &s);
            let (metric, back) = read(dir.path()).unwrap();
            assert_eq!(metric, Metric::Euclidean);
            assert_eq!(back.generation, 1, "marked for rewriting");
            assert!(!back.lo.is_mapped(), "codes derived in memory");
            assert_same(&s, &back);
            verify_file(dir.path()).unwrap();
            write(dir.path(), metric, &back).unwrap();
            assert_eq!(&fs::read(&path).unwrap()[8..12], &3u32.to_le_bytes());
            let (_, again) = read(dir.path()).unwrap();
            assert_eq!(again.generation, 0);
            assert_same(&s, &again);
        }
        // A bfloat16 row that does not match its vector: found by verify (section CRC resealed).
        write_v2_for_test(dir.path(), Metric::Cosine, &store(60, 9, 6));
        let mut b = fs::read(&path).unwrap();
        let (off, len) = (
            u64::from_le_bytes(b[entry(1, 8)..][..8].try_into().unwrap()) as usize,
            u64::from_le_bytes(b[entry(1, 16)..][..8].try_into().unwrap()) as usize,
        );
        b[off + 7] ^= 0x10;
        let crc = crc32fast::hash(&b[off..off + len]);
        b[entry(1, 24)..][..4].copy_from_slice(&crc.to_le_bytes());
        reseal(&mut b);
        fs::write(&path, &b).unwrap();
        match verify_file(dir.path()) {
            Err(Error::Corrupt { reason, .. }) => {
                assert!(reason.contains("bfloat16 rows or norms"), "{reason}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn v1_files_are_read_and_the_next_write_is_v3() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(50, 6, 4);
        let ids: Vec<(String, String)> = (0..50)
            .map(|r| {
                let k = s.ids.key(r).to_string();
                let sample = if r % 2 == 0 {
                    k.clone()
                } else {
                    format!("s{r}")
                };
                (k, sample)
            })
            .collect();
        let pairs: Vec<(&str, &str)> = ids.iter().map(|(k, s)| (k.as_str(), s.as_str())).collect();
        let path = dir.path().join(FILE_NAME);
        v1::write_for_test(&path, Metric::DotProduct, 6, &s.data, &pairs);
        let (metric, back) = read(dir.path()).unwrap();
        assert_eq!(metric, Metric::DotProduct);
        assert_eq!(back.generation, 1, "marked for rewriting");
        assert_eq!(back.ids.sample_id(3), "s3");
        assert_eq!(back.ids.sample_id(4), back.ids.key(4));
        verify_file(dir.path()).unwrap();
        write(dir.path(), metric, &back).unwrap();
        assert_eq!(&fs::read(&path).unwrap()[8..12], &3u32.to_le_bytes());
        let (_, again) = read(dir.path()).unwrap();
        assert_same(&back, &again);
        // A damaged v1 file is still corrupt.
        let mut b = fs::read(&path).unwrap();
        v1::write_for_test(&path, Metric::DotProduct, 6, &s.data, &pairs);
        b = fs::read(&path)
            .map(|mut v| {
                v[60] ^= 1;
                v
            })
            .unwrap_or(b);
        fs::write(&path, &b).unwrap();
        assert!(corrupt_reason(dir.path()).contains("checksum"));
    }
}
