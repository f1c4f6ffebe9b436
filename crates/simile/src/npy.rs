//! Reading and writing `.npy` files (float32, one row per sample), as numpy does.
use std::path::Path;

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
}
