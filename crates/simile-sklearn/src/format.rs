//! Format v3 of `vectors.simv` (and v2, still read): every derived form persisted, each section
//! checksummed.
//!
//! ```text
//! offset  size   field
//! 0       8      magic "SIMVECS\0"
//! 8       4      format version (u32 LE) = 3 (2: see below)
//! 12      4      metric (u32 LE): 0 cosine, 1 dotproduct, 2 euclidean
//! 16      8      dim (u64 LE; 0 while unknown)
//! 24      8      n, number of rows (u64 LE)
//! 32      4      version of the key hash function of the hash table (u32 LE; `ids::HASH_VERSION`)
//! 36      4      number of sections (u32 LE) = 6
//! 40      24     reserved (0)
//! 64      32·6   section table, per section: kind (u32 LE, 1..=6 in this order), reserved (u32),
//!                byte offset (u64 LE), byte length (u64 LE), CRC-32 of its bytes (u32 LE),
//!                reserved (u32)
//! 256     4      CRC-32 of bytes 0..256
//! 320     …      the sections, each at a 64-byte-aligned offset, in any order, never overlapping;
//!                gaps between them are allowed (unused, e.g. a streaming build's spare capacity)
//!                and the file ends where the last one ends
//! ```
//!
//! Sections (all little-endian): 1 vectors, `n·dim` `f32`, row-major; 2 their int8 codes, per row
//! `dim` `i8` codes then the row's `f32` scale (`quant::code_stride(dim)` bytes; see the `quant`
//! module); 3 the rows' `f32` norms, `n` `f32`; 4 id strings, 5 id offsets (`2n + 1` `u64`),
//! 6 the key hash table (see the `ids` module for 4–6).
//!
//! Version 2 differs only in section 2, which held the rows' bfloat16 roundings (`n·dim` `u16`).
//! A v2 file is opened as it is, with the codes derived in memory (O(n), once); the next write
//! makes it v3.
//!
//! Opening checks only the header, its checksum and the section table (sizes follow from n and
//! dim, every section inside the file, aligned, no overlap): O(1). [`verify`] checks the rest:
//! every section's CRC, finite vectors, the codes (or v2's bfloat16 rows) and norms derived from
//! them, the ids.

use std::fs::File;
use std::io;
use std::thread;

use simile_index::Metric;

use crate::ids::MappedIds;
use crate::kernel;

pub(crate) const MAGIC: &[u8; 8] = b"SIMVECS\0";
pub(crate) const VERSION: u32 = 3;
/// The previous version (bfloat16 rows instead of int8 codes), still read.
pub(crate) const VERSION_BF16: u32 = 2;
const SECTION_COUNT: usize = 6;
const TABLE_AT: usize = 64;
const ENTRY: usize = 32;
/// Bytes covered by the header checksum.
pub(crate) const HEADER_LEN: usize = TABLE_AT + ENTRY * SECTION_COUNT;
/// Where the first section may start.
pub(crate) const DATA_START: u64 = 320;
const ALIGN: u64 = 64;

/// The sections, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Vectors = 0,
    /// Int8 codes (v3) or bfloat16 rows (v2).
    Codes = 1,
    Norms = 2,
    Strings = 3,
    Offsets = 4,
    Table = 5,
}

const NAMES: [&str; SECTION_COUNT] = [
    "vectors",
    "int8 codes",
    "norms",
    "id strings",
    "id offsets",
    "key hash table",
];

/// Where a section is and its checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Section {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// A decoded, structurally valid header.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) metric: Metric,
    pub(crate) dim: usize,
    pub(crate) n: usize,
    pub(crate) hash_version: u32,
    /// [`VERSION`] or [`VERSION_BF16`].
    pub(crate) version: u32,
    pub(crate) sections: [Section; SECTION_COUNT],
}

pub(crate) fn metric_code(m: Metric) -> u32 {
    match m {
        Metric::Cosine => 0,
        Metric::DotProduct => 1,
        Metric::Euclidean => 2,
    }
}

