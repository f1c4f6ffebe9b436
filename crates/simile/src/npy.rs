//! Reading and writing `.npy` files (float32, one row per sample), as numpy does: whole
//! ([`read_npy`]) or in row batches of bounded memory ([`NpyRows`]).
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::{Error, Result};

/// Reads a 2-D (or 1-D, as one row) float32 `.npy` file.
pub fn read_npy(path: &Path) -> Result<Array2<f32>> {
    let err = |reason: String| Error::Npy {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    check_header(&bytes).map_err(err)?;
    match Array2::<f32>::read_npy(&bytes[..]) {
        Ok(a) => Ok(a),
        Err(e2) => match ndarray::Array1::<f32>::read_npy(&bytes[..]) {
            Ok(a) => {
                let n = a.len();
                a.into_shape_with_order((1, n))
                    .map_err(|e| err(e.to_string()))
            }
            Err(_) => Err(err(format!(
                "{e2} (expected a float32 array of 1 or 2 dimensions)"
            ))),
        },
    }
}

/// Checks what the header claims against the file's size before anything is read: the reader
/// allocates the header's length and the shape × item size it declares, so a damaged or hostile
/// header could otherwise claim terabytes (and abort the process).
fn check_header(bytes: &[u8]) -> std::result::Result<(), String> {
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err("not a .npy file (it does not start with \\x93NUMPY)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => match bytes.get(8..12) {
            Some(b) => (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12),
            None => return Err("the file ends inside its header".into()),
        },
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let data_start = start + header_len;
    if data_start > bytes.len() {
        return Err(format!(
            "the header claims {header_len} bytes but the file has only {} bytes",
            bytes.len()
        ));
    }
    let header = Header::from_reader(&mut &bytes[..]).map_err(|e| format!("bad header: {e}"))?;
    let descr = header.type_descriptor.to_string();
    // The item size is the number at the end of the type string ('<f4' → 4).
    let digits: String = descr
        .trim_matches(|c| c == '\'' || c == '"')
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let item = digits.parse::<usize>().unwrap_or(1).max(1);
    let available = bytes.len() - data_start;
    let needed = header.shape.iter().try_fold(item, |n, d| n.checked_mul(*d));
    match needed {
        Some(n) if n <= available => Ok(()),
        _ => Err(format!(
            "the header claims shape ({}) of {descr} ({}) but the file holds {available} bytes of data",
            header
                .shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            needed.map_or_else(|| "more bytes than fit in memory".to_string(), |n| format!("{n} bytes")),
        )),
    }
}

/// Headers longer than this are refused (numpy's own reader stops at 10 000 bytes).
const MAX_HEADER: usize = 1 << 20;

/// A float32 `.npy` file read in row batches: memory stays at one batch whatever the file's size.
///
/// [`open`](Self::open) reads only the header and checks it before any data is read: dtype
/// float32 (`<f4` or `>f4`), 1 (one row) or 2 dimensions, and the file's length exactly the
/// header plus rows × dim × 4 bytes ([`Error::NpySize`] otherwise, for truncated files, headers
/// that claim more rows than the file holds, and trailing bytes). A file in Fortran order cannot
/// be read by rows; it is read whole (as [`read_npy`] does) and served from memory.
#[derive(Debug)]
pub struct NpyRows {
    path: PathBuf,
    rows: usize,
    dim: usize,
    next: usize,
    source: RowSource,
}

#[derive(Debug)]
enum RowSource {
    File {
        file: File,
        big_endian: bool,
        buf: Vec<u8>,
    },
    Array(Array2<f32>),
}

impl NpyRows {
    /// Opens a `.npy` file and checks its header against its length (nothing else is read).
    pub fn open(path: &Path) -> Result<NpyRows> {
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let actual = file.metadata().map_err(io)?.len();
        let layout = read_layout(path, &mut file, actual)?;
        let (rows, dim) = match layout.header.shape[..] {
            [d] => (1, d),
            [n, d] => (n, d),
            ref other => {
                return Err(npy_err(
                    path,
                    format!(
                        "expected a float32 array of 1 or 2 dimensions, got {} dimensions",
                        other.len()
                    ),
                ))
            }
        };
        let expected = (rows as u64)
            .checked_mul(dim as u64)
            .and_then(|v| v.checked_mul(4))
            .and_then(|v| v.checked_add(layout.data_start))
            .ok_or_else(|| {
                npy_err(
                    path,
                    format!(
                        "the header claims shape ({rows}, {dim}): more bytes than fit in memory"
                    ),
                )
            })?;
        if expected != actual {
            return Err(Error::NpySize {
                path: path.display().to_string(),
                header: layout.data_start,
                expected,
                actual,
            });
        }
        let source = if layout.header.layout.is_fortran() && rows > 1 && dim > 1 {
            tracing::warn!(
                path = %path.display(),
                "the .npy file is in Fortran order: it is read whole, not in row batches \
                 (save it with numpy.ascontiguousarray to stream it)"
            );
            RowSource::Array(read_npy(path)?)
        } else {
            let mut file = file;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(layout.data_start))
                .map_err(io)?;
            RowSource::File {
                file,
                big_endian: layout.big_endian,
                buf: Vec::new(),
            }
        };
        Ok(NpyRows {
            path: path.to_path_buf(),
            rows,
            dim,
            next: 0,
            source,
        })
    }

    /// Number of rows the file holds.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The next (at most) `max_rows` rows, row-major; `None` when every row has been read.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<Vec<f32>>> {
        let mut out = Vec::new();
        Ok((self.read_batch_into(max_rows, &mut out)? > 0).then_some(out))
    }

    /// Replaces `out`'s contents with the next (at most) `max_rows` rows, row-major, reusing its
    /// allocation; returns how many rows were read (0 when every row has been read).
    pub fn read_batch_into(&mut self, max_rows: usize, out: &mut Vec<f32>) -> Result<usize> {
        let take = max_rows.max(1).min(self.rows - self.next);
        out.clear();
        if take == 0 {
            return Ok(0);
        }
        let (start, dim) = (self.next, self.dim);
        match &mut self.source {
            RowSource::Array(a) => out.extend(a.slice(ndarray::s![start..start + take, ..]).iter()),
            RowSource::File {
                file,
                big_endian,
                buf,
            } => {
                let io = |source| Error::Io {
                    path: self.path.display().to_string(),
                    source,
                };
                out.resize(take * dim, 0.0);
                if cfg!(target_endian = "little") && !*big_endian {
                    // The file's bytes are the values: read them in place.
                    // SAFETY: `out` holds `take * dim` initialised f32s; every bit pattern is a
                    // valid f32, f32 has no padding and u8 has alignment 1; the byte view
                    // covers exactly `out`'s values and ends before `out` is used again.
                    let bytes = unsafe {
                        std::slice::from_raw_parts_mut(
                            out.as_mut_ptr().cast::<u8>(),
                            std::mem::size_of_val(out.as_slice()),
                        )
                    };
                    file.read_exact(bytes).map_err(io)?;
                    self.next += take;
                    return Ok(take);
                }
                buf.resize(take * dim * 4, 0);
                file.read_exact(buf).map_err(io)?;
                let decode = if *big_endian {
                    f32::from_be_bytes
                } else {
                    f32::from_le_bytes
                };
                for (v, b) in out.iter_mut().zip(buf.chunks_exact(4)) {
                    *v = decode([b[0], b[1], b[2], b[3]]);
                }
            }
        }
        self.next += take;
        Ok(take)
    }
}

