//! Reading format v1 of `vectors.simv` (indexes written before format v2; never written now).
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
//! Nothing derived is stored, so reading checks the file on all cores (checksum, finiteness)
//! while deriving the bfloat16 copy and the norms and parsing the ids (O(n)); the vectors are
//! then served from the mapping. The store comes back marked changed, so the next persist
//! writes format v2.

use std::path::Path;
use std::sync::Arc;
use std::thread;

use simile_index::Metric;

use crate::buf::Buf;
use crate::format::{metric_from_code, u32_at, u64_at, MAGIC};
use crate::ids::{Ids, KeyMap, OwnedIds};
use crate::kernel;
use crate::store::{max_threads, Store};

pub(crate) const VERSION: u32 = 1;
const HEADER: usize = 48;
const SAME_AS_KEY: u32 = u32::MAX;

pub(crate) fn parse(map: Arc<memmap2::Mmap>, path: &Path) -> Result<(Metric, Store), String> {
    let bytes: &[u8] = &map;
    if bytes.len() < HEADER + 4 {
        return Err(format!(
            "truncated: {} bytes is shorter than the header",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("not a simile vector file (bad magic)".into());
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(format!("not a version {VERSION} file (version {version})"));
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
    let data = Buf::<f32>::from_map(Arc::clone(&map), HEADER, n * dim);

    // Split by rows across threads: each part checksums its bytes and derives the int8 codes
    // and the norms. Ids are parsed here meanwhile.
    let stride = crate::quant::code_stride(dim);
    let mut lo = vec![0u8; n * stride];
    let mut norms = vec![0f32; n];
    let threads = if n * dim < 1 << 20 { 1 } else { max_threads() };
    let per = n.div_ceil(threads).max(1);
    let (parts, parsed) = thread::scope(|s| {
        let handles: Vec<_> = data
            .chunks(per * dim.max(1))
            .zip(lo.chunks_mut(per * stride))
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
            lo: Buf::owned(lo),
            norms: Buf::owned(norms),
            ids: Ids::Owned(OwnedIds {
                keys,
                sample_ids,
                rows,
            }),
            // Not on disk in the current format: the next persist rewrites it in the current version.
            generation: 1,
            ..Store::default()
        },
    ))
}

type ParsedIds = (Vec<String>, Vec<String>, KeyMap);

/// The id section: per row the key and the sample id.
fn parse_ids(ids: &[u8], n: usize) -> Result<ParsedIds, String> {
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

/// Writes a format v1 file (what earlier versions wrote), for the tests of reading one.
#[cfg(test)]
pub(crate) fn write_for_test(
    path: &Path,
    metric: Metric,
    dim: usize,
    data: &[f32],
    ids: &[(&str, &str)],
) {
    let mut body = Vec::new();
    for (k, s) in ids {
        body.extend_from_slice(&(k.len() as u32).to_le_bytes());
        body.extend_from_slice(k.as_bytes());
        if k == s {
            body.extend_from_slice(&SAME_AS_KEY.to_le_bytes());
        } else {
            body.extend_from_slice(&(s.len() as u32).to_le_bytes());
            body.extend_from_slice(s.as_bytes());
        }
    }
    let mut b = Vec::new();
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&crate::format::metric_code(metric).to_le_bytes());
    b.extend_from_slice(&(dim as u64).to_le_bytes());
    b.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    b.extend_from_slice(&(body.len() as u64).to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    for v in data {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&body);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(path, b).unwrap();
}