pub(crate) fn metric_from_code(c: u32) -> Option<Metric> {
    match c {
        0 => Some(Metric::Cosine),
        1 => Some(Metric::DotProduct),
        2 => Some(Metric::Euclidean),
        _ => None,
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// `x` rounded up to the section alignment.
pub(crate) fn align(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// Where the three row sections go for room for `cap` rows of `dim` values (`None` on overflow).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowLayout {
    pub(crate) vectors: u64,
    pub(crate) codes: u64,
    pub(crate) norms: u64,
    /// Where the id sections may start.
    pub(crate) end: u64,
}

pub(crate) fn row_layout(cap: usize, dim: usize) -> Option<RowLayout> {
    let values = u64::try_from(cap.checked_mul(dim)?).ok()?;
    let vectors = DATA_START;
    let codes = align(vectors.checked_add(values.checked_mul(4)?)?);
    let code_bytes = u64::try_from(cap.checked_mul(crate::quant::code_stride(dim))?).ok()?;
    let norms = align(codes.checked_add(code_bytes)?);
    let end = align(norms.checked_add(u64::try_from(cap).ok()?.checked_mul(4)?)?);
    Some(RowLayout {
        vectors,
        codes,
        norms,
        end,
    })
}

impl Header {
    pub(crate) fn section(&self, k: Kind) -> Section {
        self.sections[k as usize]
    }

    /// Byte offset and length of a section (valid `usize`s once decoded against a mapped file).
    pub(crate) fn range(&self, k: Kind) -> (usize, usize) {
        let s = self.section(k);
        (s.offset as usize, s.len as usize)
    }

    /// The header bytes (`HEADER_LEN` plus its CRC).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&metric_code(self.metric).to_le_bytes());
        b[16..24].copy_from_slice(&(self.dim as u64).to_le_bytes());
        b[24..32].copy_from_slice(&(self.n as u64).to_le_bytes());
        b[32..36].copy_from_slice(&self.hash_version.to_le_bytes());
        b[36..40].copy_from_slice(&(SECTION_COUNT as u32).to_le_bytes());
        for (i, s) in self.sections.iter().enumerate() {
            let e = &mut b[TABLE_AT + i * ENTRY..][..ENTRY];
            e[..4].copy_from_slice(&(i as u32 + 1).to_le_bytes());
            e[8..16].copy_from_slice(&s.offset.to_le_bytes());
            e[16..24].copy_from_slice(&s.len.to_le_bytes());
            e[24..28].copy_from_slice(&s.crc.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the header of a file of `bytes` (the whole file): O(1).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, String> {
        let file_len = bytes.len() as u64;
        if bytes.len() < HEADER_LEN + 4 {
            return Err(format!(
                "truncated: {file_len} bytes is shorter than the header"
            ));
        }
        let stored = u32_at(bytes, HEADER_LEN);
        let crc = crc32fast::hash(&bytes[..HEADER_LEN]);
        if crc != stored {
            return Err(format!(
                "header checksum mismatch (stored {stored:08x}, computed {crc:08x})"
            ));
        }
        let version = u32_at(bytes, 8);
        if &bytes[..8] != MAGIC || !(version == VERSION || version == VERSION_BF16) {
            return Err("not a version 2 or 3 simile vector file".into());
        }
        let metric = metric_from_code(u32_at(bytes, 12))
            .ok_or_else(|| format!("unknown metric code {}", u32_at(bytes, 12)))?;
        let dim = usize::try_from(u64_at(bytes, 16)).map_err(|_| "dimension too large")?;
        let n = usize::try_from(u64_at(bytes, 24)).map_err(|_| "row count too large")?;
        if n > u32::MAX as usize {
            return Err(format!("{n} rows: an index holds at most {}", u32::MAX));
        }
        if n > 0 && dim == 0 {
            return Err(format!("{n} rows of dimension 0"));
        }
        if u32_at(bytes, 36) as usize != SECTION_COUNT {
            return Err(format!("{} sections (expected 6)", u32_at(bytes, 36)));
        }
        let values = n
            .checked_mul(dim)
            .and_then(|v| u64::try_from(v).ok())
            .filter(|v| v.checked_mul(4).is_some())
            .ok_or_else(|| format!("{n} rows of dimension {dim} overflow"))?;
        let n64 = n as u64;
        let mut sections = [Section::default(); SECTION_COUNT];
        for (i, s) in sections.iter_mut().enumerate() {
            let e = &bytes[TABLE_AT + i * ENTRY..][..ENTRY];
            let name = if i == Kind::Codes as usize && version == VERSION_BF16 {
                "bfloat16 rows"
            } else {
                NAMES[i]
            };
            if u32_at(e, 0) as usize != i + 1 {
                return Err(format!("section table entry {i} is not the {name} section"));
            }
            *s = Section {
                offset: u64_at(e, 8),
                len: u64_at(e, 16),
                crc: u32_at(e, 24),
            };
            let end = s.offset.checked_add(s.len);
            if s.offset < DATA_START || s.offset % ALIGN != 0 || end.is_none_or(|e| e > file_len) {
                return Err(format!(
                    "the {name} section ({} bytes at {}) lies outside the file ({file_len} bytes) or is misaligned",
                    s.len, s.offset
                ));
            }
            let expected = match i {
                0 => Some(values * 4),
                1 if version == VERSION_BF16 => Some(values * 2),
                1 => Some(n64 * crate::quant::code_stride(dim) as u64),
                2 => Some(n64 * 4),
                4 => Some((2 * n64 + 1) * 8),
                _ => None,
            };
            if expected.is_some_and(|x| x != s.len) {
                return Err(format!(
                    "the {name} section has {} bytes, not the {} of {n} rows of dimension {dim}",
                    s.len,
                    expected.unwrap_or(0)
                ));
            }
            if i == Kind::Table as usize {
                let slots = s.len / 4;
                let ok = s.len % 4 == 0
                    && ((slots == 0 && n == 0) || (slots.is_power_of_two() && slots > n64));
                if !ok {
                    return Err(format!(
                        "the key hash table has {} bytes: not a power of two of slots above {n}",
                        s.len
                    ));
                }
            }
        }
        let mut spans: Vec<(u64, u64, usize)> = sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.len > 0)
            .map(|(i, s)| (s.offset, s.offset + s.len, i))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[0].1 > w[1].0 {
                return Err(format!(
                    "the {} and {} sections overlap",
                    NAMES[w[0].2], NAMES[w[1].2]
                ));
            }
        }
        let end = spans.last().map_or(DATA_START, |s| s.1.max(DATA_START));
        if file_len != end {
            let what = if file_len < end {
                "truncated"
            } else {
                "trailing bytes"
            };
            return Err(format!(
                "{what}: the sections end at byte {end} but the file has {file_len} bytes"
            ));
        }
        Ok(Header {
            metric,
            dim,
            n,
            hash_version: u32_at(bytes, 32),
            version,
            sections,
        })
    }
}

/// The full check of a decoded file (O(file)): every section's checksum, finite vectors, the
/// bfloat16 copy and norms exactly as derived from them, and the ids (`ids` made from the same
/// bytes).
pub(crate) fn verify(bytes: &[u8], h: &Header, ids: &MappedIds) -> Result<(), String> {
    let crcs: Vec<u32> = thread::scope(|s| {
        let handles: Vec<_> = h
            .sections
            .iter()
            .map(|sec| {
                let b = &bytes[sec.offset as usize..][..sec.len as usize];
                s.spawn(move || crc32fast::hash(b))
            })
            .collect();
        handles
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| "a checksum thread panicked".to_string())
            })
            .collect::<Result<_, _>>()
    })?;
    for (i, (sec, crc)) in h.sections.iter().zip(crcs).enumerate() {
        if sec.crc != crc {
            return Err(format!(
                "checksum mismatch in the {} section (stored {:08x}, computed {crc:08x})",
                NAMES[i], sec.crc
            ));
        }
    }
    check_rows(bytes, h)?;
    // A table built with another hash function is not used (nor checked) here.
    ids.check(h.hash_version == crate::ids::HASH_VERSION)
}