/// Where a `.npy` file's data starts, and its parsed header.
struct Layout {
    data_start: u64,
    header: Header,
    big_endian: bool,
}

/// Reads and checks the header of a float32 `.npy` file of `len` bytes (the data is not read).
fn read_layout(path: &Path, file: &mut File, len: u64) -> Result<Layout> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut prefix = [0u8; 12];
    let got = file.by_ref().take(12).read(&mut prefix).map_err(io)?;
    if got < 10 || !prefix.starts_with(b"\x93NUMPY") {
        return Err(npy_err(
            path,
            "not a .npy file (it does not start with \\x93NUMPY)".into(),
        ));
    }
    let (header_len, start) = match prefix[6] {
        1 => (usize::from(u16::from_le_bytes([prefix[8], prefix[9]])), 10),
        2 | 3 if got == 12 => (
            u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize,
            12,
        ),
        2 | 3 => return Err(npy_err(path, "the file ends inside its header".into())),
        v => {
            return Err(npy_err(
                path,
                format!("unsupported .npy format version {v}"),
            ))
        }
    };
    let data_start = (start + header_len) as u64;
    if data_start > len {
        return Err(npy_err(
            path,
            format!("the header claims {header_len} bytes but the file has only {len} bytes"),
        ));
    }
    if header_len > MAX_HEADER {
        return Err(npy_err(
            path,
            format!("the header claims {header_len} bytes (at most {MAX_HEADER} are read)"),
        ));
    }
    let mut bytes = vec![0u8; start + header_len];
    std::io::Seek::seek(file, std::io::SeekFrom::Start(0)).map_err(io)?;
    file.read_exact(&mut bytes).map_err(io)?;
    let header = Header::from_reader(&mut &bytes[..])
        .map_err(|e| npy_err(path, format!("bad header: {e}")))?;
    let descr = header.type_descriptor.to_string();
    let big_endian = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => false,
        ">f4" => true,
        other => {
            return Err(npy_err(
                path,
                format!("the dtype is {other}, expected float32 ('<f4'); convert with astype(numpy.float32)"),
            ))
        }
    };
    Ok(Layout {
        data_start,
        header,
        big_endian,
    })
}

