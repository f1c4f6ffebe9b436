//! FiftyOne's binary vectors: `fiftyone.core.utils.serialize_numpy_array` writes
//! `zlib.compress(np.save(array))`, and `bson.json_util.dumps` writes those bytes as
//! `{"$binary": {"base64": ..., "subType": "00"}}` (or the legacy `{"$binary": ..., "$type": ...}`).
use std::io::{Read, Write};

use base64::Engine;
use serde_json::{json, Value};

/// The largest decompressed vector accepted (64 Mi float32 values, far beyond any embedding).
const MAX_VECTOR_BYTES: u64 = 256 << 20;

/// The base64 payload of a `$binary` value, if `v` is one.
fn binary_payload(v: &Value) -> Option<&str> {
    match v.get("$binary")? {
        Value::String(s) => Some(s),
        Value::Object(m) => m.get("base64")?.as_str(),
        _ => None,
    }
}

/// Decodes a FiftyOne vector (`$binary` zlib-compressed `.npy`, 1-D or a single row,
/// little-endian float32/float64). `None` if `v` is anything else.
pub(crate) fn decode_vector(v: &Value) -> Option<Vec<f32>> {
    let payload = binary_payload(v)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .ok()?;
    let mut raw = Vec::new();
    let npy: &[u8] = if bytes.starts_with(b"\x93NUMPY") {
        &bytes
    } else {
        // Bounded: a small compressed payload cannot inflate into gigabytes.
        flate2::read::ZlibDecoder::new(&bytes[..])
            .take(MAX_VECTOR_BYTES + 1)
            .read_to_end(&mut raw)
            .ok()?;
        if raw.len() as u64 > MAX_VECTOR_BYTES {
            return None;
        }
        &raw
    };
    parse_npy(npy)
}

fn parse_npy(b: &[u8]) -> Option<Vec<f32>> {
    if !b.starts_with(b"\x93NUMPY") || b.len() < 10 {
        return None;
    }
    let major = b[6];
    let (header_len, start) = if major == 1 {
        (usize::from(u16::from_le_bytes([b[8], b[9]])), 10)
    } else {
        let l = b.get(8..12)?;
        (u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize, 12)
    };
    let header = std::str::from_utf8(b.get(start..start + header_len)?).ok()?;
    let data = b.get(start + header_len..)?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.split(',').next().unwrap_or("");
    let width = match descr.trim().trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => 4,
        "<f8" => 8,
        _ => return None,
    };
    // `fortran_order` only matters for 2-D data; a single row reads the same either way.
    let shape = dict_value(header, "shape")?;
    let dims: Vec<usize> = shape
        .trim_start_matches('(')
        .split(')')
        .next()?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect::<Option<_>>()?;
    let n = match dims.as_slice() {
        [n] | [1, n] => *n,
        _ => return None,
    };
    // The shape is checked against the bytes present before anything is allocated.
    let len = n.checked_mul(width).filter(|len| *len <= data.len())?;
    let out = data[..len]
        .chunks_exact(width)
        .map(|c| {
            if width == 4 {
                f32::from_le_bytes([c[0], c[1], c[2], c[3]])
            } else {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            }
        })
        .collect();
    Some(out)
}

/// The text after `'key':` in a numpy header dict.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// Encodes a vector the way FiftyOne stores a `VectorField` in its JSON exports.
pub(crate) fn encode_vector(v: &[f32]) -> Value {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        v.len()
    );
    // Pad so that magic (6) + version (2) + length (2) + header is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = Vec::with_capacity(10 + header.len() + 4 * v.len());
    npy.extend_from_slice(b"\x93NUMPY\x01\x00");
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    for x in v {
        npy.extend_from_slice(&x.to_le_bytes());
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let compressed = z
        .write_all(&npy)
        .and_then(|()| z.finish())
        .unwrap_or_default();
    json!({"$binary": {
        "base64": base64::engine::general_purpose::STANDARD.encode(compressed),
        "subType": "00",
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip() {
        let v = vec![0.5f32, -1.25, 3.0, f32::MIN_POSITIVE];
        let enc = encode_vector(&v);
        assert_eq!(decode_vector(&enc), Some(v));
        assert_eq!(decode_vector(&json!([1.0])), None);
        assert_eq!(decode_vector(&json!({"$binary": "!!"})), None);
    }

    #[test]
    fn reads_numpy_written_bytes() {
        // np.save(f, np.array([1.0, 2.0], dtype="<f8")) then zlib.compress, base64, as
        // json_util's legacy form.
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        let mut header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }".to_string();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
        npy.extend_from_slice(header.as_bytes());
        npy.extend_from_slice(&1.0f64.to_le_bytes());
        npy.extend_from_slice(&2.0f64.to_le_bytes());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&npy).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
        let v = json!({"$binary": b64, "$type": "00"});
        assert_eq!(decode_vector(&v), Some(vec![1.0, 2.0]));
        assert_eq!(parse_npy(b"nope"), None);
    }

    #[test]
    fn a_header_claiming_more_than_the_data_is_refused() {
        for shape in [
            "(3,)",
            "(18446744073709551615,)",
            "(1, 9223372036854775807)",
        ] {
            let mut npy = b"\x93NUMPY\x01\x00".to_vec();
            let header =
                format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
            npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
            npy.extend_from_slice(header.as_bytes());
            npy.extend_from_slice(&[0u8; 8]);
            assert_eq!(parse_npy(&npy), None, "{shape}");
        }
    }

    #[test]
    fn a_zlib_bomb_is_refused() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..=(MAX_VECTOR_BYTES >> 20) {
            z.write_all(&zeros).unwrap();
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
        assert_eq!(decode_vector(&json!({"$binary": b64, "$type": "00"})), None);
    }
    /// Fuzz (`simile-fuzz`): vectors round-trip bit for bit (NaN payloads too), and mutated
    /// `.npy` bytes, raw or compressed, decode to a vector no longer than the data or to `None`.
    #[test]
    fn fuzz_vectors_round_trip_and_mutated_bytes_never_panic() {
        use simile_fuzz::proptest::prelude::*;
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let floats = prop::collection::vec(any::<u32>().prop_map(f32::from_bits), 0..64);
        simile_fuzz::check("fiftyone vector round trip", 64, floats, |v| {
            let back = decode_vector(&encode_vector(&v));
            prop_assert_eq!(back.as_deref().map(bits), Some(bits(&v)));
            Ok(())
        });
        let v = [1.0f32, -2.5, 3.0];
        let enc = encode_vector(&v);
        let b64 = enc["$binary"]["base64"].as_str().unwrap_or_default();
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default();
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&compressed[..])
            .read_to_end(&mut raw)
            .unwrap();
        simile_fuzz::check("npy bytes", 512, simile_fuzz::bytes_from(raw, 6), |b| {
            if let Some(out) = parse_npy(&b.0) {
                prop_assert!(
                    out.len() * 4 <= b.0.len(),
                    "{} values from {} bytes",
                    out.len(),
                    b.0.len()
                );
            }
            Ok(())
        });
        simile_fuzz::check(
            "zlib npy bytes",
            256,
            simile_fuzz::bytes_from(compressed, 4),
            |b| {
                let v = json!({"$binary": base64::engine::general_purpose::STANDARD.encode(&b.0)});
                let _ = decode_vector(&v);
                Ok(())
            },
        );
    }
}