/// Finite vectors; codes (v3) or bfloat16 rows (v2) equal to what is derived from them, norms
/// within the error the search's bounds allow for.
fn check_rows(bytes: &[u8], h: &Header) -> Result<(), String> {
    let dim = h.dim;
    if h.n == 0 {
        return Ok(());
    }
    let (vo, _) = h.range(Kind::Vectors);
    let (co, _) = h.range(Kind::Codes);
    let (no, _) = h.range(Kind::Norms);
    let stride = crate::quant::code_stride(dim);
    let row_bytes = if h.version == VERSION_BF16 {
        2 * dim
    } else {
        stride
    };
    const ROWS: usize = 1024;
    let mut data = vec![0f32; ROWS * dim];
    let mut want_codes = vec![0u8; ROWS * stride];
    let mut want_norms = vec![0f32; ROWS];
    let rel = f64::from(kernel::rel_error(dim));
    for start in (0..h.n).step_by(ROWS) {
        let rows = ROWS.min(h.n - start);
        let data = &mut data[..rows * dim];
        let at = vo + start * dim * 4;
        for (i, v) in data.iter_mut().enumerate() {
            *v = f32::from_bits(u32_at(bytes, at + 4 * i));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(format!("row {} holds a non-finite value", start + i / dim));
        }
        kernel::derive_rows(
            data,
            dim,
            &mut want_codes[..rows * stride],
            &mut want_norms[..rows],
        );
        let stored = &bytes[co + start * row_bytes..][..rows * row_bytes];
        let codes_ok = if h.version == VERSION_BF16 {
            data.iter()
                .zip(stored.chunks_exact(2))
                .all(|(v, b)| to_bf16(*v).to_le_bytes() == [b[0], b[1]])
        } else {
            // Bytes, NaN scales included: derivation is deterministic.
            *stored == want_codes[..rows * stride]
        };
        // Norms only scale scores and size error bounds, which assume them within
        // `rel_error(dim)` of the truth: that is the check (files from older versions, whose
        // norms were summed in another order, pass it too).
        let at = no + start * 4;
        let norms_ok = want_norms[..rows].iter().enumerate().all(|(i, w)| {
            let got = f32::from_bits(u32_at(bytes, at + 4 * i));
            got.to_bits() == w.to_bits()
                || (f64::from(got) - f64::from(*w)).abs() <= rel * f64::from(*w)
        });
        if !codes_ok || !norms_ok {
            let what = if h.version == VERSION_BF16 {
                "bfloat16 rows"
            } else {
                "int8 codes"
            };
            return Err(format!(
                "the {what} or norms of rows {start}.. do not match the vectors"
            ));
        }
    }
    Ok(())
}