fn npy_err(path: &Path, reason: String) -> Error {
    Error::Npy {
        path: path.display().to_string(),
        reason,
    }
}

/// Writes a float32 `.npy` file (via a temporary file, so a failure leaves no partial file).
pub fn write_npy(path: &Path, array: &Array2<f32>) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("npy.tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    array
        .write_npy(std::io::BufWriter::new(file))
        .map_err(|e| Error::Npy {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .npy header (version 1) for `shape`, padded like numpy's, followed by `data`.
    fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // Padded like numpy: magic, version, length and header fill whole 64-byte blocks.
        header.push_str(&" ".repeat((64 - (10 + header.len() + 1) % 64) % 64));
        header.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn headers_are_checked_against_the_file_size() {
        let two = [1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat();
        assert_eq!(check_header(&npy_bytes("<f4", "(1, 2)", &two)), Ok(()));
        assert_eq!(check_header(&npy_bytes("<f4", "(0, 7)", &[])), Ok(()));
        let huge = check_header(&npy_bytes("<f4", "(4000000, 4000000)", &two)).unwrap_err();
        assert!(
            huge.contains("64000000000000 bytes") && huge.contains("holds 8 bytes"),
            "{huge}"
        );
        let overflow =
            check_header(&npy_bytes("<f8", "(18446744073709551615, 3)", &two)).unwrap_err();
        assert!(overflow.contains("more bytes than fit"), "{overflow}");
        assert!(
            check_header(&npy_bytes("<f4", "(1, 3)", &two)).is_err(),
            "one value short"
        );
        let mut long_header = npy_bytes("<f4", "(1, 2)", &two);
        long_header[8] = 0xff;
        long_header[9] = 0xff;
        assert!(check_header(&long_header)
            .unwrap_err()
            .contains("header claims 65535 bytes"));
        assert!(check_header(b"\x93NUMPY\x02\x00\xff\xff\xff\xff").is_err());
        assert!(check_header(b"nope").is_err());
    }

    fn file_with(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn all_rows(rows: &mut NpyRows, batch: usize) -> Vec<Vec<f32>> {
        std::iter::from_fn(|| rows.next_batch(batch).unwrap()).collect()
    }

    #[test]
    fn rows_stream_in_batches_of_the_size_asked() {
        let dir = tempfile::tempdir().unwrap();
        let a = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f32);
        let path = dir.path().join("a.npy");
        write_npy(&path, &a).unwrap();
        let mut rows = NpyRows::open(&path).unwrap();
        assert_eq!((rows.rows(), rows.dim()), (5, 3));
        let batches = all_rows(&mut rows, 2);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [6, 6, 3]);
        assert_eq!(batches.concat(), a.iter().copied().collect::<Vec<_>>());
        assert_eq!(rows.next_batch(2).unwrap(), None);

        // Big-endian float32 and a 1-D array (one row), as read_npy accepts them.
        let be: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let path = file_with(dir.path(), "be.npy", &npy_bytes(">f4", "(2,)", &be));
        let mut rows = NpyRows::open(&path).unwrap();
        assert_eq!((rows.rows(), rows.dim()), (1, 2));
        assert_eq!(all_rows(&mut rows, 10), [vec![1.5, -2.0]]);
    }

    #[test]
    fn a_fortran_order_file_is_served_in_row_order() {
        let dir = tempfile::tempdir().unwrap();
        // Column-major data of [[1, 2, 3], [4, 5, 6]].
        let data = le(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let mut bytes = npy_bytes("<f4", "(2, 3)", &data);
        let at = bytes.windows(5).position(|w| w == b"False").unwrap();
        bytes[at..at + 5].copy_from_slice(b"True ");
        let path = file_with(dir.path(), "f.npy", &bytes);
        let mut rows = NpyRows::open(&path).unwrap();
        assert_eq!(
            all_rows(&mut rows, 1),
            [vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]
        );
    }

    #[test]
    fn lengths_that_disagree_with_the_header_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let six = le(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let good = npy_bytes("<f4", "(2, 3)", &six);
        let data_start = good.len() as u64 - 24;
        let cases = [
            (
                "truncated.npy",
                good[..good.len() - 5].to_vec(),
                data_start + 24,
            ),
            (
                "more_rows.npy",
                npy_bytes("<f4", "(3, 3)", &six),
                data_start + 36,
            ),
            (
                "huge.npy",
                npy_bytes("<f4", "(4000000, 4000000)", &six),
                data_start + 64_000_000_000_000,
            ),
            (
                "trailing.npy",
                [good.clone(), b"junk".to_vec()].concat(),
                data_start + 24,
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = file_with(dir.path(), name, &bytes);
            match NpyRows::open(&path).unwrap_err() {
                Error::NpySize {
                    path: p,
                    header,
                    expected: e,
                    actual,
                } => {
                    assert_eq!(header, data_start);
                    assert!(p.ends_with(name), "{p}");
                    assert_eq!((e, actual), (expected, bytes.len() as u64), "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let overflow = file_with(
            dir.path(),
            "overflow.npy",
            &npy_bytes("<f4", "(18446744073709551615, 3)", &six),
        );
        assert!(matches!(NpyRows::open(&overflow), Err(Error::Npy { .. })));
    }

    #[test]
    fn other_dtypes_shapes_and_headers_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f8 = file_with(dir.path(), "f8.npy", &npy_bytes("<f8", "(1, 1)", &[0u8; 8]));
        let err = NpyRows::open(&f8).unwrap_err();
        assert!(
            matches!(&err, Error::Npy { reason, .. } if reason.contains("float32")),
            "{err}"
        );
        let cube = file_with(
            dir.path(),
            "3d.npy",
            &npy_bytes("<f4", "(1, 1, 1)", &[0u8; 4]),
        );
        assert!(matches!(NpyRows::open(&cube), Err(Error::Npy { .. })));
        let not = file_with(dir.path(), "not.npy", b"hello");
        assert!(matches!(NpyRows::open(&not), Err(Error::Npy { .. })));
        let mut long = npy_bytes("<f4", "(1, 1)", &[0u8; 4]);
        long[8] = 0xff;
        long[9] = 0xff;
        let long = file_with(dir.path(), "long.npy", &long);
        assert!(matches!(NpyRows::open(&long), Err(Error::Npy { .. })));
        let missing = dir.path().join("missing.npy");
        assert!(matches!(NpyRows::open(&missing), Err(Error::Io { .. })));
    }
}