/// `x` rounded to the nearest bfloat16 (ties to even), as raw bits: what format v2 stored.
pub(crate) fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// Writes all of `bytes` at `offset` of `file` (without moving a shared cursor on Unix).
pub(crate) fn write_at(file: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(bytes)
    }
}

/// Fills `buf` from `offset` of `file`.
pub(crate) fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// The CRC-32 of `len` bytes at `offset` of `file`, read in chunks (not mapped: the bytes stay
/// out of this process's resident set).
pub(crate) fn crc_of_file(file: &File, offset: u64, len: u64) -> io::Result<crc32fast::Hasher> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; (8 << 20).min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let step = buf.len().min((len - done) as usize);
        read_at(file, offset + done, &mut buf[..step])?;
        h.update(&buf[..step]);
        done += step as u64;
    }
    Ok(h)
}

/// Writes the id sections of `ids` from byte `start` on, sets the file's length to where they
/// end, and writes the header (with `rows`, the three row sections already written with their
/// CRCs). The caller syncs.
pub(crate) fn write_tail(
    file: &File,
    metric: Metric,
    dim: usize,
    rows: [Section; 3],
    ids: &crate::ids::Ids,
    start: u64,
) -> io::Result<()> {
    let n = ids.len();
    let enc = crate::ids::encode(ids);
    let mut sections = [Section::default(); SECTION_COUNT];
    sections[..3].copy_from_slice(&rows);
    let mut at = align(start.max(DATA_START));
    for (i, bytes) in [&enc.strings, &enc.offsets, &enc.table]
        .into_iter()
        .enumerate()
    {
        if bytes.is_empty() {
            // Anywhere inside the file will do.
            sections[3 + i] = Section {
                offset: DATA_START,
                len: 0,
                crc: 0,
            };
            continue;
        }
        write_at(file, at, bytes)?;
        sections[3 + i] = Section {
            offset: at,
            len: bytes.len() as u64,
            crc: crc32fast::hash(bytes),
        };
        at = align(at + bytes.len() as u64);
    }
    let end = sections
        .iter()
        .filter(|s| s.len > 0)
        .map(|s| s.offset + s.len)
        .max()
        .unwrap_or(DATA_START)
        .max(DATA_START);
    file.set_len(end)?;
    let header = Header {
        version: VERSION,
        metric,
        dim,
        n,
        hash_version: crate::ids::HASH_VERSION,
        sections,
    };
    write_at(file, 0, &header.encode())
}
